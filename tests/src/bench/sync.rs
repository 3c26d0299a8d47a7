//! `sync`: corpus sync over real QUIC on loopback, against the relay binary run as a child
//! process (`atelier-relay serve`), so that the relay's memory and the pulling replica's are
//! measured apart; and the same workload through JavaScript automerge-repo's own sync server
//! (Node, `tests/js/bench/`) as a baseline.
//!
//! Measures, for each corpus size: a fresh replica pulling the corpus (seconds, bytes, round
//! trips, peak RSS of the pulling process and of the relay), a resync with nothing new (bytes,
//! round trips), and one edit's propagation from office A to office B, both live (median and
//! p99). The fresh pull runs in a child process of this benchmark (this binary again, with the
//! hidden `--pull-into`), so its peak RSS is that of a replica doing nothing else.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::replica::ListFilter;
use atelier_core::search::{IndexedDuring, IndexedSearch, SearchQuery};
use atelier_core::sync::{Role, Session};
use atelier_core::{DocumentId, Resource};
use atelier_relay::client;
use atelier_relay::handshake::CloseCode;
use atelier_relay::identity::Fingerprint;
use atelier_relay::sync_conn::{drive, LiveChanges, Mode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::loopback::{
    in_child, kb, load, mb, own_cpu_s, peak_rss_kb, relay_bin, rss, status_kb, ChildPull, Office,
    RelayChild,
};
use crate::node::{start_js_sync_server, wait_for, JS_BENCH};

/// Bound on one edit reaching the other office.
const EDIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Edits made before timing starts (connections and caches warm up).
const WARM_UP_EDITS: usize = 5;
/// Documents the timed edits cycle through.
const EDITED_DOCS: usize = 20;

/// Pulls a corpus into a fresh replica through a relay, resyncs, and times live edits; the same
/// with JavaScript automerge-repo's sync server (`--baseline N`). Prints a table.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md), e.g. `gen-corpus.py --count
    /// 10000 --seed 1`.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Also measure Atelier on the first N resources of the corpus (repeatable), e.g. the
    /// baseline's size.
    #[arg(long = "size")]
    pub sizes: Vec<usize>,
    /// A larger corpus (e.g. 100,000 resources) for the resync with nothing new.
    #[arg(long)]
    pub large_corpus: Option<PathBuf>,
    /// The relay binary [default: `atelier-relay` beside this benchmark's binary].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Edits timed from office A to office B.
    #[arg(long, default_value_t = 200)]
    pub edits: usize,
    /// Run the JavaScript automerge-repo baseline on the first N resources (repeatable).
    #[arg(long = "baseline")]
    pub baseline: Vec<usize>,
    /// Time limit of each step of the baseline (seed, pull, resync, latency), in seconds.
    #[arg(long, default_value_t = 600)]
    pub baseline_timeout: u64,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also pull into a second fresh office that builds its search index after the pull, as
    /// before `atelier sync` indexed during it: both ways side by side, one upload.
    #[arg(long)]
    pub compare_index_after: bool,
    /// Internal: the child pulls, then builds the index (see `--compare-index-after`).
    #[arg(long, hide = true)]
    pub index_after: bool,
    #[command(flatten)]
    pub child: ChildPull,
}

/// What Atelier did at one corpus size.
#[derive(Debug, Default, Serialize)]
struct AtelierRun {
    resources: usize,
    /// Resources plus catalog documents.
    documents: usize,
    upload_s: f64,
    pull: Pull,
    /// The same pull with the index built after it (`--compare-index-after`).
    pull_index_after: Option<Pull>,
    /// Peak RSS of the relay process up to the end of the pull (it also took the upload).
    relay_peak_rss_kb: u64,
    resync_s: f64,
    resync_payload_bytes: u64,
    resync_udp_bytes: u64,
    resync_rounds: u32,
    edits: usize,
    edit_median_ms: f64,
    edit_p99_ms: f64,
}

