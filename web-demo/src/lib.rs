//! Atelier's web app: an axum server over one office replica, in plain French.
//!
//! Pages (`pages`) list, show, create, edit, delete resources and show their history; a local
//! JSON API (`api`) serves the CLI; live updates (`events`) push every change of the replica —
//! local, from sync or from the CLI — to open pages over server-sent events; text fields are
//! edited by splices (`live`), so two offices typing in one paragraph both keep their words.
//!
//! ```no_run
//! # async fn demo(replica: std::sync::Arc<atelier_core::replica::Replica>) {
//! let handle = atelier_web::spawn(replica, atelier_web::WebConfig::default()).await.unwrap();
//! println!("{}", handle.url());
//! handle.shutdown().await;
//! # }
//! ```
//!
//! Access (see `auth`): `<replica dir>/server.json` holds the URL and a bearer token for the
//! CLI; a browser logs in with a one-time link minted from that token (printed at start, by
//! `atelier ouvrir`, by the demo) and gets a per-server session cookie, which the API also
//! accepts from the server's own origin. Without it, every page is the login page.

pub mod api;
pub mod atlas;
pub mod auth;
pub mod counts;
pub mod error;
pub mod events;
pub mod glossary;
pub mod live;
pub mod publication;
pub mod search;
pub mod sync_status;

mod assets;
mod form;
mod layout;
mod map;
pub mod media;
mod pages;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use atelier_core::replica::Replica;
use atelier_core::DocumentId;
use automerge::AutoCommit;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

pub use atelier_core::search::IndexedSearch;
pub use error::WebError;
pub use search::SearchBackend;
pub use sync_status::{NotConfigured, SyncState, SyncStatus};

/// Largest request body on every route but import: one resource can be no larger than one line
/// of an import file (`jsonl::MAX_LINE_BYTES`, 4 MB), and forms and edit batches are smaller.
pub const MAX_BODY_BYTES: usize = atelier_core::jsonl::MAX_LINE_BYTES;
/// Largest import body: a generated corpus of 100,000 resources is ~170 MB of JSON Lines; the
/// whole file is validated in memory before anything is written, so this bounds memory too.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;
/// Live events buffered per open page. A page that falls this far behind (a burst of imports)
/// is told to reload what it shows instead of receiving each change.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;
/// How often the sync indicator asks the sync engine for its state: often enough that pages
/// feel live, rarely enough to cost nothing.
pub const SYNC_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The file in the replica directory that tells the CLI where the server is and its token.
pub const SERVER_FILE: &str = "server.json";
/// The port the binary listens on by default (loopback only).
pub const DEFAULT_PORT: u16 = 8063;

/// How to run the server.
#[derive(Clone)]
pub struct WebConfig {
    /// Where to listen; loopback by default. Tests use port 0.
    pub listen: SocketAddr,
    /// The sync engine's status; `None` shows « synchronisation non configurée ».
    pub sync: Option<Arc<dyn SyncStatus>>,
    /// Full-text search; `None` falls back to a plain word filter over the listing.
    pub search: Option<Arc<dyn SearchBackend>>,
    /// Whether to write `<replica dir>/server.json` (skipped anyway for in-memory replicas).
    pub write_server_file: bool,
    /// Allows a `listen` address other computers can reach, over plain HTTP: anyone on the
    /// network who gets a login link, or sees the traffic, reads and writes the replica. Without
    /// it, `spawn` refuses a non-loopback address.
    pub insecure_lan: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            sync: None,
            search: None,
            write_server_file: true,
            insecure_lan: false,
        }
    }
}

impl WebConfig {
    /// The defaults, listening on `listen`.
    pub fn listening_on(listen: SocketAddr) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    replica: Arc<Replica>,
    sync: Arc<dyn SyncStatus>,
    search: Option<Arc<dyn SearchBackend>>,
    events: Arc<broadcast::Sender<events::LiveEvent>>,
    tokens: auth::Tokens,
    shutdown: watch::Receiver<bool>,
    shutdown_tx: watch::Sender<bool>,
    loopback_only: bool,
    counts: counts::Counts,
}

