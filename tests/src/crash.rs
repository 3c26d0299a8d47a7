//! Crash loops: `kill -9` against the relay during uploads, and against the process that holds
//! an office's replica (`atelier sync --watch`, `atelier-web`) during writes. After every kill,
//! every acknowledged write must be on disk; at the end, replicas converge. The integration
//! test runs a few dozen kills, `atelier-bench crash` a thousand.
//!
//! What "acknowledged" means here is what users and peers are told:
//! - to an office, by the relay: a sync that converged (the relay answered its last digest
//!   round after flushing), after which the office records its documents as on the relay;
//! - to a user: an `atelier add` that exited 0.
//!
//! Kills are placed by seeded randomness at a count of events (frames handled by the uploading
//! session, writes acknowledged), never by timers, so a run is repeatable in where it cuts.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::replica::{ListFilter, Replica};
use atelier_core::store::{DocStore, HeadsHash, Kv, SledKv};
use atelier_core::sync::{Role, Session};
use atelier_core::{DocumentId, Resource};
use atelier_relay::client;
use atelier_relay::handshake::CloseCode;
use atelier_relay::sync_conn::{drive, Mode};
use automerge::ChangeHash;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::bench::loopback::{Office, RelayChild, SYNC_TIMEOUT};

/// Bound on a holder process becoming ready, and on one `atelier` command.
const READY: Duration = Duration::from_secs(60);
/// Most resources an office creates between two syncs of the relay loop.
const MAX_NEW_PER_ROUND: usize = 12;
/// Most earlier resources an office edits between two syncs of the relay loop.
const MAX_EDITS_PER_ROUND: usize = 4;
/// A kill lands at a frame count drawn up to this; larger than most rounds, so some rounds
/// converge (and acknowledge) between kills.
const MAX_KILL_FRAME: u64 = 24;
/// An office's holder is killed after this many acknowledged writes, at most, of its run.
const MAX_WRITES_BEFORE_KILL: usize = 4;

/// What a crash loop did and found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// `kill -9` sent.
    pub kills: usize,
    /// Writes made (resources created or edited).
    pub writes: usize,
    /// Writes acknowledged before a kill or the end.
    pub acknowledged: usize,
    /// Acknowledged documents (relay loop) or writes (office loop) checked after kills.
    pub checked: usize,
    /// Acknowledged writes missing after a kill: must stay empty.
    pub lost: Vec<String>,
    /// Whether a fresh office pulled exactly the writer's corpus at the end.
    pub converged: bool,
    pub seconds: f64,
}

/// Resource number `n`, with enough text that uploads take several frames.
fn resource(office: &str, n: usize) -> Resource {
    Resource::from_json(&json!({
        "kind": "realisation",
        "title": format!("Écrit {n}"),
        "summary": format!("Réalisation {n} écrite pendant les coupures du relais."),
        "description": "Maison en pierre et bois, enduits terre, isolation paille. ".repeat(40),
        "office": office,
    }))
    .expect("a valid resource")
}

/// A document's heads hash and heads, as acknowledged.
type Acked = BTreeMap<DocumentId, (HeadsHash, Vec<ChangeHash>)>;

/// Kills of the relay loop in one generation: one relay and one office, whose corpus grows with
/// every round. Past it a new generation starts afresh, so that a run of a thousand kills does
/// not spend its time reopening an ever larger store after each kill (each generation ends with
/// its own convergence check).
pub const KILLS_PER_GENERATION: usize = 100;

