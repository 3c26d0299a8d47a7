//! `media`: a fresh office's pull of a corpus with photos, over real QUIC on loopback, against
//! the relay binary run as a child process (`atelier-relay serve`): when every text is listed
//! (against a text-only pull of the same corpus in the same run), when every thumbnail, display
//! size and original is there (against plain QUIC and TCP transfers of the same bytes over
//! 127.0.0.1, and `rsync` of the same photos from an rsync daemon on 127.0.0.1), bytes on the
//! wire against bytes of blobs, a resync with nothing new, and peak RSS of the puller and of
//! the relay. Pulls run in child processes of this benchmark (`--pull-into`), so their peak
//! RSS is that of a replica doing nothing else.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use atelier_core::clock::now_ms;
use atelier_core::media::sample;
use atelier_core::media::{BlobHash, BlobRef, Tier};
use atelier_core::mutex::lock;
use atelier_core::replica::{ListFilter, NewMedia, Replica};
use atelier_core::sync::{Role, Session};
use atelier_relay::agent::{self, Converged, Target};
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::media_sync::{MediaReport, MediaTransfer, MAX_BLOBS_IN_FLIGHT};
use atelier_relay::transport;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinSet;

use super::loopback::{
    in_child, kb, load, mb, median, own_cpu_s, peak_rss_kb, relay_bin, rss, ChildPull, Office,
    RelayChild, SYNC_TIMEOUT,
};
use crate::node::wait_for;

/// Size of the generated photos, in pixels: widths from 3,000 to 4,000 by steps of
/// [`PHOTO_STEP`], heights 1,000 less (3,000 × 2,000 to 4,000 × 3,000).
const PHOTO_MIN_WIDTH: u32 = 3000;
const PHOTO_STEP: u32 = 100;
const PHOTO_STEPS: u64 = 11;
/// Film-like noise of the generated photos, from [`PHOTO_MIN_GRAIN`] to
/// `PHOTO_MIN_GRAIN + PHOTO_GRAINS - 1`: at [`PHOTO_QUALITY`] this gives JPEGs of about 1.1 MB
/// (the smallest, least grainy) to 3.4 MB (the largest, grainiest), as a camera's or a phone's.
const PHOTO_MIN_GRAIN: u8 = 6;
const PHOTO_GRAINS: u64 = 4;
/// JPEG quality of the generated photos, a camera's usual "fine".
const PHOTO_QUALITY: u8 = 90;
/// Bytes of one write in the plain loopback transfers (the media streams' chunk size order).
const LOOPBACK_WRITE: usize = 64 * 1024;
/// Bound on the rsync daemon's start and on one rsync copy.
const RSYNC_START: Duration = Duration::from_secs(10);
const RSYNC_COPY: Duration = Duration::from_secs(1800);
/// Most rounds of the compared measures: each round's two fresh offices get départements
/// 01 to 18 (both numbers of a round), which all exist.
const MAX_ROUNDS: usize = 9;

/// A fresh office pulls a corpus with photos through a relay: texts, thumbnails, originals,
/// against plain loopback transfers and rsync. Prints a table.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md), e.g. `gen-corpus.py --count
    /// 10000 --seed 1`.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Photos generated (1–4 MB JPEGs, deterministic), one for each of the first N resources.
    #[arg(long, default_value_t = 1000)]
    pub photos: usize,
    /// Rounds of the compared measures (text-only pull, pull with media, plain transfers,
    /// rsync), interleaved so that the machine's load weighs on all alike; medians are shown.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=MAX_ROUNDS as u64))]
    pub rounds: u64,
    /// The relay binary [default: `atelier-relay` beside this benchmark's binary].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub child: ChildPull,
    /// Internal: pull the texts only.
    #[arg(long, hide = true)]
    pub text_only: bool,
}

/// Everything one run measured; the compared measures once per round.
#[derive(Debug, Default, Serialize)]
struct MediaRun {
    resources: usize,
    documents: usize,
    setup: Setup,
    rounds: usize,
    /// Fresh pulls of the texts only, and fresh pulls with media, one of each per round.
    text_only: Vec<Pull>,
    pulls: Vec<Pull>,
    /// The relay's CPU seconds during each text-only pull and each pull with media.
    relay_text_cpu_s: Vec<f64>,
    relay_pull_cpu_s: Vec<f64>,
    /// The relay's peak RSS during each pull with media (reset before it).
    relay_peak_rss_kb: Vec<u64>,
    quic_loopback_s: Vec<f64>,
    tcp_loopback_s: Vec<f64>,
    rsync: Rsync,
}

