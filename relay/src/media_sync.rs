//! Media sync: blobs (photos, plans, documents) travel on their own bidirectional QUIC streams of
//! the sync connection, one blob per stream, so a photo never holds up a document.
//!
//! Every media stream starts with one JSON [`Request`] from the office and one [`Reply`] from
//! the server; `Put` and `Get` then carry the blob's bytes as frames of at most [`IO_CHUNK`]
//! bytes. The office drives everything:
//! - upload: its outbox (blobs made here that the relay has not confirmed) is checked in batches
//!   (`Have`), then each missing blob is sent (`Put`) from the offset the server's partial file
//!   reached; the server answers `Stored` only once the blob is verified and durably stored,
//!   and only then does the blob leave the outbox;
//! - download: the blobs the replica's policy wants and lacks (thumbnails, then display sizes,
//!   then originals) are asked for one per stream (`Get{hash, offset}`, the offset being what a
//!   cut receive kept), at most [`MAX_BLOBS_IN_FLIGHT`] at once; bytes go into the replica's
//!   [`MediaStore`] and the blob is verified before it is moved into place.
//!
//! - recovery: each upload pass first asks which blobs the server lost (`Wanted`: blobs it
//!   deleted because they failed verification); those this replica holds go back to its outbox.
//!
//! A pass with nothing to do costs one small stream (`Wanted`, answered with an empty list):
//! what a replica lacks is known from its listing, locally, and what it must send from its
//! outbox, so no set of hashes crosses the link.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atelier_core::media::store::{MediaError, MediaStore, Receiving, IO_CHUNK};
use atelier_core::media::{BlobHash, BlobRef, MAX_BLOB_BYTES};
use atelier_core::mutex::lock;
use atelier_core::replica::Replica;
use futures::future::BoxFuture;
use futures::FutureExt;
use quinn::Connection;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::task::JoinSet;

use crate::blobs::RelayBlobs;
use crate::framing::{read_frame, FrameError, FramedStream};
use crate::server::Peer;

/// Blobs fetched at once (one stream each), and uploads sent at once: enough to fill a link
/// whose round trip is long compared with one blob's transfer (thumbnails are ~20 KB), few
/// enough that memory stays at a few [`IO_CHUNK`] buffers plus quinn's stream windows.
pub const MAX_BLOBS_IN_FLIGHT: usize = 4;
/// Media streams a peer may have open at once on one connection: uploads and downloads run
/// side by side. The transport adds the sync stream to this.
pub const MAX_MEDIA_STREAMS: usize = 2 * MAX_BLOBS_IN_FLIGHT;
/// Hashes per `Have` request: 1,024 hex hashes make a ~70 KB frame.
pub const MAX_HAVE_BATCH: usize = 1024;
/// Largest media frame: a `Have` batch or its answer, or one chunk of a blob.
pub const MAX_MEDIA_FRAME: usize = 128 * 1024;
const _: () = assert!(
    IO_CHUNK < MAX_MEDIA_FRAME,
    "a blob chunk fits in a media frame"
);

/// The first frame of a media stream, from the office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Which of these blobs does the server hold?
    Have { hashes: Vec<BlobHash> },
    /// I send this blob (answered `Resume`, then `Stored` once stored, or `Refused`).
    Put { hash: BlobHash, len: u64 },
    /// Send me this blob from `offset` (answered `Sending` then the bytes, or `Missing`).
    Get { hash: BlobHash, offset: u64 },
    /// Which blobs did the server lose and want back? (answered `Wanted`)
    Wanted,
}

