//! `atelier-sync/1`: corpus sync as a sans-IO state machine.
//!
//! One `Session` per connection. The initiator (the side that connected) drives rounds:
//!
//! 1. it sends `Summary` (the 256 bucket digests of `(id, heads hash)`, 4 KB);
//! 2. the responder flushes, compares, and answers `Entries` for the buckets that differ (none:
//!    in sync after one round trip);
//! 3. the initiator sorts every entry: documents only it has go out whole (`Docs`, batched and
//!    loaded lazily as frames are built), documents only the responder has are asked for
//!    (`Want`) and come back whole with their cards (`card.rs`: stored without loading them),
//!    documents both have but differently run Automerge's own sync protocol (`Sync`,
//!    many documents per frame, at most `MAX_INITIATED_SYNCS` at a time);
//! 4. when nothing is in flight it sends a new `Summary`; equal digests end the sync.
//!
//! Live mode is the same session kept open: `handle_local_change` pushes a document's new
//! changes at once (`Docs`), and changes that arrive without their dependencies start a `Sync`
//! for that document. The driver (QUIC in the relay and CLI, an in-memory network in tests)
//! feeds frames to `handle_frame` and sends what `poll_transmit` returns.

pub mod message;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use automerge::sync as am_sync;
use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::card::{self, Card};
use crate::change_gate::ChangeGate;
use crate::ids::DocumentId;
use crate::store::{DocChange, DocStore, HeadsHash, StoreError, BUCKETS};
pub use message::{BucketEntries, DocBytes, Message, MAX_FRAME_SIZE};

/// Protocol name, also the QUIC ALPN.
pub const PROTOCOL: &str = "atelier-sync/1";
/// Target size of a `Docs` or `Sync` frame: large enough to amortise framing and fsyncs, small
/// enough that a frame is applied in a few milliseconds and memory per peer stays bounded.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Ids per `Want` frame (16 bytes each: 64 KB).
pub const WANT_BATCH: usize = 4096;
/// Entries per `Entries` frame (48 bytes each: ~4 MB), well under `MAX_FRAME_SIZE`.
pub const ENTRIES_BATCH: usize = 80_000;
/// Automerge syncs this side starts and keeps open at once; the rest wait their turn. Each
/// holds a loaded document only while a message is processed, plus a small `sync::State`.
pub const MAX_INITIATED_SYNCS: usize = 256;
/// Automerge sync states a peer may make us hold at once before we close the connection.
pub const MAX_PEER_SYNCS: usize = 4096;
/// Rounds an initiator runs before reporting that the corpus did not settle (other offices
/// editing during the sync can keep digests moving; the next sync picks up the rest).
pub const MAX_ROUNDS: u32 = 8;
/// Threads that load received documents at once (see `apply_all`).
pub const MAX_APPLY_THREADS: usize = 4;
/// Digests a responder remembers per bucket for a live peer (see `Session::pushed_states`):
/// a confirmation round crosses at most the few changes pushed while it was on its way.
const PUSHED_STATES_PER_BUCKET: usize = 4;
/// Buckets a responder remembers pushed states for before it starts over: a burst of changes
/// wider than this is answered with entries, as before. 64 × 4 digests, 4 KB per session.
const PUSHED_STATES_BUCKETS: usize = 64;
/// Below this many documents in a frame, applying them on one thread is cheaper.
const PARALLEL_APPLY_MIN: usize = 16;
/// Heads applied from the peer remembered to avoid echoing its own changes back to it.
const ECHO_MEMORY: usize = 16_384;
/// Documents left out of one session that are reported by id (`SyncStats::skipped`). A corpus
/// has a handful of refused documents at worst; past this many something else is wrong: further
/// refused documents are logged each time they come up but not kept, so a hostile peer cannot
/// grow the report (and rounds may then not settle, as before skipping existed).
pub const MAX_SKIPPED_DOCS: usize = 4096;
/// Ids a peer's `Want`s may queue for sending before a responder stops reading that peer
/// (see [`Session::is_backlogged`]): four `Want` frames, 256 KB of ids. Documents are loaded
/// only as frames are built, so the ids are all a queue holds.
pub const MAX_QUEUED_WANTS: usize = 4 * WANT_BATCH;
/// Bytes of encoded frames (and batches being filled) a responder may hold for a peer that is
/// not reading them before it stops reading that peer: four `Docs` batches. One frame handled
/// past it adds at most one answer (for a `Summary`, 48 bytes per document of the corpus).
pub const MAX_QUEUED_BYTES: usize = 4 * BATCH_BYTES;

/// Why a session failed: any of these closes that one connection, nothing else, except
/// `BadDocument`, which the session turns into skipping that document (`Session::skip`).
#[derive(Debug, Error)]
pub enum SyncError {
    /// A frame is larger than `MAX_FRAME_SIZE`.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_SIZE}-byte limit")]
    FrameTooLarge(usize),
    /// A frame does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame is valid but not allowed here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// One document was refused (hostile, corrupt or too large data, held or received): the
    /// session leaves that document out and goes on (see `Session::skip`).
    #[error("document {id}: {reason}")]
    BadDocument { id: DocumentId, reason: Refusal },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// The document this error is about and why it was refused, when the error concerns that
    /// one document only (the session then skips it); `None` for errors that end the session.
    pub fn refused_document(&self) -> Option<(DocumentId, Refusal)> {
        match self {
            SyncError::BadDocument { id, reason } => Some((*id, reason.clone())),
            SyncError::Store(StoreError::TooLarge { id, size }) => {
                Some((*id, Refusal::TooLarge { size: *size }))
            }
            SyncError::Store(StoreError::Corrupt { id, reason }) => Some((
                *id,
                Refusal::Unreadable {
                    detail: reason.clone(),
                },
            )),
            _ => None,
        }
    }

    fn bad_document(id: &DocumentId, e: crate::sync_guard::GuardError) -> Self {
        let reason = match e {
            crate::sync_guard::GuardError::TooLarge { size, .. } => Refusal::TooLarge { size },
            e => Refusal::Unreadable {
                detail: e.to_string(),
            },
        };
        SyncError::BadDocument { id: *id, reason }
    }
}

/// Why a document was left out of a sync; the rest of the corpus syncs on. Kept in the
/// replica's sync record for `atelier status` (which words it in French).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// Larger than `store::MAX_DOCUMENT_BYTES`: as held, as received, or once changed.
    TooLarge { size: usize },
    /// Its Automerge data does not decode, or Automerge failed or panicked on it.
    Unreadable { detail: String },
    /// The peer did not take it: a whole exchange left both sides as they were (the peer's log
    /// says why).
    ByPeer,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge { size } => write!(
                f,
                "{size} bytes, more than the {} bytes a document may hold",
                crate::store::MAX_DOCUMENT_BYTES
            ),
            Refusal::Unreadable { detail } => write!(f, "unreadable: {detail}"),
            Refusal::ByPeer => write!(f, "refused by the peer"),
        }
    }
}

/// Which side of the connection this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connected to the other side; drives reconciliation rounds.
    Initiator,
    /// Accepted the connection; answers.
    Responder,
}

/// Counters for the summary printed after a sync.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SyncStats {
    pub rounds: u32,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Documents sent whole or as changes.
    pub docs_sent: u64,
    /// Documents that changed here because of the peer.
    pub docs_received: u64,
    /// Documents the peer changed, by owner office (when the lookup knows it).
    pub received_by_office: BTreeMap<String, u64>,
    pub sent_by_office: BTreeMap<String, u64>,
    /// Changes from a read-only peer that were ignored.
    pub refused_changes: u64,
    /// True once a reconciliation round found both sides holding the same documents.
    pub settled: bool,
    /// Rounds that ended in sync (live sessions confirm every burst of local changes).
    pub settled_rounds: u64,
    /// Pull-only sessions: documents changed here that the peer does not take.
    pub unpublished: u64,
    /// Their ids, for the record of what the relay holds (`Replica::record_synced_except`).
    #[serde(skip)]
    pub unpublished_ids: BTreeSet<DocumentId>,
    /// Documents left out of this session because one side refused them (at most
    /// `MAX_SKIPPED_DOCS`), and why; everything else synced.
    pub skipped: BTreeMap<DocumentId, Refusal>,
}

/// A document's `(their heads, our heads)` in a round's entries (`None`: not held there).
type Tried = (Option<[u8; 32]>, Option<[u8; 32]>);

/// Tells which office owns a document (from the replica's listing index), for the summary.
pub type OfficeLookup = Box<dyn Fn(&DocumentId) -> Option<String> + Send>;
/// Hears of each change of the store that applied what the peer sent (see
/// [`Session::on_peer_change`]).
pub type PeerChangeHook = Box<dyn Fn(&DocChange) + Send>;

/// The sync state of one connection.
pub struct Session {
    store: Arc<DocStore>,
    role: Role,
    /// False for read-only peers: their documents and changes are never applied.
    accept_changes: bool,
    /// False when the peer will not take our changes (we are read-only there): pull only.
    publish: bool,
    /// Pull-only: the peer's heads hash at which each differing document was last fetched
    /// whole. The same hash in a later round means the difference is only our own changes.
    pulled: BTreeMap<DocumentId, [u8; 32]>,
    /// Documents whose changes this read-only peer offered and we refused: their Automerge sync
    /// ends there, since the heads can never match and each side would keep answering.
    refused: BTreeSet<DocumentId>,
    office_of: Option<OfficeLookup>,
    on_peer_change: Option<PeerChangeHook>,
    /// What the peer may store (a relay's quotas); `None` admits everything.
    gate: Option<Arc<dyn ChangeGate>>,
    round: u32,
    awaiting_entries: bool,
    /// Whether any `Entries` frame of the current round listed a bucket.
    round_differs: bool,
    /// The last round that ended in sync: `MAX_ROUNDS` counts from there.
    settled_at_round: u32,
    converged: bool,
    wanted: BTreeSet<DocumentId>,
    syncing: BTreeMap<DocumentId, am_sync::State>,
    initiated: BTreeSet<DocumentId>,
    waiting: VecDeque<DocumentId>,
    to_send: VecDeque<DocumentId>,
    frames: VecDeque<Vec<u8>>,
    /// Bytes held in `frames`.
    frames_bytes: usize,
    out_docs: Vec<DocBytes>,
    /// The cards of `out_docs`, in order (a responder sends the cards of whole documents).
    out_cards: Vec<Option<Vec<u8>>>,
    out_docs_bytes: usize,
    out_sync: Vec<DocBytes>,
    out_sync_bytes: usize,
    /// Heads we reached by applying the peer's changes: a local-change notice with these heads
    /// is the peer's own change coming back, not worth sending.
    from_peer: BTreeMap<DocumentId, HeadsHash>,
    /// Responder, live: per bucket, its digests right after each change pushed to the peer
    /// (the last `PUSHED_STATES_PER_BUCKET`). A peer's summary showing one of them for a
    /// bucket is a confirmation round that crossed later pushes of that bucket: once it has
    /// applied them (they precede the answer) it holds the bucket as we do, so the bucket is
    /// answered as equal rather than with its entries (a scan of the whole heads index, for
    /// every live device). Forgotten when notices were missed.
    pushed_states: BTreeMap<usize, VecDeque<[u8; 16]>>,
    /// Responder: our digests when the peer's last summary showed them all (or only crossed
    /// pushes): what the peer held for a bucket before its first push since, which
    /// `pushed_states` does not hold. Forgotten when notices were missed.
    settled_digests: Option<Vec<[u8; 16]>>,
    /// Documents counted in `docs_received` since the last settled round.
    received: BTreeSet<DocumentId>,
    /// Received changes whose dependencies have not arrived yet. Automerge would queue them in
    /// the loaded document, but documents are reloaded for every message, and the peer's sync
    /// state counts them as delivered: without this stash a sync can ask for them forever.
    waiting_deps: BTreeMap<DocumentId, Vec<Vec<u8>>>,
    /// Why the last reconciliation round could not start (see `failure`): no round runs after.
    round_failure: Option<SyncError>,
    /// Documents this initiator acted on in the current round (sent, asked for, synced), with
    /// `(their heads, our heads)` as the round's entries showed them. A document showing the
    /// same pair again in the next round went through a whole exchange that changed nothing on
    /// either side: the peer refused it, and it is skipped (`Refusal::ByPeer`).
    tried: BTreeMap<DocumentId, Tried>,
    tried_before: BTreeMap<DocumentId, Tried>,
    /// Initiator, live: changes received from the peer hold the confirmation round they call
    /// for until the driver releases it (see [`Session::hold_received_confirmations`]).
    hold_received: bool,
    confirmation_held: bool,
    stats: SyncStats,
}

