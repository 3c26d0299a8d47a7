//! Who may use the server: the CLI with the bearer token of `server.json`, and browsers that
//! logged in with a one-time link minted from that token.
//!
//! - `<replica dir>/server.json` = `{"url":"http://127.0.0.1:PORT","token":"<hex>","pid":N,
//!   "office":"caue-63"}`, written atomically (temporary file + rename, mode 0600) when the server
//!   starts and removed when it stops. Only someone who can read the replica directory can use
//!   the API, or get a page.
//! - Login: `GET /connexion?jeton=<link>&suite=<path>` trades a one-time link (single use,
//!   expiring after [`LOGIN_LINK_TTL`]) for the session cookie `atelier_<server id>=<session>`
//!   (HttpOnly, SameSite=Strict), then redirects to `suite`. Links are minted by the server at
//!   start (printed by `atelier-web`), by `POST /api/login-link` (bearer token only: `atelier
//!   ouvrir`), and by [`crate::WebHandle::login_url`] (the demo). The cookie name is per server
//!   because browsers share cookies across ports of one host.
//! - Without the cookie, a page is a French page saying how to get a link; nothing else is
//!   served but the static assets and the login route.
//! - `/api/*` needs `Authorization: Bearer <token>`, or the session cookie with an `Origin` of
//!   this very server (the pages' scripts send it on their POSTs; a same-site page on another
//!   port of this host carries the cookie but not this origin).
//! - Every mutating page route (forms, live text) needs the cookie and, when the browser says
//!   where the request comes from (`Origin`, `Sec-Fetch-Site`), the same origin.
//! - On a loopback listener, requests naming another host are refused (DNS rebinding). A
//!   listener reachable from the network must be asked for (`WebConfig::insecure_lan`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atelier_core::OfficeId;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::WebError;
use crate::AppState;

/// Random bytes in each token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;
/// How long a login link stays valid: long enough to open it from the terminal it was printed
/// in, short enough that one found later in a scrollback or a log is useless.
pub const LOGIN_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Unused login links kept at once; minting one more forgets the oldest. Only a holder of the
/// API token mints them, so this only bounds the memory a script gone wrong could take.
pub const MAX_LOGIN_LINKS: usize = 32;
/// The login route.
pub const LOGIN_PATH: &str = "/connexion";

/// The secrets of one running server.
pub struct Tokens {
    /// Bearer token of the API, written to `server.json`.
    pub api: String,
    /// Value of the pages' session cookie.
    pub session: String,
    /// Name of the session cookie, unique to this server.
    pub cookie_name: String,
    /// Login links not used yet, oldest first, with the instant they expire.
    links: std::sync::Mutex<VecDeque<(String, Instant)>>,
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Tokens {
    pub fn random() -> Self {
        Self {
            api: random_hex(TOKEN_BYTES),
            session: random_hex(TOKEN_BYTES),
            cookie_name: format!("atelier_{}", random_hex(4)),
            links: Default::default(),
        }
    }

    /// A new one-time login link token, valid until `now + LOGIN_LINK_TTL`.
    pub fn mint_link(&self, now: Instant) -> String {
        let token = random_hex(TOKEN_BYTES);
        let mut links = atelier_core::mutex::lock(&self.links);
        links.retain(|(_, expires)| *expires > now);
        while links.len() >= MAX_LOGIN_LINKS {
            links.pop_front();
        }
        links.push_back((token.clone(), now + LOGIN_LINK_TTL));
        token
    }

    /// Uses up a login link: true once for a link minted less than `LOGIN_LINK_TTL` before
    /// `now`, false for an unknown, used or expired one.
    pub fn redeem_link(&self, token: &str, now: Instant) -> bool {
        let mut links = atelier_core::mutex::lock(&self.links);
        let Some(at) = links.iter().position(|(t, _)| equal(t, token)) else {
            return false;
        };
        let (_, expires) = links.remove(at).expect("position is in range");
        expires > now
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

    /// The `Set-Cookie` value that logs a browser in.
    fn session_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name, self.session
        )
    }
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `/api/*`: bearer token, or the session cookie with this server's own `Origin`.
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
        // A browser sends `Origin` on the pages' POSTs; a request with the cookie but without it
        // is not one of our pages (a script replaying a cookie, a same-site page's `<img>`).
        if headers.get(header::ORIGIN).is_none() {
            return Err(WebError::Forbidden);
        }
        same_origin(headers)?;
        return Ok(next.run(req).await);
    }
    Err(WebError::Unauthorized)
}