/// The server's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// For `Have`: one flag per hash asked, in order.
    Have { present: Vec<bool> },
    /// For `Put`: send from this offset (what the server already kept of the blob).
    Resume { offset: u64 },
    /// For `Put`: the blob is verified and stored durably (or was already there).
    Stored,
    /// For `Get`: the blob has `len` bytes; those after the asked offset follow.
    Sending { len: u64 },
    /// For `Get`: the server does not have the blob (yet), or had it corrupt and dropped it.
    Missing,
    /// For `Wanted`: blobs the server deleted as corrupt; an office that holds one sends it
    /// again. Empty almost always: a few bytes per media pass.
    Wanted { hashes: Vec<BlobHash> },
    /// The request is refused, and why (English, for logs; the office words it in French).
    Refused { reason: String },
}

/// Why a media transfer broke off (a blob that is missing or corrupt is not an error: it is
/// counted in the [`MediaReport`] and asked again later).
#[derive(Debug, thiserror::Error)]
pub enum MediaSyncError {
    #[error("media stream: {0}")]
    Frame(#[from] FrameError),
    #[error("media stream: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("media stream: malformed message: {0}")]
    Malformed(String),
    #[error("media stream: unexpected answer {0:?}")]
    Unexpected(Reply),
    #[error("local media store: {0}")]
    Local(String),
}

impl From<MediaError> for MediaSyncError {
    fn from(e: MediaError) -> Self {
        Self::Local(e.to_string())
    }
}

/// Where a server keeps the blobs it stores and serves: the relay's [`RelayBlobs`], or an office
/// replica's [`MediaStore`] when it serves its peers (`atelier serve`).
pub trait BlobService: Send + Sync + 'static {
    /// The blob's size, if held.
    fn len(&self, hash: BlobHash) -> BoxFuture<'static, anyhow::Result<Option<u64>>>;
    /// Starts or resumes receiving a blob sent by `office`.
    fn receive(
        &self,
        hash: BlobHash,
        len: u64,
        office: String,
    ) -> BoxFuture<'static, anyhow::Result<Receiving>>;
    /// Verifies a complete receive and stores it durably.
    fn store(&self, receiving: Receiving, office: String)
        -> BoxFuture<'static, anyhow::Result<()>>;
    /// Bytes of a blob, verified; `None` if not held (or held corrupt, then dropped).
    fn read_range(
        &self,
        hash: BlobHash,
        range: Range<u64>,
    ) -> BoxFuture<'static, anyhow::Result<Option<Vec<u8>>>>;
    /// Blobs the service lost (dropped as corrupt) and wants back, at most `max`.
    fn wanted(&self, _max: usize) -> Vec<BlobHash> {
        Vec::new()
    }
}

impl BlobService for RelayBlobs {
    fn len(&self, hash: BlobHash) -> BoxFuture<'static, anyhow::Result<Option<u64>>> {
        let blobs = self.clone();
        async move { Ok(blobs.len(&hash).await?) }.boxed()
    }

    fn receive(
        &self,
        hash: BlobHash,
        len: u64,
        office: String,
    ) -> BoxFuture<'static, anyhow::Result<Receiving>> {
        let blobs = self.clone();
        async move { Ok(blobs.receive(&hash, len, &office).await?) }.boxed()
    }

    fn store(
        &self,
        receiving: Receiving,
        office: String,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        let blobs = self.clone();
        async move { Ok(blobs.store(receiving, &office).await?) }.boxed()
    }

    fn read_range(
        &self,
        hash: BlobHash,
        range: Range<u64>,
    ) -> BoxFuture<'static, anyhow::Result<Option<Vec<u8>>>> {
        let blobs = self.clone();
        async move { Ok(blobs.read_range(&hash, range).await?) }.boxed()
    }

    fn wanted(&self, max: usize) -> Vec<BlobHash> {
        RelayBlobs::wanted(self, max)
    }
}

/// An office replica's blobs served to its peers (`atelier serve`). A blob a peer sends is
/// queued for the relay (the replica's outbox): the relay may not have it yet.
#[derive(Clone)]
pub struct ReplicaBlobs {
    replica: Arc<Replica>,
    store: MediaStore,
    /// Blobs verified since serving started: a blob served in many ranges is hashed once.
    verified: Arc<Mutex<HashSet<BlobHash>>>,
}