/// Office A's set-up (not part of what is compared).
#[derive(Debug, Default, Serialize)]
struct Setup {
    photos: usize,
    original_bytes: u64,
    smallest_photo: u64,
    largest_photo: u64,
    /// Drawing, encoding and adding the photos (renditions), on every core.
    photos_s: f64,
    upload_texts_s: f64,
    upload_media_s: f64,
    uploaded_blobs: u64,
}

/// A fresh pull, as measured by the child process that ran it. Times are seconds from the
/// start of the connection.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pull {
    text_s: f64,
    docs_received: u64,
    text_payload_bytes: u64,
    text_udp_bytes: u64,
    thumbs: u64,
    thumbs_s: Option<f64>,
    displays: u64,
    displays_s: Option<f64>,
    originals: u64,
    originals_s: Option<f64>,
    blobs: u64,
    blob_bytes: u64,
    /// UDP bytes both ways of the media phase (QUIC, TLS and media frames).
    media_udp_bytes: u64,
    peak_rss_kb: u64,
    /// The process's CPU seconds when the texts were settled, and at the end of the media.
    text_cpu_s: f64,
    cpu_s: f64,
    resync: Option<Resync>,
}

/// A resync with nothing new (texts and media) on a new connection.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Resync {
    secs: f64,
    payload_bytes: u64,
    udp_bytes: u64,
    blobs_moved: u64,
}

/// The rsync baseline: the same photos, from an rsync daemon on 127.0.0.1.
#[derive(Debug, Default, Serialize)]
struct Rsync {
    version: String,
    /// One fresh copy per round.
    copy_s: Vec<f64>,
    copy_bytes: u64,
    noop_s: f64,
    noop_bytes: u64,
}

/// Runs the benchmark (or, with `--pull-into`, the pull of a child process).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some((dir, addr, fp)) = args.child.target()? {
        let pull = rt.block_on(pull_child(dir, addr, &fp, args.text_only))?;
        println!("{}", serde_json::to_string(&pull)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Checked first: the set-up takes a while.
    let rsync_version = rsync_version()?;
    let relay_bin = relay_bin(args.relay_bin.as_deref())?;
    let resources = load(&args.corpus)?;
    let rounds = args.rounds as usize;
    let mut run = rt.block_on(media_run(&relay_bin, &resources, args.photos, rounds))?;

    let blob_bytes = run.pulls.last().map_or(0, |p| p.blob_bytes);
    eprintln!("loopback: {} over plain QUIC and TCP…", mb(blob_bytes));
    for _ in 0..rounds {
        run.quic_loopback_s
            .push(rt.block_on(quic_loopback(blob_bytes))?);
        run.tcp_loopback_s.push(tcp_loopback(blob_bytes)?);
    }
    run.rsync.version = rsync_version;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "media": run }))?
        );
    } else {
        print_table(&run);
    }
    Ok(ExitCode::SUCCESS)
}

/// Office A imports and adds photos, uploads; then, each round, a fresh office pulls the
/// texts only and another pulls everything; then rsync copies A's originals.
async fn media_run(
    relay_bin: &Path,
    resources: &[atelier_core::Resource],
    photos: usize,
    rounds: usize,
) -> anyhow::Result<MediaRun> {
    let tmp = tempfile::tempdir()?;
    let relay = RelayChild::start_in(relay_bin, tempfile::tempdir_in(tmp.path())?)?;
    let a = Office::create(&tmp.path().join("a"), "caue-63", &relay).await?;
    eprintln!("office A: importing {} resources…", resources.len());
    a.import(resources)?;
    let mut setup = add_photos(&a.replica, photos)?;
    let originals = setup_originals(&a.replica)?;

    eprintln!("office A: uploading texts and photos…");
    let t = Instant::now();
    let converged = converge(&a, relay.addr, &relay.fingerprint).await?;
    setup.upload_texts_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = transfer(&converged, &a.replica, None).await?;
    converged.close();
    setup.upload_media_s = t.elapsed().as_secs_f64();
    setup.uploaded_blobs = report.sent;
    ensure!(
        report.complete() && a.replica.media_outbox()?.is_empty(),
        "office A's upload did not complete: {report:?}"
    );
    let documents = a.replica.store().len()?;

    let mut run = MediaRun {
        resources: resources.len(),
        documents,
        rounds,
        ..MediaRun::default()
    };
    for round in 0..rounds {
        eprintln!("fresh pulls, round {}/{rounds}…", round + 1);
        let dir = tmp.path().join(format!("text-{round}"));
        let cpu = relay.cpu_s();
        let office = format!("caue-{:02}", 2 * round + 1);
        run.text_only.push(pull(&dir, &office, &relay, true).await?);
        run.relay_text_cpu_s.push(relay.cpu_s() - cpu);
        std::fs::remove_dir_all(&dir)?;

        let dir = tmp.path().join(format!("media-{round}"));
        relay.reset_peak_rss()?;
        let cpu = relay.cpu_s();
        let office = format!("caue-{:02}", 2 * round + 2);
        run.pulls.push(pull(&dir, &office, &relay, false).await?);
        run.relay_pull_cpu_s.push(relay.cpu_s() - cpu);
        run.relay_peak_rss_kb.push(relay.peak_rss_kb());
        check_pulled(&dir, resources.len(), &originals)?;
        std::fs::remove_dir_all(&dir)?;
    }
    relay.stop();
    for p in run.text_only.iter().chain(&run.pulls) {
        ensure!(
            p.docs_received == documents as u64,
            "a fresh replica received {} documents, office A holds {documents}",
            p.docs_received
        );
    }

    eprintln!("rsync: {} photos…", originals.len());
    run.rsync = rsync_baseline(tmp.path(), &a.replica, &originals, rounds)?;
    run.setup = setup;
    Ok(run)
}