/// `kill -9` of the relay child during uploads, `kills` times, in generations of at most
/// [`KILLS_PER_GENERATION`].
pub async fn relay_kills(relay_bin: &Path, kills: usize, seed: u64) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut total = Report {
        converged: true,
        ..Report::default()
    };
    let mut generation = 0;
    loop {
        let these = (kills - total.kills).min(KILLS_PER_GENERATION);
        let report = relay_generation(relay_bin, these, seed.wrapping_add(generation)).await?;
        total.kills += report.kills;
        total.writes += report.writes;
        total.acknowledged += report.acknowledged;
        total.checked += report.checked;
        total.lost.extend(report.lost);
        total.converged &= report.converged;
        generation += 1;
        if total.kills >= kills {
            break;
        }
        eprintln!(
            "relay loop: {}/{kills} kills, {} checks of acknowledged writes, {} lost",
            total.kills,
            total.checked,
            total.lost.len()
        );
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

/// One generation of the relay loop: a fresh relay and office, `kills` kills.
async fn relay_generation(relay_bin: &Path, kills: usize, seed: u64) -> anyhow::Result<Report> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let mut relay = RelayChild::start(relay_bin)?;
    let a = Office::create(&tmp.path().join("caue-63"), "caue-63", &relay).await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let mut acked = Acked::new();
    let mut ids: Vec<DocumentId> = Vec::new();
    let mut touched: Vec<DocumentId> = Vec::new();
    let mut unacked_writes = 0;
    while report.kills < kills {
        for _ in 0..rng.gen_range(1..=MAX_NEW_PER_ROUND) {
            let r = resource("caue-63", ids.len());
            let id = a.replica.create(&r, &mut rng, now_ms())?;
            ids.push(id);
            touched.push(id);
            unacked_writes += 1;
        }
        for _ in 0..rng.gen_range(0..=MAX_EDITS_PER_ROUND) {
            let id = ids[rng.gen_range(0..ids.len())];
            let edit = Edit::Set {
                field: "year".into(),
                value: json!(rng.gen_range(1800..2026)),
            };
            a.replica.edit(&id, &[edit], now_ms())?;
            touched.push(id);
            unacked_writes += 1;
        }
        let kill_at = rng.gen_range(1..=MAX_KILL_FRAME);
        if sync_or_kill(&a, &relay, Some(kill_at)).await? {
            a.replica.record_synced()?;
            for id in touched.drain(..) {
                acked.insert(id, acknowledged(a.replica.store(), &id)?);
            }
            report.acknowledged += unacked_writes;
            unacked_writes = 0;
        } else {
            report.kills += 1;
            relay.wait_killed()?;
            report.checked += acked.len();
            report
                .lost
                .extend(missing(&relay.data_dir().join("store"), &acked)?);
            relay.respawn()?;
        }
        report.writes = report.acknowledged + unacked_writes;
    }
    if !sync_or_kill(&a, &relay, None).await? {
        bail!("the final sync did not converge");
    }
    report.acknowledged += unacked_writes;
    let b = Office::create(&tmp.path().join("caue-15"), "caue-15", &relay).await?;
    b.sync(&relay).await?;
    report.converged = heads_of(a.replica.store())? == heads_of(b.replica.store())?;
    relay.stop();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One sync of `office` with `relay`, as `atelier sync` runs it; with `kill_at`, the relay is
/// killed when the session has handled that many frames. True if it converged.
async fn sync_or_kill(
    office: &Office,
    relay: &RelayChild,
    kill_at: Option<u64>,
) -> anyhow::Result<bool> {
    let opened = client::open(&office.identity()?, relay.addr, &relay.fingerprint).await?;
    let mut session = Session::new(office.replica.store().clone(), Role::Initiator)
        .with_office_lookup(office.replica.office_lookup());
    session.start()?;
    let killed = Arc::new(Notify::new());
    let (pid, on_kill) = (relay.pid(), killed.clone());
    let mut frames = 0;
    let progress = move |_: &_| {
        frames += 1;
        if Some(frames) == kill_at {
            // Synchronously, between two frames: the relay dies wherever it is.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            on_kill.notify_one();
        }
    };
    let outcome = tokio::select! {
        done = tokio::time::timeout(SYNC_TIMEOUT, drive(session, opened.stream, Mode::UntilConverged, progress)) => {
            done.context("sync timed out")?.context("sync failed")?;
            true
        }
        () = killed.notified() => false,
    };
    opened.connection.close(CloseCode::Done.code(), b"done");
    Ok(outcome)
}

/// The heads of `id` in `store`, as acknowledged now.
fn acknowledged(store: &DocStore, id: &DocumentId) -> anyhow::Result<(HeadsHash, Vec<ChangeHash>)> {
    let hash = store
        .heads_hash(id)?
        .context("an acknowledged document is missing")?;
    let mut doc = store
        .load(id)?
        .context("an acknowledged document is missing")?;
    Ok((hash, doc.get_heads()))
}

/// The acknowledged writes the relay's store at `db` lacks (the relay is dead).
fn missing(db: &Path, acked: &Acked) -> anyhow::Result<Vec<String>> {
    let kv: Arc<dyn Kv> = Arc::new(SledKv::open(db).context("reopening the killed relay's store")?);
    let store = DocStore::new(kv);
    let mut lost = Vec::new();
    for (id, (hash, heads)) in acked {
        if store.heads_hash(id)?.as_ref() == Some(hash) {
            continue;
        }
        // The relay may hold more (a later upload, cut before its acknowledgement), never less.
        match store.load(id)? {
            Some(mut doc) => {
                if !heads.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
                    lost.push(format!("{id}: acknowledged changes missing"));
                }
            }
            None => lost.push(format!("{id}: acknowledged document missing")),
        }
    }
    drop(store);
    wait_released(db)?;
    Ok(lost)
}