impl Session {
    pub fn new(store: Arc<DocStore>, role: Role) -> Self {
        Self {
            store,
            role,
            accept_changes: true,
            publish: true,
            pulled: BTreeMap::new(),
            refused: BTreeSet::new(),
            office_of: None,
            on_peer_change: None,
            gate: None,
            round: 0,
            awaiting_entries: false,
            round_differs: false,
            settled_at_round: 0,
            converged: false,
            wanted: BTreeSet::new(),
            syncing: BTreeMap::new(),
            initiated: BTreeSet::new(),
            waiting: VecDeque::new(),
            to_send: VecDeque::new(),
            frames: VecDeque::new(),
            frames_bytes: 0,
            out_docs: Vec::new(),
            out_cards: Vec::new(),
            out_docs_bytes: 0,
            out_sync: Vec::new(),
            out_sync_bytes: 0,
            from_peer: BTreeMap::new(),
            pushed_states: BTreeMap::new(),
            settled_digests: None,
            received: BTreeSet::new(),
            waiting_deps: BTreeMap::new(),
            round_failure: None,
            tried: BTreeMap::new(),
            tried_before: BTreeMap::new(),
            hold_received: false,
            confirmation_held: false,
            stats: SyncStats::default(),
        }
    }

    /// Live mode: once the session has settled, the confirmation round that changes received
    /// from the peer call for waits until [`Session::release_confirmation`] (the driver
    /// releases it after a moment). A relay
    /// fanning one change out to hundreds of devices otherwise answers the rounds of the first
    /// devices while it is still delivering the change to the others, and a device receiving
    /// several changes in a row confirms them with one round. The round that confirms this
    /// side's own changes (that the peer holds them, durably) is never held.
    pub fn hold_received_confirmations(mut self) -> Self {
        self.hold_received = true;
        self
    }

    /// Whether a confirmation round waits for [`Session::release_confirmation`].
    pub fn confirmation_held(&self) -> bool {
        self.confirmation_held
    }

    /// Lets the held confirmation round start (at the next [`Session::poll_transmit`]).
    pub fn release_confirmation(&mut self) {
        self.confirmation_held = false;
    }

    /// Live mode: calls `f` with each change notice that is the store applying what the peer
    /// sent (recognised by its heads, as echoes are). Such a change holds nothing the peer
    /// lacks beyond what the document held before it: a device records at once that its relay
    /// holds the document (`Replica::mark_synced_from_relay`), instead of counting it as
    /// changed here until its held confirmation round settles.
    pub fn on_peer_change(mut self, f: impl Fn(&DocChange) + Send + 'static) -> Self {
        self.on_peer_change = Some(Box::new(f));
        self
    }

    /// A session whose peer may read but not write: its changes are ignored.
    pub fn read_only_peer(mut self) -> Self {
        self.accept_changes = false;
        self
    }

    /// A session that only pulls, for a device the peer knows as read-only: its own documents
    /// and changes are not offered (they would be ignored), and a round counts as settled when
    /// everything the peer holds is here, even though the digests still differ by our changes.
    pub fn pull_only(mut self) -> Self {
        self.publish = false;
        self
    }

    /// Checks everything the peer sends through `gate` before storing it: refused documents
    /// and changes are skipped (counted in `refused_changes`), the rest is applied.
    pub fn with_gate(mut self, gate: Arc<dyn ChangeGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Whether the gate, if any, lets the peer store `chunks` in `id`.
    fn admitted(&mut self, id: &DocumentId, chunks: &[&[u8]]) -> bool {
        let refused = self
            .gate
            .as_ref()
            .is_some_and(|g| g.admit(id, chunks).is_err());
        if refused {
            self.stats.refused_changes += 1;
        }
        !refused
    }

    /// Names the owner office of documents in the stats.
    pub fn with_office_lookup(mut self, lookup: OfficeLookup) -> Self {
        self.office_of = Some(lookup);
        self
    }

    /// Starts (or restarts) reconciliation; only the initiator calls this.
    pub fn start(&mut self) -> Result<(), SyncError> {
        self.converged = false;
        self.send_summary()
    }

    /// True once an initiator saw equal digests with nothing in flight.
    pub fn is_converged(&self) -> bool {
        self.converged
    }

    /// True when the initiator ran `MAX_ROUNDS` without settling, or could not start a round
    /// (`failure` says why).
    pub fn gave_up(&self) -> bool {
        !self.converged
            && (self.rounds_unsettled() >= MAX_ROUNDS || self.round_failure.is_some())
            && self.is_idle()
    }

    /// Why the initiator could not start a reconciliation round (the local store failed), if
    /// it could not. `poll_transmit` cannot return the error, so it is kept here and logged.
    pub fn failure(&self) -> Option<&SyncError> {
        self.round_failure.as_ref()
    }

    fn rounds_unsettled(&self) -> u32 {
        self.round - self.settled_at_round
    }

    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// One line of internal state, for logs and failing tests.
    pub fn describe(&self) -> String {
        format!(
            "{:?} round {} awaiting_entries {} differs {} converged {} wanted {} syncing {} initiated {} waiting {} to_send {} frames {}",
            self.role, self.round, self.awaiting_entries, self.round_differs, self.converged,
            self.wanted.len(), self.syncing.len(), self.initiated.len(), self.waiting.len(),
            self.to_send.len(), self.frames.len()
        )
    }

    /// Handles one frame from the peer.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<(), SyncError> {
        let message = self.decode_frame(frame)?;
        self.handle_message(message)
    }

    /// Decodes one frame from the peer, counted as received; [`Session::handle_message`] then
    /// acts on it. A driver on an async runtime decodes first to learn, with
    /// [`Session::handling_blocks`], whether acting needs to leave the async threads.
    pub fn decode_frame(&mut self, frame: &[u8]) -> Result<Message, SyncError> {
        self.stats.frames_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        Message::decode(frame)
    }

    /// Whether handling `message` may wait on the store: writing or flushing documents, loading
    /// them, or scanning the heads index. The rest of a live session's traffic (a round's
    /// summary when everything is already durable, the empty answer that settles it, wants and
    /// resyncs) takes microseconds: moving a runtime's worker off its thread for it cost a relay
    /// serving hundreds of live devices more than the work itself.
    pub fn handling_blocks(&self, message: &Message) -> bool {
        let buckets_ready = self.store.has_buckets_loaded();
        match message {
            Message::Docs { .. } | Message::Sync { .. } => true,
            Message::Summary { .. } => !(buckets_ready && self.store.is_flushed()),
            // Differing entries may start Automerge syncs, which load documents.
            Message::Entries { buckets, .. } => !buckets.is_empty() || !buckets_ready,
            Message::Want { .. } | Message::Resync => false,
        }
    }

    /// Acts on one decoded frame from the peer.
    pub fn handle_message(&mut self, message: Message) -> Result<(), SyncError> {
        match message {
            Message::Summary { round, digests } => self.on_summary(round, digests),
            Message::Entries { round, buckets } => self.on_entries(round, buckets),
            Message::Want { ids } => {
                if ids.len() > WANT_BATCH {
                    return Err(SyncError::Protocol(format!("want of {} ids", ids.len())));
                }
                self.to_send
                    .extend(ids.into_iter().map(DocumentId::from_bytes));
                Ok(())
            }
            Message::Docs { docs, cards } => self.on_docs(docs, &cards),
            Message::Sync { msgs } => self.on_sync(msgs),
            Message::Resync if self.role == Role::Initiator => {
                self.confirm_later();
                Ok(())
            }
            Message::Resync => Err(SyncError::Protocol("resync sent to the responder".into())),
        }
    }

    /// Live mode: some local change notices were lost (the driver's buffer overflowed), so
    /// pushes may be missing. A reconciliation round finds them; the responder asks for one.
    pub fn handle_missed_changes(&mut self) {
        // Some changes were not pushed: no remembered state stands for what the peer will hold.
        self.pushed_states.clear();
        self.settled_digests = None;
        match self.role {
            Role::Initiator => self.confirm_later(),
            Role::Responder => self.queue_frame(Message::Resync.encode()),
        }
    }

    /// Pushes a local change to the peer at once (live mode).
    pub fn handle_local_change(&mut self, change: &DocChange) {
        if self.from_peer.get(&change.id) == Some(&change.heads) {
            if let Some(f) = &self.on_peer_change {
                f(change);
            }
            return;
        }
        if !self.publish {
            return;
        }
        self.stats.docs_sent += 1;
        self.push_docs(
            DocBytes {
                id: *change.id.as_bytes(),
                bytes: change.changes.clone(),
            },
            None,
        );
        if self.role == Role::Responder {
            self.remember_pushed_state(change.id.bucket(BUCKETS));
        }
        // The responder flushes before answering a round, so a settled confirmation round
        // means the change is safe on the other side: that one is not held.
        self.confirm_later();
        self.confirmation_held = false;
    }

