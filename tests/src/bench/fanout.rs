//! `fanout`: one edit reaching many live devices through one relay, and what those devices cost
//! the relay when idle; against JavaScript automerge-repo's sync server with as many WebSocket
//! clients, in the same run.
//!
//! The relay runs as a child process (`atelier-relay serve`). The devices live in worker
//! processes (this binary again, with the hidden `--worker`): each device is its own quinn
//! client endpoint, its own identity enrolled with its own invitation, and one authenticated
//! live sync session; devices are spread over the network's offices (a few per CAUE). Every
//! device holds the same small corpus (a worker pulls it once and copies it into each of its
//! devices' in-memory stores), so that going live costs only a reconciliation.
//!
//! Phases: relay RSS with the corpus and no session; all devices live, then idle for
//! `--idle-secs` (relay RSS and CPU; per-session memory = the RSS difference over the device
//! count); then `--edits` edits from an editing office in this process, each timestamped
//! (wall clock, shared by the processes of one machine), and every worker reports when each of
//! its devices' stores applied it (the store's change notification with the edit's heads).
//! Printed: p50/p99 of the last device's latency per edit and of every device's latency.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::replica::ListFilter;
use atelier_core::store::{Batch, DocStore, HeadsHash, Kv, MemKv};
use atelier_core::sync::{Role, Session};
use atelier_core::{DocumentId, OfficeId, Resource};
use atelier_relay::access::AccessStore;
use atelier_relay::client;
use atelier_relay::handshake::CloseCode;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::sync_conn::{drive, LiveChanges, Mode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::loopback::{
    load, process_cpu_s, relay_bin, status_kb, Office, RelayChild, SYNC_TIMEOUT,
};
use super::sync::{node, path};
use crate::node::{start_js_sync_server, wait_for, JS_BENCH};

/// Bound on one edit reaching every device.
const EDIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a worker's set-up steps (enrolling and pulling, going live) and on the baseline's
/// clients finding their documents.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on a worker or Node process leaving after it was asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Edits made before timing starts, not counted: one round over the edited documents, since the
/// first edit of each document makes every device load it (its store's cache is cold), a cost
/// paid once per document and device (130-700 ms to the last of 300 devices, measured), not the
/// fan-out's.
const WARM_UP_EDITS: usize = EDITED_DOCS;
/// Documents the edits cycle through.
const EDITED_DOCS: usize = 20;
/// Pause between all devices being live and the idle window: their first reconciliation
/// rounds end well within it.
const SETTLE: Duration = Duration::from_secs(2);

/// One edit to many live devices, and the idle cost of those devices on the relay; the same
/// with JavaScript automerge-repo's sync server and WebSocket clients. Prints a table.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md); its first `--resources`
    /// resources are the devices' shared corpus.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Resources every device holds.
    #[arg(long, default_value_t = 200)]
    pub resources: usize,
    /// Live devices (each a QUIC connection of its own; a WebSocket client in the baseline).
    #[arg(long, default_value_t = 300)]
    pub devices: usize,
    /// Worker processes the devices are spread over (as many Node processes in the baseline).
    #[arg(long, default_value_t = 5)]
    pub workers: usize,
    /// Edits timed (after a few warm-up edits).
    #[arg(long, default_value_t = 50)]
    pub edits: usize,
    /// Seconds the devices stay idle while the relay's CPU is measured.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// The relay binary [default: `atelier-relay` beside this benchmark's binary].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Documents each baseline client holds (the first N of the corpus; the edits go to the
    /// first 20). automerge-repo clients sync only the documents they ask for, one request each,
    /// and its server answers several clients asking at once with « unavailable », so they
    /// connect one after another: asking for the whole corpus would take minutes at 300.
    #[arg(long, default_value_t = EDITED_DOCS)]
    pub js_docs: usize,
    /// Skip the JavaScript baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Internal: run as a worker process holding devices (its plan comes on stdin).
    #[arg(long, hide = true)]
    pub worker: bool,
}