/// The fresh pull, as measured by the child process that ran it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pull {
    secs: f64,
    /// CPU time of the pulling process from the pull's start to the first search answered.
    cpu_s: f64,
    docs_received: u64,
    payload_bytes: u64,
    udp_bytes: u64,
    rounds: u32,
    /// Peak RSS at the end of the pull and of the index's rest.
    peak_rss_kb: u64,
    /// Resources the index took while the pull ran, and once it ended.
    indexed_during: usize,
    indexed_after: usize,
    /// From the pull's end to the first search answered with complete results: the index's
    /// rest, as `atelier sync` takes it before returning, then `atelier search`'s open and
    /// search.
    first_search_s: f64,
    /// Resources that search found, to check it saw the whole corpus.
    first_search_total: usize,
    peak_rss_kb_after_search: u64,
}

/// What the JavaScript baseline did at one corpus size; `None` for a step that failed or ran
/// out of time (the error says which).
#[derive(Debug, Default, Serialize)]
struct JsRun {
    resources: usize,
    seed_s: Option<f64>,
    pull_s: Option<f64>,
    pull_bytes: Option<u64>,
    pull_peak_rss_kb: Option<u64>,
    server_peak_rss_kb: Option<u64>,
    resync_s: Option<f64>,
    resync_bytes: Option<u64>,
    edit_median_ms: Option<f64>,
    edit_p99_ms: Option<f64>,
    error: Option<String>,
}

/// The resync with nothing new on the large corpus.
#[derive(Debug, Default, Serialize)]
struct LargeResync {
    resources: usize,
    upload_s: f64,
    resync_s: f64,
    payload_bytes: u64,
    udp_bytes: u64,
    rounds: u32,
    relay_peak_rss_kb: u64,
}

/// Runs the benchmark (or, with `--pull-into`, the pull of a child process).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some((dir, addr, fp)) = args.child.target()? {
        let pull = pull_child(&rt, dir, addr, &fp, args.index_after)?;
        println!("{}", serde_json::to_string(&pull)?);
        return Ok(ExitCode::SUCCESS);
    }
    let resources = load(&args.corpus)?;
    let mut sizes: Vec<usize> = args
        .sizes
        .iter()
        .chain(&args.baseline)
        .copied()
        .chain([resources.len()])
        .filter(|n| *n <= resources.len())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let relay_bin = relay_bin(args.relay_bin.as_deref())?;

    let mut atelier = Vec::new();
    for &n in &sizes {
        eprintln!("atelier: {n} resources…");
        let run = atelier_run(
            &relay_bin,
            &resources[..n],
            args.edits,
            args.compare_index_after,
        );
        atelier.push(rt.block_on(run)?);
    }
    let large = match &args.large_corpus {
        Some(path) => {
            let large = load(path)?;
            eprintln!("atelier: resync of {} resources…", large.len());
            Some(rt.block_on(large_resync(&relay_bin, &large))?)
        }
        None => None,
    };
    let mut js = Vec::new();
    for &n in &args.baseline {
        let n = n.min(resources.len());
        eprintln!("automerge-repo: {n} resources…");
        js.push(js_run(
            &args.corpus,
            n,
            args.edits,
            Duration::from_secs(args.baseline_timeout),
        ));
    }
    if args.json {
        let out = json!({ "atelier": atelier, "large_resync": large, "automerge_repo_js": js });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&atelier, large.as_ref(), &js);
    }
    Ok(ExitCode::SUCCESS)
}