    /// The next frame to send, if any. Call until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                self.frames_bytes -= frame.len();
                self.stats.frames_sent += 1;
                self.stats.bytes_sent += frame.len() as u64;
                return Some(frame);
            }
            if !self.out_sync.is_empty() {
                self.flush_sync();
                continue;
            }
            if !self.to_send.is_empty() {
                self.fill_docs_frame();
                continue;
            }
            if !self.out_docs.is_empty() {
                self.flush_docs();
                continue;
            }
            if self.role == Role::Initiator
                && self.round > 0
                && !self.converged
                && !self.confirmation_held
                && self.is_idle()
                && self.rounds_unsettled() < MAX_ROUNDS
                && self.round_failure.is_none()
            {
                // Everything this round asked for has arrived: check with a new round.
                if let Err(e) = self.send_summary() {
                    // The session stays idle and unsettled, so a driver waiting for the sync
                    // to end sees it give up rather than wait for an answer never asked for.
                    tracing::warn!(error = %e, "cannot start a reconciliation round");
                    self.round_failure = Some(e);
                    return None;
                }
                continue;
            }
            return None;
        }
    }

    /// Whether the next [`Session::poll_transmit`] may read the store: documents the peer asked
    /// for are loaded as their frame is built, and an initiator may start a round (its digests,
    /// read from the heads index the first time). Otherwise it only encodes what is already
    /// queued, in microseconds, and a driver on an async runtime need not move it off the async
    /// threads (a relay pushing one live change to hundreds of sessions spent more on that
    /// hand-off than on the frames).
    pub fn transmit_reads_store(&self) -> bool {
        !self.to_send.is_empty()
            || (self.role == Role::Initiator && !self.store.has_buckets_loaded())
    }

    /// Whether a responder holds so much work for its peer (ids wanted, frames not yet taken
    /// by [`Session::poll_transmit`]) that it should stop reading the peer until it drains: a
    /// peer that sends `Want`s and `Summary`s and never reads cannot grow the queue past
    /// [`MAX_QUEUED_WANTS`] and [`MAX_QUEUED_BYTES`] (plus one frame's answer). An initiator
    /// is never backlogged: what it queues is bounded by what it asked for, and it must keep
    /// reading so that two sessions never wait on each other.
    pub fn is_backlogged(&self) -> bool {
        self.role == Role::Responder
            && (self.to_send.len() >= MAX_QUEUED_WANTS || self.queued_bytes() >= MAX_QUEUED_BYTES)
    }

    /// Bytes of frames queued and batches being filled, not yet taken by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.frames_bytes + self.out_docs_bytes + self.out_sync_bytes
    }

    /// Ids wanted by the peer and not yet sent.
    pub fn queued_wants(&self) -> usize {
        self.to_send.len()
    }

    fn queue_frame(&mut self, frame: Vec<u8>) {
        self.frames_bytes += frame.len();
        self.frames.push_back(frame);
    }

    fn is_idle(&self) -> bool {
        !self.awaiting_entries
            && self.wanted.is_empty()
            && self.initiated.is_empty()
            && self.waiting.is_empty()
            && self.to_send.is_empty()
    }

    fn send_summary(&mut self) -> Result<(), SyncError> {
        // Read first: a round that cannot start must leave nothing awaited.
        let digests = self.store.bucket_digests()?;
        self.tried_before = std::mem::take(&mut self.tried);
        self.round += 1;
        self.stats.rounds = self.round;
        self.awaiting_entries = true;
        self.round_differs = false;
        self.queue_frame(
            Message::Summary {
                round: self.round,
                digests,
            }
            .encode(),
        );
        Ok(())
    }

    fn on_summary(&mut self, round: u32, digests: Vec<[u8; 16]>) -> Result<(), SyncError> {
        if self.role != Role::Responder {
            return Err(SyncError::Protocol("summary sent to the initiator".into()));
        }
        if digests.len() != BUCKETS {
            return Err(SyncError::Protocol(format!(
                "summary of {} buckets",
                digests.len()
            )));
        }
        // Live changes queued for the peer go out before the answer: a summary that crossed
        // them then finds them applied when the answer arrives, instead of differing and
        // starting an Automerge sync of each (which loads the document on both sides).
        self.flush_docs();
        // Everything received so far is on disk before we tell the peer what we hold.
        self.store.flush()?;
        let ours = self.store.bucket_digests()?;
        let differing: Vec<usize> = (0..BUCKETS)
            .filter(|b| ours[*b] != digests[*b] && !self.crossed_pushes(*b, &digests[*b]))
            .collect();
        if differing.is_empty() {
            // The peer holds (or, once it applied what precedes this answer, will hold) our
            // digests: earlier states are of no more use.
            self.pushed_states.clear();
            self.settled_digests = Some(ours.clone());
        }
        let entries = self.store.entries_of_buckets(&differing)?;
        let mut buckets = Vec::new();
        let mut count = 0;
        for (bucket, list) in entries {
            count += list.len();
            buckets.push(BucketEntries {
                bucket: bucket as u16,
                entries: list
                    .into_iter()
                    .map(|(id, h)| (*id.as_bytes(), h.0))
                    .collect(),
            });
            if count >= ENTRIES_BATCH {
                self.queue_frame(
                    Message::Entries {
                        round,
                        buckets: std::mem::take(&mut buckets),
                    }
                    .encode(),
                );
                count = 0;
            }
        }
        if !buckets.is_empty() {
            self.queue_frame(Message::Entries { round, buckets }.encode());
        }
        // An empty `Entries` closes the round (and alone means "in sync").
        self.queue_frame(
            Message::Entries {
                round,
                buckets: Vec::new(),
            }
            .encode(),
        );
        Ok(())
    }

    fn on_entries(&mut self, round: u32, buckets: Vec<BucketEntries>) -> Result<(), SyncError> {
        if self.role != Role::Initiator {
            return Err(SyncError::Protocol("entries sent to the responder".into()));
        }
        if round != self.round || !self.awaiting_entries {
            return Ok(()); // A late answer to an earlier round.
        }
        if buckets.is_empty() {
            // The closing frame of this round's entries.
            self.awaiting_entries = false;
            if !self.round_differs && self.is_idle() {
                self.converged = true;
                self.stats.settled = true;
                self.stats.settled_rounds += 1;
                // Live mode: later changes to the same documents count again.
                self.received.clear();
                self.settled_at_round = self.round;
            }
            return Ok(());
        }
        let numbers: Vec<usize> = buckets
            .iter()
            .map(|b| b.bucket as usize)
            .filter(|b| *b < BUCKETS)
            .collect();
        let ours = self.store.entries_of_buckets(&numbers)?;
        let mut want = Vec::new();
        let sent_before = self.to_send.len();
        for (theirs, (_, mine)) in buckets.iter().zip(ours) {
            let theirs: BTreeMap<DocumentId, [u8; 32]> = theirs
                .entries
                .iter()
                .map(|(id, h)| (DocumentId::from_bytes(*id), *h))
                .collect();
            // In a publishing session any difference keeps the round unsettled, except those
            // of documents left out of this session (`skip`): a bucket differing only by them
            // is settled. (A differing bucket with no differing entry keeps it unsettled too.)
            let (mut differs, mut skipped) = (false, false);
            for (id, h) in &mine {
                let th = theirs.get(id).copied();
                if th == Some(h.0) {
                    continue;
                }
                if self.stats.skipped.contains_key(id)
                    || (self.publish && !self.try_again(*id, (th, Some(h.0))))
                {
                    skipped = true;
                    continue;
                }
                differs = true;
                match th {
                    None if self.publish => self.to_send.push_back(*id),
                    Some(_) if self.publish => {
                        let begun = self.begin_sync(*id);
                        self.or_skip(begun)?;
                    }
                    None => self.keep_unpublished(*id),
                    Some(th) => {
                        // Fetch the peer's version whole and merge it, once per version.
                        if self.pulled.insert(*id, th) == Some(th) {
                            self.keep_unpublished(*id);
                        } else if self.wanted.insert(*id) {
                            self.round_differs = true;
                            want.push(*id.as_bytes());
                        }
                    }
                }
            }
            let mine: BTreeSet<DocumentId> = mine.iter().map(|(id, _)| *id).collect();
            for (id, th) in &theirs {
                if mine.contains(id) {
                    continue;
                }
                if self.stats.skipped.contains_key(id) || !self.try_again(*id, (Some(*th), None)) {
                    skipped = true;
                    continue;
                }
                differs = true;
                if self.wanted.insert(*id) {
                    self.round_differs = true;
                    want.push(*id.as_bytes());
                }
            }
            if self.publish && (differs || !skipped) {
                self.round_differs = true;
            }
        }
        // Asked for (and so sent and written) in id order, the store's key order: a large pull
        // then grows each key prefix of the B-tree at one end instead of inserting all over it.
        // Buckets hold ids by their second byte, so without sorting, consecutive documents
        // would land all over the key space. The same for what this side publishes.
        want.sort_unstable();
        self.to_send.make_contiguous()[sent_before..].sort_unstable();
        for chunk in want.chunks(WANT_BATCH) {
            self.queue_frame(
                Message::Want {
                    ids: chunk.to_vec(),
                }
                .encode(),
            );
        }
        Ok(())
    }

    /// Notes that this round acts on `id`, seen with these heads; false (and the document
    /// skipped) when the previous round acted on it with the same heads to no effect on either
    /// side: the peer refuses it, and asking again would keep every round unsettled.
    fn try_again(&mut self, id: DocumentId, seen: Tried) -> bool {
        if self.tried_before.get(&id) == Some(&seen) {
            self.note_skipped(id, Refusal::ByPeer);
            return false;
        }
        self.tried.insert(id, seen);
        true
    }

    /// Leaves `id` out of this session (`error` concerned only that document) and goes on;
    /// any other error ends the session.
    fn or_skip(&mut self, result: Result<(), SyncError>) -> Result<(), SyncError> {
        let Err(e) = result else {
            return Ok(());
        };
        match e.refused_document() {
            Some((id, reason)) => self.skip(id, reason),
            None => Err(e),
        }
    }

    /// Leaves a document out of this session: one side cannot take it (see [`Refusal`]). The
    /// rest of the corpus goes on syncing; reconciliation rounds ignore its difference; it is
    /// reported once, in the log and in `SyncStats::skipped`. A later session tries it again.
    fn skip(&mut self, id: DocumentId, reason: Refusal) -> Result<(), SyncError> {
        self.note_skipped(id, reason);
        self.finish_sync(&id)
    }

    /// [`skip`](Self::skip) without starting the next waiting sync.
    fn note_skipped(&mut self, id: DocumentId, reason: Refusal) {
        self.wanted.remove(&id);
        self.syncing.remove(&id);
        self.waiting_deps.remove(&id);
        self.waiting.retain(|w| *w != id);
        if self.stats.skipped.contains_key(&id) {
            return;
        }
        tracing::warn!(%id, role = ?self.role, %reason, "document left out of the sync");
        if self.stats.skipped.len() < MAX_SKIPPED_DOCS {
            self.stats.skipped.insert(id, reason);
        }
    }

    /// Notes the bucket's digest as it is once a change to it was queued for the peer. Read
    /// after the change is stored, it may include later changes of the bucket too: those were
    /// broadcast and are pushed before any answer (the driver takes notices before frames), or
    /// the peer's summary cannot match it.
    fn remember_pushed_state(&mut self, bucket: usize) {
        let Ok(digests) = self.store.bucket_digests() else {
            self.pushed_states.clear();
            return;
        };
        if self.pushed_states.len() >= PUSHED_STATES_BUCKETS
            && !self.pushed_states.contains_key(&bucket)
        {
            self.pushed_states.clear();
        }
        let states = self.pushed_states.entry(bucket).or_default();
        if states.len() >= PUSHED_STATES_PER_BUCKET {
            states.pop_front();
        }
        states.push_back(digests[bucket]);
    }

    /// Whether the peer's digest for `bucket` is one we had right after a push to it, or at the
    /// last settled round: the peer's summary left before the later pushes arrived, and they
    /// are on their way (every change since was pushed, or `handle_missed_changes` forgot).
    fn crossed_pushes(&self, bucket: usize, theirs: &[u8; 16]) -> bool {
        self.pushed_states
            .get(&bucket)
            .is_some_and(|states| states.contains(theirs))
            || self
                .settled_digests
                .as_ref()
                .is_some_and(|settled| settled.get(bucket) == Some(theirs))
    }

    fn keep_unpublished(&mut self, id: DocumentId) {
        if self.stats.unpublished_ids.insert(id) {
            self.stats.unpublished += 1;
        }
    }

    fn on_docs(&mut self, docs: Vec<DocBytes>, cards: &[u8]) -> Result<(), SyncError> {
        // Cards are taken only from the responder: the relay or peer this side chose and pinned.
        let cards = match self.role {
            Role::Initiator => card::decode_batch(cards, docs.len())
                .map_err(|e| SyncError::Malformed(e.to_string()))?,
            Role::Responder => vec![None; docs.len()],
        };
        let mut accepted = Vec::with_capacity(docs.len());
        for (d, card) in docs.into_iter().zip(cards) {
            let id = DocumentId::from_bytes(d.id);
            self.wanted.remove(&id);
            if !self.accept_changes {
                self.stats.refused_changes += 1;
            } else {
                accepted.push((id, d.bytes, card));
            }
        }
        // The gate runs beside the write, on the same threads: on a relay it decodes every
        // uploaded document, as costly as the write itself.
        let written = apply_all(&self.store, self.gate.as_deref(), &accepted);
        let mut changed = false;
        for ((id, bytes, _), written) in accepted.into_iter().zip(written) {
            let written = match written {
                Ok(Some(written)) => written,
                Ok(None) => {
                    self.stats.refused_changes += 1;
                    continue;
                }
                // A document we cannot take is left out; the others of the frame go on.
                Err(e) => {
                    self.or_skip(Err(e))?;
                    continue;
                }
            };
            if written.changed {
                changed = true;
                self.note_received(&id, written.heads);
            }
            // Changes whose dependencies we lack are queued by Automerge, not applied: keep
            // them, and ask for the rest through the document's own sync protocol.
            if written.missing_deps {
                let mut stash = self.waiting_deps.remove(&id).unwrap_or_default();
                stash.push(bytes);
                let held = self
                    .hold_for_deps(id, stash)
                    .and_then(|()| self.begin_sync(id));
                self.or_skip(held)?;
            }
        }
        if changed {
            self.store.flush()?;
            self.confirm_later();
            // Only once settled: the rounds of a first catch-up are not held.
            if self.hold_received && self.role == Role::Initiator && self.settled_at_round > 0 {
                self.confirmation_held = true;
            }
        }
        Ok(())
    }

    /// After live changes, an initiator runs one more reconciliation round once idle: when it
    /// settles, both sides hold the same documents, flushed (see `SyncStats::settled_rounds`).
    fn confirm_later(&mut self) {
        if self.role == Role::Initiator && self.round > 0 {
            self.converged = false;
        }
    }

    fn on_sync(&mut self, msgs: Vec<DocBytes>) -> Result<(), SyncError> {
        let mut changed = false;
        for m in msgs {
            let id = DocumentId::from_bytes(m.id);
            if m.bytes.is_empty() {
                // The peer has nothing more to say about this document.
                let continued = self.continue_sync(id, false);
                self.or_skip(continued)?;
                continue;
            }
            let skipped_here = self.role == Role::Responder && self.stats.skipped.contains_key(&id);
            let answered = match skipped_here {
                true => Err(SyncError::BadDocument {
                    id,
                    reason: self.stats.skipped[&id].clone(),
                }),
                false => self.on_sync_message(id, m.bytes, &mut changed),
            };
            if let Err(e) = answered {
                // A document we cannot take: left out, and the peer told "nothing more" so
                // that its side of the exchange ends too.
                self.or_skip(Err(e))?;
                self.push_sync(DocBytes {
                    id: *id.as_bytes(),
                    bytes: Vec::new(),
                });
            }
        }
        if changed {
            self.store.flush()?;
        }
        Ok(())
    }

    /// Applies one Automerge sync message from the peer and answers it.
    fn on_sync_message(
        &mut self,
        id: DocumentId,
        bytes: Vec<u8>,
        changed: &mut bool,
    ) -> Result<(), SyncError> {
        {
            if self.refused.contains(&id) {
                // We refused this read-only peer's changes to the document: its heads will
                // never be ours, and Automerge would keep asking for them. End the exchange.
                self.syncing.remove(&id);
                self.push_sync(DocBytes {
                    id: *id.as_bytes(),
                    bytes: Vec::new(),
                });
                return Ok(());
            }
            let mut msg = decode_sync_message(&id, &bytes)?;
            if !msg.changes.is_empty() {
                let chunks: Vec<&[u8]> = msg.changes.iter().collect();
                let refuse = !self.accept_changes || !self.admitted(&id, &chunks);
                if refuse {
                    if !self.accept_changes {
                        self.stats.refused_changes += 1;
                    }
                    msg.changes = am_sync::ChunkList::empty();
                    self.refused.insert(id);
                }
            }
            if !self.syncing.contains_key(&id) && self.syncing.len() >= MAX_PEER_SYNCS {
                return Err(SyncError::Protocol(format!(
                    "peer keeps more than {MAX_PEER_SYNCS} documents in flight"
                )));
            }
            let mut state = self.syncing.remove(&id).unwrap_or_default();
            let mut stash = self.waiting_deps.remove(&id).unwrap_or_default();
            let received: Vec<Vec<u8>> = msg.changes.iter().map(<[u8]>::to_vec).collect();
            // Guarded whole: decoding the held document, loading the held-back chunks, saving
            // and deriving the card all run Automerge on what peers sent.
            #[cfg(test)]
            let role = self.role;
            let (missing, written) = guarded(&id, || {
                self.store.update(&id, |doc, _| {
                    #[cfg(test)]
                    tests::fault::point(role, tests::fault::At::Receive, &id);
                    for chunk in &stash {
                        // Already checked when it arrived; a failure here only means "still
                        // waiting".
                        let _ = doc.load_incremental(chunk);
                    }
                    receive_sync_message(&id, doc, &mut state, msg)?;
                    Ok::<_, SyncError>(!doc.get_missing_deps(&[]).is_empty())
                })
            })?;
            if missing {
                stash.extend(received);
                self.hold_for_deps(id, stash)?;
            }
            if written.changed {
                *changed = true;
                self.note_received(&id, written.heads);
            }
            self.syncing.insert(id, state);
            self.continue_sync(id, true)
        }
    }

    /// Starts Automerge's sync for a document, or queues it if enough are in flight.
    fn begin_sync(&mut self, id: DocumentId) -> Result<(), SyncError> {
        if self.initiated.contains(&id) || self.waiting.contains(&id) {
            return Ok(());
        }
        if self.initiated.len() >= MAX_INITIATED_SYNCS {
            self.waiting.push_back(id);
            return Ok(());
        }
        self.initiated.insert(id);
        self.syncing.insert(id, am_sync::State::new());
        self.continue_sync(id, false)
    }

    /// Generates the next sync message for a document. After a message from the peer we
    /// always answer (possibly "nothing"), so the peer is never left waiting; after the
    /// peer's "nothing", silence ends the exchange.
    fn continue_sync(&mut self, id: DocumentId, must_answer: bool) -> Result<(), SyncError> {
        let Some(mut state) = self.syncing.remove(&id) else {
            return Ok(());
        };
        let store = &self.store;
        let stash = self.waiting_deps.get(&id);
        #[cfg(test)]
        let role = self.role;
        let loaded = guarded(&id, || {
            #[cfg(test)]
            tests::fault::point(role, tests::fault::At::Generate, &id);
            let mut doc = store.load(&id)?.unwrap_or_else(crate::store::new_doc);
            // With the held changes queued again, Automerge asks for their missing dependencies
            // rather than for heads it was already sent.
            for chunk in stash.into_iter().flatten() {
                let _ = doc.load_incremental(chunk);
            }
            Ok::<_, SyncError>(doc)
        });
        let mut doc = loaded?;
        let msg = generate_sync_message(&id, &mut doc, &mut state)?;
        match msg {
            Some(bytes) => {
                self.syncing.insert(id, state);
                self.push_sync(DocBytes {
                    id: *id.as_bytes(),
                    bytes,
                });
            }
            None => {
                if must_answer {
                    self.push_sync(DocBytes {
                        id: *id.as_bytes(),
                        bytes: Vec::new(),
                    });
                }
                self.finish_sync(&id)?;
            }
        }
        Ok(())
    }

    /// Ends an Automerge sync this side started and starts the next waiting one. One that
    /// cannot start because of its document (it fails to load or to make a message) is skipped
    /// and the next one starts; any other error fails the session. Either way nothing is left
    /// in `initiated`, which would keep the session from ever being idle.
    fn finish_sync(&mut self, id: &DocumentId) -> Result<(), SyncError> {
        if !self.initiated.remove(id) {
            return Ok(());
        }
        while let Some(next) = self.waiting.pop_front() {
            self.initiated.insert(next);
            self.syncing.insert(next, am_sync::State::new());
            let Err(e) = self.continue_sync(next, false) else {
                return Ok(());
            };
            self.initiated.remove(&next);
            self.syncing.remove(&next);
            match e.refused_document() {
                Some((doc, reason)) => self.note_skipped(doc, reason),
                None => return Err(e),
            }
        }
        Ok(())
    }

    fn hold_for_deps(&mut self, id: DocumentId, stash: Vec<Vec<u8>>) -> Result<(), SyncError> {
        let bytes: usize = stash.iter().map(Vec::len).sum();
        if bytes > crate::store::MAX_DOCUMENT_BYTES {
            return Err(SyncError::BadDocument {
                id,
                reason: Refusal::TooLarge { size: bytes },
            });
        }
        if self.waiting_deps.len() >= MAX_PEER_SYNCS {
            return Err(SyncError::Protocol(format!(
                "peer sent {bytes} bytes of changes for {id} without their dependencies"
            )));
        }
        self.waiting_deps.insert(id, stash);
        Ok(())
    }

    fn note_received(&mut self, id: &DocumentId, heads: HeadsHash) {
        // A document whose changes arrive in several messages is still one document received.
        if self.received.insert(*id) {
            self.stats.docs_received += 1;
            if let Some(office) = self.office_of.as_ref().and_then(|f| f(id)) {
                *self.stats.received_by_office.entry(office).or_default() += 1;
            }
        }
        if self.from_peer.len() >= ECHO_MEMORY {
            self.from_peer.clear();
        }
        self.from_peer.insert(*id, heads);
    }

    fn fill_docs_frame(&mut self) {
        while let Some(id) = self.to_send.pop_front() {
            match self.store.saved(&id) {
                // Held past the cap (stored by an older version): no peer would take it.
                Ok(Some(bytes)) if bytes.len() > crate::store::MAX_DOCUMENT_BYTES => {
                    self.note_skipped(id, Refusal::TooLarge { size: bytes.len() });
                    self.answer_unsendable(id);
                }
                Ok(Some(bytes)) => {
                    self.stats.docs_sent += 1;
                    if let Some(office) = self.office_of.as_ref().and_then(|f| f(&id)) {
                        *self.stats.sent_by_office.entry(office).or_default() += 1;
                    }
                    let card = match self.role {
                        Role::Responder => self.store.card_json(&id).unwrap_or_default(),
                        Role::Initiator => None,
                    };
                    let doc = DocBytes {
                        id: *id.as_bytes(),
                        bytes,
                    };
                    let full = self.push_docs(doc, card);
                    if full {
                        return;
                    }
                }
                Ok(None) => self.answer_unsendable(id),
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot read a document to send");
                    self.answer_unsendable(id);
                }
            }
        }
    }

    /// A responder answers a `Want` it cannot serve with empty bytes, so that the initiator
    /// stops waiting for that document (an empty `Docs` entry stores nothing, in every
    /// version); the next round then finds it unchanged and skips it.
    fn answer_unsendable(&mut self, id: DocumentId) {
        if self.role == Role::Responder {
            self.push_docs(
                DocBytes {
                    id: *id.as_bytes(),
                    bytes: Vec::new(),
                },
                None,
            );
        }
    }

    /// Adds a document (and its card) to the outgoing `Docs` batch; true when a frame was
    /// completed.
    fn push_docs(&mut self, d: DocBytes, card: Option<Vec<u8>>) -> bool {
        let size = d.bytes.len() + 24 + card.as_ref().map_or(0, Vec::len);
        let full = self.out_docs_bytes + size > BATCH_BYTES && !self.out_docs.is_empty();
        if full {
            self.flush_docs();
        }
        self.out_docs_bytes += size;
        self.out_docs.push(d);
        self.out_cards.push(card);
        full
    }

    fn flush_docs(&mut self) {
        let docs = std::mem::take(&mut self.out_docs);
        let cards = card::encode_batch(&std::mem::take(&mut self.out_cards));
        self.out_docs_bytes = 0;
        if !docs.is_empty() {
            self.queue_frame(Message::Docs { docs, cards }.encode());
        }
    }

    fn push_sync(&mut self, d: DocBytes) {
        let size = d.bytes.len() + 24;
        if self.out_sync_bytes + size > BATCH_BYTES {
            self.flush_sync();
        }
        self.out_sync_bytes += size;
        self.out_sync.push(d);
    }

    fn flush_sync(&mut self) {
        let msgs = std::mem::take(&mut self.out_sync);
        self.out_sync_bytes = 0;
        if !msgs.is_empty() {
            self.queue_frame(Message::Sync { msgs }.encode());
        }
    }
}

