//! The local API of a running `atelier-web`, for commands run while it holds the replica.
//!
//! API (JSON; `{id}` is a URL, bare id or ref, percent-encoded):
//! `GET /api/resources?kind=&office=&departement=&theme=&sector=&status=&deleted=1` →
//! `[ListingEntry]`; `POST /api/resources` (FORMAT.md object) → `{"id":URL}`;
//! `GET /api/resources/{id}` → `{"id","resource","created_at","deleted"}`;
//! `POST /api/resources/{id}/edits` `{"edits":[Edit…]}` → `{"fields":[…]}`;
//! `DELETE /api/resources/{id}`; `GET /api/resources/{id}/history` → `[HistoryEntry]`;
//! `POST /api/import` (JSONL text) → `{"created","updated","unchanged"}`, or 422;
//! `GET /api/export` (the filters of `GET /api/resources`) → JSONL; `GET /api/sync-record` → `SyncRecord` (for `status`);
//! `POST /api/login-link` `{"suite"}` → `{"path","expires_in_s"}` (for `open`); working together:
//! the routes of `atelier_web::api::work`. Errors are `{"error":"<French message>"}` with a 4xx/5xx status.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use atelier_core::document::Edit;
use atelier_core::media::{BlobHash, MediaPolicy};
use atelier_core::replica::{
    Added, ForYou, GroupSummary, ListFilter, ListingEntry, MediaStatus, NewMedia, SyncRecord,
    ToReview, Unreadable,
};
use atelier_core::replica::{PublicationSummary, SinceExport};
use atelier_core::work::group::{GroupEdit, NewGroup};
use atelier_core::work::publication::{NewPublication, PublicationEdit};
use atelier_core::{DocumentId, OfficeId, Resource};
use atelier_web::api::publication::{ExportBundle, PublicationView, SectionRequest};
use atelier_web::api::work::{
    CommentRequest, Discussion, GroupPlan, GroupView, News, ReviewRequest, SubjectQuery, TaskView,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{Backend, Change, ImportCounts, InUse, ResourceView};
use crate::{Exit, UsageError};

/// The file `atelier-web` writes in the replica directory while it serves it.
pub use atelier_web::SERVER_FILE;
/// The server runs on this machine: if it does not accept a connection within this time, it is
/// hung or gone, and the user is told the replica is in use rather than left waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for an answer. An import of 100,000 resources takes a few minutes on the server
/// before it answers; anything longer means the server is stuck.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Largest JSON answer read: the listing of 100,000 resources is about 40 MB.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// The contents of `server.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Bearer token of the local API.
    pub token: String,
    pub pid: Option<u32>,
    /// The replica's office, if the server says it (optional; `add` then needs no `--office`).
    #[serde(default)]
    pub office: Option<String>,
}

impl ServerInfo {
    /// Reads `<dir>/server.json`; `None` if it is missing or unreadable.
    pub fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(SERVER_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str(&text) {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable server.json, ignored");
                None
            }
        }
    }
}

/// An error answered by the server.
#[derive(Debug)]
pub struct RemoteError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// Refusals of what the user asked are usage errors; the rest failed while running.
    pub fn exit(&self) -> Exit {
        match self.status {
            400 | 404 | 409 | 422 => Exit::Usage,
            423 => Exit::InUse,
            _ => Exit::Runtime,
        }
    }
}

/// A login link for a browser: `http://…/connexion?jeton=…`, single use.
#[derive(Debug, Clone)]
pub struct LoginLink {
    pub url: String,
    /// How long it stays valid.
    pub expires_in_s: u64,
}

/// The server that holds the replica.
pub struct Remote {
    dir: PathBuf,
    info: ServerInfo,
    agent: ureq::Agent,
}

