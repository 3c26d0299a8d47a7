//! samod 0.16, the Rust automerge-repo, as a client of the relay's WebSocket.

use std::str::FromStr;

use atelier_core::DocumentId;
use automerge::transaction::Transactable;
use automerge::ReadDoc;
use futures::StreamExt;
use samod::{DocHandle, PeerInfo, Repo};
use tokio::time::timeout;

use super::{TestRelay, WAIT};

/// A samod repo connected to the relay's WebSocket with `token`, as `peer_id`, and the peer
/// that answered.
pub(crate) async fn dial(relay: &TestRelay, token: &str, peer_id: &str) -> (Repo, PeerInfo) {
    let repo = Repo::build_tokio()
        .with_peer_id(samod::PeerId::from(peer_id))
        .load()
        .await;
    let url = samod::Url::parse(&format!("{}?token={token}", relay.ws_url())).unwrap();
    // One dial attempt failed once on a loaded machine (npm ci running beside this test), in a
    // way not reproduced since; a real client retries, and a relay that refuses still fails
    // after three attempts.
    let backoff = samod::BackoffConfig {
        max_retries: Some(2),
        ..Default::default()
    };
    let dialer = repo.dial_websocket(url, backoff).unwrap();
    let peer = timeout(WAIT, dialer.established())
        .await
        .expect("dial timed out")
        .unwrap_or_else(|e| panic!("dial failed: {e:?}"));
    (repo, peer)
}

/// The document `id`, as samod finds it through the relay.
pub(crate) async fn find(repo: &Repo, id: &DocumentId) -> DocHandle {
    let id = samod::DocumentId::from_str(&id.to_base58()).unwrap();
    timeout(WAIT, repo.find(id))
        .await
        .expect("find timed out")
        .unwrap()
        .expect("samod did not find the relay's document")
}

/// The string at `key` in the document's root, as samod holds it.
pub(crate) fn string(handle: &DocHandle, key: &str) -> Option<String> {
    handle.with_document(|d| {
        d.get(automerge::ROOT, key)
            .unwrap()
            .and_then(|(v, _)| v.into_string().ok())
    })
}

/// Sets `key` in the document's root, in one change made by samod.
pub(crate) fn put(handle: &DocHandle, key: &str, value: impl Into<automerge::ScalarValue>) {
    handle.with_document(|d| {
        let mut tx = d.transaction();
        tx.put(automerge::ROOT, key, value).unwrap();
        tx.commit();
    });
}

/// Waits until samod's copy has `key` = `want`, woken by its change stream; `what` names the
/// change in the failure.
pub(crate) async fn wait_for_string(handle: &DocHandle, key: &str, want: &str, what: &str) {
    let mut changes = handle.changes();
    let waited = timeout(WAIT, async {
        while string(handle, key).as_deref() != Some(want) {
            changes.next().await.expect("samod change stream ended");
        }
    })
    .await;
    assert!(waited.is_ok(), "{what} never reached samod");
}