/// What one side (Atelier or the baseline) measured.
#[derive(Debug, Default, Serialize)]
struct Run {
    devices: usize,
    processes: usize,
    /// Offices the devices belong to (Atelier only).
    offices: usize,
    resources: usize,
    /// Seconds to get every device live (enrolments, pulls, handshakes).
    setup_s: f64,
    server_rss_empty_kb: u64,
    server_rss_idle_kb: u64,
    server_peak_rss_kb: u64,
    per_session_kb: f64,
    /// Server CPU over the idle window, as a share of one core.
    server_idle_cpu: f64,
    idle_secs: f64,
    /// Client processes' CPU over the idle window, as a share of one core (all together).
    clients_idle_cpu: f64,
    /// Server CPU seconds per timed edit (fan-out included).
    server_cpu_per_edit_ms: f64,
    edits: usize,
    last_p50_ms: f64,
    last_p99_ms: f64,
    last_max_ms: f64,
    all_p50_ms: f64,
    all_p99_ms: f64,
    error: Option<String>,
}

/// A worker's orders: the relay, and one invitation per device.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    /// `(office, invitation token)` per device.
    devices: Vec<(String, String)>,
}

/// What the parent tells a worker after the plan.
#[derive(Debug, Serialize, Deserialize)]
enum Order {
    /// Open every device's live session.
    Live,
    /// Report when each device applied this state of this document.
    Edit {
        n: usize,
        doc: DocumentId,
        heads: HeadsHash,
    },
    Stop,
}

/// What a worker tells the parent.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    /// Devices enrolled and the corpus pulled (no session open).
    Pulled { docs: usize },
    /// Every device's live session is open.
    Live,
    /// When each device applied edit `n` (nanoseconds since the epoch).
    Seen { n: usize, at_ns: Vec<u128> },
}

