//! Runs a core sync `Session` over a framed QUIC stream: the async edge of `atelier-sync/1`.
//!
//! A reader task turns the receiving half into frames, a writer task writes frames out, and the
//! session loop in between feeds one to the other. Reading and writing proceed independently, so
//! two peers pushing large batches at each other never wait on each other. Store work (sled,
//! Automerge) is synchronous and runs under `block_in_place`; taking a live change, encoding a
//! frame of what is queued and a live round's small talk touch no disk and run inline (see
//! [`drive`], `Session::handling_blocks`).

use std::sync::Arc;

use atelier_core::store::{DocChange, DocStore};
use atelier_core::sync::{
    Message, Role, Session, SyncError, SyncStats, BATCH_BYTES, MAX_FRAME_SIZE, MAX_QUEUED_BYTES,
    MAX_QUEUED_WANTS, WANT_BATCH,
};
use futures::FutureExt;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::framing::{read_body, read_header, write_frame, FrameError, FramedStream, HEADER_SIZE};
use crate::media_sync::{self, BlobService};
use crate::metrics::{Direction, Kind, RelayMetrics};
use crate::server::{ConnectionHandler, Peer};

/// Frames read ahead of the session, at most (see [`READ_AHEAD_BYTES`] for their size).
const READ_AHEAD_FRAMES: usize = 8;
/// Bytes of frames read ahead of the session, the one it is applying included: four `Docs`
/// batches keep the stream busy while the session applies one. A frame larger than this is
/// read only once every frame before it was handled, so read-ahead never holds more than
/// `max(READ_AHEAD_BYTES, MAX_FRAME_SIZE)`.
pub const READ_AHEAD_BYTES: usize = 4 * BATCH_BYTES;
/// Frames queued for the writer: quinn buffers what is written (up to its send window), so two
/// are enough to keep the stream busy while the session builds the next.
const WRITE_AHEAD_FRAMES: usize = 2;

/// What one sync connection can make its server hold in memory at most, whatever the peer
/// sends or fails to read: read-ahead (one maximal frame), quinn's buffers for what the peer
/// sent and what it has not acknowledged ([`crate::transport::CONNECTION_RECEIVE_WINDOW`],
/// [`crate::transport::CONNECTION_SEND_WINDOW`]), the session's queue for a peer that does not
/// read (`MAX_QUEUED_*`, then the driver stops reading it), and the frames on their way to the
/// writer (at most one maximal frame each). On top of it, one `Summary` answer (48 bytes per
/// document of the corpus: 4.8 MB at 100,000) and Automerge's own work on the frame being
/// applied. 92 MiB: 512 connections ([`crate::server::MAX_CONNECTIONS`]) could hold ~46 GiB
/// only if every one were an enrolled device sending maximal frames and never reading; an
/// ordinary sync holds a few MB (frames are ~1 MB batches).
pub const MAX_CONNECTION_MEMORY: usize = MAX_FRAME_SIZE
    + crate::transport::CONNECTION_RECEIVE_WINDOW as usize
    + crate::transport::CONNECTION_SEND_WINDOW as usize
    + MAX_QUEUED_BYTES
    + (MAX_QUEUED_WANTS + WANT_BATCH) * 16
    + (WRITE_AHEAD_FRAMES + 2) * MAX_FRAME_SIZE;
/// Live changes buffered per subscriber before it counts as lagging: it then misses notices and
/// a reconciliation round picks up what they carried (`Session::handle_missed_changes`).
pub const LIVE_CHANNEL_CAPACITY: usize = 4096;
/// How long a live initiator holds the confirmation round that changes from its peer call for
/// (`Session::hold_received_confirmations`): longer than a relay takes to push one change to
/// hundreds of devices, so their rounds come after it, and short enough that « à jour » still
/// follows a received change at once to the eye. Rounds confirming this side's own changes
/// are not held.
pub const LIVE_CONFIRM_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Why a sync connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("sync: {0}")]
    Sync(#[from] SyncError),
    #[error("transport: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer closed the stream before the sync finished")]
    PeerClosed,
    #[error(
        "the sync did not settle after several rounds (other offices were editing); run it again"
    )]
    NotSettled,
}

/// A broadcast of every change a store makes, for live sessions to push.
#[derive(Clone)]
pub struct LiveChanges {
    tx: broadcast::Sender<DocChange>,
}