impl AppState {
    /// State for `replica`; registers the replica observer that feeds live events.
    pub fn new(replica: Arc<Replica>, config: &WebConfig) -> Self {
        let events = Arc::new(broadcast::channel(EVENT_CHANNEL_CAPACITY).0);
        events::observe(&replica, Arc::downgrade(&events));
        let (shutdown_tx, shutdown) = watch::channel(false);
        let counts = counts::Counts::observing(&replica);
        Self(Arc::new(Shared {
            counts,
            replica,
            sync: config
                .sync
                .clone()
                .unwrap_or_else(|| Arc::new(NotConfigured)),
            search: config.search.clone(),
            events,
            tokens: auth::Tokens::random(),
            shutdown,
            shutdown_tx,
            loopback_only: config.listen.ip().is_loopback(),
        }))
    }

    pub fn replica(&self) -> &Arc<Replica> {
        &self.0.replica
    }

    /// Tells open pages that a blob arrived (called by whoever stores received blobs: the sync
    /// agent's hook): a page showing « en cours de réception » for it redraws with the image.
    pub fn media_arrived(&self, hash: &atelier_core::media::BlobHash) {
        // No open page is not an error.
        let _ = self.0.events.send(events::LiveEvent::MediaArrived(*hash));
    }

    /// The bearer token the API accepts (written to `server.json`).
    pub fn api_token(&self) -> &str {
        &self.0.tokens.api
    }

    /// The path of a new one-time login link (`/connexion?jeton=…`) that opens `next` once
    /// logged in; valid for [`auth::LOGIN_LINK_TTL`].
    pub fn login_path(&self, next: &str) -> String {
        let token = self.0.tokens.mint_link(std::time::Instant::now());
        auth::login_path(&token, next)
    }

    pub(crate) fn tokens(&self) -> &auth::Tokens {
        &self.0.tokens
    }

    pub(crate) fn sync(&self) -> &Arc<dyn SyncStatus> {
        &self.0.sync
    }

    pub(crate) fn search(&self) -> Option<&Arc<dyn SearchBackend>> {
        self.0.search.as_ref()
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<events::LiveEvent> {
        &self.0.events
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    /// The header's cached counts (« Quoi de neuf », « Pour vous »).
    pub(crate) fn counts(&self) -> &counts::Counts {
        &self.0.counts
    }

    pub(crate) fn loopback_only(&self) -> bool {
        self.0.loopback_only
    }

    /// Runs blocking replica work (sled, Automerge) off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Replica) -> Result<T, WebError> + Send + 'static,
    ) -> Result<T, WebError> {
        let replica = self.0.replica.clone();
        tokio::task::spawn_blocking(move || f(&replica))
            .await
            .map_err(WebError::internal)?
    }

    /// Resolves the resource named in an address (automerge URL, id or reference) and runs `f`
    /// on it off the async threads; every page and API route on one resource starts this way.
    pub(crate) async fn on_resource<T: Send + 'static>(
        &self,
        id: String,
        f: impl FnOnce(&Replica, &DocumentId) -> Result<T, WebError> + Send + 'static,
    ) -> Result<(DocumentId, T), WebError> {
        self.blocking(move |r| {
            let id = r.resolve(&id)?;
            let out = f(r, &id)?;
            Ok((id, out))
        })
        .await
    }
}

/// The stored Automerge document of a resolved resource, for the routes that need its heads.
pub(crate) fn load_document(r: &Replica, id: &DocumentId) -> Result<AutoCommit, WebError> {
    r.store()
        .load(id)?
        .ok_or_else(|| WebError::NotFound(id.to_string()))
}