/// Runs the benchmark (or, with `--worker`, a worker process).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.worker {
        rt.block_on(worker())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.devices == 0 || args.workers == 0 || args.edits == 0 {
        bail!("--devices, --workers and --edits must be at least 1");
    }
    let mut resources = load(&args.corpus)?;
    resources.truncate(args.resources);
    if resources.is_empty() {
        bail!("the corpus {} holds no resource", args.corpus.display());
    }
    let relay_bin = relay_bin(args.relay_bin.as_deref())?;
    eprintln!("atelier: {} devices…", args.devices);
    let atelier = rt.block_on(atelier_run(&relay_bin, &resources, args))?;
    let js = (!args.no_baseline).then(|| {
        eprintln!("automerge-repo: {} clients…", args.devices);
        js_run(args, resources.len())
    });
    if args.json {
        let out = json!({ "atelier": atelier, "automerge_repo_js": js });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&atelier, js.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds since the epoch: a clock every process of the machine shares.
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Every office code of the network (one CAUE per département).
fn offices() -> Vec<String> {
    let codes = (1..=95)
        .map(|n| format!("{n:02}"))
        .chain(["2A", "2B", "971", "972", "973", "974", "976"].map(String::from));
    codes
        .map(|c| format!("caue-{c}"))
        .filter(|o| o.parse::<OfficeId>().is_ok())
        .collect()
}

/// Quantile of sorted values (NaN if none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// The latencies' percentiles into `run`: per edit the last device, and every device.
fn summarize(run: &mut Run, mut last: Vec<f64>, mut all: Vec<f64>) {
    last.sort_by(f64::total_cmp);
    all.sort_by(f64::total_cmp);
    run.edits = last.len();
    run.last_p50_ms = quantile(&last, 0.5);
    run.last_p99_ms = quantile(&last, 0.99);
    run.last_max_ms = last.last().copied().unwrap_or(f64::NAN);
    run.all_p50_ms = quantile(&all, 0.5);
    run.all_p99_ms = quantile(&all, 0.99);
}

/// A child process speaking JSON lines: orders on stdin, reports read by a thread into `tx`.
struct Speaker {
    child: Child,
    stdin: ChildStdin,
}

impl Speaker {
    fn spawn(
        mut command: Command,
        index: usize,
        tx: std_mpsc::Sender<(usize, String)>,
    ) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a child process")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = child.stdin.take().context("child stdin")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((index, line)).is_err() {
                    return;
                }
            }
            // An empty line says the child is gone (see `receive`).
            let _ = tx.send((index, String::new()));
        });
        Ok(Self { child, stdin })
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn cpu_s(&self) -> f64 {
        process_cpu_s(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Waits for the process to leave (after its stop order), killing it past the bound.
    fn finish(mut self) {
        drop(self.stdin);
        if wait_for(&mut self.child, STOP_TIMEOUT).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Receives one line from any child within `limit`.
fn receive(
    rx: &std_mpsc::Receiver<(usize, String)>,
    limit: Duration,
    what: &str,
) -> anyhow::Result<(usize, String)> {
    let (i, line) = rx
        .recv_timeout(limit)
        .with_context(|| format!("no answer from the child processes while {what}"))?;
    if line.is_empty() {
        bail!("child process {i} ended while {what}");
    }
    Ok((i, line))
}

fn vm_rss_kb(pid: u32) -> u64 {
    status_kb(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Splits `n` devices over `k` groups as evenly as possible.
fn shares(n: usize, k: usize) -> Vec<usize> {
    (0..k)
        .map(|i| n / k + usize::from(i < n % k))
        .filter(|s| *s > 0)
        .collect()
}

// ---- Atelier ----

async fn atelier_run(relay_bin: &Path, resources: &[Resource], args: &Args) -> anyhow::Result<Run> {
    let relay = RelayChild::start(relay_bin)?;
    let tmp = tempfile::tempdir()?;
    let offices = offices();
    let editor = Office::create(&tmp.path().join("editor"), &offices[0], &relay).await?;
    editor.upload(resources, &relay).await?;
    let documents = editor.replica.store().len()?;

    // One invitation per device, offices taken in turn.
    let now = time::OffsetDateTime::now_utc();
    let invites: Vec<(String, String)> = AccessStore::new(relay.data_dir()).update(|r| {
        (0..args.devices)
            .map(|d| {
                let office = offices[d % offices.len()].clone();
                let token = r.invite(
                    &mut rand::rngs::OsRng,
                    &office,
                    false,
                    time::Duration::hours(1),
                    now,
                )?;
                Ok((office, token))
            })
            .collect::<Result<_, atelier_relay::access::AccessError>>()
    })?;

    let setup = Instant::now();
    let (tx, rx) = std_mpsc::channel();
    let mut workers = Vec::new();
    let mut rest = invites.as_slice();
    for (i, share) in shares(args.devices, args.workers).into_iter().enumerate() {
        let (mine, others) = rest.split_at(share);
        rest = others;
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["fanout", "--corpus", "-", "--worker"]);
        let mut worker = Speaker::spawn(command, i, tx.clone())?;
        let plan = Plan {
            addr: relay.addr,
            fingerprint: relay.fingerprint,
            devices: mine.to_vec(),
        };
        worker.send(&serde_json::to_string(&plan)?)?;
        workers.push(worker);
    }
    let mut run = Run {
        devices: args.devices,
        processes: workers.len(),
        offices: args.devices.min(offices.len()),
        resources: resources.len(),
        idle_secs: args.idle_secs as f64,
        ..Run::default()
    };
    let result = atelier_phases(
        &relay,
        &editor,
        &mut workers,
        &rx,
        documents,
        setup,
        args,
        &mut run,
    )
    .await;
    for w in &mut workers {
        let _ = w.send(&serde_json::to_string(&Order::Stop)?);
    }
    for w in workers {
        w.finish();
    }
    relay.stop();
    if let Err(e) = result {
        run.error = Some(format!("{e:#}"));
        eprintln!("atelier: {e:#}");
    }
    Ok(run)
}

/// Waits for one report from every worker, each checked by `check`.
fn reports(
    rx: &std_mpsc::Receiver<(usize, String)>,
    count: usize,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(usize, Report) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, line) = receive(rx, left, what)?;
        let report: Report =
            serde_json::from_str(&line).with_context(|| format!("worker {i} said {line:?}"))?;
        check(i, report)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn atelier_phases(
    relay: &RelayChild,
    editor: &Office,
    workers: &mut [Speaker],
    rx: &std_mpsc::Receiver<(usize, String)>,
    documents: usize,
    setup: Instant,
    args: &Args,
    run: &mut Run,
) -> anyhow::Result<()> {
    reports(
        rx,
        workers.len(),
        SETUP_TIMEOUT,
        "enrolling and pulling",
        |i, r| match r {
            Report::Pulled { docs } if docs == documents => Ok(()),
            other => bail!("worker {i}: {other:?} (the relay holds {documents} documents)"),
        },
    )?;
    run.server_rss_empty_kb = vm_rss_kb(relay.pid());
    for w in workers.iter_mut() {
        w.send(&serde_json::to_string(&Order::Live)?)?;
    }
    reports(
        rx,
        workers.len(),
        SETUP_TIMEOUT,
        "going live",
        |i, r| match r {
            Report::Live => Ok(()),
            other => bail!("worker {i}: {other:?}"),
        },
    )?;
    run.setup_s = setup.elapsed().as_secs_f64();

    // Idle: every device live, nobody editing.
    tokio::time::sleep(SETTLE).await;
    let (relay_cpu, clients_cpu) = (
        relay.cpu_s(),
        workers.iter().map(Speaker::cpu_s).sum::<f64>(),
    );
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let secs = t.elapsed().as_secs_f64();
    run.server_idle_cpu = (relay.cpu_s() - relay_cpu) / secs;
    run.clients_idle_cpu = (workers.iter().map(Speaker::cpu_s).sum::<f64>() - clients_cpu) / secs;
    run.idle_secs = secs;
    run.server_rss_idle_kb = vm_rss_kb(relay.pid());
    run.per_session_kb = run
        .server_rss_idle_kb
        .saturating_sub(run.server_rss_empty_kb) as f64
        / args.devices as f64;

    // The editing office goes live too.
    let ids: Vec<DocumentId> = editor
        .replica
        .list(&ListFilter::default())?
        .into_iter()
        .take(EDITED_DOCS)
        .map(|e| e.id)
        .collect();
    let store = editor.replica.store().clone();
    let changes = LiveChanges::attach(&store).subscribe();
    let client::Opened {
        connection, stream, ..
    } = client::open_live(&editor.identity()?, relay.addr, &relay.fingerprint).await?;
    let mut session = Session::new(store, Role::Initiator);
    session.start()?;
    let live = tokio::spawn(async move {
        let _ = drive(session, stream, Mode::Live(changes), |_| {}).await;
        connection.close(CloseCode::Done.code(), b"done");
    });

    let (mut last, mut all) = (Vec::new(), Vec::new());
    let mut relay_cpu = relay.cpu_s();
    for n in 0..args.edits + WARM_UP_EDITS {
        if n == WARM_UP_EDITS {
            relay_cpu = relay.cpu_s();
        }
        let doc = ids[n % ids.len()];
        let edit = Edit::Set {
            field: "title".into(),
            value: json!(format!("Diffusion n° {n}")),
        };
        let t0 = now_ns();
        editor.replica.edit(&doc, &[edit], now_ms())?;
        let heads = editor
            .replica
            .store()
            .heads_hash(&doc)?
            .context("the edited document is gone")?;
        let order = serde_json::to_string(&Order::Edit { n, doc, heads })?;
        for w in workers.iter_mut() {
            w.send(&order)?;
        }
        let mut times = Vec::with_capacity(args.devices);
        reports(
            rx,
            workers.len(),
            EDIT_TIMEOUT,
            "waiting for an edit",
            |i, r| match r {
                Report::Seen { n: seen, at_ns } if seen == n => {
                    times.extend(at_ns.iter().map(|t| t.saturating_sub(t0) as f64 / 1e6));
                    Ok(())
                }
                other => bail!("worker {i}: {other:?} (waiting for edit {n})"),
            },
        )?;
        if n >= WARM_UP_EDITS {
            last.push(times.iter().copied().fold(0.0, f64::max));
            all.extend(times);
        }
    }
    run.server_cpu_per_edit_ms = (relay.cpu_s() - relay_cpu) * 1e3 / args.edits as f64;
    run.server_peak_rss_kb = relay.peak_rss_kb();
    live.abort();
    // Where the tail comes from: the slowest edits, by their number (after the warm-up).
    let mut slowest: Vec<(usize, f64)> = last.iter().copied().enumerate().collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(n, ms)| format!("#{n} {ms:.1} ms"))
        .collect();
    eprintln!("slowest edits to the last device: {}", slowest.join(", "));
    // Each edit's cost grows with its document (every device applies it and derives its card):
    // the edited documents by mean time to the last device, with their saved size.
    let rounds = (last.len() / ids.len()).max(1);
    let mut by_doc = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let saved = editor.replica.store().saved(id)?.map_or(0, |b| b.len());
        let mean = last.iter().skip(i).step_by(ids.len()).sum::<f64>() / rounds as f64;
        by_doc.push((mean, i, saved));
    }
    by_doc.sort_by(|a, b| b.0.total_cmp(&a.0));
    let docs: Vec<String> = by_doc
        .iter()
        .map(|(ms, i, saved)| format!("doc {i} ({saved} B) {ms:.0} ms"))
        .collect();
    eprintln!("edited documents, slowest first: {}", docs.join(", "));
    summarize(run, last, all);
    Ok(())
}

/// A worker process: reads its plan, enrols its devices, pulls the corpus once, copies it into
/// every device's store, opens every device's live session, then reports edits as ordered.
async fn worker() -> anyhow::Result<()> {
    let (order_tx, mut orders) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if order_tx.send(line).is_err() {
                break;
            }
        }
    });
    let say = |report: &Report| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(report)?)?;
        out.flush()?;
        Ok(())
    };
    let plan: Plan = serde_json::from_str(&orders.recv().await.context("no plan")?)?;
    if plan.devices.is_empty() {
        bail!("a worker with no device");
    }
    // One at a time: the relay allows few handshakes in progress per address, and every
    // device here comes from 127.0.0.1.
    let mut identities = Vec::with_capacity(plan.devices.len());
    for (office, token) in &plan.devices {
        let identity = Identity::generate()?;
        client::enrol(&identity, plan.addr, &plan.fingerprint, token)
            .await
            .with_context(|| format!("enrolling a device of {office}"))?;
        identities.push(identity);
    }
    let template = Arc::new(DocStore::in_memory());
    {
        let client::Opened {
            connection, stream, ..
        } = client::open(&identities[0], plan.addr, &plan.fingerprint).await?;
        let mut session = Session::new(template.clone(), Role::Initiator);
        session.start()?;
        tokio::time::timeout(
            SYNC_TIMEOUT,
            drive(session, stream, Mode::UntilConverged, |_| {}),
        )
        .await
        .context("the worker's pull timed out")??;
        connection.close(CloseCode::Done.code(), b"done");
    }
    say(&Report::Pulled {
        docs: template.len()?,
    })?;
    match orders
        .recv()
        .await
        .map(|l| serde_json::from_str::<Order>(&l))
    {
        Some(Ok(Order::Live)) => {}
        other => bail!("expected the order to go live, got {other:?}"),
    }

    // Every store change of every device: (device, document, heads, when).
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, DocumentId, HeadsHash, u128)>();
    let mut sessions = tokio::task::JoinSet::new();
    for (d, identity) in identities.iter().enumerate() {
        // The template's every entry (documents, heads, cards), as a pull would have left them.
        let mut copy = Batch::default();
        template.kv().for_each_prefix(&[], &mut |k, v| {
            copy.put(k.to_vec(), v.to_vec());
            true
        })?;
        let kv = MemKv::default();
        kv.apply(copy)?;
        let store = Arc::new(DocStore::new(Arc::new(kv)));
        let tx = seen_tx.clone();
        store.observe_changes(Box::new(move |c| {
            let _ = tx.send((d, c.id, c.heads, now_ns()));
        }));
        let changes = LiveChanges::attach(&store).subscribe();
        let client::Opened {
            connection, stream, ..
        } = client::open_live(identity, plan.addr, &plan.fingerprint)
            .await
            .with_context(|| format!("opening device {d}'s session"))?;
        let mut session = Session::new(store, Role::Initiator);
        session.start()?;
        sessions.spawn(async move {
            // A live session ends only when its connection does: say why, since the device
            // then misses every later edit.
            match drive(session, stream, Mode::Live(changes), |_| {}).await {
                Ok(_) => eprintln!("device {d}: the relay ended the live session"),
                Err(e) => eprintln!("device {d}: live session lost: {e}"),
            }
            connection.close(CloseCode::Done.code(), b"done");
        });
    }
    say(&Report::Live)?;

    let devices = identities.len();
    let mut events: Vec<(usize, DocumentId, HeadsHash, u128)> = Vec::new();
    while let Some(line) = orders.recv().await {
        match serde_json::from_str::<Order>(&line)? {
            Order::Edit { n, doc, heads } => {
                let mut at: Vec<Option<u128>> = vec![None; devices];
                let deadline = tokio::time::Instant::now() + EDIT_TIMEOUT;
                loop {
                    for &(d, id, h, t) in &events {
                        if id == doc && h == heads && at[d].is_none() {
                            at[d] = Some(t);
                        }
                    }
                    events.clear();
                    if at.iter().all(Option::is_some) {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, seen.recv()).await {
                        Ok(Some(e)) => events.push(e),
                        Ok(None) => bail!("the devices' notifications ended"),
                        Err(_) => bail!(
                            "edit {n}: {} of {devices} devices did not apply it",
                            at.iter().filter(|t| t.is_none()).count()
                        ),
                    }
                    while let Ok(e) = seen.try_recv() {
                        events.push(e);
                    }
                }
                let at_ns = at.into_iter().map(|t| t.unwrap_or_default()).collect();
                say(&Report::Seen { n, at_ns })?;
            }
            Order::Stop => break,
            Order::Live => bail!("already live"),
        }
    }
    sessions.abort_all();
    Ok(())
}

