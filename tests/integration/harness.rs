//! What the integration tests share: a whole relay on loopback ([`TestRelay`]), office replicas
//! enrolled with it ([`Office`]), the `atelier` binary ([`atelier`]), the Node scripts and samod
//! clients that play automerge-repo peers ([`edit_doc`], [`samod`]), a real S3 server
//! ([`Moto`]) with a bare HTTP client ([`http`]), a UDP proxy that loses, delays and cuts
//! datagrams ([`UdpProxy`]), and bounded waits.
//!
//! Every wait is bounded by [`WAIT`] and woken by the event it waits for, never by a sleep.

mod cli;
mod moto;
mod node;
mod office;
mod proxy;
mod relay;
pub(crate) mod samod;

use std::collections::BTreeMap;
use std::time::Duration;

use atelier_core::document::Edit;
use atelier_core::store::{DocStore, HeadsHash};
use atelier_core::DocumentId;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;

pub(crate) use cli::{atelier, atelier_async, atelier_bin, crash_bins, http_get, Run, WebHeld};
pub(crate) use moto::{http, Moto};
pub(crate) use node::{edit_doc, fetch_media, wait_for, BROWSER};
pub(crate) use office::{Office, SyncFailed};
pub(crate) use proxy::{Faults, UdpProxy};
pub(crate) use relay::TestRelay;

/// Bound on any one wait (a sync, a live change, a client run): generous for a loaded 2-core
/// CI machine, and never reached when things work.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Our own fixture: every FORMAT.md field, unknown fields of every JSON type, accents, ligatures.
pub(crate) const FIXTURE: &str = include_str!("../fixtures/sample.jsonl");

/// Every `(document, heads hash)` of a store: equal maps mean identical documents.
pub(crate) fn corpus(store: &DocStore) -> BTreeMap<DocumentId, HeadsHash> {
    let mut all = BTreeMap::new();
    store
        .for_each_heads(&mut |id, h| {
            all.insert(id, h);
            true
        })
        .unwrap();
    all
}

/// An edit setting `field` to `value`.
pub(crate) fn set(field: &str, value: Value) -> Edit {
    Edit::Set {
        field: field.into(),
        value,
    }
}

/// Waits until `check` holds on `store`, woken by the store's observer (no polling).
pub(crate) async fn wait_until(store: &DocStore, what: &str, check: impl Fn() -> bool) {
    wait_until_any(&[store], what, check).await;
}

/// Waits until `check` holds, woken by a change in any of `stores` (no polling).
pub(crate) async fn wait_until_any(stores: &[&DocStore], what: &str, check: impl Fn() -> bool) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for store in stores {
        let tx = tx.clone();
        store.observe(Box::new(move |_| {
            let _ = tx.send(());
        }));
    }
    let waited = timeout(WAIT, async {
        while !check() {
            rx.recv().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}
