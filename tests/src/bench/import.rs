//! `import`: a JSON Lines corpus imported into a fresh replica on disk: throughput, size on
//! disk, reopen and listing time, re-import of an unchanged corpus, peak memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use atelier_core::jsonl;
use atelier_core::replica::{ListFilter, Replica};
use serde_json::json;

use super::loopback::{own_cpu_s, peak_rss_kb};

/// Imports a corpus (e.g. `gen-corpus.py --count 10000 --seed 1`) into a new replica and prints
/// a table: resources per second, size on disk against the JSONL size, time to reopen the replica
/// and list everything, time to import the same file again (nothing changes), peak RSS.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Replica directory (must not hold a replica); default: a temporary directory, removed at
    /// the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let jsonl_bytes = std::fs::metadata(&args.corpus)
        .with_context(|| format!("reading {}", args.corpus.display()))?
        .len();
    let t = Instant::now();
    let file = std::fs::File::open(&args.corpus)?;
    let resources = jsonl::parse(std::io::BufReader::new(file))?;
    let parse = t.elapsed();
    let rss_parsed = peak_rss_kb();

    let tmp;
    let dir: &Path = match &args.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path()
        }
    };
    let now = 1_750_000_000_000;
    let replica = Replica::init(dir, "caue-63".parse()?)?;
    let t = Instant::now();
    let cpu = own_cpu_s();
    let report = replica.import(&resources, now, &mut |_| {})?;
    let import = t.elapsed();
    let import_cpu = own_cpu_s() - cpu;
    let rss_imported = peak_rss_kb();
    let t = Instant::now();
    let again = replica.import(&resources, now + 1_000, &mut |_| {})?;
    let reimport = t.elapsed();
    drop(replica);
    let disk_bytes = dir_size(dir)?;

    let t = Instant::now();
    let replica = Replica::open(dir)?;
    let reopen = t.elapsed();
    let t = Instant::now();
    let listed = replica.list(&ListFilter::default())?.len();
    let list = t.elapsed();
    let t = Instant::now();
    let mut exported = 0;
    let unreadable = replica.export_each(|_| {
        exported += 1;
        true
    })?;
    anyhow::ensure!(
        unreadable.is_empty(),
        "unreadable resources: {unreadable:?}"
    );
    let export = t.elapsed();
    let rss_peak = peak_rss_kb();
    let steps = steps(&resources, now);

    let n = resources.len();
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    if args.json {
        let out = json!({
            "resources": n,
            "created": report.created,
            "parse_s": parse.as_secs_f64(),
            "import_s": import.as_secs_f64(),
            "import_per_s": per_sec(import),
            "import_cpu_s": import_cpu,
            "reimport_unchanged_s": reimport.as_secs_f64(),
            "reimport_unchanged": again.unchanged,
            "jsonl_bytes": jsonl_bytes,
            "disk_bytes": disk_bytes,
            "reopen_s": reopen.as_secs_f64(),
            "list_s": list.as_secs_f64(),
            "listed": listed,
            "export_s": export.as_secs_f64(),
            "peak_rss_kb_after_parse": rss_parsed,
            "peak_rss_kb_after_import": rss_imported,
            "peak_rss_kb": rss_peak,
            "steps_us": steps.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mb = |b: u64| b as f64 / 1e6;
    let row = |k: &str, v: String| println!("| {k:<34} | {v:>22} |");
    println!("| {:<34} | {:>22} |", "measure", "value");
    println!("|{}|{}|", "-".repeat(36), "-".repeat(24));
    row("resources in corpus", format!("{n}"));
    row(
        "parse + validate JSONL",
        format!("{:.2} s", parse.as_secs_f64()),
    );
    row(
        "import (created)",
        format!("{:.2} s ({})", import.as_secs_f64(), report.created),
    );
    row(
        "import throughput",
        format!("{:.0} resources/s", per_sec(import)),
    );
    row(
        "import CPU (user + system)",
        format!(
            "{import_cpu:.2} s, {:.0} µs/resource",
            import_cpu * 1e6 / n as f64
        ),
    );
    row(
        "re-import, nothing changed",
        format!(
            "{:.2} s ({:.0}/s)",
            reimport.as_secs_f64(),
            per_sec(reimport)
        ),
    );
    row("JSONL size", format!("{:.1} MB", mb(jsonl_bytes)));
    row("replica size on disk", format!("{:.1} MB", mb(disk_bytes)));
    row(
        "disk / JSONL",
        format!("{:.2} ×", disk_bytes as f64 / jsonl_bytes as f64),
    );
    row(
        "reopen replica",
        format!("{:.1} ms", reopen.as_secs_f64() * 1e3),
    );
    row(
        "list everything (listing index)",
        format!("{:.1} ms ({listed})", list.as_secs_f64() * 1e3),
    );
    row(
        "reopen + list",
        format!("{:.1} ms", (reopen + list).as_secs_f64() * 1e3),
    );
    row(
        "export (load every document)",
        format!("{:.2} s ({exported})", export.as_secs_f64()),
    );
    row(
        "peak RSS after parse",
        format!("{:.0} MB", rss_parsed as f64 / 1e3),
    );
    row(
        "peak RSS after import",
        format!("{:.0} MB", rss_imported as f64 / 1e3),
    );
    row(
        "peak RSS (VmHWM, end)",
        format!("{:.0} MB", rss_peak as f64 / 1e3),
    );
    println!();
    println!(
        "Where one new resource's write goes (one thread, µs per resource, median of the corpus):"
    );
    println!();
    println!("| {:<34} | {:>10} |", "step", "µs");
    println!("|{}|{}|", "-".repeat(36), "-".repeat(12));
    for (step, us) in &steps {
        match us.is_nan() {
            true => println!("| {step:<34} | {:>10} |", ""),
            false => println!("| {step:<34} | {us:>10.0} |"),
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Times the steps of writing a new resource, on this thread, for at most [`STEP_SAMPLE`]
/// resources: the mapping into a new Automerge document, its commit, the snapshot saved and the
/// card derived from the document; then what an import does instead, the change encoded
/// directly and the card derived from the resource. Medians.
fn steps(resources: &[atelier_core::Resource], now: i64) -> Vec<(&'static str, f64)> {
    use atelier_core::card::Card;
    use atelier_core::document;
    use atelier_core::store::HeadsHash;

    let mut create = Vec::new();
    let mut save = Vec::new();
    let mut card = Vec::new();
    let mut encode = Vec::new();
    let mut created_card = Vec::new();
    let actor = automerge::ActorId::random();
    for (i, r) in resources.iter().take(STEP_SAMPLE).enumerate() {
        let id = atelier_core::DocumentId::derived(&format!("steps/{i}"));
        let t = Instant::now();
        let Ok((change, stored)) = document::create_encoded(r, "caue-63", now, &actor) else {
            continue;
        };
        encode.push(t.elapsed());
        let t = Instant::now();
        let heads = HeadsHash::of(&[change.hash]);
        std::hint::black_box(Card::of_created(&id, &stored, "caue-63", now / 1000, heads));
        created_card.push(t.elapsed());
        let t = Instant::now();
        let mut doc = document::new_doc();
        if document::create(&mut doc, r, "caue-63", now).is_err() {
            continue;
        }
        create.push(t.elapsed());
        let t = Instant::now();
        let bytes = doc.save();
        save.push(t.elapsed());
        std::hint::black_box(bytes);
        let heads = HeadsHash::of(&doc.get_heads());
        let t = Instant::now();
        std::hint::black_box(Card::of(&id, &mut doc, heads));
        card.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    vec![
        ("map + commit (document::create)", median(&mut create)),
        ("save the snapshot", median(&mut save)),
        ("derive the card (Card::of)", median(&mut card)),
        ("what an import does instead:", f64::NAN),
        ("encode the change (create_encoded)", median(&mut encode)),
        (
            "card of the resource (of_created)",
            median(&mut created_card),
        ),
    ]
}

/// How many resources the step breakdown times: enough for a stable median.
const STEP_SAMPLE: usize = 500;

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
