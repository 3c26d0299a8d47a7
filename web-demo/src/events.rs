//! Live updates: every change of the replica (local edit, sync, import, CLI) and every change of
//! the sync state reaches open pages as server-sent events on `/events`.
//!
//! Events: `change` `{"id":"automerge:…","key":"<bare id>"}`; `media` `{"hash":"<hex>"}` when a
//! blob arrived (pages showing « en cours de réception » for it redraw); `sync` the indicator's
//! state (see [`SyncView`]); `counts` `{"news":N,"for_you":N}` the header's counts; `resync` when a page fell behind and should reload what it shows.

use atelier_core::clock::now_ms;
use std::convert::Infallible;
use std::sync::Weak;

use atelier_core::media::BlobHash;
use atelier_core::replica::Replica;
use atelier_core::DocumentId;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use crate::sync_status::SyncView;
use crate::{AppState, SYNC_POLL_INTERVAL};

/// Something an open page may want to show.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A resource document changed.
    Changed(DocumentId),
    /// A blob of the médiathèque arrived (media sync, an import): placeholders can show it.
    MediaArrived(BlobHash),
    /// The sync indicator changed.
    Sync(SyncView),
    /// The header's counts (« Pour vous », « Quoi de neuf ») changed.
    Counts(crate::counts::HeaderCounts),
}

/// Feeds `events` from the replica's store. The observer runs inside the store's write, so it
/// only sends on a non-blocking channel. Catalog shards change along with resources; pages
/// ignore ids they do not show, and the list page debounces, so they are not filtered here.
/// The store keeps its observers for good: holding the sender weakly lets a stopped server's
/// channel go, leaving a no-op behind.
pub fn observe(replica: &Replica, events: Weak<broadcast::Sender<LiveEvent>>) {
    replica.store().observe(Box::new(move |id| {
        if let Some(events) = events.upgrade() {
            // No receiver (no open page) is not an error.
            let _ = events.send(LiveEvent::Changed(*id));
        }
    }));
}

/// `GET /events`: the live event stream of one page. Ends when the server shuts down.
pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = sync_event(&SyncView::of(state.sync().as_ref(), now_ms()));
    let rx = state.events().subscribe();
    let stop = state.shutdown_signal();
    let rest = futures::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        if *stop.borrow() {
            return None;
        }
        let event = tokio::select! {
            _ = stop.changed() => return None,
            received = rx.recv() => match received {
                Ok(LiveEvent::Changed(id)) => Event::default()
                    .event("change")
                    .data(serde_json::json!({ "id": id.url(), "key": id.to_base58() }).to_string()),
                Ok(LiveEvent::MediaArrived(hash)) => Event::default()
                    .event("media")
                    .data(serde_json::json!({ "hash": hash.to_hex() }).to_string()),
                Ok(LiveEvent::Sync(view)) => sync_event(&view),
                Ok(LiveEvent::Counts(c)) => Event::default()
                    .event("counts")
                    .data(serde_json::to_string(&c).unwrap_or_default()),
                Err(broadcast::error::RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(event), (rx, stop)))
    });
    let all = futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), rest);
    Sse::new(all).keep_alive(KeepAlive::default())
}

fn sync_event(view: &SyncView) -> Event {
    Event::default()
        .event("sync")
        .data(serde_json::to_string(view).unwrap_or_default())
}

/// Asks the sync provider for its state every [`SYNC_POLL_INTERVAL`] and broadcasts changes.
pub async fn poll_sync(state: AppState) {
    let mut stop: watch::Receiver<bool> = state.shutdown_signal();
    let mut last: Option<SyncView> = None;
    let mut tick = tokio::time::interval(SYNC_POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let view = SyncView::of(state.sync().as_ref(), now_ms());
        if last.as_ref() != Some(&view) {
            let _ = state.events().send(LiveEvent::Sync(view.clone()));
            last = Some(view);
        }
    }
}
