//! Where commands send their work: the replica itself ([`Local`]), or, while `atelier-web`
//! serves the replica and holds its lock, that server's local API ([`Remote`]).
//!
//! The contract with `atelier-web`: while it serves a replica it writes `<dir>/server.json`
//! (`{"url":"http://127.0.0.1:PORT","token":"<hex>","pid":N}`) and answers the JSON API of
//! [`remote`] with `Authorization: Bearer <token>`. Both backends take the ids users type (URL,
//! bare id or ref) and return the same shapes, so commands do not know which one they talk to.

pub mod remote;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_core::document::{Edit, HistoryEntry};
use atelier_core::media::{BlobHash, MediaPolicy};
use atelier_core::replica::{
    Added, ForYou, GroupSummary, ImportReport, ListFilter, ListingEntry, MediaStatus, NewMedia,
    Replica, ReplicaError, ToReview, Unreadable,
};
use atelier_core::replica::{PublicationSummary, SinceExport};
use atelier_core::search::{IndexedSearch, SearchQuery, SEARCH_DIR};
use atelier_core::store::StoreError;
use atelier_core::work::group::{GroupEdit, NewGroup};
use atelier_core::work::publication::{NewPublication, PublicationEdit};
use atelier_core::{jsonl, DocumentId, OfficeId, Resource};
use atelier_web::api::publication::{self, ExportBundle, PublicationView, SectionRequest};
use atelier_web::api::work::{
    self as work, CommentRequest, Discussion, GroupPlan, GroupView, News, ReviewRequest,
    SubjectQuery, TaskView,
};
use serde::{Deserialize, Serialize};

pub use remote::{Remote, RemoteError, ServerInfo};

use crate::{Exit, UsageError};

/// A resource as `show` gives it: the local API's `GET /api/resources/{id}` shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceView {
    pub id: DocumentId,
    /// The FORMAT.md object.
    pub resource: serde_json::Value,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub deleted: bool,
}

/// One change of a resource (the core's `HistoryEntry`, readable back from JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub hash: String,
    /// Seconds since the epoch, by the author's clock.
    pub time: i64,
    /// The office that made the change; `None` for a change by a foreign client.
    pub office: Option<String>,
    pub fields: Vec<String>,
}

impl From<HistoryEntry> for Change {
    fn from(h: HistoryEntry) -> Self {
        Self {
            hash: h.hash,
            time: h.time,
            office: h.office,
            fields: h.fields,
        }
    }
}

/// What an import did (the core's `ImportReport`, readable back from JSON).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl From<ImportReport> for ImportCounts {
    fn from(r: ImportReport) -> Self {
        Self {
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
        }
    }
}