/// A fresh office enrolled at `relay`, then its pull in a child process.
async fn pull(
    dir: &Path,
    office: &str,
    relay: &RelayChild,
    text_only: bool,
) -> anyhow::Result<Pull> {
    drop(Office::create(dir, office, relay).await?);
    let mut args = ChildPull::args("media", dir, relay);
    if text_only {
        args.push("--text-only".into());
    }
    in_child(&args)
}

/// The pulled replica lists the whole corpus and holds every photo, intact.
fn check_pulled(
    dir: &Path,
    resources: usize,
    originals: &[(String, BlobHash, u64)],
) -> anyhow::Result<()> {
    let b = Office::open(dir)?;
    let listed = b.replica.list(&ListFilter {
        include_deleted: true,
        ..ListFilter::default()
    })?;
    ensure!(
        listed.len() == resources,
        "the fresh replica lists {} resources, the corpus has {resources}",
        listed.len()
    );
    let missing = b.replica.media_missing(&b.replica.media_policy()?)?;
    ensure!(missing.is_empty(), "{} blobs still missing", missing.len());
    for (name, hash, _) in originals {
        ensure!(
            b.replica.media_store().open_verified(hash)?.is_some(),
            "{name} is not in the fresh replica"
        );
    }
    Ok(())
}

/// Draws and adds one photo to each of the first `photos` resources of the listing, on every
/// core (renditions take time; this is set-up, timed apart).
fn add_photos(replica: &Replica, photos: usize) -> anyhow::Result<Setup> {
    let ids: Vec<_> = replica
        .list(&ListFilter::default())?
        .into_iter()
        .take(photos)
        .map(|e| e.id)
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(ids.len().max(1));
    eprintln!(
        "office A: drawing and adding {} photos on {threads} threads…",
        ids.len()
    );
    let t = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let sizes = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let (ids, done) = (&ids, &done);
                s.spawn(move || -> anyhow::Result<Vec<u64>> {
                    let mut sizes = Vec::new();
                    for (i, id) in ids.iter().enumerate().skip(k).step_by(threads) {
                        let (w, h, grain) = photo_spec(i as u64);
                        let bytes = sample::jpeg(i as u64, w, h, grain, PHOTO_QUALITY);
                        sizes.push(bytes.len() as u64);
                        let file = NewMedia {
                            name: photo_name(i),
                            bytes,
                            credit: Some("© Atelier, photo de banc d'essai".into()),
                            alt: Some("Bâtiment dessiné sous un ciel bleu".into()),
                            ..NewMedia::default()
                        };
                        replica.add_media(id, vec![file], now_ms())?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        if n % 50 == 0 {
                            let secs = t.elapsed().as_secs_f64();
                            eprintln!(
                                "  {n}/{} photos, {secs:.0} s, about {:.0} s left",
                                ids.len(),
                                secs / n as f64 * (ids.len() - n) as f64
                            );
                        }
                    }
                    Ok(sizes)
                })
            })
            .collect();
        let mut sizes = Vec::new();
        for w in workers {
            match w.join() {
                Ok(s) => sizes.extend(s?),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        anyhow::Ok(sizes)
    })?;
    Ok(Setup {
        photos: sizes.len(),
        original_bytes: sizes.iter().sum(),
        smallest_photo: sizes.iter().copied().min().unwrap_or(0),
        largest_photo: sizes.iter().copied().max().unwrap_or(0),
        photos_s: t.elapsed().as_secs_f64(),
        ..Setup::default()
    })
}

/// The size and grain of photo `seed`: 3,000 × 2,000 to 4,000 × 3,000, grain 6 to 9, every
/// combination reached (the steps are prime to each other's multipliers).
fn photo_spec(seed: u64) -> (u32, u32, u8) {
    let w = PHOTO_MIN_WIDTH + PHOTO_STEP * (seed.wrapping_mul(7) % PHOTO_STEPS) as u32;
    let grain = PHOTO_MIN_GRAIN + (seed.wrapping_mul(3) / PHOTO_STEPS % PHOTO_GRAINS) as u8;
    (w, w - 1000, grain)
}

