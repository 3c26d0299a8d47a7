//! `durability`: what making acknowledged writes survive a power cut costs, per write and per
//! batch: sled's own flush (`sync_file_range`, what the store did before) against `SledKv`'s
//! (the same flush, then the fsyncs of `store/kv/sled_files.rs`), on a real disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use atelier_core::store::{Batch, DocStore, Kv, SledKv, StoreError};
use atelier_core::DocumentId;
use automerge::transaction::Transactable;
use rand::SeedableRng;

/// Measures, for each way of flushing, in a fresh sled database under `--dir` each: one small
/// document written then flushed (what a CLI edit or a live change acknowledged to the relay
/// costs), one 200 KB document (sled puts it in a blob file), a batch of documents then one
/// flush (an import, a received `Docs` frame), and a flush with nothing new (the sync responder
/// flushes before every answer).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the databases (on the disk to measure; removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Single writes measured, each flushed.
    #[arg(long, default_value_t = 300)]
    pub writes: usize,
    /// Documents per batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Batches measured.
    #[arg(long, default_value_t = 5)]
    pub batches: usize,
}

/// Size of the large document's text: above sled's blob threshold (a quarter of a 512 KiB
/// segment), so its write goes through a blob file.
const LARGE_TEXT_BYTES: usize = 200 * 1024;

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let before = measure(args, Flush::SledOnly)?;
    let after = measure(args, Flush::Durable)?;
    print_table(args, &before, &after);
    Ok(std::process::ExitCode::SUCCESS)
}

#[derive(Clone, Copy)]
enum Flush {
    /// sled's `flush` alone: `sync_file_range` on the log.
    SledOnly,
    /// `SledKv::flush`: sled's flush, then the log, new blobs and changed directories fsynced.
    Durable,
}

/// One way of flushing's measures.
struct Measures {
    /// One small document written and flushed: each write's time.
    write: Vec<Duration>,
    /// One large document (a sled blob) written and flushed.
    large: Vec<Duration>,
    /// A whole batch (writes + one flush), and its flush alone.
    batch: Vec<Duration>,
    batch_flush: Vec<Duration>,
    /// A flush with nothing written since the last.
    idle: Vec<Duration>,
}

fn measure(args: &Args, flush: Flush) -> anyhow::Result<Measures> {
    let tmp = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("a temporary directory in {}", args.dir.display()))?;
    let path = tmp.path().join("db");
    let kv: Arc<dyn Kv> = match flush {
        Flush::SledOnly => Arc::new(SledFlushOnly::open(&path)?),
        Flush::Durable => Arc::new(SledKv::open(&path)?),
    };
    let store = DocStore::new(kv);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut m = Measures {
        write: Vec::new(),
        large: Vec::new(),
        batch: Vec::new(),
        batch_flush: Vec::new(),
        idle: Vec::new(),
    };
    for n in 0..args.writes {
        let id = DocumentId::random(&mut rng);
        let t = Instant::now();
        write(&store, &id, &format!("Écriture n° {n}"))?;
        store.flush()?;
        m.write.push(t.elapsed());
    }
    let large_text = "pisé ".repeat(LARGE_TEXT_BYTES / 6);
    for _ in 0..args.writes.div_ceil(10) {
        let id = DocumentId::random(&mut rng);
        let t = Instant::now();
        write(&store, &id, &large_text)?;
        store.flush()?;
        m.large.push(t.elapsed());
    }
    for b in 0..args.batches {
        let t = Instant::now();
        for n in 0..args.batch {
            write(
                &store,
                &DocumentId::random(&mut rng),
                &format!("Lot {b}, n° {n}"),
            )?;
        }
        let f = Instant::now();
        store.flush()?;
        m.batch_flush.push(f.elapsed());
        m.batch.push(t.elapsed());
    }
    for _ in 0..args.writes {
        let t = Instant::now();
        store.flush()?;
        m.idle.push(t.elapsed());
    }
    Ok(m)
}

/// Writes one document holding `title`.
fn write(store: &DocStore, id: &DocumentId, title: &str) -> anyhow::Result<()> {
    store.update(id, |doc, _| {
        doc.put(automerge::ROOT, "title", title)
            .map_err(StoreError::from)
    })?;
    Ok(())
}

fn print_table(args: &Args, before: &Measures, after: &Measures) {
    println!(
        "Flush cost on {} (sled flush alone, as before, against SledKv's durable flush).",
        args.dir.display()
    );
    println!();
    println!("| operation | sled flush only: median | p99 | durable: median | p99 | added |");
    println!("|---|---|---|---|---|---|");
    let rows: [(&str, Pick); 5] = [
        ("1 small document + flush", |m| &m.write),
        ("1 document of 200 KB (blob) + flush", |m| &m.large),
        ("batch: documents + 1 flush", |m| &m.batch),
        ("  of which the flush", |m| &m.batch_flush),
        ("flush with nothing new", |m| &m.idle),
    ];
    for (label, pick) in rows {
        let (b, a) = (pick(before), pick(after));
        let label = label.replace("documents", &format!("{} documents", args.batch));
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            ms(quantile(b, 0.5)),
            ms(quantile(b, 0.99)),
            ms(quantile(a, 0.5)),
            ms(quantile(a, 0.99)),
            ms(quantile(a, 0.5).saturating_sub(quantile(b, 0.5))),
        );
    }
    println!();
    println!(
        "{} single writes, {} large, {} batches of {}.",
        args.writes,
        args.writes.div_ceil(10),
        args.batches,
        args.batch
    );
}

/// One row's measures out of a way of flushing's.
type Pick = fn(&Measures) -> &Vec<Duration>;

fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The store as it was before: sled, flushed by sled alone. Only this benchmark uses it.
struct SledFlushOnly(sled::Db);

impl SledFlushOnly {
    fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        // SledKv's configuration, so the two differ only by their flush.
        Ok(Self(
            sled::Config::new()
                .path(path)
                .cache_capacity(64 * 1024 * 1024)
                .open()?,
        ))
    }
}

fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

impl Kv for SledFlushOnly {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).map_err(db_err)?.map(|v| v.to_vec()))
    }

    fn for_each_prefix(
        &self,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.0.scan_prefix(prefix) {
            let (k, v) = item.map_err(db_err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.into_ops() {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.0.apply_batch(b).map_err(db_err)
    }

    fn remove_if(&self, key: &[u8], expected: &[u8]) -> Result<bool, StoreError> {
        let swapped = self
            .0
            .compare_and_swap(key, Some(expected), None::<&[u8]>)
            .map_err(db_err)?;
        Ok(swapped.is_ok())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.0.flush().map(|_| ()).map_err(db_err)
    }
}