/// Every route of the app, for `axum::serve` or `tower::ServiceExt::oneshot` tests.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/resources", get(api::list).post(api::create))
        .route("/resources/{id}", get(api::show).delete(api::delete))
        .route("/resources/{id}/edits", post(api::edit))
        .route("/resources/{id}/history", get(api::history))
        .route(
            "/import",
            post(api::import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/export", get(api::export))
        .route("/search", post(api::search))
        .route("/sync", get(api::sync_state).post(api::sync_now))
        .route("/sync-record", get(api::sync_record))
        .route(
            "/resources/{id}/media",
            post(api::add_media).layer(DefaultBodyLimit::max(api::MAX_MEDIA_UPLOAD_BYTES)),
        )
        .route("/media/present", post(api::media_present))
        .route(
            "/media/{hash}",
            get(media::serve)
                .post(api::import_blob)
                .layer(DefaultBodyLimit::max(
                    atelier_core::media::MAX_BLOB_BYTES as usize + 1024,
                )),
        )
        .route(
            "/media-policy",
            get(api::media_policy).put(api::set_media_policy),
        )
        .route("/media-status", get(api::media_status))
        .route("/login-link", post(auth::mint_link))
        .merge(api::work::routes())
        .merge(api::publication::routes())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(error_pages::json_errors));
    let pages = Router::new()
        .route("/", get(pages::list::page))
        .route("/fragments/resultats", get(pages::list::fragment))
        .route("/atlas", get(pages::atlas::page))
        .route("/export.csv", get(pages::export::csv))
        .route("/export.geojson", get(pages::export::geojson))
        .route("/export.jsonl", get(pages::export::jsonl))
        .route(
            "/import",
            get(pages::import::page)
                .post(pages::import::submit)
                .layer(DefaultBodyLimit::max(pages::import::MAX_UPLOAD_BYTES)),
        )
        .route(
            "/ressources/nouvelle",
            get(pages::edit::new_form).post(pages::edit::create),
        )
        .route("/ressources/{id}", get(pages::show::page))
        .route(
            "/ressources/{id}/modifier",
            get(pages::edit::edit_form).post(pages::edit::update),
        )
        .route(
            "/ressources/{id}/medias",
            get(pages::media::page)
                .post(pages::media::upload)
                .layer(DefaultBodyLimit::max(pages::media::MAX_UPLOAD_BYTES)),
        )
        .route(
            "/ressources/{id}/medias/{hash}",
            post(pages::media::edit_texts),
        )
        .route(
            "/ressources/{id}/medias/{hash}/retirer",
            get(pages::media::confirm_remove).post(pages::media::remove),
        )
        .route("/media/{hash}", get(media::serve))
        .route("/ressources/{id}/historique", get(pages::history::page))
        .route(
            "/ressources/{id}/version/{hash}",
            get(pages::history::version).post(pages::history::restore_version),
        )
        .route(
            "/ressources/{id}/supprimer",
            get(pages::delete::confirm).post(pages::delete::delete),
        )
        .route("/ressources/{id}/restaurer", post(pages::delete::restore))
        .route(
            "/ressources/{id}/texte",
            get(live::state).post(live::splice),
        )
        .route("/lexique", get(pages::lexicon::page))
        .route("/events", get(events::stream))
        .route("/assets/{file}", get(assets::serve))
        .route(auth::LOGIN_PATH, get(auth::login))
        .merge(pages::work::routes())
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            counts::refresh,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::session,
        ))
        // Outside the session check, so a refusal is drawn as a page (the login page) too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error_pages::page_errors,
        ));
    Router::new()
        .nest("/api", api)
        .merge(pages)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check_host,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Defence in depth on every response: only our own script, styles and images (data:, and blob:
/// for the previews of files about to be added) load, the pages cannot be framed, types are not
/// sniffed, and addresses do not leak to linked sites.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = response.headers_mut();
    // A route that set a stricter policy of its own (a publication's preview) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

mod error_pages {
    //! Turns error responses into French JSON (API, scripts) or a French page (browsers).

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{header, StatusCode};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};

    use crate::error::ErrorMessage;
    use crate::AppState;

    /// API errors as `{"error": "…"}`.
    pub async fn json_errors(req: Request, next: Next) -> Response {
        let response = next.run(req).await;
        to_json(response)
    }

    /// Page errors as a French page, or as JSON for the pages' own scripts (`Accept: application/json`).
    pub async fn page_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let response = next.run(req).await;
        if wants_json {
            return to_json(response);
        }
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error()) || is_html(&response) {
            return response;
        }
        let message = message_of(&response);
        let (parts, _) = response.into_parts();
        let page = if status == StatusCode::UNAUTHORIZED {
            crate::layout::login_page(&state, &message.message)
        } else {
            crate::layout::error_page(&state, status, &message.message)
        };
        let mut out = (status, page).into_response();
        for (k, v) in parts
            .headers
            .iter()
            .filter(|(k, _)| *k == header::SET_COOKIE || *k == header::CACHE_CONTROL)
        {
            out.headers_mut().append(k, v.clone());
        }
        out
    }

    fn to_json(response: Response) -> Response {
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return response;
        }
        let message = message_of(&response);
        let body = if message.fields.is_empty() {
            serde_json::json!({ "error": message.message })
        } else {
            serde_json::json!({ "error": message.message, "fields": message.fields })
        };
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(body.to_string()))
    }

    fn is_html(response: &Response) -> bool {
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
    }

    /// Our own message, or a French sentence for errors axum produced by itself (unknown route,
    /// wrong method, body too large, malformed request).
    fn message_of(response: &Response) -> ErrorMessage {
        if let Some(m) = response.extensions().get::<ErrorMessage>() {
            return m.clone();
        }
        let message = match response.status() {
            StatusCode::NOT_FOUND => "Cette page n'existe pas.",
            StatusCode::METHOD_NOT_ALLOWED => "Cette action n'est pas possible à cette adresse.",
            StatusCode::PAYLOAD_TOO_LARGE => "Ce que vous envoyez est trop volumineux.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Format de données non pris en charge.",
            s if s.is_server_error() => "Une erreur inattendue est survenue. Réessayez.",
            _ => "La demande n'a pas pu être comprise.",
        };
        ErrorMessage {
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

/// A running server.
pub struct WebHandle {
    local_addr: SocketAddr,
    state: AppState,
    tasks: JoinSet<()>,
    server_file: Option<auth::ServerFile>,
}

impl WebHandle {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`: the address to reach the server from this computer (loopback
    /// when it listens on every interface).
    pub fn url(&self) -> String {
        local_url(self.local_addr)
    }

    /// A new one-time login link (`http://…/connexion?jeton=…`) that opens `next` (a path such
    /// as `/`) once logged in.
    pub fn login_url(&self, next: &str) -> String {
        format!("{}{}", self.url(), self.state.login_path(next))
    }

    /// The bearer token of the API (also in `server.json`).
    pub fn api_token(&self) -> &str {
        self.state.api_token()
    }

    /// The shared state (for tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections, ends live event streams, waits for requests in flight and
    /// every task, then removes `server.json`.
    pub async fn shutdown(mut self) {
        let _ = self.state.0.shutdown_tx.send(true);
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "web task failed");
            }
        }
        if let Some(file) = self.server_file.take() {
            file.remove();
        }
    }
}

