//! `webstart`: the web app's first start after a large import (`atelier-web` as a child process
//! over a replica the `atelier` binary imported a corpus into), then its list page's latency
//! once search has caught up.
//!
//! Both binaries come from `--bin-dir` (by default, beside this benchmark's binary), so the
//! same run measures any two builds: the table is printed for one, and the README sets two
//! runs side by side. The imported replica is kept (`--replica`) and copied for each run, since
//! importing 100,000 resources takes minutes and the first start must find a search index that
//! was never built.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::loopback::status_kb;
use super::web_client::WebClient;
use crate::node::{stdout_lines, stop};

/// Bound on one page: the fallback over 100,000 entries took seconds before this benchmark.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the web app printing its login link.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the search index catching up (100,000 resources took two minutes at worst).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(900);
/// Pause between two checks of whether search caught up: a page each time, so not too often.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);
/// Pages of each kind timed while search catches up (each competes with the catch-up).
const PAGES_WHILE_CATCHING_UP: usize = 10;
/// Bound on the web app's graceful stop before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// What the list page says while search catches up.
const CATCHING_UP: &str = "se met à jour";

/// Imports a corpus once (kept in `--replica`), then on a copy of that replica: starts
/// `atelier-web`, times its first list page (a search while the index is still empty), how long
/// until search caught up, and the list page's latency afterwards (`/` with its facets, and the
/// same search), over `--requests` requests each.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Where `atelier` and `atelier-web` are (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The imported replica, kept between runs: the corpus is imported there if it does not
    /// exist. Each run works on a copy of it, next to it.
    #[arg(long)]
    pub replica: PathBuf,
    /// Requests timed per list page once search caught up.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// The search of the first page and of the timed search page.
    #[arg(long, default_value = "pierre")]
    pub query: String,
}

/// Runs the benchmark and prints its table.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .to_path_buf(),
    };
    let (cli, web) = (bins.join("atelier"), bins.join("atelier-web"));
    for b in [&cli, &web] {
        if !b.is_file() {
            bail!(
                "{} not found: build it (cargo build --release -p atelier-cli -p atelier-web) \
                 or pass --bin-dir",
                b.display()
            );
        }
    }
    if !args.replica.exists() {
        import(&cli, &args.corpus, &args.replica)?;
    }
    let parent = args
        .replica
        .parent()
        .context("the replica directory has no parent")?;
    let copy = tempfile::tempdir_in(parent).context("creating the copy's directory")?;
    let dir = copy.path().join("r");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&args.replica)
        .arg(&dir)
        .status()?;
    if !status.success() {
        bail!("copying {} failed", args.replica.display());
    }
    // The copy on disk, as a replica is once its import has returned: else the web app's open,
    // which fsyncs the database's files, would write the whole fresh copy out first (0.4 s at
    // 100,000 resources) and the benchmark would time `cp`'s dirty pages.
    if !Command::new("sync").status()?.success() {
        bail!("sync failed");
    }
    let _ = std::fs::remove_dir_all(dir.join("search"));
    let mut app = WebChild::start(&web, &dir)?;
    let result = measure(&mut app, args);
    app.stop();
    let m = result?;
    print(args, &m);
    Ok(std::process::ExitCode::SUCCESS)
}

