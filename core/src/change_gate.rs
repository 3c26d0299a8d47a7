//! What a peer may store: the hook through which a relay checks every document or change an
//! office sends (per-office quotas, the office its changes record, the catalog's form) before
//! anything is written.

use automerge::AutoCommit;

use crate::ids::DocumentId;

/// Decides whether one peer's bytes for a document may be stored. The sync session
/// ([`crate::sync::Session::with_gate`]) and the relay's WebSocket endpoint call it before
/// applying anything; a refusal skips that document's bytes only, and the session goes on with
/// the others.
pub trait ChangeGate: Send + Sync {
    /// `chunks` are the peer's bytes for `id`, already through [`crate::sync_guard`]'s checks: a
    /// saved document or change chunks (`Docs`), or the changes of one sync message. `Err`
    /// carries the reason, for the log. `Ok(Some(doc))` hands back the document when `chunks`
    /// are one saved document the gate had to load (with [`crate::document::new_doc`]'s
    /// settings), so that the write does not load it a second time.
    fn admit(&self, id: &DocumentId, chunks: &[&[u8]]) -> Result<Option<AutoCommit>, String>;
}