/// `http://ADDR`, with loopback for an address that means every interface.
fn local_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// Refuses a `listen` address other computers can reach unless `insecure_lan` says so, binds it,
/// writes `server.json`, and serves `replica` until `shutdown`.
pub async fn spawn(replica: Arc<Replica>, config: WebConfig) -> anyhow::Result<WebHandle> {
    use anyhow::Context as _;
    if !config.listen.ip().is_loopback() && !config.insecure_lan {
        anyhow::bail!(
            "l'adresse {} est joignable depuis d'autres ordinateurs, et l'application web ne parle \
             pas encore HTTPS : n'importe qui sur le réseau pourrait lire ou intercepter les \
             fiches. Écoutez sur 127.0.0.1 (par défaut), ou ajoutez --insecure-lan si ce réseau \
             est sûr et que vous acceptez ce risque.",
            config.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("impossible d'écouter sur {}", config.listen))?;
    let local_addr = listener.local_addr().context("adresse locale inconnue")?;
    let state = AppState::new(replica.clone(), &config);
    let server_file = if config.write_server_file && !replica.dir().as_os_str().is_empty() {
        Some(
            auth::ServerFile::write(
                replica.dir(),
                &local_url(local_addr),
                state.api_token(),
                replica.office(),
            )
            .context("écriture de server.json")?,
        )
    } else {
        None
    };
    let mut tasks = JoinSet::new();
    let app = router(state.clone());
    let mut stop = state.shutdown_signal();
    tasks.spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(error = %e, "web server stopped");
        }
    });
    tasks.spawn(events::poll_sync(state.clone()));
    tasks.spawn(counts::keep_current(state.clone()));
    tracing::info!(url = %local_url(local_addr), office = %replica.office(), "web app listening");
    Ok(WebHandle {
        local_addr,
        state,
        tasks,
        server_file,
    })
}

#[cfg(test)]
mod route_tests;
