//! `search-bench`: index build time, index size and search latency on a large corpus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use atelier_core::search::analysis;
use atelier_core::search::{Filters, SearchDoc, SearchIndex, SearchQuery, Sort};

use super::corpus;

/// Documents per `upsert` call while building: an import commits in batches this size.
const BATCH: usize = 10_000;
/// Queries run before measuring, so that the page cache and the readers are warm.
const WARMUP_QUERIES: usize = 100;

/// Builds an on-disk index of a corpus (e.g. 100,000 resources from `gen-corpus.py`), then
/// times a deterministic mix of queries drawn from the corpus: words and phrases of titles,
/// materials, communes, typos, prefixes, département numbers, with and without facet filters,
/// and facet browsing with no text.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Number of queries timed.
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Seed of the query mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Index directory (must not hold another index); default: a temporary directory,
    /// removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let t = Instant::now();
    let docs = corpus::load(&args.corpus, true)?;
    let load = t.elapsed();
    let tmp;
    let dir: &Path = match &args.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path()
        }
    };
    let mut index = SearchIndex::open_or_create(dir)?;
    index.clear()?;
    let t = Instant::now();
    for batch in docs.chunks(BATCH) {
        index.upsert(batch)?;
    }
    let build = t.elapsed();
    let size = dir_size(dir)?;

    let mut rng = Rng(args.seed.max(1));
    let warmup = mixed_queries(&docs, WARMUP_QUERIES, &mut rng);
    for (_, q) in &warmup {
        index.search(q)?;
    }
    let queries = mixed_queries(&docs, args.queries, &mut rng);
    let mut timings: Vec<(Mix, Duration, usize)> = Vec::with_capacity(queries.len());
    for (mix, q) in &queries {
        let t = Instant::now();
        let results = index.search(q)?;
        timings.push((*mix, t.elapsed(), results.total));
    }

    let groups = [
        ("all", None),
        ("text", Some(Mix::Text)),
        ("text + facet filters", Some(Mix::TextFiltered)),
        ("facet browsing", Some(Mix::Browse)),
    ];
    let stats: Vec<(&str, Stats)> = groups
        .iter()
        .map(|(name, mix)| {
            let mut d: Vec<Duration> = timings
                .iter()
                .filter(|(m, _, _)| mix.is_none_or(|x| x == *m))
                .map(|(_, d, _)| *d)
                .collect();
            (*name, Stats::of(&mut d))
        })
        .collect();
    let empty = timings.iter().filter(|(_, _, total)| *total == 0).count();
    if args.json {
        let out = serde_json::json!({
            "documents": docs.len(),
            "load_seconds": load.as_secs_f64(),
            "build_seconds": build.as_secs_f64(),
            "index_bytes": size,
            "queries": timings.len(),
            "queries_without_hits": empty,
            "latency_ms": stats.iter().map(|(name, s)| (name.to_string(), serde_json::json!({
                "count": s.count, "p50": ms(s.p50), "p99": ms(s.p99), "mean": ms(s.mean), "max": ms(s.max),
            }))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("documents            {}", docs.len());
        println!("corpus load          {:.1} s", load.as_secs_f64());
        println!(
            "index build          {:.1} s ({:.0} documents/s, batches of {BATCH})",
            build.as_secs_f64(),
            docs.len() as f64 / build.as_secs_f64()
        );
        println!("index size on disk   {:.1} MB", size as f64 / 1e6);
        println!(
            "queries              {} timed after {WARMUP_QUERIES} warm-up, {empty} without hits",
            timings.len()
        );
        println!(
            "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p99", "mean", "max"
        );
        for (name, s) in &stats {
            println!(
                "{:<22} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                s.count,
                ms(s.p50),
                ms(s.p99),
                ms(s.mean),
                ms(s.max)
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Kind of query in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Text only.
    Text,
    /// Text and one or two facet filters (facets being filtered are counted again).
    TextFiltered,
    /// No text, facet filters, sorted by date.
    Browse,
}

/// `n` queries: about half text only, a third text with filters, the rest browsing.
fn mixed_queries(docs: &[SearchDoc], n: usize, rng: &mut Rng) -> Vec<(Mix, SearchQuery)> {
    (0..n)
        .map(|_| {
            let doc = &docs[rng.below(docs.len())];
            let roll = rng.below(100);
            let mix = if roll < 50 {
                Mix::Text
            } else if roll < 85 {
                Mix::TextFiltered
            } else {
                Mix::Browse
            };
            let text = if mix == Mix::Browse {
                String::new()
            } else {
                query_text(doc, rng)
            };
            let filters = if mix == Mix::Text {
                Filters::default()
            } else {
                filters(doc, rng)
            };
            let sort = if mix == Mix::Browse {
                Sort::Date
            } else {
                Sort::Relevance
            };
            let query = SearchQuery {
                text,
                filters,
                sort,
                ..SearchQuery::default()
            };
            (mix, query)
        })
        .collect()
}

/// A text a user could type to find `doc` (or documents like it).
fn query_text(doc: &SearchDoc, rng: &mut Rng) -> String {
    let words: Vec<&str> = doc
        .title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .collect();
    let word = |rng: &mut Rng| -> String {
        if words.is_empty() {
            doc.kind.clone()
        } else {
            words[rng.below(words.len())].to_string()
        }
    };
    match rng.below(9) {
        0 => analysis::fold(&word(rng)),
        1 => format!("{} {}", word(rng), word(rng)),
        2 => doc.materials.first().cloned().unwrap_or_else(|| word(rng)),
        3 => typo(&analysis::fold(&word(rng)), rng),
        4 => {
            let w = analysis::fold(&word(rng));
            let cut = w.char_indices().nth(4).map_or(w.len(), |(i, _)| i);
            format!("{} {}", word(rng), &w[..cut])
        }
        5 => match (&doc.departement, doc.materials.first()) {
            (Some(d), Some(m)) => format!("{d} {m}"),
            _ => word(rng),
        },
        6 => {
            let start = rng.below(words.len().max(1));
            let phrase: Vec<&str> = words.iter().skip(start).take(2).copied().collect();
            format!("\"{}\"", phrase.join(" "))
        }
        7 => doc.commune.clone().unwrap_or_else(|| word(rng)),
        _ => format!("{} {} {}", word(rng), word(rng), word(rng)),
    }
}

/// One edit: a letter dropped, doubled or swapped with the next.
fn typo(word: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 {
        return word.to_string();
    }
    let i = 1 + rng.below(chars.len() - 2);
    match rng.below(3) {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, chars[i]),
        _ => chars.swap(i, i + 1),
    }
    chars.into_iter().collect()
}

fn filters(doc: &SearchDoc, rng: &mut Rng) -> Filters {
    let mut f = Filters::default();
    match rng.below(4) {
        0 => f.kind.push(doc.kind.clone()),
        1 => f.departement.extend(doc.departement.clone()),
        2 => f.sector.extend(doc.sectors.first().cloned()),
        _ => {
            f.year_from = doc.year.map(|y| y - 5);
            f.year_to = doc.year.map(|y| y + 5);
        }
    }
    if rng.below(2) == 0 {
        f.office.push(doc.office.clone());
    }
    f
}

struct Stats {
    count: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
}

impl Stats {
    fn of(d: &mut [Duration]) -> Stats {
        d.sort();
        let at = |q: f64| {
            if d.is_empty() {
                Duration::ZERO
            } else {
                d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1]
            }
        };
        let total: Duration = d.iter().sum();
        Stats {
            count: d.len(),
            p50: at(0.50),
            p99: at(0.99),
            mean: total / d.len().max(1) as u32,
            max: d.last().copied().unwrap_or_default(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// xorshift64: deterministic, no dependency, good enough to pick queries.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}