impl Remote {
    pub fn new(dir: &Path, info: ServerInfo) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .build()
            .into();
        Self {
            dir: dir.to_path_buf(),
            info,
            agent,
        }
    }

    /// The replica's sync record (last syncs, a running `sync --watch`), which the server's
    /// process keeps up to date.
    pub fn sync_record(&self) -> anyhow::Result<SyncRecord> {
        self.json("GET", "/api/sync-record", None)
    }

    /// A new one-time login link for a browser, minted by the server (`POST /api/login-link`),
    /// that opens `page` once logged in.
    pub fn login_link(&self, page: &str) -> anyhow::Result<LoginLink> {
        #[derive(Deserialize)]
        struct Minted {
            path: String,
            expires_in_s: u64,
        }
        let minted: Minted = self.json(
            "POST",
            "/api/login-link",
            Some(Body::Json(json!({ "suite": page }))),
        )?;
        Ok(LoginLink {
            url: self.url(&minted.path),
            expires_in_s: minted.expires_in_s,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.info.url.trim_end_matches('/'))
    }

    fn resource_path(id: &str, rest: &str) -> String {
        format!("/api/resources/{}{rest}", encode(id))
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.info.token)
    }

    /// Sends a request and returns the answer if it is a success, the server's message if not.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path);
        tracing::debug!(method, url, "local API request");
        let result = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("Authorization", self.auth())
                .call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", self.auth())
                .call(),
            ("PUT", Some(Body::Json(v))) => self
                .agent
                .put(&url)
                .header("Authorization", self.auth())
                .send_json(&v),
            (_, Some(Body::Json(v))) => self
                .agent
                .post(&url)
                .header("Authorization", self.auth())
                .send_json(&v),
            (_, Some(Body::Text(t))) => self
                .agent
                .post(&url)
                .header("Authorization", self.auth())
                .header("Content-Type", "application/x-ndjson; charset=utf-8")
                .send(t),
            (_, Some(Body::Bytes(b))) => self
                .agent
                .post(&url)
                .header("Authorization", self.auth())
                .header("Content-Type", atelier_web::api::MEDIA_UPLOAD_TYPE)
                .send(&b[..]),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", self.auth())
                .send_empty(),
        };
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("l'application web a répondu {status} : {}", text.trim()));
        Err(RemoteError { status, message }.into())
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<T> {
        let mut response = self.send(method, path, body)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_json()
            .with_context(|| format!("réponse illisible de l'application web ({path})"))
    }

    /// POSTs a new work document (a group, a publication) and returns the id it was given.
    fn create_work(&self, path: &str, new: serde_json::Value) -> anyhow::Result<DocumentId> {
        #[derive(Deserialize)]
        struct Created {
            id: DocumentId,
        }
        let created: Created = self.json("POST", path, Some(Body::Json(new)))?;
        Ok(created.id)
    }

    /// POSTs edits to a work document; returns its id and the fields that changed.
    fn edit_work(
        &self,
        path: &str,
        edits: serde_json::Value,
    ) -> anyhow::Result<(DocumentId, Vec<String>)> {
        #[derive(Deserialize)]
        struct Edited {
            id: DocumentId,
            fields: Vec<String>,
        }
        let edited: Edited = self.json("POST", path, Some(Body::Json(edits)))?;
        Ok((edited.id, edited.fields))
    }

    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        match e {
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_) => {
                tracing::debug!(error = %e, "local API unreachable");
                InUse {
                    dir: self.dir.clone(),
                    pid: self.info.pid,
                    server: Some(self.info.url.clone()),
                }
                .into()
            }
            other => anyhow::Error::new(other).context("échange avec l'application web"),
        }
    }
}

enum Body {
    Json(serde_json::Value),
    Text(String),
    Bytes(Vec<u8>),
}

impl Backend for Remote {
    fn office(&self) -> Option<OfficeId> {
        self.info.office.as_deref().and_then(|o| o.parse().ok())
    }

    fn create(&self, resource: &Resource) -> anyhow::Result<DocumentId> {
        #[derive(Deserialize)]
        struct Created {
            id: DocumentId,
        }
        let created: Created = self.json(
            "POST",
            "/api/resources",
            Some(Body::Json(resource.to_json())),
        )?;
        Ok(created.id)
    }

    fn show(&self, id: &str) -> anyhow::Result<ResourceView> {
        self.json("GET", &Self::resource_path(id, ""), None)
    }

