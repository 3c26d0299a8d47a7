//! Per-office quotas on what offices write to the relay (documents, bytes, changes per minute),
//! the office every change records, and the catalog's form: the relay's [`ChangeGate`].
//!
//! Every document or change an office sends, over QUIC (the sync session) or the WebSocket,
//! passes [`Quotas::gate`]'s check before it is stored:
//! - each change whose commit message records an office must record the authenticated office
//!   (changes the relay already holds, being re-sent, pass);
//! - a catalog document (root or shard) must stay in the form replicas write
//!   ([`atelier_core::replica::check_catalog_write`]);
//! - the office stays under its quotas: documents it created, bytes it had stored, and
//!   Automerge changes per minute (a token bucket with [`RATE_BURST_MINUTES`] of burst). The
//!   catalog's documents count for bytes and changes, not as documents.
//!
//! A refusal skips that document's bytes only, is logged with its reason, and the session goes
//! on with the others. Usage (who created which document, bytes stored) is kept in the relay's
//! store under `keys::QUOTA_OWNER` and `keys::META_QUOTA_BYTES`, so it survives a restart;
//! the rate is in memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atelier_core::change_gate::ChangeGate;
use atelier_core::document::recorded_office;
use atelier_core::mutex::lock;
use atelier_core::replica::{check_catalog_write, is_catalog};
use atelier_core::store::keys::{self, META_QUOTA_BYTES, QUOTA_OWNER};
use atelier_core::store::{Batch, DocStore, StoreError};
use atelier_core::sync_guard;
use atelier_core::work::WorkCard;
use atelier_core::DocumentId;
use automerge::AutoCommit;
use serde::Deserialize;

use crate::metrics::RelayMetrics;

/// Default cap on the documents one office may create on the relay. The shared corpus is about
/// 100,000 documents for ~90 offices, the largest office a few thousand: 50,000 is ten times
/// that, yet one runaway client cannot grow the corpus (and every replica) past half again.
pub const DEFAULT_MAX_DOCUMENTS: u64 = 50_000;

/// Default cap on the bytes of documents and changes one office may have stored, counted as
/// received (compressed Automerge). A resource with its history is a few KB; 2 GB is room for
/// years of edits of the largest office, and far below a relay disk.
pub const DEFAULT_MAX_BYTES: u64 = 2_000_000_000;

/// Default cap on Automerge changes one office may have stored per minute. Staff make a few
/// hundred edits a day; an import of thousands of resources is the burst, which
/// [`RATE_BURST_MINUTES`] absorbs. A client looping on writes is held to this rate.
pub const DEFAULT_MAX_CHANGES_PER_MINUTE: u64 = 20_000;

/// Minutes of the change rate an office may spend at once (the token bucket's size): an
/// import of up to 200,000 changes at the default rate, then the steady rate.
pub const RATE_BURST_MINUTES: u64 = 10;

/// The `[quotas]` table of `relay.toml`: what each office may write to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Most documents one office may create. Default 50,000 ([`DEFAULT_MAX_DOCUMENTS`]).
    pub max_documents: u64,
    /// Most bytes of documents and changes one office may have stored. Default 2 GB
    /// ([`DEFAULT_MAX_BYTES`]).
    pub max_bytes: u64,
    /// Most Automerge changes one office may have stored per minute, with ten minutes' worth
    /// of burst. Default 20,000 ([`DEFAULT_MAX_CHANGES_PER_MINUTE`]).
    pub max_changes_per_minute: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            max_documents: DEFAULT_MAX_DOCUMENTS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_changes_per_minute: DEFAULT_MAX_CHANGES_PER_MINUTE,
        }
    }
}

/// Why the gate refused an office's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A change records another office in its commit message.
    #[error("a change records office {recorded}, not the sender {office}")]
    ForgedOffice {
        /// The authenticated office.
        office: String,
        /// The office the change claims.
        recorded: String,
    },
    /// The write would take a catalog document out of its form.
    #[error("{0}")]
    Catalog(String),
    /// The office created as many documents as it may.
    #[error("document quota reached ({0} documents)")]
    Documents(u64),
    /// The office had as many bytes stored as it may.
    #[error("byte quota reached ({0} bytes)")]
    Bytes(u64),
    /// The office sends changes faster than it may.
    #[error("change rate exceeded ({0} changes per minute)")]
    Rate(u64),
    /// The office is not a member of the group whose document it tries to change.
    #[error("office {office} is not a member of group document {group}")]
    NotAMember { office: String, group: String },
    /// The bytes could not be decoded, or the store failed.
    #[error("{0}")]
    Invalid(String),
}

