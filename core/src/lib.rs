//! Atelier's pure core: the resource model, its Automerge mapping, storage, search and sync.
//!
//! Nothing here does network I/O or owns an async runtime: time and randomness come in as
//! arguments, so the binaries (relay, CLI, web) and the tests drive the same code.

pub mod card;
pub mod change_gate;
pub mod clock;
pub mod document;
pub mod fields;
pub mod fr;
pub mod fs;
pub mod ids;
pub mod jsonl;
pub mod malloc;
pub mod media;
pub mod mutex;
pub mod opendata;
pub mod par;
pub mod replica;
pub mod repo_wire;
pub mod resource;
pub mod search;
pub mod store;
pub mod sync;
pub mod sync_guard;
pub mod vocab;
pub mod work;

pub use ids::{DocumentId, OfficeId};
pub use resource::Resource;