/// Waits until no one holds the sled database at `db`: a dropped `sled::Db` closes its file
/// from a background thread, and the process restarted next must find it free.
pub fn wait_released(db: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(db.join("db")).context("opening a sled database file")?;
    let (tx, rx) = mpsc::channel();
    // sled's lock is an exclusive `flock`; taking it blocks until the last holder let go.
    std::thread::spawn(move || {
        let _ = tx.send(file.lock().map(|()| file.unlock()));
    });
    rx.recv_timeout(READY)
        .context("a sled database stayed locked")?
        .context("locking a sled database")??;
    Ok(())
}

/// Every document's heads hash.
fn heads_of(store: &DocStore) -> anyhow::Result<BTreeMap<DocumentId, HeadsHash>> {
    let mut all = BTreeMap::new();
    store.for_each_heads(&mut |id, h| {
        all.insert(id, h);
        true
    })?;
    Ok(all)
}

/// Every [`PROGRESS_EVERY`] kills, a line on stderr: long runs show they are alive.
fn print_progress(the_loop: &str, report: &Report, kills: usize) {
    if report.kills.is_multiple_of(PROGRESS_EVERY) && report.kills < kills {
        eprintln!(
            "{the_loop} loop: {}/{kills} kills, {} checks of acknowledged writes, {} lost",
            report.kills,
            report.checked,
            report.lost.len()
        );
    }
}

/// How many kills between two progress lines.
const PROGRESS_EVERY: usize = 100;

/// The binaries an office loop runs.
#[derive(Debug, Clone)]
pub struct Bins {
    pub atelier: PathBuf,
    pub atelier_web: PathBuf,
    pub relay: PathBuf,
}

/// Which process holds the office's replica while it is written to.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// `atelier sync --watch`: live sync, and the local API the writes go through.
    Watch,
    /// `atelier-web`: the web app, whose local API the writes go through.
    Web,
}