impl Refusal {
    /// Counts this refusal: quotas as `quota_hits`, the rest as `refusals`.
    fn count(&self, metrics: &RelayMetrics) {
        match self {
            Refusal::Documents(_) => metrics.quota_hit("documents"),
            Refusal::Bytes(_) => metrics.quota_hit("bytes"),
            Refusal::Rate(_) => metrics.quota_hit("rate"),
            Refusal::ForgedOffice { .. } => metrics.refusal("forged_office"),
            Refusal::Catalog(_) => metrics.refusal("catalog_form"),
            Refusal::NotAMember { .. } => metrics.refusal("not_a_group_member"),
            Refusal::Invalid(_) => metrics.refusal("invalid_change"),
        }
    }
}

/// The relay's quota book, shared by every session.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<DocStore>,
    config: QuotaConfig,
    offices: Mutex<HashMap<String, Usage>>,
    /// Where refusals and quota hits are counted (the relay's `/metrics`).
    metrics: std::sync::OnceLock<RelayMetrics>,
}

/// What one office used.
#[derive(Debug, Clone)]
struct Usage {
    documents: u64,
    bytes: u64,
    /// Changes the office may still send now (token bucket).
    tokens: f64,
    refilled: Instant,
}

impl Quotas {
    /// The quota book of `store`, read from its usage records.
    pub fn open(store: Arc<DocStore>, config: QuotaConfig) -> Result<Self, StoreError> {
        let mut documents: HashMap<String, u64> = HashMap::new();
        store
            .kv()
            .for_each_prefix(&[QUOTA_OWNER], &mut |_, office| {
                *documents
                    .entry(String::from_utf8_lossy(office).into_owned())
                    .or_default() += 1;
                true
            })?;
        let mut bytes: HashMap<String, u64> = HashMap::new();
        store
            .kv()
            .for_each_prefix(META_QUOTA_BYTES, &mut |key, value| {
                let office = String::from_utf8_lossy(&key[META_QUOTA_BYTES.len()..]).into_owned();
                let value: [u8; 8] = value.try_into().unwrap_or_default();
                bytes.insert(office, u64::from_be_bytes(value));
                true
            })?;
        let now = Instant::now();
        let mut offices = HashMap::new();
        for office in documents.keys().chain(bytes.keys()) {
            offices.entry(office.clone()).or_insert_with(|| Usage {
                documents: documents.get(office).copied().unwrap_or(0),
                bytes: bytes.get(office).copied().unwrap_or(0),
                tokens: burst(&config),
                refilled: now,
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                offices: Mutex::new(offices),
                metrics: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Counts refused writes in `metrics` (set once; later calls are ignored).
    pub fn with_metrics(self, metrics: RelayMetrics) -> Self {
        let _ = self.inner.metrics.set(metrics);
        self
    }

    /// The gate of one authenticated office's session.
    pub fn gate(&self, office: &str) -> Arc<dyn ChangeGate> {
        Arc::new(OfficeGate {
            quotas: self.clone(),
            office: office.to_owned(),
        })
    }

    /// Documents created and bytes stored by `office` so far.
    pub fn usage(&self, office: &str) -> (u64, u64) {
        lock(&self.inner.offices)
            .get(office)
            .map_or((0, 0), |u| (u.documents, u.bytes))
    }

    /// Checks `office`'s bytes for `id` at `now`, and counts them if they pass.
    pub fn check(
        &self,
        office: &str,
        id: &DocumentId,
        chunks: &[&[u8]],
        now: Instant,
    ) -> Result<(), Refusal> {
        self.check_decoded(office, id, chunks, now).map(drop)
    }

    /// [`Self::check`], handing back the document when `chunks` are one saved document (which
    /// the check loads to read its changes), for the write to reuse.
    fn check_decoded(
        &self,
        office: &str,
        id: &DocumentId,
        chunks: &[&[u8]],
        now: Instant,
    ) -> Result<Option<AutoCommit>, Refusal> {
        let store = &self.inner.store;
        let invalid = |e: &dyn std::fmt::Display| Refusal::Invalid(e.to_string());
        let mut changes = Vec::new();
        let mut document = None;
        for chunk in chunks {
            let decoded = sync_guard::changes_of(chunk).map_err(|e| invalid(&e))?;
            changes.extend(decoded.changes);
            document = decoded.document.filter(|_| chunks.len() == 1);
        }
        let forged = changes
            .iter()
            .filter_map(|c| {
                recorded_office(c.message.as_deref())
                    .filter(|o| o != office)
                    .map(|o| (c, o))
            })
            .collect::<Vec<_>>();
        let members = group_members(store, id).map_err(|e| invalid(&e))?;
        let outsider = members
            .as_ref()
            .is_some_and(|m| !m.iter().any(|m| m == office));
        let needs_current = !forged.is_empty() || is_catalog(id) || outsider;
        let mut current = if needs_current {
            store.load(id).map_err(|e| invalid(&e))?
        } else {
            None
        };
        if let Some((_, recorded)) = forged.iter().find(|(c, _)| {
            // Changes the relay already holds are being re-sent, not forged by this office.
            current
                .as_mut()
                .is_none_or(|doc| doc.get_change_meta_by_hash(&c.hash).is_none())
        }) {
            return Err(Refusal::ForgedOffice {
                office: office.to_owned(),
                recorded: recorded.clone(),
            });
        }
        // A group is written by its member offices only (as they stand on the relay); an
        // outsider may only re-send changes the relay already holds.
        if outsider
            && changes.iter().any(|c| {
                current
                    .as_mut()
                    .is_none_or(|doc| doc.get_change_meta_by_hash(&c.hash).is_none())
            })
        {
            return Err(Refusal::NotAMember {
                office: office.to_owned(),
                group: id.to_base58(),
            });
        }
        if is_catalog(id) {
            let before = current.unwrap_or_else(AutoCommit::new);
            let mut after = before.clone();
            for chunk in chunks {
                after.load_incremental(chunk).map_err(|e| invalid(&e))?;
            }
            check_catalog_write(id, &before, &after).map_err(Refusal::Catalog)?;
        }
        self.charge(office, id, chunks, changes.len() as u64, now)?;
        Ok(document)
    }

    /// Checks the quotas and counts the write.
    fn charge(
        &self,
        office: &str,
        id: &DocumentId,
        chunks: &[&[u8]],
        changes: u64,
        now: Instant,
    ) -> Result<(), Refusal> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let invalid = |e: StoreError| Refusal::Invalid(e.to_string());
        let owner_key = keys::of_document(QUOTA_OWNER, id);
        let mut offices = lock(&self.inner.offices);
        let usage = offices.entry(office.to_owned()).or_insert_with(|| Usage {
            documents: 0,
            bytes: 0,
            tokens: burst(config),
            refilled: now,
        });
        let rate = config.max_changes_per_minute as f64 / 60.0;
        let elapsed = now.saturating_duration_since(usage.refilled).as_secs_f64();
        usage.tokens = (usage.tokens + elapsed * rate).min(burst(config));
        usage.refilled = now;
        // The catalog's 65 documents belong to nobody: every office writes them, and their
        // form is checked instead.
        let new = !is_catalog(id)
            && !store.contains(id).map_err(invalid)?
            && store.kv().get(&owner_key).map_err(invalid)?.is_none();
        if new && usage.documents >= config.max_documents {
            return Err(Refusal::Documents(config.max_documents));
        }
        let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if usage.bytes.saturating_add(size) > config.max_bytes {
            return Err(Refusal::Bytes(config.max_bytes));
        }
        if (changes as f64) > usage.tokens {
            return Err(Refusal::Rate(config.max_changes_per_minute));
        }
        let mut batch = Batch::default();
        if new {
            batch.put(owner_key, office.as_bytes().to_vec());
        }
        let bytes = usage.bytes + size;
        let mut bytes_key = META_QUOTA_BYTES.to_vec();
        bytes_key.extend_from_slice(office.as_bytes());
        batch.put(bytes_key, bytes.to_be_bytes().to_vec());
        // Counted before the write it allows: a crash in between over-counts a little, never
        // under-counts.
        store.kv().apply(batch).map_err(invalid)?;
        usage.documents += u64::from(new);
        usage.bytes = bytes;
        usage.tokens -= changes as f64;
        Ok(())
    }
}

/// The member offices of `id` if it is a group's document, from the work index the store's
/// `CardIndexer` keeps (no document is loaded).
fn group_members(store: &DocStore, id: &DocumentId) -> Result<Option<Vec<String>>, StoreError> {
    Ok(store
        .kv()
        .get(&keys::work_key(id))?
        .and_then(|v| serde_json::from_slice::<WorkCard>(&v).ok())
        .and_then(|card| match card {
            WorkCard::Group { members, .. } => Some(members),
            WorkCard::Thread { .. } | WorkCard::Publication { .. } => None,
        }))
}

fn burst(config: &QuotaConfig) -> f64 {
    (config.max_changes_per_minute * RATE_BURST_MINUTES) as f64
}

/// One office's gate.
struct OfficeGate {
    quotas: Quotas,
    office: String,
}

impl ChangeGate for OfficeGate {
    fn admit(&self, id: &DocumentId, chunks: &[&[u8]]) -> Result<Option<AutoCommit>, String> {
        self.quotas
            .check_decoded(&self.office, id, chunks, Instant::now())
            .map_err(|refusal| {
                tracing::warn!(office = %self.office, doc = %id.to_base58(), %refusal, "write refused");
                if let Some(m) = self.quotas.inner.metrics.get() {
                    refusal.count(m);
                }
                refusal.to_string()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::document::ChangeNote;
    use automerge::transaction::{CommitOptions, Transactable};
    use std::time::Duration;

    fn change(office: &str, key: &str) -> Vec<u8> {
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, key, "valeur").unwrap();
        let note = ChangeNote {
            office: office.into(),
            fields: vec![key.into()],
        };
        doc.commit_with(
            CommitOptions::default().with_message(serde_json::to_string(&note).unwrap()),
        );
        doc.save()
    }

    fn quotas(config: QuotaConfig) -> (Arc<DocStore>, Quotas) {
        let store = Arc::new(DocStore::in_memory());
        let quotas = Quotas::open(store.clone(), config).unwrap();
        (store, quotas)
    }

    #[test]
    fn only_member_offices_write_a_group() {
        use atelier_core::work::group::{self, GroupEdit, NewGroup};
        let (store, q) = quotas(QuotaConfig::default());
        let id = DocumentId::derived("groupe");
        let mut doc = AutoCommit::new();
        let new = NewGroup {
            name: "Massif central".into(),
            members: vec!["caue-15".into()],
            ..NewGroup::default()
        };
        group::create(&mut doc, &new, "caue-63", 1_000).unwrap();
        let created = doc.save();
        let now = Instant::now();
        q.check("caue-63", &id, &[&created], now).unwrap();
        store.apply_bytes(&id, &created).unwrap();
        let heads = doc.get_heads();
        let mut outsider = doc.fork();
        let edit = GroupEdit::Set {
            field: "slogan".into(),
            value: "Pirate".into(),
        };
        // The document refuses a non-member itself; a modified client would skip that check.
        outsider.put(automerge::ROOT, "slogan", "Pirate").unwrap();
        let note = ChangeNote {
            office: "caue-07".into(),
            fields: vec!["group:slogan".into()],
        };
        outsider.commit_with(
            CommitOptions::default().with_message(serde_json::to_string(&note).unwrap()),
        );
        let change = outsider.save_after(&heads);
        assert!(matches!(
            q.check("caue-07", &id, &[&change], now),
            Err(Refusal::NotAMember { .. })
        ));
        // Re-sending what the relay holds passes; a member's edit passes.
        q.check("caue-07", &id, &[&created], now).unwrap();
        group::apply(&mut doc, &[edit], "caue-15", 2_000).unwrap();
        let member = doc.save_after(&heads);
        q.check("caue-15", &id, &[&member], now).unwrap();
    }

    #[test]
    fn a_change_recording_another_office_is_refused() {
        let (store, q) = quotas(QuotaConfig::default());
        let id = DocumentId::derived("a");
        let now = Instant::now();
        let forged = change("caue-15", "titre");
        assert!(matches!(
            q.check("caue-63", &id, &[&forged], now),
            Err(Refusal::ForgedOffice { .. })
        ));
        let own = change("caue-63", "titre");
        q.check("caue-63", &id, &[&own], now).unwrap();
        // Once the relay holds caue-15's change (caue-15 sent it), re-sending it passes.
        store.apply_bytes(&id, &forged).unwrap();
        q.check("caue-63", &id, &[&forged], now).unwrap();
        // A change without an Atelier note (a browser's) records no office.
        let mut plain = AutoCommit::new();
        plain.put(automerge::ROOT, "x", 1).unwrap();
        q.check("caue-63", &DocumentId::derived("b"), &[&plain.save()], now)
            .unwrap();
    }

    #[test]
    fn documents_bytes_and_rate_are_capped_and_survive_a_restart() {
        let config = QuotaConfig {
            max_documents: 2,
            max_bytes: 100_000,
            max_changes_per_minute: 6,
        };
        let (store, q) = quotas(config.clone());
        let now = Instant::now();
        let docs: Vec<_> = (0..3)
            .map(|n| DocumentId::derived(&n.to_string()))
            .collect();
        let bytes = change("caue-63", "titre");
        q.check("caue-63", &docs[0], &[&bytes], now).unwrap();
        q.check("caue-63", &docs[1], &[&bytes], now).unwrap();
        assert_eq!(
            q.check("caue-63", &docs[2], &[&bytes], now),
            Err(Refusal::Documents(2))
        );
        // Writing again to its own documents is still allowed; other offices are not affected.
        q.check("caue-63", &docs[0], &[&bytes], now).unwrap();
        q.check("caue-15", &docs[2], &[&change("caue-15", "t")], now)
            .unwrap();
        assert_eq!(q.usage("caue-63").0, 2);

        let reopened = Quotas::open(store, config).unwrap();
        assert_eq!(reopened.usage("caue-63"), q.usage("caue-63"));
        assert_eq!(
            reopened.check("caue-63", &DocumentId::derived("x"), &[&bytes], now),
            Err(Refusal::Documents(2))
        );

        // 6 a minute with 10 minutes of burst: 60 changes, then one every ten seconds.
        let (_, q) = quotas(QuotaConfig {
            max_changes_per_minute: 6,
            ..QuotaConfig::default()
        });
        let id = DocumentId::derived("rate");
        for _ in 0..60 {
            q.check("caue-63", &id, &[&bytes], now).unwrap();
        }
        assert_eq!(
            q.check("caue-63", &id, &[&bytes], now),
            Err(Refusal::Rate(6))
        );
        q.check("caue-63", &id, &[&bytes], now + Duration::from_secs(10))
            .unwrap();

        let (_, q) = quotas(QuotaConfig {
            max_bytes: bytes.len() as u64,
            ..QuotaConfig::default()
        });
        q.check("caue-63", &id, &[&bytes], now).unwrap();
        assert!(matches!(
            q.check("caue-63", &id, &[&bytes], now),
            Err(Refusal::Bytes(_))
        ));
    }

    #[test]
    fn catalog_shards_take_only_their_own_entries() {
        use atelier_core::replica::Replica;
        let (_, q) = quotas(QuotaConfig::default());
        let now = Instant::now();
        let resource = DocumentId::derived("resource");
        let shard = Replica::catalog_shard(&resource);
        let entry = |key: String, with_office: bool| {
            let mut doc = AutoCommit::new();
            doc.put(automerge::ROOT, "@type", "atelier.catalog-shard")
                .unwrap();
            let e = doc
                .put_object(automerge::ROOT, key.as_str(), automerge::ObjType::Map)
                .unwrap();
            doc.put(&e, "kind", "realisation").unwrap();
            if with_office {
                doc.put(&e, "office", "caue-63").unwrap();
            }
            doc.put(&e, "title", "École").unwrap();
            doc.put(&e, "created", 1_i64).unwrap();
            doc.put(&e, "deleted", false).unwrap();
            doc.save()
        };
        q.check("caue-63", &shard, &[&entry(resource.url(), true)], now)
            .unwrap();
        assert!(matches!(
            q.check("caue-63", &shard, &[&entry(resource.url(), false)], now),
            Err(Refusal::Catalog(_))
        ));
        let elsewhere = (0..100)
            .map(|n| DocumentId::derived(&format!("other {n}")))
            .find(|d| Replica::catalog_shard(d) != shard)
            .unwrap();
        assert!(matches!(
            q.check("caue-63", &shard, &[&entry(elsewhere.url(), true)], now),
            Err(Refusal::Catalog(_))
        ));
        let mut junk = AutoCommit::new();
        junk.put(automerge::ROOT, "pirate", "oui").unwrap();
        assert!(matches!(
            q.check("caue-63", &Replica::catalog_root(), &[&junk.save()], now),
            Err(Refusal::Catalog(_))
        ));
    }
}