impl ReplicaBlobs {
    pub fn new(replica: Arc<Replica>) -> Self {
        Self {
            store: replica.media_store().clone(),
            replica,
            verified: Default::default(),
        }
    }
}

impl BlobService for ReplicaBlobs {
    fn len(&self, hash: BlobHash) -> BoxFuture<'static, anyhow::Result<Option<u64>>> {
        let store = self.store.clone();
        blocking(move || Ok(store.len(&hash))).boxed()
    }

    fn receive(
        &self,
        hash: BlobHash,
        len: u64,
        _office: String,
    ) -> BoxFuture<'static, anyhow::Result<Receiving>> {
        let store = self.store.clone();
        blocking(move || Ok(store.receive(&hash, len)?)).boxed()
    }

    fn store(&self, receiving: Receiving, _: String) -> BoxFuture<'static, anyhow::Result<()>> {
        let replica = self.replica.clone();
        blocking(move || {
            let hash = *receiving.hash();
            receiving.finish()?;
            replica.media_requeue(&[hash])?;
            Ok(())
        })
        .boxed()
    }

    fn read_range(
        &self,
        hash: BlobHash,
        range: Range<u64>,
    ) -> BoxFuture<'static, anyhow::Result<Option<Vec<u8>>>> {
        let (store, verified) = (self.store.clone(), self.verified.clone());
        blocking(move || {
            let mut file = if lock(&verified).contains(&hash) {
                match std::fs::File::open(store.path(&hash)) {
                    Ok(f) => f,
                    Err(_) => return Ok(None),
                }
            } else {
                match store.open_verified(&hash) {
                    Ok(Some((f, _))) => {
                        lock(&verified).insert(hash);
                        f
                    }
                    Ok(None) | Err(MediaError::Corrupt { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            };
            let len = file.metadata()?.len();
            anyhow::ensure!(
                range.start <= range.end && range.end <= len,
                "range {range:?} outside a blob of {len} bytes"
            );
            file.seek(SeekFrom::Start(range.start))?;
            let mut out = vec![0u8; (range.end - range.start) as usize];
            file.read_exact(&mut out)?;
            Ok(Some(out))
        })
        .boxed()
    }
}

/// Serves the media streams `peer` opens on `connection` until it closes. Without a blob
/// service every request is refused (the office then knows media are not served here).
pub async fn serve(connection: Connection, peer: Peer, blobs: Option<Arc<dyn BlobService>>) {
    // quinn lets the peer open at most the transport's stream limit at once, which bounds
    // this set.
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let (peer, blobs) = (peer.clone(), blobs.clone());
                    streams.spawn(async move {
                        let mut stream = FramedStream::new(send, recv);
                        if let Err(e) = serve_stream(&mut stream, &peer, blobs.as_deref()).await {
                            tracing::debug!(office = %peer.office, error = %e, "media stream ended");
                            let _ = stream.send.reset(0u32.into());
                        }
                    });
                }
                Err(_) => break,
            },
        }
    }
}