// ---- The JavaScript baseline ----

fn js_run(args: &Args, resources: usize) -> Run {
    let mut run = Run {
        devices: args.devices,
        resources: args.js_docs.max(EDITED_DOCS).min(resources),
        idle_secs: args.idle_secs as f64,
        ..Run::default()
    };
    if let Err(e) = js_steps(args, &mut run) {
        eprintln!("automerge-repo: {e:#}");
        run.error = Some(format!("{e:#}"));
    }
    run
}

fn js_steps(args: &Args, run: &mut Run) -> anyhow::Result<()> {
    JS_BENCH.ensure()?;
    let tmp = tempfile::tempdir()?;
    let urls = tmp.path().join("urls");
    let (mut server, url) = start_js_sync_server(&tmp.path().join("server"))?;
    let (tx, rx) = std_mpsc::channel();
    let mut children: Vec<Speaker> = Vec::new();
    let result = (|| {
        node(
            &[
                "seed",
                &url,
                &path(&args.corpus),
                &run.resources.to_string(),
                &path(&urls),
            ],
            SETUP_TIMEOUT,
        )
        .context("seed")?;
        run.server_rss_empty_kb = vm_rss_kb(server.id());
        let setup = Instant::now();
        // One process after another (see `js_docs`); the editor last.
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let ready = |rx: &std_mpsc::Receiver<(usize, String)>| -> anyhow::Result<()> {
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, line) = receive(rx, left, "finding documents")?;
            let v: Value =
                serde_json::from_str(&line).with_context(|| format!("node {i} said {line:?}"))?;
            if v["ready"] != json!(true) {
                bail!("node {i} said {line:?}");
            }
            Ok(())
        };
        for (i, share) in shares(args.devices, args.workers).into_iter().enumerate() {
            let mut command = Command::new("node");
            command
                .arg(JS_BENCH.script("fanout.mjs"))
                .args(["receive", &url, &path(&urls), &share.to_string()])
                .arg(run.resources.to_string());
            children.push(Speaker::spawn(command, i, tx.clone())?);
            ready(&rx)?;
        }
        run.processes = children.len();
        let receivers = children.len();
        let mut command = Command::new("node");
        command.arg(JS_BENCH.script("fanout.mjs")).args([
            "edit",
            &url,
            &path(&urls),
            &EDITED_DOCS.to_string(),
        ]);
        children.push(Speaker::spawn(command, receivers, tx.clone())?);
        ready(&rx)?;
        run.setup_s = setup.elapsed().as_secs_f64();
        std::thread::sleep(SETTLE);
        let cpu = process_cpu_s(&format!("/proc/{}/stat", server.id()));
        let clients_cpu = children[..receivers]
            .iter()
            .map(Speaker::cpu_s)
            .sum::<f64>();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(args.idle_secs));
        let secs = t.elapsed().as_secs_f64();
        run.server_idle_cpu = (process_cpu_s(&format!("/proc/{}/stat", server.id())) - cpu) / secs;
        run.clients_idle_cpu = (children[..receivers]
            .iter()
            .map(Speaker::cpu_s)
            .sum::<f64>()
            - clients_cpu)
            / secs;
        run.idle_secs = secs;
        run.server_rss_idle_kb = vm_rss_kb(server.id());
        run.per_session_kb = run
            .server_rss_idle_kb
            .saturating_sub(run.server_rss_empty_kb) as f64
            / args.devices as f64;

        let (mut last, mut all) = (Vec::new(), Vec::new());
        let mut server_cpu = 0.0;
        for n in 0..args.edits + WARM_UP_EDITS {
            if n == WARM_UP_EDITS {
                server_cpu = process_cpu_s(&format!("/proc/{}/stat", server.id()));
            }
            children[receivers].send(&n.to_string())?;
            let deadline = Instant::now() + EDIT_TIMEOUT;
            let mut t0 = None;
            let mut at = Vec::with_capacity(args.devices);
            while t0.is_none() || at.len() < args.devices {
                let (i, line) = receive(
                    &rx,
                    deadline.saturating_duration_since(Instant::now()),
                    "waiting for an edit",
                )?;
                let v: Value = serde_json::from_str(&line)
                    .with_context(|| format!("node {i} said {line:?}"))?;
                if v["edit"].as_u64() != Some(n as u64) {
                    bail!("node {i} said {line:?} while waiting for edit {n}");
                }
                if i == receivers {
                    t0 = v["at"].as_f64();
                } else {
                    at.extend(
                        v["at"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_f64),
                    );
                }
            }
            let t0 = t0.unwrap_or_default();
            let times: Vec<f64> = at.iter().map(|t| t - t0).collect();
            if n >= WARM_UP_EDITS {
                last.push(times.iter().copied().fold(0.0, f64::max));
                all.extend(times);
            }
        }
        run.server_cpu_per_edit_ms =
            (process_cpu_s(&format!("/proc/{}/stat", server.id())) - server_cpu) * 1e3
                / args.edits as f64;
        run.server_peak_rss_kb = status_kb(&format!("/proc/{}/status", server.id()), "VmHWM:");
        summarize(run, last, all);
        Ok(())
    })();
    for mut c in children {
        let _ = c.send("stop");
        c.finish();
    }
    let _ = server.kill();
    let _ = server.wait();
    result
}