/// Pages: without the session cookie, only the login route and the static assets are served;
/// any other page is the French page that says how to log in. Mutating requests and the live
/// text endpoint also need the same origin.
pub async fn session(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, WebError> {
    let path = req.uri().path();
    if path == LOGIN_PATH || path.starts_with("/assets/") {
        return Ok(next.run(req).await);
    }
    let has_session = state.tokens().session_in(req.headers());
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    if !has_session {
        return Err(if mutating {
            WebError::SessionExpired
        } else {
            WebError::LoginRequired
        });
    }
    if mutating || path.ends_with("/texte") {
        same_origin(req.headers())?;
    }
    Ok(next.run(req).await)
}

/// Query of the login route.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// The one-time link token.
    pub jeton: Option<String>,
    /// Where to go once logged in (a path of this server).
    pub suite: Option<String>,
}

/// `GET /connexion?jeton=…&suite=…`: a valid link sets the session cookie and goes on to
/// `suite`; a used or expired one shows the login page again, unless this browser is already
/// logged in (the same link clicked twice).
pub async fn login(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let next = safe_next(query.suite.as_deref());
    let tokens = state.tokens();
    let redeemed = query
        .jeton
        .as_deref()
        .is_some_and(|t| tokens.redeem_link(t, Instant::now()));
    if !redeemed && !tokens.session_in(&headers) {
        tracing::info!("login link refused (unknown, used or expired)");
        return Err(WebError::LinkSpent);
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(&next).map_err(WebError::internal)?,
        )],
    )
        .into_response();
    if redeemed {
        tracing::info!("browser logged in with a one-time link");
        let cookie = HeaderValue::from_str(&tokens.session_cookie()).map_err(WebError::internal)?;
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A path of this server to go to after login; anything else (another site, `//host`, a
/// backslash some browsers read as a slash, a character a header cannot hold) goes to `/`.
fn safe_next(suite: Option<&str>) -> String {
    match suite {
        Some(s)
            if s.starts_with('/')
                && !s.starts_with("//")
                && !s.contains('\\')
                && !s.starts_with(LOGIN_PATH)
                && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            s.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The path of a login link for `token` that goes on to `next`.
pub fn login_path(token: &str, next: &str) -> String {
    let next = safe_next(Some(next));
    if next == "/" {
        format!("{LOGIN_PATH}?jeton={token}")
    } else {
        format!("{LOGIN_PATH}?jeton={token}&suite={}", encode_query(&next))
    }
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Body of `POST /api/login-link`.
#[derive(Debug, Default, Deserialize)]
pub struct LinkRequest {
    /// The page to open once logged in; `/` when absent.
    pub suite: Option<String>,
}

/// `POST /api/login-link` `{"suite": "/…"}` → `{"path": "/connexion?jeton=…", "expires_in_s": N}`.
/// Bearer token only: a logged-in page cannot mint links for others.
pub async fn mint_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    if !state.tokens().bearer_in(&headers) {
        return Err(WebError::Unauthorized);
    }
    let request: LinkRequest = if body.is_empty() {
        LinkRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| WebError::BadRequest("Demande de lien illisible.".into()))?
    };
    let path = state.login_path(request.suite.as_deref().unwrap_or("/"));
    Ok(Json(serde_json::json!({
        "path": path,
        "expires_in_s": LOGIN_LINK_TTL.as_secs(),
    }))
    .into_response())
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
    fn a_login_link_is_single_use_and_expires() {
        let tokens = Tokens::random();
        let now = Instant::now();
        let link = tokens.mint_link(now);
        assert!(!tokens.redeem_link("not-a-link", now));
        assert!(tokens.redeem_link(&link, now + LOGIN_LINK_TTL - Duration::from_secs(1)));
        assert!(!tokens.redeem_link(&link, now), "used twice");
        let late = tokens.mint_link(now);
        assert!(!tokens.redeem_link(&late, now + LOGIN_LINK_TTL), "expired");
        // Unused links are bounded: the oldest is forgotten.
        let first = tokens.mint_link(now);
        for _ in 0..MAX_LOGIN_LINKS {
            tokens.mint_link(now);
        }
        assert!(!tokens.redeem_link(&first, now));
        assert!(atelier_core::mutex::lock(&tokens.links).len() <= MAX_LOGIN_LINKS);
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