/// `kill -9` of the process holding an office's replica (`atelier sync --watch` and
/// `atelier-web` in turn) while `atelier add` writes through it, `kills` times.
pub async fn office_kills(bins: &Bins, kills: usize, seed: u64) -> anyhow::Result<Report> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let relay = RelayChild::start(&bins.relay)?;
    let dir = tmp.path().join("caue-63");
    let url = format!("quic://{}", relay.addr);
    let (fp, token) = (relay.fingerprint.to_string(), relay.invite("caue-63")?);
    run(bins, &dir, &["init", "--office", "caue-63"])?;
    run(
        bins,
        &dir,
        &["join", &url, "--fingerprint", &fp, "--token", &token],
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0;
    while report.kills < kills {
        let kind = if report.kills % 2 == 0 {
            Holder::Watch
        } else {
            Holder::Web
        };
        let mut holder = start_holder(bins, &dir, kind)?;
        let target = rng.gen_range(1..=MAX_WRITES_BEFORE_KILL);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (bins, dir, stop) = (bins.clone(), dir.clone(), stop.clone());
            let first = n;
            std::thread::spawn(move || -> usize {
                let mut i = first;
                while !stop.load(Ordering::SeqCst) {
                    let title = format!("Écrit {i}");
                    i += 1;
                    let ok = atelier(&bins, &dir, &["add", "--kind", "outil", "--title", &title])
                        .is_ok_and(|out| out.status.success());
                    if ok && tx.send(title).is_err() {
                        break;
                    }
                }
                i
            })
        };
        for _ in 0..target {
            let title = rx
                .recv_timeout(READY)
                .context("no write acknowledged through the holder")?;
            acked.push(title);
        }
        // The writer is already in its next command: the kill lands during a write.
        holder.kill().context("kill -9 of the holder")?;
        holder.wait()?;
        report.kills += 1;
        print_progress("office", &report, kills);
        stop.store(true, Ordering::SeqCst);
        n = writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))?;
        acked.extend(rx.try_iter());
        report.writes = n;
        // Every acknowledged write is in the replica the killed process held.
        let replica = Replica::open(&dir).context("reopening the killed office's replica")?;
        let titles = titles(&replica)?;
        drop(replica);
        wait_released(&dir.join("db"))?;
        report.checked += acked.len();
        report.lost.extend(
            acked
                .iter()
                .filter(|t| !titles.contains(*t))
                .map(|t| format!("« {t} » acknowledged, then missing")),
        );
    }
    report.acknowledged = acked.len();
    run(bins, &dir, &["sync"])?;
    let a = Office::open(&dir)?;
    let b = Office::create(&tmp.path().join("caue-15"), "caue-15", &relay).await?;
    b.sync(&relay).await?;
    report.converged = heads_of(a.replica.store())? == heads_of(b.replica.store())?;
    relay.stop();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The titles of a replica's listing.
fn titles(replica: &Replica) -> anyhow::Result<std::collections::BTreeSet<String>> {
    Ok(replica
        .list(&ListFilter::default())?
        .into_iter()
        .map(|e| e.title)
        .collect())
}

/// Starts `kind` on `dir` and returns once its local API answers (it printed so).
fn start_holder(bins: &Bins, dir: &Path, kind: Holder) -> anyhow::Result<Child> {
    let mut cmd = match kind {
        Holder::Watch => {
            let mut c = Command::new(&bins.atelier);
            c.args(["sync", "--watch", "--json"])
                .env("ATELIER_DIR", dir);
            c
        }
        Holder::Web => {
            let mut c = Command::new(&bins.atelier_web);
            c.arg("--dir").arg(dir).args(["--listen", "127.0.0.1:0"]);
            c
        }
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {kind:?}"))?;
    let stdout = child.stdout.take().context("holder stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The watch's first `synced` event comes after its local API started; the web
            // app prints its address once listening. Later lines are read and dropped, so
            // the holder never blocks on a full pipe.
            let is_ready = match kind {
                Holder::Watch => line.contains("\"synced\""),
                Holder::Web => line.contains("http://"),
            };
            if is_ready {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    if rx.recv_timeout(READY).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{kind:?} did not become ready");
    }
    Ok(child)
}

/// `atelier ARGS` on replica `dir`.
fn atelier(bins: &Bins, dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(&bins.atelier)
        .args(args)
        .env("ATELIER_DIR", dir)
        .stdin(Stdio::null())
        .output()
}

/// `atelier ARGS` on replica `dir`, which must succeed.
fn run(bins: &Bins, dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = atelier(bins, dir, args)?;
    if !out.status.success() {
        bail!(
            "atelier {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