/// One size: office A imports and uploads, a fresh office B pulls (child process), B resyncs,
/// then A and B go live and A's edits are timed until B has them.
async fn atelier_run(
    relay_bin: &Path,
    resources: &[Resource],
    edits: usize,
    compare_index_after: bool,
) -> anyhow::Result<AtelierRun> {
    let relay = RelayChild::start(relay_bin)?;
    let tmp = tempfile::tempdir()?;
    let a = Office::create(&tmp.path().join("a"), "caue-63", &relay).await?;
    let (upload_s, documents) = a.upload(resources, &relay).await?;

    let b_dir = tmp.path().join("b");
    drop(Office::create(&b_dir, "caue-15", &relay).await?);
    let pull = pull_in_child(&b_dir, &relay, false)?;
    let pull_index_after = match compare_index_after {
        true => {
            let c_dir = tmp.path().join("c");
            drop(Office::create(&c_dir, "caue-07", &relay).await?);
            Some(pull_in_child(&c_dir, &relay, true)?)
        }
        false => None,
    };
    if pull.docs_received != documents as u64 {
        bail!(
            "the fresh replica received {} documents, office A holds {documents}",
            pull.docs_received,
        );
    }
    let relay_peak_rss_kb = relay.peak_rss_kb();
    let b = Office::open(&b_dir)?;
    // Received documents are listed from their cards: the whole corpus must be there.
    let listed = b.replica.list(&ListFilter {
        include_deleted: true,
        ..ListFilter::default()
    })?;
    if listed.len() != resources.len() {
        bail!(
            "the fresh replica lists {} resources, the corpus has {}",
            listed.len(),
            resources.len()
        );
    }
    let live = listed.iter().filter(|e| !e.deleted).count();
    for p in std::iter::once(&pull).chain(&pull_index_after) {
        if p.first_search_total != live {
            bail!(
                "the first search after the pull found {} resources, the replica lists {live}",
                p.first_search_total
            );
        }
    }
    let t = Instant::now();
    let (resync, udp) = b.sync(&relay).await?;
    let resync_s = t.elapsed().as_secs_f64();
    if resync.docs_received + resync.docs_sent != 0 {
        bail!("the resync moved documents: {resync:?}");
    }
    let times = edit_latency(&a, &b, &relay, edits).await?;
    relay.stop();
    Ok(AtelierRun {
        resources: resources.len(),
        documents,
        upload_s,
        pull,
        pull_index_after,
        relay_peak_rss_kb,
        resync_s,
        resync_payload_bytes: resync.bytes_sent + resync.bytes_received,
        resync_udp_bytes: udp,
        resync_rounds: resync.rounds,
        edits: times.len(),
        edit_median_ms: quantile(&times, 0.5),
        edit_p99_ms: quantile(&times, 0.99),
    })
}

async fn large_resync(relay_bin: &Path, resources: &[Resource]) -> anyhow::Result<LargeResync> {
    let relay = RelayChild::start(relay_bin)?;
    let tmp = tempfile::tempdir()?;
    let c = Office::create(&tmp.path().join("c"), "caue-07", &relay).await?;
    let (upload_s, _) = c.upload(resources, &relay).await?;
    let t = Instant::now();
    let (resync, udp_bytes) = c.sync(&relay).await?;
    let resync_s = t.elapsed().as_secs_f64();
    let relay_peak_rss_kb = relay.peak_rss_kb();
    relay.stop();
    Ok(LargeResync {
        resources: resources.len(),
        upload_s,
        resync_s,
        payload_bytes: resync.bytes_sent + resync.bytes_received,
        udp_bytes,
        rounds: resync.rounds,
        relay_peak_rss_kb,
    })
}

/// The child process's side of the fresh pull, as `atelier sync` runs it: the search index
/// takes what arrives while the pull goes on (`IndexedSearch::index_during`); with
/// `index_after`, as before, it is built from nothing by the first search.
fn pull_child(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    addr: SocketAddr,
    fp: &Fingerprint,
    index_after: bool,
) -> anyhow::Result<Pull> {
    let office = Office::open(dir)?;
    let cpu = own_cpu_s();
    let t = Instant::now();
    let pull = || {
        let pulled = rt.block_on(office.sync_to(addr, fp));
        (pulled, t.elapsed())
    };
    let ((pulled, pull_time), indexed) = match index_after {
        true => (pull(), Ok(IndexedDuring::default())),
        false => IndexedSearch::index_during(&office.replica, pull),
    };
    let (stats, udp_bytes) = pulled?;
    let indexed = indexed?;
    let index_rest = t.elapsed() - pull_time;
    office.replica.record_synced()?;
    let secs = pull_time.as_secs_f64();
    let peak_rss = peak_rss_kb();
    let t = Instant::now();
    let search = IndexedSearch::open(office.replica.clone())?;
    let mut everything = SearchQuery::text("");
    everything.limit = 10;
    let first_search_total = search.search(&everything)?.total;
    let first_search_s = index_rest.as_secs_f64() + t.elapsed().as_secs_f64();
    Ok(Pull {
        secs,
        cpu_s: own_cpu_s() - cpu,
        indexed_during: indexed.during,
        indexed_after: indexed.after,
        first_search_s,
        first_search_total,
        peak_rss_kb_after_search: peak_rss_kb(),
        docs_received: stats.docs_received,
        payload_bytes: stats.bytes_sent + stats.bytes_received,
        udp_bytes,
        rounds: stats.rounds,
        peak_rss_kb: peak_rss,
    })
}