impl LiveChanges {
    /// Subscribes to `store`'s changes (once per store: observers live as long as the store).
    pub fn attach(store: &DocStore) -> Self {
        let (tx, _) = broadcast::channel(LIVE_CHANNEL_CAPACITY);
        let sender = tx.clone();
        store.observe_changes(Box::new(move |change| {
            // No receiver means nobody is live right now: nothing to do.
            let _ = sender.send(change.clone());
        }));
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DocChange> {
        self.tx.subscribe()
    }
}

/// How a driven session ends.
pub enum Mode {
    /// Initiator: stop once both sides hold the same documents.
    UntilConverged,
    /// Keep the connection open and push changes both ways until the peer leaves.
    Live(broadcast::Receiver<DocChange>),
}

/// Drives `session` over `stream` until it ends; returns the session's counters.
/// `on_progress` is called after every frame handled (for progress bars).
pub async fn drive(
    session: Session,
    stream: FramedStream,
    mode: Mode,
    on_progress: impl FnMut(&SyncStats) + Send,
) -> Result<SyncStats, DriveError> {
    drive_metered(session, stream, mode, on_progress, None).await
}

/// [`drive`], counting every frame and its bytes in `metrics` (the relay's side).
pub async fn drive_metered(
    mut session: Session,
    stream: FramedStream,
    mode: Mode,
    mut on_progress: impl FnMut(&SyncStats) + Send,
    metrics: Option<RelayMetrics>,
) -> Result<SyncStats, DriveError> {
    let read_meter = metrics.clone();
    let FramedStream { mut send, mut recv } = stream;
    let (in_tx, mut incoming) =
        mpsc::channel::<Result<Option<Ahead>, FrameError>>(READ_AHEAD_FRAMES);
    let (out_tx, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_AHEAD_FRAMES);
    let budget = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
    let mut io = JoinSet::new();
    io.spawn(async move {
        loop {
            let frame = match read_header(&mut recv, MAX_FRAME_SIZE).await {
                Ok(Some(size)) => {
                    // Room for the frame before reading it: a peer is read no further ahead
                    // than the session has handled.
                    let permits = u32::try_from(size.clamp(1, READ_AHEAD_BYTES)).unwrap_or(1);
                    let Ok(permit) = budget.clone().acquire_many_owned(permits).await else {
                        break;
                    };
                    if let Some(m) = &read_meter {
                        m.frame(Kind::Quic, Direction::In, size + HEADER_SIZE);
                    }
                    read_body(&mut recv, size)
                        .await
                        .map(|frame| Some((frame, permit)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let end = !matches!(frame, Ok(Some(_)));
            if in_tx.send(frame).await.is_err() || end {
                break;
            }
        }
        Ok(())
    });
    io.spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            // Counted before it goes: the peer may act on it before this task runs again.
            if let Some(m) = &metrics {
                m.frame(Kind::Quic, Direction::Out, frame.len() + HEADER_SIZE);
            }
            write_frame(&mut send, &frame).await?;
        }
        send.finish().map_err(FrameError::from)?;
        // Wait until the peer has read everything (or gone) before the connection may close.
        let _ = send.stopped().await;
        Ok::<(), FrameError>(())
    });

    let (converge, mut live) = match mode {
        Mode::UntilConverged => (true, None),
        Mode::Live(rx) => {
            session = session.hold_received_confirmations();
            (false, Some(rx))
        }
    };
    let mut pending: Option<Vec<u8>> = None;
    // When the held confirmation round may start (live mode, see `LIVE_CONFIRM_DELAY`).
    let mut confirm_at: Option<tokio::time::Instant> = None;
    let result = loop {
        match (session.confirmation_held(), confirm_at) {
            (true, None) => confirm_at = Some(tokio::time::Instant::now() + LIVE_CONFIRM_DELAY),
            (false, Some(_)) => confirm_at = None,
            _ => {}
        }
        if pending.is_none() {
            // Moving this worker off the runtime costs more than encoding a queued frame: only
            // building a frame from the store does so.
            pending = if session.transmit_reads_store() {
                tokio::task::block_in_place(|| session.poll_transmit())
            } else {
                session.poll_transmit()
            };
        }
        if converge && pending.is_none() {
            if session.is_converged() {
                break Ok(());
            }
            if session.gave_up() {
                break Err(DriveError::NotSettled);
            }
        }
        // A peer that sends work and does not read what it asked for is read no further
        // until it does (see `Session::is_backlogged`): its queue stays within the caps.
        let backlogged = session.is_backlogged();
        tokio::select! {
            permit = out_tx.reserve(), if pending.is_some() => {
                match permit {
                    Ok(permit) => permit.send(pending.take().unwrap_or_default()),
                    Err(_) => break Err(DriveError::PeerClosed),
                }
            }
            frame = incoming.recv(), if !backlogged => match frame {
                Some(Ok(Some((frame, _room)))) => {
                    // Changes already announced go out before the answer to this frame: a
                    // peer's confirmation round that crossed a newer change then finds that
                    // change applied when the answer arrives, instead of starting an Automerge
                    // sync for it (which loads the document here, for every such peer).
                    drain_live(&mut session, &mut live);
                    // Store work leaves the async threads; a live round's small talk does not.
                    let handled = session.decode_frame(&frame).and_then(|m| {
                        if session.handling_blocks(&m) {
                            tokio::task::block_in_place(|| handle(&mut session, &mut live, m))
                        } else {
                            handle(&mut session, &mut live, m)
                        }
                    });
                    if let Err(e) = handled {
                        break Err(e.into());
                    }
                    on_progress(session.stats());
                }
                Some(Ok(None)) | None => {
                    break if converge { Err(DriveError::PeerClosed) } else { Ok(()) };
                }
                // The peer closing the connection once done is how a live session ends.
                Some(Err(e)) if !converge && closed_when_done(&e) => break Ok(()),
                Some(Err(e)) => break Err(e.into()),
            },
            () = sleep_until(confirm_at), if confirm_at.is_some() => {
                session.release_confirmation();
                confirm_at = None;
            }
            // Queuing a live change touches no store: inline, not under `block_in_place`.
            change = recv_live(&mut live), if live.is_some() && !backlogged => match change {
                Ok(change) => {
                    session.handle_local_change(&change);
                    drain_live(&mut session, &mut live);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => session.handle_missed_changes(),
                Err(broadcast::error::RecvError::Closed) => live = None,
            },
        }
    };
    // Let the writer send what is queued and finish the stream, then stop the reader.
    drop(out_tx);
    drop(incoming);
    while let Some(joined) = io.join_next().await {
        if let Ok(Err(e)) = joined {
            tracing::debug!(error = %e, "sync stream closed");
        }
        if io.len() == 1 && result.is_err() {
            io.abort_all();
        }
    }
    result.map(|()| session.stats().clone())
}

/// Sleeps until `at` (never, for `None`: the branch is disabled then anyway).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A frame read ahead, with the room it takes in the read-ahead budget (freed once handled).
type Ahead = (Vec<u8>, OwnedSemaphorePermit);

/// Whether the connection ended normally: the peer closed it with `CloseCode::Done` (a
/// finished sync), or this side did (shutting down).
fn closed_when_done(e: &FrameError) -> bool {
    use quinn::{ConnectionError, ReadError};
    match e {
        FrameError::Read(ReadError::ConnectionLost(ConnectionError::ApplicationClosed(close))) => {
            close.error_code == crate::handshake::CloseCode::Done.code()
        }
        FrameError::Read(ReadError::ConnectionLost(ConnectionError::LocallyClosed)) => true,
        _ => false,
    }
}

/// Acts on a frame's message, then takes the change notices it caused: applying a frame can
/// notify thousands of changes at once, taken now before the channel overflows.
fn handle(
    session: &mut Session,
    live: &mut Option<broadcast::Receiver<DocChange>>,
    message: Message,
) -> Result<(), SyncError> {
    session.handle_message(message)?;
    drain_live(session, live);
    Ok(())
}

/// Hands every change notice already waiting to the session.
fn drain_live(session: &mut Session, live: &mut Option<broadcast::Receiver<DocChange>>) {
    let Some(rx) = live else { return };
    // Notices left waiting while the peer is backlogged are taken later; if they overflow,
    // the session runs a round instead (`handle_missed_changes`).
    while !session.is_backlogged() {
        match rx.try_recv() {
            Ok(change) => session.handle_local_change(&change),
            Err(broadcast::error::TryRecvError::Lagged(_)) => session.handle_missed_changes(),
            Err(broadcast::error::TryRecvError::Empty) => return,
            Err(broadcast::error::TryRecvError::Closed) => {
                *live = None;
                return;
            }
        }
    }
}

async fn recv_live(
    live: &mut Option<broadcast::Receiver<DocChange>>,
) -> Result<DocChange, broadcast::error::RecvError> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The relay's handler: answers an authenticated peer's sync and keeps pushing live changes to
/// it until it leaves, and serves the media streams it opens meanwhile (from the blob service,
/// if any; otherwise they are refused). Read-only offices' changes and uploads are refused.
pub struct SyncHandler {
    store: Arc<DocStore>,
    live: LiveChanges,
    blobs: Option<Arc<dyn BlobService>>,
    quotas: Option<crate::quota::Quotas>,
    metrics: Option<RelayMetrics>,
}

impl SyncHandler {
    pub fn new(store: Arc<DocStore>, live: LiveChanges) -> Self {
        Self {
            store,
            live,
            blobs: None,
            quotas: None,
            metrics: None,
        }
    }

    /// Counts every session's frames and bytes in `metrics`.
    pub fn with_metrics(mut self, metrics: RelayMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Checks every peer's writes against `quotas` (the relay's; see [`crate::quota`]).
    pub fn with_quotas(mut self, quotas: crate::quota::Quotas) -> Self {
        self.quotas = Some(quotas);
        self
    }

    /// Stores and serves blobs through `blobs`.
    pub fn with_media(mut self, blobs: Arc<dyn BlobService>) -> Self {
        self.blobs = Some(blobs);
        self
    }
}

/// Runs a responder's sync on `stream` and serves media streams on `connection` beside it,
/// until the peer closes the connection: a one-shot sync finishes its sync stream once texts
/// are settled and goes on with media on the same connection. A sync error ends both.
pub async fn respond(
    session: Session,
    stream: FramedStream,
    live: broadcast::Receiver<DocChange>,
    connection: quinn::Connection,
    peer: Peer,
    blobs: Option<Arc<dyn BlobService>>,
) -> Result<SyncStats, DriveError> {
    respond_metered(session, stream, live, connection, peer, blobs, None).await
}

/// [`respond`], counting frames in `metrics`.
async fn respond_metered(
    session: Session,
    stream: FramedStream,
    live: broadcast::Receiver<DocChange>,
    connection: quinn::Connection,
    peer: Peer,
    blobs: Option<Arc<dyn BlobService>>,
    metrics: Option<RelayMetrics>,
) -> Result<SyncStats, DriveError> {
    let synced = drive_metered(session, stream, Mode::Live(live), |_| {}, metrics);
    let media = media_sync::serve(connection, peer, blobs).map(Ok);
    let (stats, ()) = futures::future::try_join(synced, media).await?;
    Ok(stats)
}

impl ConnectionHandler for SyncHandler {
    fn handle(
        &self,
        peer: Peer,
        stream: FramedStream,
        connection: quinn::Connection,
    ) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
        let store = self.store.clone();
        let live = self.live.subscribe();
        let blobs = self.blobs.clone();
        let gate = self.quotas.as_ref().map(|q| q.gate(&peer.office));
        let metrics = self.metrics.clone();
        // Everything the session logs (a document it leaves out, with why, once per session)
        // names the office it syncs with.
        let span = tracing::info_span!("sync", office = %peer.office);
        Box::pin(
            async move {
                let mut session = Session::new(store, Role::Responder);
                if peer.read_only {
                    session = session.read_only_peer();
                }
                if let Some(gate) = gate {
                    session = session.with_gate(gate);
                }
                let stats = respond_metered(
                    session,
                    stream,
                    live,
                    connection,
                    peer.clone(),
                    blobs,
                    metrics,
                )
                .await?;
                tracing::info!(
                    received = stats.docs_received,
                    sent = stats.docs_sent,
                    refused = stats.refused_changes,
                    skipped = stats.skipped.len(),
                    "sync session ended"
                );
                Ok(())
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_bound_per_connection() {
        // 16 MiB read ahead, 4 + 4 MiB in quinn, 4 MiB queued, 0.3 MiB of ids, 4 × 16 MiB out.
        assert_eq!(MAX_CONNECTION_MEMORY / (1024 * 1024), 92);
    }
}