async fn serve_stream(
    stream: &mut FramedStream,
    peer: &Peer,
    blobs: Option<&dyn BlobService>,
) -> Result<(), MediaSyncError> {
    let request: Request = recv_message(stream).await?;
    let Some(blobs) = blobs else {
        return finish_with(stream, &refused("media are not served here")).await;
    };
    let internal = |e: anyhow::Error| {
        tracing::warn!(office = %peer.office, error = %e, "media store");
        refused("internal error on the server")
    };
    match request {
        Request::Wanted => {
            let hashes = if peer.read_only {
                Vec::new()
            } else {
                blobs.wanted(MAX_HAVE_BATCH)
            };
            finish_with(stream, &Reply::Wanted { hashes }).await
        }
        Request::Have { hashes } => {
            if hashes.len() > MAX_HAVE_BATCH {
                return finish_with(stream, &refused("too many hashes in one request")).await;
            }
            let mut present = Vec::with_capacity(hashes.len());
            for h in hashes {
                match blobs.len(h).await {
                    Ok(len) => present.push(len.is_some()),
                    Err(e) => return finish_with(stream, &internal(e)).await,
                }
            }
            finish_with(stream, &Reply::Have { present }).await
        }
        Request::Put { hash, len } => {
            if peer.read_only {
                return finish_with(stream, &refused("this device may only read")).await;
            }
            if len > MAX_BLOB_BYTES {
                return finish_with(stream, &refused("blob larger than the limit")).await;
            }
            match blobs.len(hash).await {
                Ok(Some(_)) => return finish_with(stream, &Reply::Stored).await,
                Ok(None) => {}
                Err(e) => return finish_with(stream, &internal(e)).await,
            }
            let mut receiving = match blobs.receive(hash, len, peer.office.clone()).await {
                Ok(r) => r,
                Err(e) => return finish_with(stream, &refused(&format!("{e:#}"))).await,
            };
            send_message(
                stream,
                &Reply::Resume {
                    offset: receiving.offset(),
                },
            )
            .await?;
            while !receiving.complete() {
                let Some(chunk) = read_frame(&mut stream.recv, MAX_MEDIA_FRAME).await? else {
                    return Err(MediaSyncError::Malformed("blob cut short".into()));
                };
                receiving = blocking(move || receiving.write(&chunk).map(|()| receiving))
                    .await
                    .map_err(|e| MediaSyncError::Malformed(e.to_string()))?;
            }
            let reply = match blobs.store(receiving, peer.office.clone()).await {
                Ok(()) => Reply::Stored,
                Err(e) => refused(&format!("{e:#}")),
            };
            finish_with(stream, &reply).await
        }
        Request::Get { hash, offset } => {
            let len = match blobs.len(hash).await {
                Ok(Some(len)) => len,
                Ok(None) => return finish_with(stream, &Reply::Missing).await,
                Err(e) => return finish_with(stream, &internal(e)).await,
            };
            if offset > len {
                return finish_with(stream, &refused("offset beyond the blob")).await;
            }
            // The first read verifies the whole blob: a corrupt one is dropped, never served.
            let mut at = offset;
            let mut chunk = match blobs
                .read_range(hash, at..len.min(at + IO_CHUNK as u64))
                .await
            {
                Ok(Some(c)) => c,
                Ok(None) => return finish_with(stream, &Reply::Missing).await,
                Err(e) => return finish_with(stream, &internal(e)).await,
            };
            send_message(stream, &Reply::Sending { len }).await?;
            loop {
                if !chunk.is_empty() {
                    stream.send(&chunk).await?;
                }
                at += chunk.len() as u64;
                if at >= len {
                    break;
                }
                chunk = match blobs
                    .read_range(hash, at..len.min(at + IO_CHUNK as u64))
                    .await
                {
                    Ok(Some(c)) if !c.is_empty() => c,
                    Ok(_) => return Err(MediaSyncError::Local("blob vanished".into())),
                    Err(e) => return Err(MediaSyncError::Local(format!("{e:#}"))),
                };
            }
            stream.finish()?;
            Ok(())
        }
    }
}

fn refused(reason: &str) -> Reply {
    Reply::Refused {
        reason: reason.into(),
    }
}

async fn finish_with(stream: &mut FramedStream, reply: &Reply) -> Result<(), MediaSyncError> {
    send_message(stream, reply).await?;
    stream.finish()?;
    Ok(())
}

async fn send_message(stream: &mut FramedStream, m: &impl Serialize) -> Result<(), MediaSyncError> {
    let bytes = serde_json::to_vec(m).map_err(|e| MediaSyncError::Malformed(e.to_string()))?;
    stream.send(&bytes).await?;
    Ok(())
}