fn photo_name(i: usize) -> String {
    format!("photo-{:04}.jpg", i + 1)
}

/// The originals office A holds: name, hash, size.
fn setup_originals(replica: &Replica) -> anyhow::Result<Vec<(String, BlobHash, u64)>> {
    let mut out = Vec::new();
    for e in replica.list(&ListFilter::default())? {
        if e.media.is_empty() {
            continue;
        }
        let got = replica.get(&e.id)?;
        for m in &got.resource.media {
            out.push((m.name.clone(), m.hash, m.bytes));
        }
    }
    Ok(out)
}

/// The sync `atelier sync` runs, its connection left open for media.
async fn converge(
    office: &Office,
    addr: SocketAddr,
    fp: &Fingerprint,
) -> anyhow::Result<Converged> {
    let target = Target {
        url: addr.into(),
        fingerprint: *fp,
        is_relay: true,
    };
    let replica = office.replica.clone();
    let session = move |read_only: bool| {
        let s = Session::new(replica.store().clone(), Role::Initiator)
            .with_office_lookup(replica.office_lookup());
        if read_only {
            s.pull_only()
        } else {
            s
        }
    };
    let converged = tokio::time::timeout(
        SYNC_TIMEOUT,
        agent::converge(&office.identity()?, &target, session, |_| {}),
    )
    .await
    .context("sync timed out")??;
    Ok(converged)
}

/// Media after the texts, as `atelier sync` transfers them.
async fn transfer(
    converged: &Converged,
    replica: &Arc<Replica>,
    arrivals: Option<Arc<Mutex<Arrivals>>>,
) -> anyhow::Result<MediaReport> {
    let mut transfer = MediaTransfer::new(converged.connection.clone(), replica.clone())
        .read_only(converged.read_only);
    if let Some(arrivals) = arrivals {
        transfer = transfer.on_blob(move |h| lock(&arrivals).arrived(h));
    }
    Ok(tokio::time::timeout(SYNC_TIMEOUT, transfer.run())
        .await
        .context("media transfer timed out")??)
}

fn udp_bytes(connection: &quinn::Connection) -> u64 {
    let s = connection.stats();
    s.udp_rx.bytes + s.udp_tx.bytes
}

/// The child process's side of a fresh pull.
async fn pull_child(
    dir: &Path,
    addr: SocketAddr,
    fp: &Fingerprint,
    text_only: bool,
) -> anyhow::Result<Pull> {
    let office = Office::open(dir)?;
    let replica = office.replica.clone();
    let t = Instant::now();
    let converged = converge(&office, addr, fp).await?;
    replica.record_synced()?;
    let mut pull = Pull {
        text_s: t.elapsed().as_secs_f64(),
        text_cpu_s: own_cpu_s(),
        docs_received: converged.stats.docs_received,
        text_payload_bytes: converged.stats.bytes_sent + converged.stats.bytes_received,
        text_udp_bytes: udp_bytes(&converged.connection),
        ..Pull::default()
    };
    if text_only {
        converged.close();
        pull.peak_rss_kb = peak_rss_kb();
        pull.cpu_s = pull.text_cpu_s;
        return Ok(pull);
    }
    let missing = replica.media_missing(&replica.media_policy()?)?;
    let arrivals = Arc::new(Mutex::new(Arrivals::new(&missing, t)));
    let report = transfer(&converged, &replica, Some(arrivals.clone())).await?;
    pull.media_udp_bytes = udp_bytes(&converged.connection) - pull.text_udp_bytes;
    converged.close();
    pull.peak_rss_kb = peak_rss_kb();
    pull.cpu_s = own_cpu_s();
    ensure!(
        report.complete() && report.received == missing.len() as u64,
        "the pull received {} of {} blobs: {report:?}",
        report.received,
        missing.len()
    );
    {
        let arrivals = lock(&arrivals);
        (pull.thumbs, pull.thumbs_s) = arrivals.tier(Tier::Thumb);
        (pull.displays, pull.displays_s) = arrivals.tier(Tier::Display);
        (pull.originals, pull.originals_s) = arrivals.tier(Tier::Original);
    }
    pull.blobs = report.received;
    pull.blob_bytes = report.received_bytes;

    let t = Instant::now();
    let converged = converge(&office, addr, fp).await?;
    let again = transfer(&converged, &replica, None).await?;
    let udp = udp_bytes(&converged.connection);
    converged.close();
    pull.resync = Some(Resync {
        secs: t.elapsed().as_secs_f64(),
        payload_bytes: converged.stats.bytes_sent + converged.stats.bytes_received,
        udp_bytes: udp,
        blobs_moved: again.received + again.sent,
    });
    ensure!(
        converged.stats.docs_received + converged.stats.docs_sent == 0,
        "the resync moved documents: {:?}",
        converged.stats
    );
    Ok(pull)
}