// ---- The table ----

fn print_table(a: &Run, js: Option<&Run>) {
    println!(
        "Live fan-out over loopback: {} devices in {} worker processes ({} offices), each its own \
         QUIC endpoint and authenticated session with `atelier-relay serve` (child process);",
        a.devices, a.processes, a.offices
    );
    println!(
        "baseline = JS automerge-repo 2.5.6 sync server with {} WebSocket clients in {} Node \
         processes. Every device holds {} resources ({} for a JS client); edits cycle through \
         {EDITED_DOCS} of them.",
        js.map_or(0, |j| j.devices),
        js.map_or(0, |j| j.processes),
        a.resources,
        js.map_or(0, |j| j.resources),
    );
    println!();
    let row = |k: &str, a: String, j: String, r: String| {
        println!("| {k:<42} | {a:>14} | {j:>18} | {r:>10} |");
    };
    row(
        "measure",
        "Atelier".into(),
        "automerge-repo JS".into(),
        "JS/Atelier".into(),
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(44),
        "-".repeat(16),
        "-".repeat(20),
        "-".repeat(12)
    );
    let ms = |v: f64| format!("{v:.1} ms");
    let mb = |kb: u64| format!("{:.0} MB", kb as f64 / 1e3);
    let pct = |v: f64| format!("{:.2} %", v * 100.0);
    let line = |k: &str, f: &dyn Fn(&Run) -> String, v: &dyn Fn(&Run) -> f64| {
        let j = js.filter(|j| j.error.is_none());
        let ratio = match j {
            Some(j) if v(a) > 0.0 => format!("{:.1} ×", v(j) / v(a)),
            _ => "—".into(),
        };
        row(k, f(a), j.map_or("—".into(), f), ratio);
    };
    line(
        &format!("edit → last device, p50 ({} edits)", a.edits),
        &|r| ms(r.last_p50_ms),
        &|r| r.last_p50_ms,
    );
    line("edit → last device, p99", &|r| ms(r.last_p99_ms), &|r| {
        r.last_p99_ms
    });
    line("edit → last device, max", &|r| ms(r.last_max_ms), &|r| {
        r.last_max_ms
    });
    line("edit → each device, p50", &|r| ms(r.all_p50_ms), &|r| {
        r.all_p50_ms
    });
    line("edit → each device, p99", &|r| ms(r.all_p99_ms), &|r| {
        r.all_p99_ms
    });
    line(
        "server CPU per edit (fan-out)",
        &|r| ms(r.server_cpu_per_edit_ms),
        &|r| r.server_cpu_per_edit_ms,
    );
    line(
        "server RSS, corpus, no session",
        &|r| mb(r.server_rss_empty_kb),
        &|r| r.server_rss_empty_kb as f64,
    );
    line(
        "server RSS, all devices live and idle",
        &|r| mb(r.server_rss_idle_kb),
        &|r| r.server_rss_idle_kb as f64,
    );
    line(
        "server memory per live session",
        &|r| format!("{:.0} KB", r.per_session_kb),
        &|r| r.per_session_kb,
    );
    line(
        "server peak RSS (whole run)",
        &|r| mb(r.server_peak_rss_kb),
        &|r| r.server_peak_rss_kb as f64,
    );
    line(
        &format!("server CPU when idle ({:.0} s)", a.idle_secs),
        &|r| pct(r.server_idle_cpu),
        &|r| r.server_idle_cpu,
    );
    line(
        "clients' CPU when idle (all processes)",
        &|r| pct(r.clients_idle_cpu),
        &|r| r.clients_idle_cpu,
    );
    line(
        "set-up: every device live",
        &|r| format!("{:.1} s", r.setup_s),
        &|r| r.setup_s,
    );
    for (who, r) in [("Atelier", Some(a)), ("baseline", js)] {
        if let Some(e) = r.and_then(|r| r.error.as_deref()) {
            println!("({who} stopped: {e})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_shared_evenly_over_workers() {
        assert_eq!(shares(300, 4), vec![75; 4]);
        assert_eq!(shares(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(shares(2, 4), vec![1, 1]);
    }

    #[test]
    fn offices_are_the_network_s_departements() {
        let offices = offices();
        assert!(offices.len() >= 96, "{}", offices.len());
        assert!(offices.iter().all(|o| o.parse::<OfficeId>().is_ok()));
    }
}