async fn recv_message<T: for<'de> Deserialize<'de>>(
    stream: &mut FramedStream,
) -> Result<T, MediaSyncError> {
    let frame = read_frame(&mut stream.recv, MAX_MEDIA_FRAME)
        .await?
        .ok_or_else(|| MediaSyncError::Malformed("stream ended before the message".into()))?;
    serde_json::from_slice(&frame).map_err(|e| MediaSyncError::Malformed(e.to_string()))
}

/// What one media pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MediaReport {
    /// Blobs received and verified, and the bytes they took on the wire (a resumed blob counts
    /// only what was still missing).
    pub received: u64,
    pub received_bytes: u64,
    /// Blobs sent and stored by the server, and the bytes sent.
    pub sent: u64,
    pub sent_bytes: u64,
    /// Blobs of the outbox the server already held.
    pub already_there: u64,
    /// Blobs wanted that the server does not have yet (retried later).
    pub not_there: u64,
    /// Blobs received that failed verification: discarded, asked again later.
    pub corrupt: u64,
    /// Uploads the server refused, with its reasons.
    pub refused: Vec<String>,
    /// The byte budget ran out before everything was received.
    pub cut: bool,
}

impl MediaReport {
    /// Everything wanted arrived and everything to send was stored.
    pub fn complete(&self) -> bool {
        self.not_there == 0 && self.corrupt == 0 && self.refused.is_empty() && !self.cut
    }
}

/// Called with the bytes of every chunk moved (for progress bars).
pub type OnBytes = dyn Fn(u64) + Send + Sync;
/// Called when a blob has arrived and been verified.
pub type OnBlob = dyn Fn(&BlobHash) + Send + Sync;

/// One office's media transfer over an open sync connection.
#[derive(Clone)]
pub struct MediaTransfer {
    connection: Connection,
    replica: Arc<Replica>,
    read_only: bool,
    /// The other side is an office's replica, not the relay (`atelier sync --peer`).
    peer: bool,
    byte_budget: Option<u64>,
    on_bytes: Option<Arc<OnBytes>>,
    on_blob: Option<Arc<OnBlob>>,
}

/// How one blob's fetch ended.
enum Fetched {
    Done,
    NotThere,
    Corrupt,
    Cut,
    /// Bigger than any blob may be, or announced with another size than the server's.
    Refused,
}

impl MediaTransfer {
    pub fn new(connection: Connection, replica: Arc<Replica>) -> Self {
        Self {
            connection,
            replica,
            read_only: false,
            peer: false,
            byte_budget: None,
            on_bytes: None,
            on_blob: None,
        }
    }

    /// A device the server lets only read sends nothing.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The other side is a peer's replica: blobs it confirms stay in the outbox (the relay still
    /// lacks them), and blobs received from it join the outbox (the relay may lack them too),
    /// as documents received from a peer count as not on the relay.
    pub fn to_peer(mut self, peer: bool) -> Self {
        self.peer = peer;
        self
    }

    /// Stops receiving after this many bytes, keeping what arrived for the next pass (a metered
    /// link's allowance; tests cut transfers with it).
    pub fn byte_budget(mut self, bytes: u64) -> Self {
        self.byte_budget = Some(bytes);
        self
    }

    pub fn on_bytes(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.on_bytes = Some(Arc::new(f));
        self
    }

    pub fn on_blob(mut self, f: impl Fn(&BlobHash) + Send + Sync + 'static) -> Self {
        self.on_blob = Some(Arc::new(f));
        self
    }

    /// Uploads the outbox and downloads what the policy wants, side by side.
    pub async fn run(&self) -> Result<MediaReport, MediaSyncError> {
        let (up, down) = tokio::join!(self.upload(), self.download());
        let (up, down) = (up?, down?);
        Ok(MediaReport {
            sent: up.sent,
            sent_bytes: up.sent_bytes,
            already_there: up.already_there,
            refused: up.refused,
            ..down
        })
    }