/// When each tier's last missing blob arrived, counted from a pull's start.
#[derive(Debug)]
struct Arrivals {
    start: Instant,
    tiers: HashMap<BlobHash, Tier>,
    /// Per tier (thumbnail, display, original): blobs wanted, still missing, when complete.
    wanted: [u64; 3],
    left: [u64; 3],
    done_s: [Option<f64>; 3],
}

impl Arrivals {
    fn new(missing: &[BlobRef], start: Instant) -> Self {
        let mut wanted = [0; 3];
        for b in missing {
            wanted[slot(b.tier)] += 1;
        }
        Self {
            start,
            tiers: missing.iter().map(|b| (b.hash, b.tier)).collect(),
            wanted,
            left: wanted,
            done_s: [None; 3],
        }
    }

    fn arrived(&mut self, hash: &BlobHash) {
        self.arrived_at(hash, self.start.elapsed().as_secs_f64());
    }

    fn arrived_at(&mut self, hash: &BlobHash, secs: f64) {
        // A blob counts once, whichever tier asked for it.
        let Some(tier) = self.tiers.remove(hash) else {
            return;
        };
        let i = slot(tier);
        self.left[i] -= 1;
        if self.left[i] == 0 {
            self.done_s[i] = Some(secs);
        }
    }

    /// Blobs of `tier` wanted, and when the last arrived (`None` until all did, or if none
    /// was wanted).
    fn tier(&self, tier: Tier) -> (u64, Option<f64>) {
        let i = slot(tier);
        (self.wanted[i], self.done_s[i])
    }
}

fn slot(tier: Tier) -> usize {
    match tier {
        Tier::Thumb => 0,
        Tier::Display => 1,
        Tier::Original => 2,
    }
}

// ---- Plain transfers over loopback ----

/// Seconds to move `bytes` from a server to a client over one QUIC connection on 127.0.0.1,
/// with the relay's TLS and transport configuration, on as many streams as media sync keeps
/// in flight: the floor under a media pull.
async fn quic_loopback(bytes: u64) -> anyhow::Result<f64> {
    let (server_id, client_id) = (Identity::generate()?, Identity::generate()?);
    let server = transport::server_endpoint(&server_id, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let client = transport::client_endpoint("127.0.0.1:0".parse()?)?;
    let per_stream = split(bytes, MAX_BLOBS_IN_FLIGHT);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let incoming = server.accept().await.context("no connection")?;
        let connection = incoming.await?;
        let mut streams = JoinSet::new();
        for _ in 0..MAX_BLOBS_IN_FLIGHT {
            let (mut send, mut recv) = connection.accept_bi().await?;
            streams.spawn(async move {
                let mut want = [0u8; 8];
                recv.read_exact(&mut want).await?;
                let mut left = u64::from_be_bytes(want);
                let buf = vec![0x5a_u8; LOOPBACK_WRITE];
                while left > 0 {
                    let n = left.min(LOOPBACK_WRITE as u64) as usize;
                    send.write_all(&buf[..n]).await?;
                    left -= n as u64;
                }
                send.finish()?;
                send.stopped().await?;
                anyhow::Ok(())
            });
        }
        while let Some(done) = streams.join_next().await {
            done??;
        }
        anyhow::Ok(0.0)
    });
    let connection =
        transport::connect(&client, &client_id, addr, &server_id.fingerprint()).await?;
    let t = Instant::now();
    for &n in &per_stream {
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(&n.to_be_bytes()).await?;
        tasks.spawn(async move {
            let mut got = 0u64;
            while let Some(chunk) = recv.read_chunk(LOOPBACK_WRITE, true).await? {
                got += chunk.bytes.len() as u64;
            }
            ensure!(got == n, "received {got} of {n} bytes");
            anyhow::Ok(0.0)
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = t.elapsed().as_secs_f64();
    connection.close(0u32.into(), b"done");
    Ok(secs)
}

/// Seconds to move `bytes` over one TCP connection on 127.0.0.1 (no encryption).
fn tcp_loopback(bytes: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let t = Instant::now();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let buf = vec![0x5a_u8; LOOPBACK_WRITE];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(LOOPBACK_WRITE as u64) as usize;
            s.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut s, _) = listener.accept()?;
    let mut buf = vec![0u8; LOOPBACK_WRITE];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    match writer.join() {
        Ok(r) => r?,
        Err(e) => std::panic::resume_unwind(e),
    }
    ensure!(got == bytes, "received {got} of {bytes} bytes");
    Ok(secs)
}

/// `total` split in `parts` near-equal parts (the first ones take the remainder).
fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

// ---- The rsync baseline ----

fn rsync_version() -> anyhow::Result<String> {
    let out = Command::new("rsync").arg("--version").output();
    match out {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()),
        _ => bail!(
            "rsync not found: the baseline copies the photos with it (apt-get install -y rsync)"
        ),
    }
}

