//! A benchmark's browser stand-in: logs in through the web app's one-time link, then fetches
//! pages with the session cookie it set.

use std::time::Duration;

use anyhow::{bail, Context};

/// Largest page body read (the atlas of a whole corpus is several MB).
const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;

/// An agent holding the session cookie of a redeemed login link.
pub struct WebClient {
    agent: ureq::Agent,
    cookie: String,
}

impl WebClient {
    /// Redeems the one-time login `link`; every request gives up after `timeout`.
    pub fn login(link: &str, timeout: Duration) -> anyhow::Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let login = agent.get(link).call()?;
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the login link set no cookie")?
            .to_string();
        Ok(Self { agent, cookie })
    }

    /// The page at `base` + `path`; anything but 200 is an error.
    pub fn get(&self, base: &str, path: &str) -> anyhow::Result<String> {
        let mut page = self
            .agent
            .get(format!("{base}{path}"))
            .header("Cookie", &self.cookie)
            .call()?;
        if page.status() != 200 {
            bail!("{path} answered {}", page.status());
        }
        Ok(page
            .body_mut()
            .with_config()
            .limit(MAX_PAGE_BYTES)
            .read_to_string()?)
    }
}
