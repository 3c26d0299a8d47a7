//! Who may use the server: the CLI with the bearer token of `server.json`, and the pages with a
//! per-server session cookie.
//!
//! - `<replica dir>/server.json` = `{"url":"http://127.0.0.1:PORT","token":"<hex>","pid":N,
//!   "office":"caue-63"}`, written atomically (temporary file + rename, mode 0600) when the server starts and removed
//!   when it stops. Only someone who can read the replica directory can use the API.
//! - `/api/*` needs `Authorization: Bearer <token>`, or the pages' session cookie from the same
//!   origin (so the pages may call the API too).
//! - Every page response sets `atelier_<server id>=<session>` (HttpOnly, SameSite=Strict). The
//!   name is per server because browsers share cookies across ports of one host. Every mutating
//!   page route (forms, live text) needs that cookie and, when the browser says where the request
//!   comes from (`Origin`, `Sec-Fetch-Site`), the same origin: another site cannot post forms.
//! - On a loopback listener, requests naming another host are refused (DNS rebinding).

use std::path::{Path, PathBuf};

use atelier_core::OfficeId;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::WebError;
use crate::AppState;

/// Random bytes in each token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// The secrets of one running server.
pub struct Tokens {
    /// Bearer token of the API, written to `server.json`.
    pub api: String,
    /// Value of the pages' session cookie.
    pub session: String,
    /// Name of the session cookie, unique to this server.
    pub cookie_name: String,
}

impl Tokens {
    pub fn random() -> Self {
        let mut rng = rand::rngs::OsRng;
        let hex = |n: usize, rng: &mut rand::rngs::OsRng| {
            let mut bytes = vec![0u8; n];
            rng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        };
        Self {
            api: hex(TOKEN_BYTES, &mut rng),
            session: hex(TOKEN_BYTES, &mut rng),
            cookie_name: format!("atelier_{}", hex(4, &mut rng)),
        }
    }

    fn session_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.cookie_name && equal(value, &self.session))
    }

    fn bearer_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| equal(t.trim(), &self.api))
    }
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `/api/*`: bearer token, or the session cookie from the same origin.
pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, WebError> {
    let tokens = state.tokens();
    let headers = req.headers();
    if tokens.bearer_in(headers) {
        return Ok(next.run(req).await);
    }
    if tokens.session_in(headers) {
        same_origin(headers)?;
        return Ok(next.run(req).await);
    }
    Err(WebError::Unauthorized)
}

/// Pages: mutating requests and the live text endpoint need the session cookie from the same
/// origin; every response to a browser without the cookie sets it.
pub async fn session(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, WebError> {
    let tokens = state.tokens();
    let has_session = tokens.session_in(req.headers());
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    let private = req.uri().path().ends_with("/texte");
    if mutating || private {
        if !has_session {
            return Err(WebError::SessionExpired);
        }
        same_origin(req.headers())?;
    }
    let mut response = next.run(req).await;
    if !has_session {
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            tokens.cookie_name, tokens.session
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// On a loopback listener, only loopback host names are served (defeats DNS rebinding).
pub async fn check_host(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, WebError> {
    if state.loopback_only() {
        if let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
        {
            if !is_loopback_host(host) {
                return Err(WebError::Forbidden);
            }
        }
    }
    Ok(next.run(req).await)
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a request a browser says comes from another site. Requests without these headers
/// (scripts, old browsers) are judged by the cookie alone, which SameSite=Strict already keeps
/// from cross-site requests.
fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(WebError::Forbidden);
        }
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin_host != host {
            return Err(WebError::Forbidden);
        }
    }
    Ok(())
}

/// `server.json`, removed when the server stops.
pub struct ServerFile {
    path: PathBuf,
    token: String,
}

impl ServerFile {
    /// Writes `{"url","token","pid","office"}` atomically. A file left by a crashed server is
    /// replaced: the replica can only be open in one process, so no live server can own it.
    pub fn write(dir: &Path, url: &str, token: &str, office: &OfficeId) -> std::io::Result<Self> {
        let path = dir.join(crate::SERVER_FILE);
        let body = serde_json::json!({
            "url": url,
            "token": token,
            "pid": std::process::id(),
            "office": office.as_str(),
        });
        // The token gives the replica away: readable by this user only.
        atelier_core::fs::write_atomic(&path, body.to_string().as_bytes(), Some(0o600))?;
        Ok(Self {
            path,
            token: token.to_string(),
        })
    }

    /// Removes the file if it is still ours.
    pub fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["token"] == self.token.as_str());
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "server.json not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:8063",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["evil.example:8063", "10.0.0.1", "127.0.0.1.evil.example"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn server_file_is_written_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let office: OfficeId = "caue-63".parse().unwrap();
        let f = ServerFile::write(dir.path(), "http://127.0.0.1:1", "abc", &office).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("server.json")).unwrap())
                .unwrap();
        assert_eq!(v["url"], "http://127.0.0.1:1");
        assert_eq!(v["token"], "abc");
        assert_eq!(v["pid"], std::process::id());
        assert_eq!(v["office"], "caue-63");
        f.remove();
        assert!(!dir.path().join("server.json").exists());
        let f = ServerFile::write(dir.path(), "http://127.0.0.1:1", "abc", &office).unwrap();
        ServerFile::write(dir.path(), "http://127.0.0.1:2", "other", &office).unwrap();
        f.remove();
        assert!(
            dir.path().join("server.json").exists(),
            "another server's file was removed"
        );
    }
}