/// Copies office A's originals with rsync from a daemon on 127.0.0.1 into an empty folder,
/// then once more with nothing new.
fn rsync_baseline(
    tmp: &Path,
    replica: &Replica,
    originals: &[(String, BlobHash, u64)],
    rounds: usize,
) -> anyhow::Result<Rsync> {
    let (src, dst, conf_dir) = (
        tmp.join("rsync-src"),
        tmp.join("rsync-dst"),
        tmp.join("rsyncd"),
    );
    for d in [&src, &dst, &conf_dir] {
        std::fs::create_dir_all(d)?;
    }
    // The very files of A's store, under their names (hard links: no copy, same disk).
    for (name, hash, _) in originals {
        let from = replica.media_store().path(hash);
        let to = src.join(name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
    }
    let port = free_port()?;
    // The daemon reads the files as their owner (as root it would otherwise become `nobody`).
    let owner = std::fs::metadata(&src)?;
    let (uid, gid) = (owner.uid(), owner.gid());
    let conf = conf_dir.join("rsyncd.conf");
    std::fs::write(&conf, rsyncd_conf(&src, &conf_dir, uid, gid))?;
    let daemon = Command::new("rsync")
        .arg("--daemon")
        .arg("--no-detach")
        .arg(format!("--config={}", conf.display()))
        .arg("--address=127.0.0.1")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the rsync daemon")?;
    let mut daemon = KillOnDrop(daemon);
    let deadline = Instant::now() + RSYNC_START;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "the rsync daemon did not start");
        ensure!(
            daemon.0.try_wait()?.is_none(),
            "the rsync daemon stopped (see its log in {})",
            conf_dir.display()
        );
        // A daemon gives no readiness event; polling its port costs nothing next to the copy.
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("rsync://127.0.0.1:{port}/m/");
    let (mut copy_s, mut copy_bytes) = (Vec::new(), 0);
    for _ in 0..rounds {
        if dst.exists() {
            std::fs::remove_dir_all(&dst)?;
        }
        std::fs::create_dir_all(&dst)?;
        let (secs, bytes) = rsync_copy(&url, &dst)?;
        copy_s.push(secs);
        copy_bytes = bytes;
    }
    let (noop_s, noop_bytes) = rsync_copy(&url, &dst)?;
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let copied = std::fs::read_dir(&dst)?.count();
    ensure!(
        copied == originals.len(),
        "rsync copied {copied} of {} photos",
        originals.len()
    );
    Ok(Rsync {
        copy_s,
        copy_bytes,
        noop_s,
        noop_bytes,
        ..Rsync::default()
    })
}

fn rsyncd_conf(src: &Path, dir: &Path, uid: u32, gid: u32) -> String {
    format!(
        "use chroot = false\nuid = {uid}\ngid = {gid}\nlog file = {}\n\n[m]\n\
         path = {}\nread only = true\n",
        dir.join("rsyncd.log").display(),
        src.display()
    )
}