/// A received document: its id, its bytes and the card the responder sent with it.
type Received = (DocumentId, Vec<u8>, Option<Card>);

/// Checks received documents (their chunks, then the gate if any: `Ok(None)` is a refusal) and
/// applies them, on up to `MAX_APPLY_THREADS` threads: loading an
/// Automerge document costs about half a millisecond per kilobyte of text, and a fresh replica
/// receives thousands. A document's bytes always go to the same thread, in order; new
/// documents with a fitting card are written `CREATE_BATCH_DOCS` to a batch. Results come
/// back in input order.
fn apply_all(
    store: &DocStore,
    gate: Option<&dyn ChangeGate>,
    docs: &[Received],
) -> Vec<Result<Option<crate::store::Written>, SyncError>> {
    let apply = |(id, bytes, card): &Received| {
        crate::sync_guard::check_chunk(bytes).map_err(|e| SyncError::bad_document(id, e))?;
        let loaded = match gate.map(|g| g.admit(id, &[bytes])) {
            Some(Err(_)) => return Ok(None),
            Some(Ok(loaded)) => loaded,
            None => None,
        };
        guarded(id, || {
            store.apply_bytes_loaded(id, bytes, card.as_ref(), loaded)
        })
        .map(Some)
    };
    // New documents with their cards (a fresh pull) are written many to a batch
    // (`DocStore::create_all`); the rest, and any of those the store holds by then, one by one,
    // in the order they came.
    let create_all = |group: &mut Vec<(usize, &Received, &Card)>, out: &mut Vec<_>| {
        let batch: Vec<_> = (group.iter())
            .map(|(_, (id, bytes, _), card)| (*id, &bytes[..], *card))
            .collect();
        let created = store.create_all(&batch).unwrap_or_default();
        for (k, (i, doc, card)) in group.drain(..).enumerate() {
            let written = match created.get(k) {
                Some(true) => Ok(Some(crate::store::Written {
                    id: doc.0,
                    changed: true,
                    heads: card.heads,
                    missing_deps: false,
                })),
                _ => apply(doc),
            };
            out.push((i, written));
        }
    };
    let apply_some = |mine: Vec<(usize, &Received)>| {
        let mut out = Vec::with_capacity(mine.len());
        let mut group = Vec::new();
        for (i, doc) in mine {
            let (id, bytes, card) = doc;
            match card {
                Some(card)
                    if gate.is_none()
                        && card.fits(id)
                        && !bytes.is_empty()
                        && crate::sync_guard::check_chunk(bytes).is_ok() =>
                {
                    group.push((i, doc, card));
                    if group.len() == crate::store::CREATE_BATCH_DOCS {
                        create_all(&mut group, &mut out);
                    }
                }
                _ => {
                    create_all(&mut group, &mut out);
                    out.push((i, apply(doc)));
                }
            }
        }
        create_all(&mut group, &mut out);
        out
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_APPLY_THREADS);
    if threads < 2 || docs.len() < PARALLEL_APPLY_MIN {
        let mut results: Vec<_> = apply_some(docs.iter().enumerate().collect());
        results.sort_by_key(|(i, _)| *i);
        return results.into_iter().map(|(_, r)| r).collect();
    }
    // Not `par::map`: there, both threads take documents in turn, and the relay's upload of
    // 10,000 resources went from 7.4 s to 12.2 s (`atelier-bench sync`); each thread keeping
    // its own buckets of ids is what this path was measured with.
    let mut results: Vec<Option<Result<_, _>>> = docs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let apply_some = &apply_some;
                scope.spawn(move || {
                    apply_some(
                        (docs.iter().enumerate())
                            .filter(|(_, (id, _, _))| id.bucket(threads) == k)
                            .collect(),
                    )
                })
            })
            .collect();
        for worker in workers {
            // `apply` catches Automerge's panics; a panic here would be our own bug.
            for (i, r) in worker.join().unwrap_or_default() {
                results[i] = Some(r);
            }
        }
    });
    results
        .into_iter()
        .zip(docs)
        .map(|(r, (id, _, _))| {
            r.unwrap_or_else(|| {
                Err(SyncError::BadDocument {
                    id: *id,
                    reason: Refusal::Unreadable {
                        detail: "internal error while applying".into(),
                    },
                })
            })
        })
        .collect()
}