/// `atelier init` then `atelier import` of the corpus into `dir`.
fn import(cli: &Path, corpus: &Path, dir: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    for args in [
        vec!["init".into(), "--office".into(), "caue-63".into()],
        vec!["import".into(), corpus.display().to_string()],
    ] {
        let out = Command::new(cli)
            .arg("--dir")
            .arg(dir)
            .args(&args)
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "atelier {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    eprintln!(
        "imported {} into {} in {:.1} s",
        corpus.display(),
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The web app as a child process, its output read on a thread.
struct WebChild {
    child: Child,
    started: Instant,
    /// The login link, then every later line (the catch-up's log line among them).
    lines: mpsc::Receiver<String>,
}

impl WebChild {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("--dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "atelier_web=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let lines = stdout_lines(&mut child)?;
        Ok(Self {
            child,
            started,
            lines,
        })
    }

    /// The first line holding a login link.
    fn login_link(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .context("the web app printed no login link")?;
            if let Some(at) = line.find("http://") {
                if line.contains("connexion") {
                    return Ok(line[at..].trim().to_string());
                }
            }
        }
    }

    fn peak_rss_kb(&self) -> u64 {
        status_kb(&format!("/proc/{}/status", self.child.id()), "VmHWM:")
    }

    fn stop(mut self) {
        stop(&mut self.child, "-TERM", STOP_TIMEOUT);
    }
}

/// What one run measured.
struct Measured {
    /// Spawn → login link printed (the server listens).
    listening: Duration,
    /// Spawn → first search page received.
    first_page: Duration,
    /// That page's request alone.
    first_request: Duration,
    /// What that page said: results, and the catch-up notice.
    first_count: String,
    first_notice: bool,
    /// Pages while search catches up: `/`, and the search.
    during_list: Vec<f64>,
    during_search: Vec<f64>,
    /// Spawn → a search page without the catch-up notice.
    caught_up: Duration,
    caught_up_count: String,
    /// After: `/` and the search, sorted (ms).
    list: Vec<f64>,
    search: Vec<f64>,
    peak_rss_kb: u64,
}

fn measure(app: &mut WebChild, args: &Args) -> anyhow::Result<Measured> {
    let link = app.login_link()?;
    let listening = app.started.elapsed();
    let base = link[..link[7..].find('/').context("a link without a path")? + 7].to_string();
    let client = WebClient::login(&link, PAGE_TIMEOUT)?;
    let search_path = format!("/?q={}", encode(&args.query));

    let t = Instant::now();
    let first = client.get(&base, &search_path)?;
    let first_request = t.elapsed();
    let first_page = app.started.elapsed();

    let (mut during_list, mut during_search) = (Vec::new(), Vec::new());
    let deadline = app.started + CATCH_UP_TIMEOUT;
    let mut last;
    loop {
        let t = Instant::now();
        last = client.get(&base, &search_path)?;
        let took = ms(t.elapsed());
        if !last.contains(CATCHING_UP) {
            break;
        }
        if during_search.len() < PAGES_WHILE_CATCHING_UP {
            during_search.push(took);
            let t = Instant::now();
            client.get(&base, "/")?;
            during_list.push(ms(t.elapsed()));
        } else {
            std::thread::sleep(CATCH_UP_POLL);
        }
        if Instant::now() > deadline {
            bail!("search did not catch up within {CATCH_UP_TIMEOUT:?}");
        }
    }
    let caught_up = app.started.elapsed();

    // A few pages first: the first after the catch-up opens the new index segments.
    for _ in 0..5 {
        client.get(&base, "/")?;
        client.get(&base, &search_path)?;
    }
    let (mut list, mut search) = (Vec::new(), Vec::new());
    for _ in 0..args.requests {
        let t = Instant::now();
        client.get(&base, "/")?;
        list.push(ms(t.elapsed()));
        let t = Instant::now();
        client.get(&base, &search_path)?;
        search.push(ms(t.elapsed()));
    }
    for v in [&mut list, &mut search, &mut during_list, &mut during_search] {
        v.sort_by(f64::total_cmp);
    }
    Ok(Measured {
        listening,
        first_page,
        first_request,
        first_count: count(&first),
        first_notice: first.contains(CATCHING_UP),
        during_list,
        during_search,
        caught_up,
        caught_up_count: count(&last),
        list,
        search,
        peak_rss_kb: app.peak_rss_kb(),
    })
}

fn print(args: &Args, m: &Measured) {
    let q = &args.query;
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let dist = |v: &[f64]| {
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            quantile(v, 0.5),
            quantile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    println!("| measure ({}) | value |", args.corpus.display());
    println!("|---|---|");
    println!("| start → listening | {} |", s(m.listening));
    println!(
        "| start → first page (« {q} »), request alone | {}, {} |",
        s(m.first_page),
        s(m.first_request)
    );
    println!(
        "| first page: results, catch-up notice | {}, {} |",
        m.first_count,
        if m.first_notice { "yes" } else { "no" }
    );
    println!(
        "| while catching up: `/` p50 / p99 / max ({} pages) | {} |",
        m.during_list.len(),
        dist(&m.during_list)
    );
    println!(
        "| while catching up: « {q} » p50 / p99 / max | {} |",
        dist(&m.during_search)
    );
    println!(
        "| start → search complete (« {q} »: {}) | {} |",
        m.caught_up_count,
        s(m.caught_up)
    );
    println!(
        "| list page `/` with facets, p50 / p99 / max ({} requests) | {} |",
        m.list.len(),
        dist(&m.list)
    );
    println!(
        "| list page « {q} » with facets, p50 / p99 / max | {} |",
        dist(&m.search)
    );
    println!(
        "| web app peak RSS | {} MB |",
        (m.peak_rss_kb as f64 / 1024.0).round()
    );
}

/// The results count a list page shows (« (12 345 fiches) »).
fn count(html: &str) -> String {
    html.find("<span class=\"count\">")
        .map(|at| &html[at + "<span class=\"count\">".len()..])
        .and_then(|rest| rest.find('<').map(|end| rest[..end].to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