/// The operations of the commands, on whichever process holds the replica. `id` arguments are
/// what the user typed: a URL, a bare id or a ref.
pub trait Backend {
    /// The replica's office, when known (the web app's `server.json` may not say).
    fn office(&self) -> Option<OfficeId>;
    /// Adds a new resource; refuses a `ref` that already names one.
    fn create(&self, resource: &Resource) -> anyhow::Result<DocumentId>;
    fn show(&self, id: &str) -> anyhow::Result<ResourceView>;
    /// Applies the edits as one change; returns the fields changed.
    fn edit(&self, id: &str, edits: &[Edit]) -> anyhow::Result<Vec<String>>;
    /// Deletes (a tombstone that stays in the history).
    fn delete(&self, id: &str) -> anyhow::Result<()>;
    fn history(&self, id: &str) -> anyhow::Result<Vec<Change>>;
    fn list(&self, filter: &ListFilter) -> anyhow::Result<Vec<ListingEntry>>;
    /// Imports resources already validated from `jsonl` (sent as is to a server);
    /// `progress` gets the count done so far.
    fn import(
        &self,
        jsonl: &str,
        resources: &[Resource],
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<ImportCounts>;
    /// Writes every live resource `filter` lists as FORMAT.md JSON Lines; returns the
    /// resources left out because their documents cannot be read (the others are all written).
    fn export(&self, filter: &ListFilter, out: &mut dyn Write) -> anyhow::Result<Vec<Unreadable>>;
    /// Rebuilds the derived indexes; returns the number of documents read.
    fn reindex(&self) -> anyhow::Result<usize>;
    /// Full-text search with facets (`atelier_core::search::SearchResults` as JSON).
    fn search(&self, query: &SearchQuery) -> anyhow::Result<serde_json::Value>;
    /// Adds files to a resource (all or nothing).
    fn add_media(&self, id: &str, files: Vec<NewMedia>) -> anyhow::Result<Vec<Added>>;
    /// Which of these blobs are on this device.
    fn media_present(&self, hashes: &[BlobHash]) -> anyhow::Result<Vec<bool>>;
    /// A blob's bytes (verified), `None` if not here yet.
    fn media_blob(&self, hash: &BlobHash) -> anyhow::Result<Option<Vec<u8>>>;
    fn media_policy(&self) -> anyhow::Result<MediaPolicy>;
    fn set_media_policy(&self, policy: &MediaPolicy) -> anyhow::Result<()>;
    /// Blobs still to receive and to send.
    fn media_status(&self) -> anyhow::Result<MediaStatus>;
    /// Stores a blob read from an import's media folder (verified against `hash`).
    fn import_blob(&self, hash: &BlobHash, bytes: Vec<u8>) -> anyhow::Result<()>;

    // Working together: the shapes of `atelier_web::api::work`, where the server answers them.

    fn groups(&self) -> anyhow::Result<Vec<GroupSummary>>;
    fn create_group(&self, new: &NewGroup) -> anyhow::Result<DocumentId>;
    /// `group`: its URL, id or name.
    fn group(&self, group: &str) -> anyhow::Result<GroupView>;
    /// Applies the edits as one change (all or nothing); returns the group's id and the fields.
    fn edit_group(
        &self,
        group: &str,
        edits: &[GroupEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)>;
    fn plans(&self, group: Option<&str>, office: Option<&str>) -> anyhow::Result<Vec<GroupPlan>>;
    /// The task whose id starts with `task`.
    fn task(&self, group: Option<&str>, task: &str) -> anyhow::Result<TaskView>;
    /// A review step on a resource; returns its status afterwards.
    fn review(&self, resource: &str, req: &ReviewRequest) -> anyhow::Result<String>;
    fn discussion(&self, subject: &SubjectQuery) -> anyhow::Result<Discussion>;
    /// Adds a comment; returns its id.
    fn comment(&self, req: &CommentRequest) -> anyhow::Result<String>;
    fn to_review(&self) -> anyhow::Result<Vec<ToReview>>;
    fn for_you(&self) -> anyhow::Result<ForYou>;
    /// « Quoi de neuf » since `since` (ms), or since the last « marquer comme lu ».
    fn news(&self, since: Option<i64>) -> anyhow::Result<News>;
    /// « Marquer comme lu », now; returns the time recorded.
    fn mark_news_read(&self) -> anyhow::Result<i64>;

    // Publications numériques: the shapes of `atelier_web::api::publication`.

    fn publications(&self) -> anyhow::Result<Vec<PublicationSummary>>;
    fn create_publication(&self, new: &NewPublication) -> anyhow::Result<DocumentId>;
    /// `name`: its URL, id, title (or start of one), or its resource's ref.
    fn publication(&self, name: &str) -> anyhow::Result<PublicationView>;
    /// Applies the edits as one change (all or nothing); returns its id and the fields.
    fn edit_publication(
        &self,
        name: &str,
        edits: &[PublicationEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)>;
    /// Adds a section; returns the publication's id and the section's.
    fn add_section(&self, name: &str, req: &SectionRequest)
        -> anyhow::Result<(DocumentId, String)>;
    /// What changed since the last export.
    fn publication_since(&self, name: &str) -> anyhow::Result<SinceExport>;
    /// Exports (the snapshot is recorded).
    fn export_publication(&self, name: &str, single_file: bool) -> anyhow::Result<ExportBundle>;
}

/// Opens the replica in `dir`, or reaches the server that holds it.
pub fn open(dir: &Path) -> anyhow::Result<Box<dyn Backend>> {
    match crate::migrate::open_replica(dir) {
        Ok(replica) => Ok(Box::new(Local::new(replica))),
        Err(ReplicaError::Store(StoreError::InUse(_))) => match ServerInfo::read(dir) {
            Some(info) => {
                tracing::debug!(url = %info.url, "replica held by atelier-web, using its local API");
                Ok(Box::new(Remote::new(dir, info)))
            }
            None => Err(InUse {
                dir: dir.to_path_buf(),
                pid: None,
                server: None,
            }
            .into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The replica is held by another process that cannot take our command.
#[derive(Debug)]
pub struct InUse {
    pub dir: PathBuf,
    pub pid: Option<u32>,
    /// The address of a server that should have answered, and did not.
    pub server: Option<String>,
}

impl fmt::Display for InUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "le réplica « {} » est utilisé par un autre processus",
            self.dir.display()
        )?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        match &self.server {
            Some(url) => write!(f, ", et son application web ({url}) ne répond pas")?,
            None => write!(f, " qui n'offre pas d'accès aux commandes")?,
        }
        write!(
            f,
            " : attendez qu'il se termine ou arrêtez-le, puis recommencez"
        )
    }
}

impl std::error::Error for InUse {}

impl InUse {
    pub fn exit(&self) -> Exit {
        Exit::InUse
    }
}

/// This process holds the replica.
pub struct Local {
    replica: std::sync::Arc<Replica>,
}

impl Local {
    pub fn new(replica: Replica) -> Self {
        Self::shared(std::sync::Arc::new(replica))
    }

    /// A backend over a replica other parts of the process also use (the live demo).
    pub fn shared(replica: std::sync::Arc<Replica>) -> Self {
        Self { replica }
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    fn resolve(&self, id: &str) -> anyhow::Result<DocumentId> {
        Ok(self.replica.resolve(id)?)
    }
}

impl Backend for Local {
    fn office(&self) -> Option<OfficeId> {
        Some(self.replica.office().clone())
    }

    fn create(&self, resource: &Resource) -> anyhow::Result<DocumentId> {
        if let Some(reference) = &resource.ref_ {
            if let Ok(existing) = self.replica.resolve(reference) {
                return Err(UsageError(format!(
                    "la référence « {reference} » désigne déjà une ressource ({existing}) : \
                     modifiez-la avec « atelier edit {reference} »"
                ))
                .into());
            }
        }
        let mut rng = rand::thread_rng();
        Ok(self.replica.create(resource, &mut rng, crate::now_ms())?)
    }

    fn show(&self, id: &str) -> anyhow::Result<ResourceView> {
        let id = self.resolve(id)?;
        let stored = self.replica.get(&id)?;
        Ok(ResourceView {
            id,
            resource: stored.resource.to_json(),
            created_at: stored.created_at,
            deleted: stored.deleted,
        })
    }

    fn edit(&self, id: &str, edits: &[Edit]) -> anyhow::Result<Vec<String>> {
        let id = self.resolve(id)?;
        Ok(self.replica.edit(&id, edits, crate::now_ms())?)
    }

    fn delete(&self, id: &str) -> anyhow::Result<()> {
        let id = self.resolve(id)?;
        Ok(self.replica.delete(&id, crate::now_ms())?)
    }

    fn history(&self, id: &str) -> anyhow::Result<Vec<Change>> {
        let id = self.resolve(id)?;
        Ok(self
            .replica
            .history(&id)?
            .into_iter()
            .map(Change::from)
            .collect())
    }

    fn list(&self, filter: &ListFilter) -> anyhow::Result<Vec<ListingEntry>> {
        Ok(self.replica.list(filter)?)
    }

    fn import(
        &self,
        _jsonl: &str,
        resources: &[Resource],
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<ImportCounts> {
        let report = self.replica.import(resources, crate::now_ms(), progress)?;
        Ok(report.into())
    }

    fn export(&self, filter: &ListFilter, out: &mut dyn Write) -> anyhow::Result<Vec<Unreadable>> {
        let mut failed = None;
        let unreadable = self.replica.export_matching(filter, |item| {
            match jsonl::write_line(&mut &mut *out, &item) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        match failed {
            Some(e) => Err(e).context("écriture de l'export"),
            None => Ok(unreadable),
        }
    }

    fn reindex(&self) -> anyhow::Result<usize> {
        let n = self.replica.reindex(crate::now_ms())?;
        // The search index is derived too: recreate it empty, then index every resource.
        let dir = self.replica.dir().join(SEARCH_DIR);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| {
                format!("suppression de l'index de recherche {}", dir.display())
            })?;
        }
        self.search_engine()?;
        Ok(n)
    }

    fn search(&self, query: &SearchQuery) -> anyhow::Result<serde_json::Value> {
        let results = self
            .search_engine()?
            .search(query)
            .context("recherche impossible")?;
        Ok(serde_json::to_value(results)?)
    }

    fn add_media(&self, id: &str, files: Vec<NewMedia>) -> anyhow::Result<Vec<Added>> {
        let id = self.resolve(id)?;
        Ok(self.replica.add_media(&id, files, crate::now_ms())?)
    }

    fn media_present(&self, hashes: &[BlobHash]) -> anyhow::Result<Vec<bool>> {
        let store = self.replica.media_store();
        Ok(hashes.iter().map(|h| store.contains(h)).collect())
    }

    fn media_blob(&self, hash: &BlobHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.replica.media_blob(hash)?)
    }

    fn media_policy(&self) -> anyhow::Result<MediaPolicy> {
        Ok(self.replica.media_policy()?)
    }

    fn set_media_policy(&self, policy: &MediaPolicy) -> anyhow::Result<()> {
        Ok(self.replica.set_media_policy(policy)?)
    }

    fn media_status(&self) -> anyhow::Result<MediaStatus> {
        Ok(self.replica.media_status()?)
    }

    fn import_blob(&self, hash: &BlobHash, bytes: Vec<u8>) -> anyhow::Result<()> {
        Ok(self.replica.import_blob(hash, &bytes)?)
    }

    fn groups(&self) -> anyhow::Result<Vec<GroupSummary>> {
        Ok(self.replica.groups()?)
    }

    fn create_group(&self, new: &NewGroup) -> anyhow::Result<DocumentId> {
        let mut rng = rand::thread_rng();
        Ok(self.replica.create_group(new, &mut rng, crate::now_ms())?)
    }

    fn group(&self, group: &str) -> anyhow::Result<GroupView> {
        Ok(work::group_view(&self.replica, group, crate::now_ms())?)
    }

    fn edit_group(
        &self,
        group: &str,
        edits: &[GroupEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)> {
        let id = self.replica.resolve_group(group)?;
        Ok((id, self.replica.edit_group(&id, edits, crate::now_ms())?))
    }

    fn plans(&self, group: Option<&str>, office: Option<&str>) -> anyhow::Result<Vec<GroupPlan>> {
        Ok(work::plans(&self.replica, group, office, crate::now_ms())?)
    }

    fn task(&self, group: Option<&str>, task: &str) -> anyhow::Result<TaskView> {
        Ok(work::find_task(
            &self.replica,
            group,
            task,
            crate::now_ms(),
        )?)
    }

    fn review(&self, resource: &str, req: &ReviewRequest) -> anyhow::Result<String> {
        let mut rng = rand::thread_rng();
        Ok(work::review(
            &self.replica,
            resource,
            req,
            &mut rng,
            crate::now_ms(),
        )?)
    }

    fn discussion(&self, subject: &SubjectQuery) -> anyhow::Result<Discussion> {
        Ok(work::discussion(&self.replica, subject, crate::now_ms())?)
    }

    fn comment(&self, req: &CommentRequest) -> anyhow::Result<String> {
        let mut rng = rand::thread_rng();
        Ok(work::comment(
            &self.replica,
            req,
            &mut rng,
            crate::now_ms(),
        )?)
    }

    fn to_review(&self) -> anyhow::Result<Vec<ToReview>> {
        Ok(self.replica.to_review()?)
    }

    fn for_you(&self) -> anyhow::Result<ForYou> {
        let today = atelier_core::work::news::day_of(crate::now_ms());
        Ok(self.replica.for_you(&today)?)
    }

    fn news(&self, since: Option<i64>) -> anyhow::Result<News> {
        Ok(work::news(&self.replica, since, crate::now_ms())?)
    }

    fn mark_news_read(&self) -> anyhow::Result<i64> {
        let now = crate::now_ms();
        self.replica.mark_news_read(now)?;
        Ok(now)
    }

    fn publications(&self) -> anyhow::Result<Vec<PublicationSummary>> {
        Ok(self.replica.publications()?)
    }

    fn create_publication(&self, new: &NewPublication) -> anyhow::Result<DocumentId> {
        let mut rng = rand::thread_rng();
        Ok(self
            .replica
            .create_publication(new, &mut rng, crate::now_ms())?)
    }

    fn publication(&self, name: &str) -> anyhow::Result<PublicationView> {
        Ok(publication::publication_view(&self.replica, name)?)
    }

    fn edit_publication(
        &self,
        name: &str,
        edits: &[PublicationEdit],
    ) -> anyhow::Result<(DocumentId, Vec<String>)> {
        let id = self.replica.resolve_publication(name)?;
        Ok((
            id,
            self.replica.edit_publication(&id, edits, crate::now_ms())?,
        ))
    }

    fn add_section(
        &self,
        name: &str,
        req: &SectionRequest,
    ) -> anyhow::Result<(DocumentId, String)> {
        let mut rng = rand::thread_rng();
        Ok(publication::add_section(
            &self.replica,
            name,
            req,
            &mut rng,
            crate::now_ms(),
        )?)
    }

    fn publication_since(&self, name: &str) -> anyhow::Result<SinceExport> {
        let id = self.replica.resolve_publication(name)?;
        Ok(self.replica.since_export(&id)?)
    }

    fn export_publication(&self, name: &str, single_file: bool) -> anyhow::Result<ExportBundle> {
        let mut rng = rand::thread_rng();
        Ok(publication::export_bundle(
            &self.replica,
            name,
            single_file,
            &mut rng,
            crate::now_ms(),
        )?)
    }
}

/// From this many changed resources on, a search says it is bringing its index up to date
/// first (about a second per thousand resources).
const INDEXING_NOTICE: u64 = 1000;

impl Local {
    /// The replica's search index, brought up to date with every change since its last use.
    fn search_engine(&self) -> anyhow::Result<IndexedSearch> {
        // A fresh replica's first search indexes every received resource: say why it waits.
        let pending = self.replica.pending()?.len() as u64;
        if !self.replica.dir().join(SEARCH_DIR).exists() {
            eprintln!("Construction de l'index de recherche (une seule fois)…");
        } else if pending >= INDEXING_NOTICE {
            eprintln!(
                "Mise à jour de l'index de recherche : {} ressources reçues ou modifiées depuis la dernière recherche…",
                atelier_core::fr::integer(pending)
            );
        }
        let engine = IndexedSearch::open(self.replica.clone())
            .context("ouverture de l'index de recherche")?;
        engine
            .refresh()
            .context("mise à jour de l'index de recherche")?;
        Ok(engine)
    }
}