    /// Sends the blobs of the outbox the server lacks; each leaves the outbox once stored.
    pub async fn upload(&self) -> Result<MediaReport, MediaSyncError> {
        let mut report = MediaReport::default();
        if self.read_only {
            return Ok(report);
        }
        // Blobs the server lost go back to the outbox of every office that holds them.
        match self.ask(&Request::Wanted).await?.0 {
            Reply::Wanted { hashes } if !hashes.is_empty() => {
                let replica = self.replica.clone();
                blocking(move || replica.media_requeue(&hashes))
                    .await
                    .map_err(|e| MediaSyncError::Local(e.to_string()))?;
            }
            Reply::Wanted { .. } => {}
            // An older server: nothing to requeue.
            Reply::Refused { .. } => {}
            other => return Err(MediaSyncError::Unexpected(other)),
        }
        let replica = self.replica.clone();
        let outbox = blocking(move || replica.media_outbox())
            .await
            .map_err(|e| MediaSyncError::Local(e.to_string()))?;
        for batch in outbox.chunks(MAX_HAVE_BATCH) {
            let hashes: Vec<BlobHash> = batch.iter().map(|(h, _)| *h).collect();
            let present = match self.ask(&Request::Have { hashes }).await?.0 {
                Reply::Have { present } if present.len() == batch.len() => present,
                Reply::Refused { reason } => {
                    report.refused.push(reason);
                    return Ok(report);
                }
                other => return Err(MediaSyncError::Unexpected(other)),
            };
            let there: Vec<BlobHash> = batch
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|((h, _), _)| *h)
                .collect();
            report.already_there += there.len() as u64;
            self.sent(there).await?;
            let to_send = batch.iter().zip(&present).filter(|(_, p)| !**p);
            let mut puts = JoinSet::new();
            for ((hash, len), _) in to_send {
                if puts.len() >= MAX_BLOBS_IN_FLIGHT {
                    collect_put(puts.join_next().await, &mut report)?;
                }
                let this = self.clone();
                let (hash, len) = (*hash, *len);
                puts.spawn(async move { (hash, this.put(hash, len).await) });
            }
            while let Some(done) = puts.join_next().await {
                collect_put(Some(done), &mut report)?;
            }
        }
        Ok(report)
    }

    /// Fetches the blobs the replica's policy wants and lacks, thumbnails first.
    pub async fn download(&self) -> Result<MediaReport, MediaSyncError> {
        let mut report = MediaReport::default();
        let replica = self.replica.clone();
        let missing = blocking(move || replica.media_missing(&replica.media_policy()?))
            .await
            .map_err(|e| MediaSyncError::Local(e.to_string()))?;
        let budget = Arc::new(AtomicU64::new(self.byte_budget.unwrap_or(u64::MAX)));
        let received = Arc::new(AtomicU64::new(0));
        let mut gets = JoinSet::new();
        let mut wanted = missing.into_iter();
        loop {
            while gets.len() < MAX_BLOBS_IN_FLIGHT && !report.cut {
                let Some(blob) = wanted.next() else { break };
                let (this, budget, received) = (self.clone(), budget.clone(), received.clone());
                gets.spawn(async move { this.get(blob, &budget, &received).await });
            }
            let Some(done) = gets.join_next().await else {
                break;
            };
            match done.map_err(|e| MediaSyncError::Local(e.to_string()))?? {
                Fetched::Done => report.received += 1,
                Fetched::NotThere | Fetched::Refused => report.not_there += 1,
                Fetched::Corrupt => report.corrupt += 1,
                Fetched::Cut => report.cut = true,
            }
        }
        report.received_bytes = received.load(Ordering::SeqCst);
        Ok(report)
    }

    /// Opens a media stream, sends `request`, reads the first answer.
    async fn ask(&self, request: &Request) -> Result<(Reply, FramedStream), MediaSyncError> {
        let (send, recv) = self.connection.open_bi().await?;
        let mut stream = FramedStream::new(send, recv);
        send_message(&mut stream, request).await?;
        let reply = recv_message(&mut stream).await?;
        Ok((reply, stream))
    }

    async fn sent(&self, hashes: Vec<BlobHash>) -> Result<(), MediaSyncError> {
        if hashes.is_empty() || self.peer {
            return Ok(());
        }
        let replica = self.replica.clone();
        blocking(move || replica.media_sent(&hashes))
            .await
            .map_err(|e| MediaSyncError::Local(e.to_string()))
    }

    /// Sends one blob; `Ok(Some(bytes sent))` once stored, `Ok(None)` if the local copy is gone
    /// or corrupt, `Err(reason)` inside when the server refused.
    async fn put(&self, hash: BlobHash, len: u64) -> Result<Put, MediaSyncError> {
        let store = self.replica.media_store().clone();
        let opened = blocking(move || store.open_verified(&hash)).await;
        let (file, actual) = match opened {
            Ok(Some(f)) => f,
            Ok(None) | Err(MediaError::Corrupt { .. }) => {
                tracing::warn!(%hash, "blob of the outbox missing or corrupt here: not sent");
                return Ok(Put::Gone);
            }
            Err(e) => return Err(e.into()),
        };
        if actual != len {
            tracing::warn!(%hash, "blob of the outbox has another size than recorded");
        }
        let (reply, mut stream) = self.ask(&Request::Put { hash, len: actual }).await?;
        let offset = match reply {
            Reply::Stored => return Ok(Put::AlreadyThere),
            Reply::Resume { offset } if offset <= actual => offset,
            Reply::Refused { reason } => return Ok(Put::Refused(reason)),
            other => return Err(MediaSyncError::Unexpected(other)),
        };
        let mut file = tokio::fs::File::from_std(file);
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| MediaSyncError::Local(e.to_string()))?;
        let mut buf = vec![0u8; IO_CHUNK];
        let mut at = offset;
        while at < actual {
            let want = ((actual - at) as usize).min(IO_CHUNK);
            let n = file
                .read(&mut buf[..want])
                .await
                .map_err(|e| MediaSyncError::Local(e.to_string()))?;
            if n == 0 {
                return Err(MediaSyncError::Local("blob shorter than it was".into()));
            }
            stream.send(&buf[..n]).await?;
            at += n as u64;
            self.moved(n as u64);
        }
        stream.finish()?;
        match recv_message(&mut stream).await? {
            Reply::Stored => {
                self.sent(vec![hash]).await?;
                Ok(Put::Sent(actual - offset))
            }
            Reply::Refused { reason } => Ok(Put::Refused(reason)),
            other => Err(MediaSyncError::Unexpected(other)),
        }
    }

    /// Fetches one blob into the replica's store, resuming a cut receive.
    async fn get(
        &self,
        blob: BlobRef,
        budget: &AtomicU64,
        received: &AtomicU64,
    ) -> Result<Fetched, MediaSyncError> {
        let store = self.replica.media_store().clone();
        let hash = blob.hash;
        let mut receiving = match blocking(move || store.receive(&hash, blob.bytes)).await {
            Ok(r) => r,
            Err(MediaError::TooLarge { .. }) => return Ok(Fetched::Refused),
            Err(e) => return Err(e.into()),
        };
        let (reply, mut stream) = self
            .ask(&Request::Get {
                hash,
                offset: receiving.offset(),
            })
            .await?;
        match reply {
            Reply::Sending { len } if len == blob.bytes => {}
            Reply::Sending { .. } => {
                tracing::warn!(%hash, "the server's blob has another size than the document says");
                return Ok(Fetched::Refused);
            }
            Reply::Missing => return Ok(Fetched::NotThere),
            Reply::Refused { reason } => {
                tracing::warn!(%hash, %reason, "blob refused");
                return Ok(Fetched::Refused);
            }
            other => return Err(MediaSyncError::Unexpected(other)),
        }
        while !receiving.complete() {
            let Some(mut chunk) = read_frame(&mut stream.recv, MAX_MEDIA_FRAME).await? else {
                return Err(MediaSyncError::Malformed("blob cut short".into()));
            };
            let allowed = take_budget(budget, chunk.len() as u64);
            chunk.truncate(allowed as usize);
            let cut = allowed == 0 || chunk.is_empty();
            if !chunk.is_empty() {
                let n = chunk.len() as u64;
                receiving = blocking(move || receiving.write(&chunk).map(|()| receiving))
                    .await
                    .map_err(|e| match e {
                        MediaError::Overrun { .. } => MediaSyncError::Malformed(e.to_string()),
                        e => e.into(),
                    })?;
                received.fetch_add(n, Ordering::SeqCst);
                self.moved(n);
            }
            if cut || (budget.load(Ordering::SeqCst) == 0 && !receiving.complete()) {
                // The partial file keeps what arrived; the next pass resumes from there.
                let _ = stream.recv.stop(0u32.into());
                return Ok(Fetched::Cut);
            }
        }
        match blocking(move || receiving.finish()).await {
            Ok(()) => {}
            Err(MediaError::Corrupt { .. }) => return Ok(Fetched::Corrupt),
            Err(e) => return Err(e.into()),
        }
        if self.peer {
            let replica = self.replica.clone();
            blocking(move || replica.media_requeue(&[hash]))
                .await
                .map_err(|e| MediaSyncError::Local(e.to_string()))?;
        }
        if let Some(f) = &self.on_blob {
            f(&hash);
        }
        Ok(Fetched::Done)
    }

    fn moved(&self, n: u64) {
        if let Some(f) = &self.on_bytes {
            f(n);
        }
    }
}