    fn edit(&self, id: &str, edits: &[Edit]) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Edited {
            fields: Vec<String>,
        }
        let body = Body::Json(json!({ "edits": edits }));
        let edited: Edited = self.json("POST", &Self::resource_path(id, "/edits"), Some(body))?;
        Ok(edited.fields)
    }

    fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.send("DELETE", &Self::resource_path(id, ""), None)?;
        Ok(())
    }

    fn history(&self, id: &str) -> anyhow::Result<Vec<Change>> {
        self.json("GET", &Self::resource_path(id, "/history"), None)
    }

    fn list(&self, filter: &ListFilter) -> anyhow::Result<Vec<ListingEntry>> {
        self.json("GET", &with_filter("/api/resources", filter), None)
    }

    fn import(
        &self,
        jsonl: &str,
        resources: &[Resource],
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<ImportCounts> {
        let counts = self.json("POST", "/api/import", Some(Body::Text(jsonl.to_string())))?;
        progress(resources.len());
        Ok(counts)
    }

    fn export(&self, filter: &ListFilter, out: &mut dyn Write) -> anyhow::Result<Vec<Unreadable>> {
        let mut response = self.send("GET", &with_filter("/api/export", filter), None)?;
        // The web app names the resources it left out in a header (ids only: header values
        // are ASCII) and logs why.
        let unreadable = response
            .headers()
            .get(atelier_web::api::UNREADABLE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .filter_map(|id| id.trim().parse().ok())
            .map(|id| Unreadable {
                id,
                title: String::new(),
                reason: "illisible (le journal de l'application web dit pourquoi)".into(),
            })
            .collect();
        std::io::copy(&mut response.body_mut().as_reader(), out)
            .context("réception de l'export depuis l'application web")?;
        Ok(unreadable)
    }

    fn search(
        &self,
        query: &atelier_core::search::SearchQuery,
    ) -> anyhow::Result<serde_json::Value> {
        self.json(
            "POST",
            "/api/search",
            Some(Body::Json(serde_json::to_value(query)?)),
        )
    }

    fn add_media(&self, id: &str, files: Vec<NewMedia>) -> anyhow::Result<Vec<Added>> {
        let body = atelier_web::api::encode_media_upload(&files);
        self.json(
            "POST",
            &Self::resource_path(id, "/media"),
            Some(Body::Bytes(body)),
        )
    }

    fn media_present(&self, hashes: &[BlobHash]) -> anyhow::Result<Vec<bool>> {
        self.json(
            "POST",
            "/api/media/present",
            Some(Body::Json(serde_json::to_value(hashes)?)),
        )
    }

    fn media_blob(&self, hash: &BlobHash) -> anyhow::Result<Option<Vec<u8>>> {
        match self.send("GET", &format!("/api/media/{hash}"), None) {
            Ok(mut response) => Ok(Some(
                response
                    .body_mut()
                    .with_config()
                    .limit(atelier_core::media::MAX_BLOB_BYTES)
                    .read_to_vec()
                    .context("réception d'un média depuis l'application web")?,
            )),
            Err(e)
                if e.downcast_ref::<RemoteError>()
                    .is_some_and(|r| r.status == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn media_policy(&self) -> anyhow::Result<MediaPolicy> {
        self.json("GET", "/api/media-policy", None)
    }

    fn set_media_policy(&self, policy: &MediaPolicy) -> anyhow::Result<()> {
        self.send(
            "PUT",
            "/api/media-policy",
            Some(Body::Json(serde_json::to_value(policy)?)),
        )?;
        Ok(())
    }

    fn media_status(&self) -> anyhow::Result<MediaStatus> {
        self.json("GET", "/api/media-status", None)
    }

    fn import_blob(&self, hash: &BlobHash, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.send(
            "POST",
            &format!("/api/media/{hash}"),
            Some(Body::Bytes(bytes)),
        )?;
        Ok(())
    }

    fn reindex(&self) -> anyhow::Result<usize> {
        Err(UsageError(format!(
            "l'application web ({}) utilise ce réplica : arrêtez-la pour reconstruire les index",
            self.info.url
        ))
        .into())
    }

    fn groups(&self) -> anyhow::Result<Vec<GroupSummary>> {
        self.json("GET", "/api/groups", None)
    }

    fn create_group(&self, new: &NewGroup) -> anyhow::Result<DocumentId> {
        self.create_work("/api/groups", serde_json::to_value(new)?)
    }

    fn group(&self, group: &str) -> anyhow::Result<GroupView> {
        self.json("GET", &format!("/api/groups/{}", encode(group)), None)
    }

    fn edit_group(
        &self,
        group: &str,
        edits: &[GroupEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)> {
        let path = format!("/api/groups/{}/edits", encode(group));
        self.edit_work(&path, json!({ "edits": edits }))
    }

    fn plans(&self, group: Option<&str>, office: Option<&str>) -> anyhow::Result<Vec<GroupPlan>> {
        let path = format!(
            "/api/tasks?group={}&office={}",
            encode(group.unwrap_or_default()),
            encode(office.unwrap_or_default())
        );
        self.json("GET", &path, None)
    }

    fn task(&self, group: Option<&str>, task: &str) -> anyhow::Result<TaskView> {
        let path = format!(
            "/api/tasks/{}?group={}",
            encode(task),
            encode(group.unwrap_or_default())
        );
        self.json("GET", &path, None)
    }

    fn review(&self, resource: &str, req: &ReviewRequest) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Reviewed {
            status: String,
        }
        let body = Body::Json(serde_json::to_value(req)?);
        let done: Reviewed = self.json(
            "POST",
            &Self::resource_path(resource, "/review"),
            Some(body),
        )?;
        Ok(done.status)
    }

    fn discussion(&self, subject: &SubjectQuery) -> anyhow::Result<Discussion> {
        let mut query = Vec::new();
        for (key, value) in [
            ("resource", &subject.resource),
            ("group", &subject.group),
            ("task", &subject.task),
        ] {
            if let Some(v) = value {
                query.push(format!("{key}={}", encode(v)));
            }
        }
        self.json("GET", &format!("/api/discussion?{}", query.join("&")), None)
    }

    fn comment(&self, req: &CommentRequest) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Said {
            id: String,
        }
        let body = Body::Json(serde_json::to_value(req)?);
        let said: Said = self.json("POST", "/api/comments", Some(body))?;
        Ok(said.id)
    }

    fn to_review(&self) -> anyhow::Result<Vec<ToReview>> {
        self.json("GET", "/api/to-review", None)
    }

    fn for_you(&self) -> anyhow::Result<ForYou> {
        self.json("GET", "/api/for-you", None)
    }

    fn news(&self, since: Option<i64>) -> anyhow::Result<News> {
        match since {
            Some(ms) => self.json("GET", &format!("/api/news?since={ms}"), None),
            None => self.json("GET", "/api/news", None),
        }
    }

    fn mark_news_read(&self) -> anyhow::Result<i64> {
        #[derive(Deserialize)]
        struct Read {
            read_at: i64,
        }
        let read: Read = self.json("POST", "/api/news/read", None)?;
        Ok(read.read_at)
    }

    fn publications(&self) -> anyhow::Result<Vec<PublicationSummary>> {
        self.json("GET", "/api/publications", None)
    }

    fn create_publication(&self, new: &NewPublication) -> anyhow::Result<DocumentId> {
        self.create_work("/api/publications", serde_json::to_value(new)?)
    }

    fn publication(&self, name: &str) -> anyhow::Result<PublicationView> {
        self.json("GET", &format!("/api/publications/{}", encode(name)), None)
    }

    fn edit_publication(
        &self,
        name: &str,
        edits: &[PublicationEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)> {
        let path = format!("/api/publications/{}/edits", encode(name));
        self.edit_work(&path, json!({ "edits": edits }))
    }

    fn add_section(
        &self,
        name: &str,
        req: &SectionRequest,
    ) -> anyhow::Result<(DocumentId, String)> {
        #[derive(Deserialize)]
        struct Added {
            id: DocumentId,
            section: String,
        }
        let body = Body::Json(serde_json::to_value(req)?);
        let path = format!("/api/publications/{}/sections", encode(name));
        let added: Added = self.json("POST", &path, Some(body))?;
        Ok((added.id, added.section))
    }

    fn publication_since(&self, name: &str) -> anyhow::Result<SinceExport> {
        self.json(
            "GET",
            &format!("/api/publications/{}/since", encode(name)),
            None,
        )
    }

    fn export_publication(&self, name: &str, single_file: bool) -> anyhow::Result<ExportBundle> {
        let path = format!(
            "/api/publications/{}/export{}",
            encode(name),
            if single_file { "?un_fichier=1" } else { "" }
        );
        self.json("POST", &path, None)
    }
}

/// `path` with the listing filter as its query (`?kind=…&departement=…`).
fn with_filter(path: &str, filter: &ListFilter) -> String {
    let mut query = Vec::new();
    for (key, value) in [
        ("kind", &filter.kind),
        ("office", &filter.office),
        ("departement", &filter.departement),
        ("theme", &filter.theme),
        ("sector", &filter.sector),
        ("status", &filter.status),
    ] {
        if let Some(v) = value {
            query.push(format!("{key}={}", encode(v)));
        }
    }
    if filter.include_deleted {
        query.push("deleted=1".into());
    }
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_refs_are_percent_encoded() {
        assert_eq!(encode("automerge:2j9Ab"), "automerge%3A2j9Ab");
        assert_eq!(encode("réf 1/2"), "r%C3%A9f%201%2F2");
    }

    #[test]
    fn server_json_is_read_with_or_without_office() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ServerInfo::read(dir.path()).is_none());
        std::fs::write(
            dir.path().join(SERVER_FILE),
            r#"{"url":"http://127.0.0.1:4000","token":"ab12","pid":42}"#,
        )
        .unwrap();
        let info = ServerInfo::read(dir.path()).unwrap();
        assert_eq!(info.pid, Some(42));
        assert_eq!(info.office, None);
        std::fs::write(dir.path().join(SERVER_FILE), "{not json").unwrap();
        assert!(ServerInfo::read(dir.path()).is_none());
    }
}