/// Runs `f` (which runs Automerge on a document that holds or receives peer bytes) and turns a
/// panic into a refusal of that one document: Automerge 0.12 has inputs that panic
/// (design/SYNC.md), and a panic must cost that document, not the session or the sync agent.
/// A panic cannot leave the store half-written: `DocStore::update` writes its one batch last,
/// and its stripe lock ignores poisoning.
fn guarded<T, E: Into<SyncError>>(
    id: &DocumentId,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, SyncError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(Into::into),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            tracing::warn!(%id, %message, "automerge panicked on a document");
            Err(SyncError::BadDocument {
                id: *id,
                reason: Refusal::Unreadable {
                    detail: format!("automerge panicked: {message}"),
                },
            })
        }
    }
}

fn decode_sync_message(id: &DocumentId, bytes: &[u8]) -> Result<am_sync::Message, SyncError> {
    crate::sync_guard::decode_sync_message(bytes).map_err(|e| SyncError::bad_document(id, e))
}

fn receive_sync_message(
    id: &DocumentId,
    doc: &mut AutoCommit,
    state: &mut am_sync::State,
    msg: am_sync::Message,
) -> Result<(), SyncError> {
    crate::sync_guard::receive_sync_message(doc, state, msg)
        .map_err(|e| SyncError::bad_document(id, e))
}

fn generate_sync_message(
    id: &DocumentId,
    doc: &mut AutoCommit,
    state: &mut am_sync::State,
) -> Result<Option<Vec<u8>>, SyncError> {
    crate::sync_guard::generate_sync_message(doc, state)
        .map(|m| m.map(am_sync::Message::encode))
        .map_err(|e| SyncError::bad_document(id, e))
}

pub mod sim;

#[cfg(test)]
mod tests {
    use super::sim::{Faults, SimNet};
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;
    use proptest::prelude::*;

    /// Injected panics: where the office side runs Automerge on a document, a test can make it
    /// panic for one document id, as an unknown hostile input would.
    pub(super) mod fault {
        use std::collections::BTreeSet;
        use std::sync::Mutex;

        use crate::ids::DocumentId;
        use crate::mutex::lock;

        /// Where a panic is injected: loading a document (and its held-back chunks) to make a
        /// sync message, or inside `DocStore::update` while receiving one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum At {
            Generate,
            Receive,
        }

        static PANIC_ON: Mutex<BTreeSet<(At, DocumentId)>> = Mutex::new(BTreeSet::new());

        /// From now on, the initiator (the office side) panics at `at` for `id`.
        pub fn panic_on(at: At, id: DocumentId) {
            lock(&PANIC_ON).insert((at, id));
        }