/// How one upload ended.
enum Put {
    Sent(u64),
    AlreadyThere,
    Refused(String),
    Gone,
}

/// An upload task's end: the blob, and how it went.
type PutDone = Result<(BlobHash, Result<Put, MediaSyncError>), tokio::task::JoinError>;

fn collect_put(done: Option<PutDone>, report: &mut MediaReport) -> Result<(), MediaSyncError> {
    let Some(done) = done else { return Ok(()) };
    let (hash, put) = done.map_err(|e| MediaSyncError::Local(e.to_string()))?;
    match put? {
        Put::Sent(bytes) => {
            report.sent += 1;
            report.sent_bytes += bytes;
        }
        Put::AlreadyThere => report.already_there += 1,
        Put::Refused(reason) => {
            tracing::warn!(%hash, %reason, "upload refused");
            report.refused.push(reason);
        }
        Put::Gone => {}
    }
    Ok(())
}

/// Takes up to `want` bytes from the budget; returns how many were granted.
fn take_budget(budget: &AtomicU64, want: u64) -> u64 {
    let mut granted = 0;
    let _ = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        granted = left.min(want);
        Some(left - granted)
    });
    granted
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        // The closure panicked: propagate, as a direct call would have.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_stay_small() {
        let h = BlobHash::of(b"x");
        let r = Request::Get { hash: h, offset: 7 };
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Request>(&json).unwrap(), r);
        let have = Request::Have {
            hashes: vec![h; MAX_HAVE_BATCH],
        };
        assert!(serde_json::to_vec(&have).unwrap().len() < MAX_MEDIA_FRAME);
        assert!(serde_json::from_slice::<Request>(b"{\"type\":\"get\",\"hash\":\"zz\"}").is_err());
    }

    #[test]
    fn the_budget_is_granted_exactly() {
        let b = AtomicU64::new(100);
        assert_eq!(take_budget(&b, 60), 60);
        assert_eq!(take_budget(&b, 60), 40);
        assert_eq!(take_budget(&b, 60), 0);
    }
}