fn pull_in_child(dir: &Path, relay: &RelayChild, index_after: bool) -> anyhow::Result<Pull> {
    let mut args = ChildPull::args("sync", dir, relay);
    if index_after {
        args.push("--index-after".into());
    }
    in_child(&args)
}

/// Times `edits` edits of office A until office B holds them, both live through the relay.
async fn edit_latency(
    a: &Office,
    b: &Office,
    relay: &RelayChild,
    edits: usize,
) -> anyhow::Result<Vec<f64>> {
    let ids: Vec<DocumentId> = a
        .replica
        .list(&ListFilter::default())?
        .into_iter()
        .take(EDITED_DOCS)
        .map(|e| e.id)
        .collect();
    if ids.is_empty() {
        bail!("no resource to edit");
    }
    let (tx, mut seen) = mpsc::unbounded_channel();
    b.replica.store().observe(Box::new(move |id| {
        let _ = tx.send(*id);
    }));
    let mut live = tokio::task::JoinSet::new();
    for office in [a, b] {
        let store = office.replica.store().clone();
        let changes = LiveChanges::attach(&store).subscribe();
        let client::Opened {
            connection, stream, ..
        } = client::open(&office.identity()?, relay.addr, &relay.fingerprint).await?;
        let mut session = Session::new(store, Role::Initiator);
        session.start()?;
        live.spawn(async move {
            let _ = drive(session, stream, Mode::Live(changes), |_| {}).await;
            connection.close(CloseCode::Done.code(), b"done");
        });
    }
    let mut times = Vec::with_capacity(edits);
    for i in 0..edits + WARM_UP_EDITS {
        let id = ids[i % ids.len()];
        let edit = Edit::Set {
            field: "title".into(),
            value: json!(format!("Titre modifié n° {i}")),
        };
        let t = Instant::now();
        a.replica.edit(&id, &[edit], now_ms())?;
        let want = a.replica.store().heads_hash(&id)?;
        tokio::time::timeout(EDIT_TIMEOUT, async {
            while b.replica.store().heads_hash(&id).ok().flatten() != want {
                seen.recv().await;
            }
        })
        .await
        .with_context(|| format!("edit {i} did not reach office B"))?;
        if i >= WARM_UP_EDITS {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    live.abort_all();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

// ---- The JavaScript baseline ----

/// The baseline at one size; a failing or slow step ends it and is reported, not fatal.
fn js_run(corpus: &Path, n: usize, edits: usize, limit: Duration) -> JsRun {
    let mut run = JsRun {
        resources: n,
        ..JsRun::default()
    };
    if let Err(e) = js_steps(corpus, n, edits, limit, &mut run) {
        run.error = Some(format!("{e:#}"));
    }
    run
}

fn js_steps(
    corpus: &Path,
    n: usize,
    edits: usize,
    limit: Duration,
    run: &mut JsRun,
) -> anyhow::Result<()> {
    JS_BENCH.ensure()?;
    let tmp = tempfile::tempdir()?;
    let (server_dir, client_dir, urls) = (
        tmp.path().join("server"),
        tmp.path().join("client"),
        tmp.path().join("urls"),
    );
    let (mut server, url) = start_js_sync_server(&server_dir)?;
    let result = (|| {
        let seed = node(
            &["seed", &url, &path(corpus), &n.to_string(), &path(&urls)],
            limit,
        )
        .context("seed")?;
        run.seed_s = seed["secs"].as_f64();
        let pull =
            node(&["pull", &url, &path(&urls), &path(&client_dir)], limit).context("fresh pull")?;
        run.pull_s = pull["secs"].as_f64();
        run.pull_bytes = Some(pull["rx"].as_u64().unwrap_or(0) + pull["tx"].as_u64().unwrap_or(0));
        run.pull_peak_rss_kb = pull["max_rss_kb"].as_u64();
        run.server_peak_rss_kb = Some(status_kb(
            &format!("/proc/{}/status", server.id()),
            "VmHWM:",
        ));
        let resync =
            node(&["pull", &url, &path(&urls), &path(&client_dir)], limit).context("resync")?;
        run.resync_s = resync["secs"].as_f64();
        run.resync_bytes =
            Some(resync["rx"].as_u64().unwrap_or(0) + resync["tx"].as_u64().unwrap_or(0));
        let latency =
            node(&["latency", &url, &path(&urls), &edits.to_string()], limit).context("latency")?;
        run.edit_median_ms = latency["median_ms"].as_f64();
        run.edit_p99_ms = latency["p99_ms"].as_f64();
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Installs the baseline's npm packages once (`npm ci` in `tests/js/bench`).
/// Runs `node client.mjs ARGS` within `limit`; returns its JSON line.
pub fn node(args: &[&str], limit: Duration) -> anyhow::Result<Value> {
    let mut child = Command::new("node")
        .arg(JS_BENCH.script("client.mjs"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("node stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
        text
    });
    let Some(status) = wait_for(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("timed out after {} s", limit.as_secs());
    };
    let text = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("node client.mjs {} failed ({status})", args[0]);
    }
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("reading {last:?}"))
}

// ---- The table ----

fn print_table(atelier: &[AtelierRun], large: Option<&LargeResync>, js: &[JsRun]) {
    println!("Sync over loopback: relay = `atelier-relay serve` child process (QUIC);");
    println!("baseline = JS automerge-repo 2.5.6 sync server (WebSocket, nodefs storage).");
    println!("Bytes: Atelier sync frames (UDP incl. QUIC/TLS in brackets); JS WebSocket payloads.");
    println!();
    let row = |k: &str, a: String, j: String, r: String| {
        println!("| {k:<38} | {a:>24} | {j:>20} | {r:>10} |");
    };
    row(
        "measure",
        "Atelier".into(),
        "automerge-repo JS".into(),
        "JS/Atelier".into(),
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(40),
        "-".repeat(26),
        "-".repeat(22),
        "-".repeat(12)
    );
    for a in atelier {
        let j = js.iter().find(|j| j.resources == a.resources);
        let n = a.resources;
        let opt = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.2} {unit}"),
            None => "—".into(),
        };
        let ratio = |js: Option<f64>, ours: f64| match js {
            Some(v) if ours > 0.0 => format!("{:.1} ×", v / ours),
            _ => "—".into(),
        };
        let per_s = n as f64 / a.pull.secs;
        row(
            &format!("N = {n}: fresh pull"),
            format!("{:.2} s ({per_s:.0}/s)", a.pull.secs),
            opt(j.and_then(|j| j.pull_s), "s"),
            ratio(j.and_then(|j| j.pull_s), a.pull.secs),
        );
        row(
            "  bytes, fresh pull",
            format!("{} [{}]", mb(a.pull.payload_bytes), mb(a.pull.udp_bytes)),
            j.and_then(|j| j.pull_bytes).map(mb).unwrap_or("—".into()),
            ratio(
                j.and_then(|j| j.pull_bytes).map(|b| b as f64),
                a.pull.payload_bytes as f64,
            ),
        );
        row(
            "  round trips, fresh pull (sync rounds)",
            a.pull.rounds.to_string(),
            "—".into(),
            "—".into(),
        );
        row(
            "  peak RSS, pulling process (pull + index)",
            rss(a.pull.peak_rss_kb),
            j.and_then(|j| j.pull_peak_rss_kb)
                .map(rss)
                .unwrap_or("—".into()),
            "—".into(),
        );
        row(
            "  indexed during the pull / after it",
            format!("{} / {}", a.pull.indexed_during, a.pull.indexed_after),
            "—".into(),
            "—".into(),
        );
        row(
            "  first search after the pull (index's rest)",
            format!(
                "{:.2} s ({} found)",
                a.pull.first_search_s, a.pull.first_search_total
            ),
            "—".into(),
            "—".into(),
        );
        row(
            "  peak RSS, pulling process after the search",
            rss(a.pull.peak_rss_kb_after_search),
            "—".into(),
            "—".into(),
        );
        row(
            "  CPU of the pulling process, to the first search",
            format!("{:.1} s", a.pull.cpu_s),
            "—".into(),
            "—".into(),
        );
        if let Some(p) = &a.pull_index_after {
            row(
                "  index built after the pull: pull, first search",
                format!("{:.2} s, {:.2} s", p.secs, p.first_search_s),
                "—".into(),
                "—".into(),
            );
            row(
                "  index built after the pull: peak RSS, CPU",
                format!("{}, {:.1} s", rss(p.peak_rss_kb_after_search), p.cpu_s),
                "—".into(),
                "—".into(),
            );
        }
        row(
            "  peak RSS, relay (upload + pull)",
            rss(a.relay_peak_rss_kb),
            j.and_then(|j| j.server_peak_rss_kb)
                .map(rss)
                .unwrap_or("—".into()),
            "—".into(),
        );
        row(
            "  resync, nothing new: bytes",
            format!(
                "{} [{}]",
                kb(a.resync_payload_bytes),
                kb(a.resync_udp_bytes)
            ),
            j.and_then(|j| j.resync_bytes).map(kb).unwrap_or("—".into()),
            ratio(
                j.and_then(|j| j.resync_bytes).map(|b| b as f64),
                a.resync_payload_bytes as f64,
            ),
        );
        row(
            "  resync, nothing new: round trips",
            a.resync_rounds.to_string(),
            "—".into(),
            "—".into(),
        );
        row(
            "  resync, nothing new: time",
            format!("{:.1} ms", a.resync_s * 1e3),
            opt(j.and_then(|j| j.resync_s).map(|s| s * 1e3), "ms"),
            ratio(j.and_then(|j| j.resync_s), a.resync_s),
        );
        row(
            &format!("  edit A → B, median ({} edits)", a.edits),
            format!("{:.2} ms", a.edit_median_ms),
            opt(j.and_then(|j| j.edit_median_ms), "ms"),
            ratio(j.and_then(|j| j.edit_median_ms), a.edit_median_ms),
        );
        row(
            "  edit A → B, p99",
            format!("{:.2} ms", a.edit_p99_ms),
            opt(j.and_then(|j| j.edit_p99_ms), "ms"),
            ratio(j.and_then(|j| j.edit_p99_ms), a.edit_p99_ms),
        );
        row(
            "  upload from office A",
            format!("{:.2} s ({} docs)", a.upload_s, a.documents),
            opt(j.and_then(|j| j.seed_s), "s"),
            ratio(j.and_then(|j| j.seed_s), a.upload_s),
        );
        if let Some(e) = j.and_then(|j| j.error.as_deref()) {
            println!("  (baseline at N = {n} stopped: {e})");
        }
    }
    if let Some(l) = large {
        row(
            &format!("N = {}: resync, nothing new", l.resources),
            format!("{} [{}]", kb(l.payload_bytes), kb(l.udp_bytes)),
            "—".into(),
            "—".into(),
        );
        row(
            "  round trips / time",
            format!("{} / {:.1} ms", l.rounds, l.resync_s * 1e3),
            "—".into(),
            "—".into(),
        );
        row(
            "  upload (setup) / relay peak RSS",
            format!(
                "{:.1} s / {:.0} MB",
                l.upload_s,
                l.relay_peak_rss_kb as f64 / 1e3
            ),
            "—".into(),
            "—".into(),
        );
    }
    for j in js {
        if !atelier.iter().any(|a| a.resources == j.resources) {
            println!(
                "(baseline at N = {} has no Atelier row: {:?})",
                j.resources, j
            );
        }
    }
}