        pub fn point(role: super::Role, at: At, id: &DocumentId) {
            if role == super::Role::Initiator && lock(&PANIC_ON).contains(&(at, *id)) {
                panic!("injected panic for {id}");
            }
        }
    }

    /// Every change notice `store` gives from now on, in order.
    fn notices_of(store: &DocStore) -> Arc<std::sync::Mutex<Vec<DocChange>>> {
        let notices = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = notices.clone();
        store.observe_changes(Box::new(move |c| crate::mutex::lock(&seen).push(c.clone())));
        notices
    }

    fn put(store: &DocStore, name: &str, key: &str, value: &str) {
        store
            .update(&DocumentId::derived(name), |doc, _| {
                doc.put(automerge::ROOT, key, value)
                    .map_err(StoreError::from)?;
                doc.commit();
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    fn append(store: &DocStore, name: &str, text: &str) {
        store
            .update(&DocumentId::derived(name), |doc, _| {
                let obj = match doc.get(automerge::ROOT, "text").map_err(StoreError::from)? {
                    Some((_, obj)) => obj,
                    None => doc
                        .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
                        .map_err(StoreError::from)?,
                };
                let len = doc.length(&obj);
                doc.splice_text(&obj, len, 0, text)
                    .map_err(StoreError::from)?;
                doc.commit();
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    fn snapshot(store: &DocStore) -> Vec<(DocumentId, HeadsHash)> {
        let mut out = Vec::new();
        store
            .for_each_heads(&mut |id, h| {
                out.push((id, h));
                true
            })
            .unwrap();
        out
    }

    /// In-memory stores with fixed actors, so a failing case replays identically.
    fn stores(n: usize) -> Vec<Arc<DocStore>> {
        (0..n)
            .map(|i| {
                let actor = automerge::ActorId::from(vec![i as u8 + 1; 16]);
                Arc::new(DocStore::in_memory().with_actor(actor))
            })
            .collect()
    }

    fn text_of(store: &DocStore, name: &str) -> String {
        let doc = store.load(&DocumentId::derived(name)).unwrap().unwrap();
        let (_, obj) = doc.get(automerge::ROOT, "text").unwrap().unwrap();
        doc.text(&obj).unwrap()
    }

    /// A key-value store whose reads fail once `broken` is set, as a failing disk's would.
    #[derive(Default)]
    struct Breakable {
        kv: crate::store::MemKv,
        broken: std::sync::atomic::AtomicBool,
    }

    impl Breakable {
        fn check(&self) -> Result<(), StoreError> {
            match self.broken.load(std::sync::atomic::Ordering::Relaxed) {
                true => Err(StoreError::Db("disk failure".into())),
                false => Ok(()),
            }
        }
    }

    impl crate::store::Kv for Breakable {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.check()?;
            self.kv.get(key)
        }
        fn for_each_prefix(
            &self,
            prefix: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.check()?;
            self.kv.for_each_prefix(prefix, f)
        }
        fn apply(&self, batch: crate::store::Batch) -> Result<(), StoreError> {
            self.kv.apply(batch)
        }
        fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError> {
            self.kv.remove_if(key, expected)
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_waiting_sync_that_cannot_start_is_skipped_and_leaves_nothing_in_flight() {
        let store = Arc::new(DocStore::in_memory());
        let (a, b) = (DocumentId::derived("a"), DocumentId::derived("b"));
        put(&store, "a", "k", "v");
        // `b` is unreadable here: its sync cannot start.
        let mut garbage = crate::store::Batch::default();
        garbage.put(crate::store::keys::chunk_key(&b, 0), b"garbage".to_vec());
        store.kv().apply(garbage).unwrap();
        let mut session = Session::new(store, Role::Initiator);
        session.initiated.insert(a);
        session.waiting.push_back(b);
        session.finish_sync(&a).unwrap();
        assert!(
            matches!(
                session.stats().skipped.get(&b),
                Some(Refusal::Unreadable { .. })
            ),
            "{:?}",
            session.stats()
        );
        assert!(
            session.initiated.is_empty() && session.waiting.is_empty(),
            "{}",
            session.describe()
        );
        assert!(session.is_idle());
    }

    /// Random bytes, which no column compression shrinks.
    fn noise(len: usize) -> Vec<u8> {
        use rand::{RngCore, SeedableRng};
        let mut bytes = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(len as u64).fill_bytes(&mut bytes);
        bytes
    }

    /// A document saved past `MAX_DOCUMENT_BYTES`.
    fn oversized(doc: &mut AutoCommit) {
        doc.put(
            automerge::ROOT,
            "blob",
            noise(crate::store::MAX_DOCUMENT_BYTES + 1024),
        )
        .unwrap();
    }

    /// Stores `doc` as `id` through the key-value store, past every check, as a relay of an
    /// older version (which checked sizes before writing) could hold it.
    fn store_raw(store: &DocStore, id: &DocumentId, doc: &mut AutoCommit) {
        let mut batch = crate::store::Batch::default();
        batch.put(crate::store::keys::chunk_key(id, 0), doc.save());
        let heads = HeadsHash::of(&doc.get_heads());
        batch.put(crate::store::keys::heads_key(id), heads.0.to_vec());
        store.kv().apply(batch).unwrap();
    }

    #[test]
    fn documents_one_side_refuses_are_skipped_and_everything_else_converges() {
        let s = stores(2); // an office (0) and its relay (1)
        for i in 0..20 {
            put(&s[0], &format!("office{i}"), "v", "o");
            put(&s[1], &format!("relay{i}"), "v", "r");
        }
        // Held past the cap by the relay only: the office asks for it whole…
        let on_relay = DocumentId::derived("oversized on the relay");
        let mut doc = crate::store::new_doc();
        oversized(&mut doc);
        store_raw(&s[1], &on_relay, &mut doc);
        // …grown past the cap on the relay from a state the office holds: Automerge sync…
        let grown = DocumentId::derived("grown past the cap on the relay");
        let mut doc = crate::store::new_doc();
        doc.put(automerge::ROOT, "n", 1).unwrap();
        s[0].apply_bytes(&grown, &doc.save()).unwrap();
        oversized(&mut doc);
        store_raw(&s[1], &grown, &mut doc);
        // …and held past the cap by the office, which cannot send it.
        let on_office = DocumentId::derived("oversized on the office");
        let mut doc = crate::store::new_doc();
        oversized(&mut doc);
        store_raw(&s[0], &on_office, &mut doc);

        let mut net = SimNet::new(7, s.clone());
        net.connect(0, 1);
        net.run(10_000);
        assert!(net.errors.is_empty(), "{:?}", net.errors);
        assert!(net.all_converged(), "{}", net.describe());
        let refused = [on_relay, grown, on_office];
        let others = |store: &DocStore| -> Vec<_> {
            let all = snapshot(store);
            all.into_iter()
                .filter(|(id, _)| !refused.contains(id))
                .collect()
        };
        assert_eq!(others(&s[0]), others(&s[1]));
        assert_eq!(others(&s[0]).len(), 40);
        let [office, relay] = net.stats(0);
        assert!(office.settled, "{office:?}");
        let kinds = |stats: &SyncStats| -> Vec<(DocumentId, &'static str)> {
            let kind = |r: &Refusal| match r {
                Refusal::TooLarge { size } if *size > crate::store::MAX_DOCUMENT_BYTES => {
                    "too large"
                }
                Refusal::TooLarge { .. } => "too large, wrong size",
                Refusal::Unreadable { .. } => "unreadable",
                Refusal::ByPeer => "by peer",
            };
            stats.skipped.iter().map(|(id, r)| (*id, kind(r))).collect()
        };
        let mut want = vec![
            (on_relay, "by peer"),
            (grown, "by peer"),
            (on_office, "too large"),
        ];
        want.sort();
        assert_eq!(kinds(office), want);
        let mut want = vec![(on_relay, "too large"), (grown, "too large")];
        want.sort();
        assert_eq!(kinds(relay), want);

        // A relay of an older version sends the oversized document anyway: the office skips it.
        let mut fresh = Session::new(stores(1)[0].clone(), Role::Initiator);
        fresh.wanted.insert(on_relay);
        let frame = Message::Docs {
            docs: vec![DocBytes {
                id: *on_relay.as_bytes(),
                bytes: s[1].saved(&on_relay).unwrap().unwrap(),
            }],
            cards: Vec::new(),
        };
        fresh.handle_frame(&frame.encode()).unwrap();
        assert!(fresh.is_idle(), "{}", fresh.describe());
        assert_eq!(kinds(fresh.stats()), vec![(on_relay, "too large")]);
    }

    #[test]
    fn a_panic_in_automerge_on_the_office_side_skips_that_document_only() {
        let s = stores(2); // an office (0) and its relay (1)
        for i in 0..10 {
            put(&s[0], &format!("p-office{i}"), "v", "o");
            put(&s[1], &format!("p-relay{i}"), "v", "r");
        }
        let generating = DocumentId::derived("panics while generating");
        let receiving = DocumentId::derived("panics while receiving");
        for id in [generating, receiving] {
            let name = id.to_string();
            let mut doc = crate::store::new_doc();
            doc.put(automerge::ROOT, "k", "shared").unwrap();
            for store in &s {
                store.apply_bytes(&id, &doc.save()).unwrap();
            }
            s[0].update(&id, |doc, _| {
                doc.put(automerge::ROOT, "office", name.as_str())
                    .map_err(StoreError::from)
            })
            .unwrap();
            s[1].update(&id, |doc, _| {
                doc.put(automerge::ROOT, "relay", name.as_str())
                    .map_err(StoreError::from)
            })
            .unwrap();
        }
        // Loading the document and its held-back chunks to answer; receiving inside
        // `DocStore::update` (decoding what is held, loading held-back chunks, applying).
        fault::panic_on(fault::At::Generate, generating);
        fault::panic_on(fault::At::Receive, receiving);

        let mut net = SimNet::new(3, s.clone());
        net.connect(0, 1);
        net.run(10_000);
        assert!(net.errors.is_empty(), "{:?}", net.errors);
        assert!(net.all_converged(), "{}", net.describe());
        let [office, _] = net.stats(0);
        let skipped: Vec<_> = office.skipped.keys().copied().collect();
        let mut want = vec![generating, receiving];
        want.sort();
        assert_eq!(skipped, want);
        for reason in office.skipped.values() {
            assert!(
                matches!(reason, Refusal::Unreadable { detail } if detail.contains("panicked")),
                "{reason:?}"
            );
        }
        let others = |store: &DocStore| -> Vec<_> {
            let all = snapshot(store);
            all.into_iter()
                .filter(|(id, _)| !want.contains(id))
                .collect()
        };
        assert_eq!(others(&s[0]), others(&s[1]));
        assert_eq!(others(&s[0]).len(), 20);
    }

    #[test]
    fn a_round_that_cannot_start_is_logged_and_ends_the_sync() {
        let kv = Arc::new(Breakable::default());
        let mut session = Session::new(Arc::new(DocStore::new(kv.clone())), Role::Initiator);
        // The first round went out and was answered; reading the digests for the next fails.
        session.round = 1;
        kv.broken.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(session.poll_transmit(), None);
        assert!(session.gave_up(), "{}", session.describe());
        assert!(matches!(session.failure(), Some(SyncError::Store(_))));
        assert_eq!(session.round, 1, "no round is awaited");
        // No retry on every poll: the failure is reported once.
        assert_eq!(session.poll_transmit(), None);
        assert_eq!(session.stats().rounds, 0);
    }

    #[test]
    fn two_replicas_exchange_missing_and_differing_documents() {
        let s = stores(2);
        for i in 0..40 {
            put(&s[0], &format!("a{i}"), "v", "a");
        }
        for i in 0..25 {
            put(&s[1], &format!("b{i}"), "v", "b");
        }
        put(&s[0], "shared", "x", "1");
        append(&s[0], "shared", "début : ");
        let bytes = s[0].saved(&DocumentId::derived("shared")).unwrap().unwrap();
        s[1].apply_bytes(&DocumentId::derived("shared"), &bytes)
            .unwrap();
        append(&s[0], "shared", "bonjour ");
        append(&s[1], "shared", "salut ");
        let mut net = SimNet::new(1, s.clone());
        net.connect(0, 1);
        net.run(10_000);
        assert!(net.errors.is_empty(), "{:?}", net.errors);
        assert!(net.all_converged());
        assert_eq!(snapshot(&s[0]), snapshot(&s[1]));
        assert_eq!(snapshot(&s[0]).len(), 66);
        let text = text_of(&s[1], "shared");
        assert!(text.contains("bonjour") && text.contains("salut"), "{text}");
    }

    #[test]
    fn resync_with_nothing_new_is_one_round_trip_of_a_few_kilobytes() {
        let s = stores(2);
        for i in 0..500 {
            put(&s[0], &format!("d{i}"), "v", "x");
        }
        let mut net = SimNet::new(2, s.clone());
        net.connect(0, 1);
        net.run(100_000);
        assert!(net.all_converged());
        net.disconnect_all();
        let (frames, bytes) = (net.delivered, net.bytes);
        net.connect(0, 1);
        net.run(100);
        assert!(net.all_converged());
        assert_eq!(net.delivered - frames, 2, "summary + empty entries");
        assert!(net.bytes - bytes < 5_000, "{} bytes", net.bytes - bytes);
    }

    #[test]
    fn only_store_work_is_handled_off_the_async_threads() {
        let dir = tempfile::tempdir().unwrap();
        let kv = crate::store::SledKv::open(dir.path()).unwrap();
        let store = Arc::new(DocStore::new(Arc::new(kv)));
        let relay = Session::new(store.clone(), Role::Responder);
        let office = Session::new(store.clone(), Role::Initiator);
        let summary = Message::Summary {
            round: 1,
            digests: vec![[0; 16]; BUCKETS],
        };
        // The first round scans the heads index.
        assert!(relay.handling_blocks(&summary));
        assert!(office.transmit_reads_store());
        store.bucket_digests().unwrap();
        assert!(!relay.handling_blocks(&summary));
        assert!(!office.transmit_reads_store());
        // A write not yet durable: answering a round flushes it first.
        put(&store, "r1", "v", "x");
        assert!(relay.handling_blocks(&summary));
        store.flush().unwrap();
        assert!(!relay.handling_blocks(&summary));
        // Documents are written whatever their size; wants and resyncs only queue.
        let docs = Message::Docs {
            docs: Vec::new(),
            cards: Vec::new(),
        };
        assert!(relay.handling_blocks(&docs));
        assert!(relay.handling_blocks(&Message::Sync { msgs: Vec::new() }));
        assert!(!relay.handling_blocks(&Message::Want { ids: vec![[1; 16]] }));
        assert!(!office.handling_blocks(&Message::Resync));
        // The empty answer that settles a round is in memory; listed entries may start
        // Automerge syncs, which load documents.
        let entries = |buckets| Message::Entries { round: 1, buckets };
        assert!(!office.handling_blocks(&entries(Vec::new())));
        let listed = BucketEntries {
            bucket: 0,
            entries: Vec::new(),
        };
        assert!(office.handling_blocks(&entries(vec![listed])));
    }

    #[test]
    fn store_and_forward_through_a_relay_then_live_push() {
        // 0 and 2 are offices, 1 is the relay.
        let s = stores(3);
        for i in 0..30 {
            put(&s[0], &format!("r{i}"), "v", "from A");
        }
        let mut net = SimNet::new(3, s.clone());
        net.connect(0, 1);
        net.run(10_000);
        net.disconnect(0);
        net.connect(2, 1);
        net.run(10_000);
        assert_eq!(snapshot(&s[2]), snapshot(&s[0]));
        // Both offices stay connected: an edit in A travels as one frame to the relay and one to
        // C, then each office confirms with a single digest round trip (2 frames each).
        net.connect(0, 1);
        net.run(10_000);
        let rounds_before = net.delivered;
        append(&s[0], "r3", "en direct");
        net.run(10_000);
        assert_eq!(text_of(&s[2], "r3"), "en direct");
        assert!(
            net.delivered - rounds_before <= 6,
            "{} frames",
            net.delivered - rounds_before
        );
        assert!(net.errors.is_empty(), "{:?}", net.errors);
    }

    #[test]
    fn a_live_device_holds_the_round_confirming_received_changes_not_its_own() {
        let s = stores(2);
        put(&s[0], "r", "v", "1");
        let mut office = Session::new(s[1].clone(), Role::Initiator).hold_received_confirmations();
        let mut relay = Session::new(s[0].clone(), Role::Responder);
        office.start().unwrap();
        exchange(&mut office, &mut relay, 50);
        assert!(office.is_converged());
        assert!(!office.confirmation_held(), "the first rounds are not held");
        let notices = notices_of(&s[0]);
        let office_notices = notices_of(&s[1]);

        // A change pushed by the relay is applied at once; its confirmation waits.
        put(&s[0], "r", "v", "2");
        relay.handle_local_change(&crate::mutex::lock(&notices).remove(0));
        while let Some(f) = relay.poll_transmit() {
            office.handle_frame(&f).unwrap();
        }
        assert_eq!(snapshot(&s[1]), snapshot(&s[0]));
        // The office's store told of the applied change: the peer's own, not pushed back.
        for change in std::mem::take(&mut *crate::mutex::lock(&office_notices)) {
            office.handle_local_change(&change);
        }
        assert!(office.confirmation_held());
        assert_eq!(office.poll_transmit(), None, "no round while held");
        office.release_confirmation();
        let summary = office
            .poll_transmit()
            .expect("the confirmation round, once released");
        assert!(matches!(
            Message::decode(&summary),
            Ok(Message::Summary { .. })
        ));
        relay.handle_frame(&summary).unwrap();
        exchange(&mut office, &mut relay, 50);
        assert!(office.is_converged());

        // Received again, then the office's own change: that one is confirmed at once.
        put(&s[0], "r", "v", "3");
        relay.handle_local_change(&crate::mutex::lock(&notices).remove(0));
        while let Some(f) = relay.poll_transmit() {
            office.handle_frame(&f).unwrap();
        }
        crate::mutex::lock(&office_notices).clear();
        assert!(office.confirmation_held());
        put(&s[1], "own", "v", "1");
        let own = crate::mutex::lock(&office_notices).remove(0);
        office.handle_local_change(&own);
        assert!(!office.confirmation_held());
        let kinds: Vec<_> = std::iter::from_fn(|| office.poll_transmit())
            .map(|f| match Message::decode(&f).unwrap() {
                Message::Docs { .. } => "docs",
                Message::Summary { .. } => "summary",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["docs", "summary"]);
    }

    #[test]
    fn a_live_session_tells_which_store_changes_applied_what_the_peer_sent() {
        let s = stores(2);
        put(&s[0], "r", "v", "1");
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let told = heard.clone();
        let mut office = Session::new(s[1].clone(), Role::Initiator)
            .on_peer_change(move |c| crate::mutex::lock(&told).push((c.id, c.heads)));
        let mut relay = Session::new(s[0].clone(), Role::Responder);
        office.start().unwrap();
        exchange(&mut office, &mut relay, 50);
        let relay_notices = notices_of(&s[0]);
        let office_notices = notices_of(&s[1]);

        // The relay pushes a change: the office's store tells of it, and the session knows it
        // for the peer's.
        put(&s[0], "r", "v", "2");
        relay.handle_local_change(&crate::mutex::lock(&relay_notices).remove(0));
        while let Some(f) = relay.poll_transmit() {
            office.handle_frame(&f).unwrap();
        }
        let applied = std::mem::take(&mut *crate::mutex::lock(&office_notices));
        assert_eq!(applied.len(), 1);
        office.handle_local_change(&applied[0]);
        let r = DocumentId::derived("r");
        assert_eq!(*crate::mutex::lock(&heard), [(r, applied[0].heads)]);

        // The office's own change is not the peer's.
        put(&s[1], "r", "v", "3");
        let own = crate::mutex::lock(&office_notices).remove(0);
        office.handle_local_change(&own);
        assert_eq!(crate::mutex::lock(&heard).len(), 1);
    }

    #[test]
    fn a_confirmation_round_that_crossed_a_live_change_finds_it_applied() {
        // A relay (responder) and an office in sync, live. The office confirms a change it
        // received; before its summary reaches the relay, another change to the same document
        // arrives there. The relay pushes that change before answering the summary, so the
        // office has it when the answer comes: no Automerge sync starts (each would load the
        // document on both sides, for every live device of a relay), and the relay answers
        // "in sync" without listing the bucket's entries.
        let s = stores(2);
        put(&s[0], "r", "v", "1");
        // Another document, in another bucket, not pushed since the office settled.
        let q = (0..)
            .map(|i| format!("q{i}"))
            .find(|q| {
                DocumentId::derived(q).bucket(BUCKETS) != DocumentId::derived("r").bucket(BUCKETS)
            })
            .unwrap();
        put(&s[0], &q, "v", "1");
        let mut office = Session::new(s[1].clone(), Role::Initiator);
        let mut relay = Session::new(s[0].clone(), Role::Responder);
        office.start().unwrap();
        exchange(&mut office, &mut relay, 50);
        assert!(office.is_converged());
        let notices = notices_of(&s[0]);

        // A change the office receives and confirms: its summary is now on its way.
        put(&s[0], "r", "v", "2");
        let first = crate::mutex::lock(&notices).remove(0);
        relay.handle_local_change(&first);
        while let Some(f) = relay.poll_transmit() {
            office.handle_frame(&f).unwrap();
        }
        let summary = office.poll_transmit().expect("a confirmation round");
        assert!(matches!(
            Message::decode(&summary),
            Ok(Message::Summary { .. })
        ));

        // The next changes reach the relay before that summary does.
        put(&s[0], "r", "v", "3");
        put(&s[0], &q, "v", "2");
        for change in std::mem::take(&mut *crate::mutex::lock(&notices)) {
            relay.handle_local_change(&change);
        }
        relay.handle_frame(&summary).unwrap();
        let mut kinds = Vec::new();
        while let Some(f) = relay.poll_transmit() {
            kinds.push(match Message::decode(&f).unwrap() {
                Message::Docs { .. } => "docs",
                Message::Entries { buckets, .. } if buckets.is_empty() => "end of entries",
                Message::Entries { .. } => "entries",
                _ => "other",
            });
            office.handle_frame(&f).unwrap();
        }
        // The changes first, then "in sync": the relay knows the office's digests for those
        // buckets, as it had them right after the previous push to one and when the office
        // last settled for the other, so no entries (no scan).
        assert_eq!(kinds, ["docs", "end of entries"]);
        while let Some(f) = office.poll_transmit() {
            assert!(
                !matches!(Message::decode(&f), Ok(Message::Sync { .. })),
                "the office started an Automerge sync for a change it already had"
            );
            relay.handle_frame(&f).unwrap();
            while let Some(f) = relay.poll_transmit() {
                office.handle_frame(&f).unwrap();
            }
        }
        assert!(office.is_converged());
        assert_eq!(snapshot(&s[1]), snapshot(&s[0]));
    }

    #[test]
    fn a_first_sync_asks_for_and_sends_documents_in_id_order() {
        let s = stores(2); // an office (0) and its relay (1)
        for i in 0..300 {
            put(&s[1], &format!("relay{i}"), "v", "r");
            put(&s[0], &format!("office{i}"), "v", "o");
        }
        let mut office = Session::new(s[0].clone(), Role::Initiator);
        let mut relay = Session::new(s[1].clone(), Role::Responder);
        office.start().unwrap();
        let (mut wanted, mut sent) = (Vec::new(), Vec::new());
        exchange_watching(&mut office, &mut relay, 20, |f| {
            match Message::decode(f).unwrap() {
                Message::Want { ids } => wanted.extend(ids),
                Message::Docs { docs, .. } => sent.extend(docs.iter().map(|d| d.id)),
                _ => {}
            }
        });
        assert!(office.is_converged());
        assert_eq!(snapshot(&s[1]), snapshot(&s[0]));
        // Bucket by bucket, ids would come in the order of their second byte.
        assert_eq!((wanted.len(), sent.len()), (300, 300));
        assert!(wanted.is_sorted(), "wants out of id order");
        assert!(sent.is_sorted(), "published documents out of id order");
    }

    /// Runs a client and a responder against each other until neither has a frame to send;
    /// returns the number of exchanges, at most `limit`.
    fn exchange(client: &mut Session, server: &mut Session, limit: usize) -> usize {
        exchange_watching(client, server, limit, |_| {})
    }

    /// [`exchange`], showing `watch` every frame the client sends.
    fn exchange_watching(
        client: &mut Session,
        server: &mut Session,
        limit: usize,
        mut watch: impl FnMut(&[u8]),
    ) -> usize {
        for turn in 0..limit {
            let mut moved = false;
            while let Some(f) = client.poll_transmit() {
                watch(&f);
                server.handle_frame(&f).unwrap();
                moved = true;
            }
            while let Some(f) = server.poll_transmit() {
                client.handle_frame(&f).unwrap();
                moved = true;
            }
            if !moved {
                return turn;
            }
        }
        limit
    }

    #[test]
    fn whole_documents_from_the_responder_come_with_their_cards_and_only_those() {
        let s = stores(2);
        for i in 0..30 {
            append(&s[0], &format!("relay{i}"), "texte du relais");
        }
        put(&s[1], "office", "v", "bureau");
        let mut office = Session::new(s[1].clone(), Role::Initiator);
        let mut relay = Session::new(s[0].clone(), Role::Responder);
        office.start().unwrap();
        let cards_in = |frame: &[u8]| match Message::decode(frame).unwrap() {
            Message::Docs { docs, cards } => card::decode_batch(&cards, docs.len())
                .unwrap()
                .into_iter()
                .flatten()
                .count(),
            _ => 0,
        };
        let (mut up, mut down) = (0, 0);
        for _ in 0..50 {
            let mut moved = false;
            while let Some(f) = office.poll_transmit() {
                up += cards_in(&f);
                relay.handle_frame(&f).unwrap();
                moved = true;
            }
            while let Some(f) = relay.poll_transmit() {
                down += cards_in(&f);
                office.handle_frame(&f).unwrap();
                moved = true;
            }
            if !moved {
                break;
            }
        }
        assert!(office.is_converged(), "{}", office.describe());
        assert_eq!(
            (up, down),
            (0, 30),
            "cards go from responder to initiator only"
        );
        assert_eq!(snapshot(&s[0]), snapshot(&s[1]));
        for id in [DocumentId::derived("relay7"), DocumentId::derived("office")] {
            assert_eq!(s[0].card_json(&id).unwrap(), s[1].card_json(&id).unwrap());
        }
        assert_eq!(text_of(&s[1], "relay7"), "texte du relais");
    }

    #[test]
    fn a_document_received_in_several_messages_counts_once() {
        let s = stores(2);
        let id = DocumentId::derived("doc");
        append(&s[0], "doc", "un ");
        let first = s[0].saved(&id).unwrap().unwrap();
        let heads = s[0].load(&id).unwrap().unwrap().get_heads();
        append(&s[0], "doc", "deux");
        let second = s[0].load(&id).unwrap().unwrap().save_after(&heads);
        let mut session = Session::new(s[1].clone(), Role::Responder);
        for bytes in [first, second] {
            let frame = Message::Docs {
                docs: vec![DocBytes {
                    id: *id.as_bytes(),
                    bytes,
                }],
                cards: Vec::new(),
            };
            session.handle_frame(&frame.encode()).unwrap();
        }
        assert_eq!(text_of(&s[1], "doc"), "un deux");
        assert_eq!(session.stats().docs_received, 1);
    }

    /// A read-only device holding "shared" (edited on both sides since) and its own "mine".
    fn read_only_setup() -> Vec<Arc<DocStore>> {
        let s = stores(2);
        put(&s[0], "doc", "v", "relay");
        append(&s[0], "shared", "base ");
        let bytes = s[0].saved(&DocumentId::derived("shared")).unwrap().unwrap();
        s[1].apply_bytes(&DocumentId::derived("shared"), &bytes)
            .unwrap();
        append(&s[0], "shared", "du relais ");
        append(&s[1], "shared", "locale ");
        put(&s[1], "mine", "v", "ro");
        s
    }

    #[test]
    fn a_read_only_peer_receives_but_its_changes_are_ignored() {
        let s = read_only_setup();
        let mut relay = Session::new(s[0].clone(), Role::Responder).read_only_peer();
        let mut client = Session::new(s[1].clone(), Role::Initiator).pull_only();
        client.start().unwrap();
        assert!(exchange(&mut client, &mut relay, 50) < 50);
        assert!(client.is_converged(), "{}", client.describe());
        assert!(s[1].contains(&DocumentId::derived("doc")).unwrap());
        assert!(text_of(&s[1], "shared").contains("du relais"));
        assert!(!s[0].contains(&DocumentId::derived("mine")).unwrap());
        assert!(!text_of(&s[0], "shared").contains("locale"));
        assert_eq!(client.stats().unpublished, 2);
    }

    #[test]
    fn a_read_only_peer_that_offers_changes_anyway_does_not_loop() {
        let s = read_only_setup();
        let mut relay = Session::new(s[0].clone(), Role::Responder).read_only_peer();
        let mut client = Session::new(s[1].clone(), Role::Initiator);
        client.start().unwrap();
        assert!(
            exchange(&mut client, &mut relay, 200) < 200,
            "{}",
            client.describe()
        );
        // The documents whose changes the relay refuses are left out once a whole exchange
        // changed nothing; the sync ends, settled for everything else.
        assert!(client.is_converged(), "{}", client.describe());
        let skipped: Vec<_> = client.stats().skipped.iter().collect();
        let mut want = [DocumentId::derived("shared"), DocumentId::derived("mine")];
        want.sort();
        assert_eq!(
            skipped,
            want.iter()
                .map(|id| (id, &Refusal::ByPeer))
                .collect::<Vec<_>>()
        );
        assert!(relay.stats().refused_changes > 0);
        assert!(text_of(&s[1], "shared").contains("du relais"));
        assert!(!text_of(&s[0], "shared").contains("locale"));
    }

    #[test]
    fn a_responder_that_missed_change_notices_gets_a_round_run() {
        let s = stores(2);
        put(&s[0], "before", "v", "x");
        let mut relay = Session::new(s[0].clone(), Role::Responder);
        let mut client = Session::new(s[1].clone(), Role::Initiator);
        client.start().unwrap();
        exchange(&mut client, &mut relay, 50);
        assert!(client.is_converged());
        // A change whose notice the relay's driver lost: nothing is pushed for it…
        put(&s[0], "missed", "v", "y");
        assert_eq!(exchange(&mut client, &mut relay, 50), 0);
        // …until the relay says it missed notices, and the client runs a round.
        relay.handle_missed_changes();
        exchange(&mut client, &mut relay, 50);
        assert!(client.is_converged(), "{}", client.describe());
        assert!(s[1].contains(&DocumentId::derived("missed")).unwrap());
        assert_eq!(snapshot(&s[0]), snapshot(&s[1]));
    }

    #[test]
    fn a_responder_whose_peer_never_reads_is_backlogged_within_its_caps_until_drained() {
        let stores = stores(1);
        for i in 0..200 {
            put(&stores[0], &format!("doc{i}"), "k", "v");
        }
        let mut server = Session::new(stores[0].clone(), Role::Responder);
        // Wants of unknown ids and random summaries, one of each per step, nothing polled.
        let mut steps = 0u64;
        while !server.is_backlogged() {
            let ids = (0..WANT_BATCH as u64)
                .map(|i| {
                    let mut id = [0u8; 16];
                    id[..8].copy_from_slice(&(steps * WANT_BATCH as u64 + i).to_le_bytes());
                    id
                })
                .collect();
            server
                .handle_frame(&Message::Want { ids }.encode())
                .unwrap();
            let digests = vec![[steps as u8 + 1; 16]; BUCKETS];
            let summary = Message::Summary { round: 1, digests };
            server.handle_frame(&summary.encode()).unwrap();
            steps += 1;
            assert!(
                steps <= (MAX_QUEUED_WANTS / WANT_BATCH) as u64,
                "never backlogged"
            );
        }
        assert!(server.queued_wants() <= MAX_QUEUED_WANTS);
        // One summary's answer: 48 bytes per document, and a little framing.
        assert!(server.queued_bytes() <= MAX_QUEUED_BYTES + 200 * 48 + 1024);
        while server.poll_transmit().is_some() {}
        assert!(!server.is_backlogged());
        assert_eq!((server.queued_wants(), server.queued_bytes()), (0, 0));
        // Summaries alone: their answers fill the byte cap.
        let mut summaries = 0;
        while !server.is_backlogged() {
            let digests = vec![[summaries as u8 ^ 0x5a; 16]; BUCKETS];
            let summary = Message::Summary { round: 2, digests };
            server.handle_frame(&summary.encode()).unwrap();
            summaries += 1;
            assert!(
                summaries <= MAX_QUEUED_BYTES / (200 * 48) + 1,
                "never backlogged"
            );
        }
        assert!(server.queued_bytes() <= MAX_QUEUED_BYTES + 200 * 48 + 1024);
        // An initiator always reads, whatever it holds.
        let mut client = Session::new(stores[0].clone(), Role::Initiator);
        client.start().unwrap();
        assert!(!client.is_backlogged());
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let s = stores(1);
        put(&s[0], "doc", "v", "x");
        let mut session = Session::new(s[0].clone(), Role::Responder);
        assert!(session.handle_frame(b"\x07garbage").is_err());
        // SYNC.md's hostile input 1: a Bloom filter with 0 bits per entry.
        let bloom = vec![0x42, 0x00, 0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00];
        let frame = Message::Sync {
            msgs: vec![DocBytes {
                id: *DocumentId::derived("doc").as_bytes(),
                bytes: bloom,
            }],
        };
        // Refused data costs its document only: skipped, answered "nothing more", reported.
        session.handle_frame(&frame.encode()).unwrap();
        let doc = DocumentId::derived("doc");
        assert!(
            matches!(&session.stats().skipped[&doc], Refusal::Unreadable { detail } if detail.contains("bloom")),
            "{:?}",
            session.stats().skipped
        );
        let answer = Message::decode(&session.poll_transmit().unwrap()).unwrap();
        assert_eq!(
            answer,
            Message::Sync {
                msgs: vec![DocBytes {
                    id: *doc.as_bytes(),
                    bytes: Vec::new()
                }]
            }
        );
        let frame = Message::Docs {
            docs: vec![DocBytes {
                id: [1; 16],
                bytes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            }],
            cards: Vec::new(),
        };
        session.handle_frame(&frame.encode()).unwrap();
        assert!(session
            .stats()
            .skipped
            .contains_key(&DocumentId::from_bytes([1; 16])));
        let frame = Message::Summary {
            round: 1,
            digests: vec![[0; 16]; 3],
        };
        assert!(session.handle_frame(&frame.encode()).is_err());
        // Cards that do not decode (or do not match the documents) close the connection.
        let mut initiator = Session::new(stores(1)[0].clone(), Role::Initiator);
        let bytes = s[0].saved(&DocumentId::derived("doc")).unwrap().unwrap();
        let frame = Message::Docs {
            docs: vec![DocBytes {
                id: *DocumentId::derived("doc").as_bytes(),
                bytes,
            }],
            cards: b"\x01garbage".to_vec(),
        };
        let err = initiator.handle_frame(&frame.encode()).unwrap_err();
        assert!(err.to_string().contains("unreadable cards"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Any interleaving of edits, syncs, drops, duplicates and partitions ends, once the
        /// network heals, with every replica holding identical documents.
        #[test]
        fn replicas_converge_whatever_the_network_does(
            seed in any::<u64>(),
            ops in proptest::collection::vec((0usize..4, 0usize..6, 0u8..4), 1..40),
            drop in 0.0f64..0.2,
            duplicate in 0.0f64..0.2,
        ) {
            let s = stores(4); // 3 offices and a relay (3)
            let mut net = SimNet::new(seed, s.clone());
            net.faults = Faults { drop, duplicate };
            for (who, doc, what) in ops {
                let office = who % 3;
                let name = format!("doc{doc}");
                match what {
                    0 => put(&s[office], &name, "title", &format!("t{office}")),
                    1 => append(&s[office], &name, &format!("[{office}]")),
                    2 => { if net.connections() < 4 { net.connect(office, 3) } },
                    _ => { let other = (office + 1) % 3; net.connect(office, other) },
                }
                net.run(25);
                if what == 3 { net.disconnect(office) }
            }
            // Heal: no faults, every office syncs with the relay twice over.
            net.faults = Faults::default();
            net.errors.clear();
            net.disconnect_all();
            for _ in 0..2 {
                for office in 0..3 {
                    net.connect(office, 3);
                    net.run(200_000);
                    prop_assert!(net.errors.is_empty(), "errors while healing: {:?}", net.errors);
                    prop_assert!(net.all_converged(), "office {} did not converge: {}", office, net.describe());
                    net.disconnect_all();
                }
            }
            let reference = snapshot(&s[3]);
            for office in &s[..3] {
                prop_assert_eq!(&snapshot(office), &reference);
            }
        }
    }

    proptest! {
        /// Fuzz campaign, in the test suite: any frame a peer sends to either side is handled
        /// or refused, never a panic, and the session can still say what to send next.
        #[test]
        fn any_frame_is_handled_or_refused_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            responder in any::<bool>(),
        ) {
            let s = stores(1);
            put(&s[0], "doc", "v", "x");
            let role = if responder { Role::Responder } else { Role::Initiator };
            let mut session = Session::new(s[0].clone(), role);
            let _ = session.handle_frame(&bytes);
            let mut sent = 0;
            while session.poll_transmit().is_some() {
                sent += 1;
                prop_assert!(sent < 1000, "{}", session.describe());
            }
        }
    }
}