/// One `rsync -a --stats` from the daemon; its seconds and the bytes it says it moved.
fn rsync_copy(url: &str, dst: &Path) -> anyhow::Result<(f64, u64)> {
    let t = Instant::now();
    let mut child = Command::new("rsync")
        .args(["-a", "--stats", url])
        .arg(format!("{}/", dst.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("rsync stdout")?
        .read_to_string(&mut out)?;
    let status = wait_for(&mut child, RSYNC_COPY).context("rsync took too long")?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(status.success(), "rsync failed ({status})");
    let bytes = rsync_total_bytes(&out).context("rsync --stats said no byte counts")?;
    Ok((secs, bytes))
}

/// Bytes sent plus bytes received, from `rsync --stats` (`Total bytes sent: 1,234`; the
/// digit grouping depends on the version and locale).
fn rsync_total_bytes(stats: &str) -> Option<u64> {
    let count = |label: &str| -> Option<u64> {
        let line = stats.lines().find(|l| l.trim_start().starts_with(label))?;
        let digits: String = line[line.find(':')? + 1..]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some(count("Total bytes sent")? + count("Total bytes received")?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process that a failing benchmark does not leave behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// ---- The table ----

fn print_table(r: &MediaRun) {
    let Some(last) = r.pulls.last() else { return };
    let s = &r.setup;
    let med = |f: &dyn Fn(&Pull) -> Option<f64>, pulls: &[Pull]| -> Option<f64> {
        let v: Option<Vec<f64>> = pulls.iter().map(f).collect();
        v.map(|v| median(&v))
    };
    let each = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let rate = |bytes: u64, secs: f64| format!("{:.0} MB/s", bytes as f64 / 1e6 / secs);
    let secs = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2} s"));
    let text_only: Vec<f64> = r.text_only.iter().map(|p| p.text_s).collect();
    let texts: Vec<f64> = r.pulls.iter().map(|p| p.text_s).collect();
    let (text_only_s, text_s) = (median(&text_only), median(&texts));
    let media_s = med(&|p| p.originals_s.map(|o| o - p.text_s), &r.pulls);
    let quic_s = median(&r.quic_loopback_s);
    let tcp_s = median(&r.tcp_loopback_s);
    let rsync_s = median(&r.rsync.copy_s);
    println!(
        "Fresh pull of {} resources ({} documents) with {} photos over loopback: relay = \
         `atelier-relay serve` child process (QUIC); each pull in its own process; medians of \
         {} rounds (each round's values in brackets).",
        r.resources, r.documents, s.photos, r.rounds
    );
    println!(
        "Photos: {} of originals ({} to {} each), {} blobs with renditions ({}).",
        mb(s.original_bytes),
        mb(s.smallest_photo),
        mb(s.largest_photo),
        last.blobs,
        mb(last.blob_bytes)
    );
    println!();
    let row = |k: &str, v: String| println!("| {k} | {v} |");
    println!("| measure | value |");
    println!("|---|---|");
    row(
        "text-only fresh pull: every text listed",
        format!("{text_only_s:.2} s [{}]", each(&text_only)),
    );
    row(
        "fresh pull with media: every text listed",
        format!(
            "{text_s:.2} s [{}], {:+.1} % of text-only",
            each(&texts),
            (text_s / text_only_s - 1.0) * 100.0
        ),
    );
    row(
        &format!("  every thumbnail present ({})", last.thumbs),
        secs(med(&|p| p.thumbs_s, &r.pulls)),
    );
    row(
        &format!("  every display size present ({})", last.displays),
        secs(med(&|p| p.displays_s, &r.pulls)),
    );
    let originals: Vec<f64> = r.pulls.iter().filter_map(|p| p.originals_s).collect();
    row(
        &format!("  every original present ({})", last.originals),
        format!(
            "{} [{}]",
            secs(med(&|p| p.originals_s, &r.pulls)),
            each(&originals)
        ),
    );
    if let Some(m) = media_s {
        row(
            "  media phase (texts listed → last original)",
            format!("{m:.2} s, {}", rate(last.blob_bytes, m)),
        );
        row(
            "plain QUIC, same bytes, same TLS (4 streams)",
            format!(
                "{quic_s:.2} s, {} [{}]: media at {:.0} % of it",
                rate(last.blob_bytes, quic_s),
                each(&r.quic_loopback_s),
                quic_s / m * 100.0
            ),
        );
        row(
            "plain TCP, same bytes",
            format!(
                "{tcp_s:.2} s, {} [{}]: media at {:.0} % of it",
                rate(last.blob_bytes, tcp_s),
                each(&r.tcp_loopback_s),
                tcp_s / m * 100.0
            ),
        );
        row(
            "rsync daemon, the originals",
            format!(
                "{rsync_s:.2} s, {} [{}]: {:.2} × the media phase",
                rate(s.original_bytes, rsync_s),
                each(&r.rsync.copy_s),
                rsync_s / m
            ),
        );
    }
    let puller_cpu = median(
        &r.pulls
            .iter()
            .map(|p| p.cpu_s - p.text_cpu_s)
            .collect::<Vec<_>>(),
    );
    let relay_media_cpu = median(&r.relay_pull_cpu_s) - median(&r.relay_text_cpu_s);
    if let Some(m) = media_s {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        row(
            "CPU during the media phase: puller / relay",
            format!(
                "{puller_cpu:.1} s / {relay_media_cpu:.1} s ({:.0} % of {cores} cores)",
                (puller_cpu + relay_media_cpu) / (cores as f64 * m) * 100.0
            ),
        );
    }
    row(
        "bytes on the wire (UDP) vs bytes of blobs",
        format!(
            "{} vs {} (+{:.1} %)",
            mb(last.media_udp_bytes),
            mb(last.blob_bytes),
            (last.media_udp_bytes as f64 / last.blob_bytes.max(1) as f64 - 1.0) * 100.0
        ),
    );
    row(
        "  rsync: bytes on the wire vs bytes of originals",
        format!(
            "{} vs {} (+{:.1} %)",
            mb(r.rsync.copy_bytes),
            mb(s.original_bytes),
            (r.rsync.copy_bytes as f64 / s.original_bytes.max(1) as f64 - 1.0) * 100.0
        ),
    );
    if let Some(rs) = &last.resync {
        row(
            "resync, nothing new (texts + media)",
            format!(
                "{} ({} UDP), {} blobs, {:.1} ms",
                kb(rs.payload_bytes),
                kb(rs.udp_bytes),
                rs.blobs_moved,
                rs.secs * 1e3
            ),
        );
    }
    row(
        "  rsync, nothing new",
        format!("{}, {:.1} ms", kb(r.rsync.noop_bytes), r.rsync.noop_s * 1e3),
    );
    let max_kb = |v: &mut dyn Iterator<Item = u64>| v.max().unwrap_or(0);
    row(
        "peak RSS: pulling process, with media / text only",
        format!(
            "{} / {}",
            rss(max_kb(&mut r.pulls.iter().map(|p| p.peak_rss_kb))),
            rss(max_kb(&mut r.text_only.iter().map(|p| p.peak_rss_kb)))
        ),
    );
    row(
        "peak RSS: relay, during a pull with media",
        rss(max_kb(&mut r.relay_peak_rss_kb.iter().copied())),
    );
    row(
        "set-up: draw + add the photos (renditions)",
        format!("{:.1} s, every core", s.photos_s),
    );
    row(
        "set-up: office A uploads texts / media",
        format!(
            "{:.2} s / {:.2} s ({} blobs)",
            s.upload_texts_s, s.upload_media_s, s.uploaded_blobs
        ),
    );
    println!();
    println!("rsync: {}", r.rsync.version);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_stats_are_summed_whatever_the_grouping() {
        let stats = "Number of files: 3 (reg: 2, dir: 1)\n\
                     Total file size: 5,000,000 bytes\n\
                     Total bytes sent: 1,234\n\
                     Total bytes received: 5,001,000\n\n\
                     sent 1,234 bytes  received 5,001,000 bytes\n";
        assert_eq!(rsync_total_bytes(stats), Some(5_002_234));
        assert_eq!(
            rsync_total_bytes("Total bytes sent: 10\nTotal bytes received: 20\n"),
            Some(30)
        );
        assert_eq!(rsync_total_bytes("Total bytes sent: 10\n"), None);
    }

    #[test]
    fn arrivals_say_when_each_tier_is_complete() {
        let blob = |n: u8, tier| BlobRef {
            hash: BlobHash::of(&[n]),
            tier,
            kind: atelier_core::media::MediaKind::Photo,
            bytes: 10,
        };
        let missing = [
            blob(1, Tier::Thumb),
            blob(2, Tier::Thumb),
            blob(3, Tier::Original),
        ];
        let mut a = Arrivals::new(&missing, Instant::now());
        a.arrived_at(&missing[0].hash, 1.0);
        assert_eq!(a.tier(Tier::Thumb), (2, None));
        a.arrived_at(&missing[0].hash, 1.5);
        a.arrived_at(&BlobHash::of(b"not asked"), 1.6);
        assert_eq!(a.tier(Tier::Thumb), (2, None), "a blob counts once");
        a.arrived_at(&missing[1].hash, 2.0);
        a.arrived_at(&missing[2].hash, 3.0);
        assert_eq!(a.tier(Tier::Thumb), (2, Some(2.0)));
        assert_eq!(a.tier(Tier::Original), (1, Some(3.0)));
        assert_eq!(a.tier(Tier::Display), (0, None));
    }

    #[test]
    fn photos_span_the_sizes_and_grains_and_loopback_bytes_split_exactly() {
        let specs: std::collections::HashSet<_> = (0..1000).map(photo_spec).collect();
        assert_eq!(
            specs.len() as u64,
            PHOTO_STEPS * PHOTO_GRAINS,
            "every combination"
        );
        assert!(specs.contains(&(3000, 2000, 6)) && specs.contains(&(4000, 3000, 9)));
        assert!(specs
            .iter()
            .all(|(w, h, g)| (3000..=4000).contains(w) && w - h == 1000 && (6..=9).contains(g)));
        let parts = split(10, 4);
        assert_eq!(parts, vec![3, 3, 2, 2]);
        assert_eq!(split(7, 1), vec![7]);
    }

    #[test]
    fn rsyncd_config_serves_the_folder_read_only() {
        let c = rsyncd_conf(Path::new("/x/src"), Path::new("/x/conf"), 1000, 1000);
        assert!(c.contains("[m]\npath = /x/src\nread only = true"));
        assert!(c.contains("use chroot = false") && c.contains("uid = 1000"));
    }
}
