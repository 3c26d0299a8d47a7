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
    /// Also list this many of the slowest queries (text, filters, time, hits), to see where
    /// the tail comes from.
    #[arg(long, default_value_t = 0)]
    pub slowest: usize,
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
    let mut timings: Vec<Timing> = Vec::with_capacity(queries.len());
    for (i, (mix, q)) in queries.iter().enumerate() {
        let t = Instant::now();
        let results = index.search(q)?;
        timings.push(Timing {
            query: i,
            mix: *mix,
            took: t.elapsed(),
            total: results.total,
        });
    }

    let groups: [Group; 4] = [
        ("all", |_| true),
        ("text", |m| matches!(m, Mix::Text(_))),
        ("text + facet filters", |m| {
            matches!(m, Mix::TextFiltered(_))
        }),
        ("facet browsing", |m| m == Mix::Browse),
    ];
    let mut stats: Vec<(&str, Stats)> = groups
        .iter()
        .map(|(name, in_group)| {
            let mut d: Vec<Duration> = timings
                .iter()
                .filter(|t| in_group(t.mix))
                .map(|t| t.took)
                .collect();
            (*name, Stats::of(&mut d))
        })
        .collect();
    // The text queries (with or without filters) by the form of their text.
    for form in TextForm::ALL {
        let mut d: Vec<Duration> = timings
            .iter()
            .filter(|t| queries[t.query].0.form() == Some(form))
            .map(|t| t.took)
            .collect();
        stats.push((form.name(), Stats::of(&mut d)));
    }
    let empty = timings.iter().filter(|t| t.total == 0).count();
    let mut slowest: Vec<&Timing> = timings.iter().collect();
    slowest.sort_by_key(|t| std::cmp::Reverse(t.took));
    slowest.truncate(args.slowest);
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
            "slowest": slowest.iter().map(|t| serde_json::json!({
                "ms": ms(t.took), "hits": t.total, "query": describe(&queries[t.query].1),
            })).collect::<Vec<_>>(),
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
        for (i, (name, s)) in stats.iter().enumerate() {
            if i == groups.len() {
                println!("text queries by form:");
            }
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
        if !slowest.is_empty() {
            println!("slowest queries (ms, hits, query):");
        }
        for t in &slowest {
            println!(
                "{:>9.2} {:>7}  {}",
                ms(t.took),
                t.total,
                describe(&queries[t.query].1)
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A line of the latency table: its name, and which queries it holds.
type Group = (&'static str, fn(Mix) -> bool);

/// One timed query: its index in the mix, kind, time and number of hits.
struct Timing {
    query: usize,
    mix: Mix,
    took: Duration,
    total: usize,
}

/// Kind of query in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Text only.
    Text(TextForm),
    /// Text and one or two facet filters (facets being filtered are counted again).
    TextFiltered(TextForm),
    /// No text, facet filters, sorted by date.
    Browse,
}

impl Mix {
    fn form(self) -> Option<TextForm> {
        match self {
            Mix::Text(f) | Mix::TextFiltered(f) => Some(f),
            Mix::Browse => None,
        }
    }
}

/// What the text of a query is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextForm {
    /// One or more whole words of a title (or a material, or a commune).
    Words,
    /// A word with one typo.
    Typo,
    /// A word, then the first letters of another (completions).
    Prefix,
    /// A département number and a material.
    Departement,
    /// Two words in quotes.
    Phrase,
}

impl TextForm {
    const ALL: [TextForm; 5] = [
        TextForm::Words,
        TextForm::Typo,
        TextForm::Prefix,
        TextForm::Departement,
        TextForm::Phrase,
    ];

    fn name(self) -> &'static str {
        match self {
            TextForm::Words => "  words",
            TextForm::Typo => "  typo",
            TextForm::Prefix => "  word + prefix",
            TextForm::Departement => "  département + word",
            TextForm::Phrase => "  \"phrase\"",
        }
    }
}

/// A query as one line: its text, filters and sort.
fn describe(q: &SearchQuery) -> String {
    let f = &q.filters;
    let mut parts = vec![format!("{:?}", q.text)];
    for (name, values) in [
        ("kind", &f.kind),
        ("office", &f.office),
        ("departement", &f.departement),
        ("sector", &f.sector),
    ] {
        if !values.is_empty() {
            parts.push(format!("{name}={}", values.join(",")));
        }
    }
    if f.year_from.is_some() || f.year_to.is_some() {
        parts.push(format!("years={:?}..={:?}", f.year_from, f.year_to));
    }
    parts.push(format!("sort={:?}", q.sort));
    parts.join(" ")
}

/// `n` queries: about half text only, a third text with filters, the rest browsing.
fn mixed_queries(docs: &[SearchDoc], n: usize, rng: &mut Rng) -> Vec<(Mix, SearchQuery)> {
    (0..n)
        .map(|_| {
            let doc = &docs[rng.below(docs.len())];
            let roll = rng.below(100);
            // The kind is decided before the text is drawn: the random sequence, hence the
            // queries, are those of the earlier versions of this benchmark.
            let (mix, text) = if roll < 85 {
                let (form, text) = query_text(doc, rng);
                let mix = if roll < 50 {
                    Mix::Text(form)
                } else {
                    Mix::TextFiltered(form)
                };
                (mix, text)
            } else {
                (Mix::Browse, String::new())
            };
            let filters = if let Mix::Text(_) = mix {
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

/// A text a user could type to find `doc` (or documents like it), and its form.
fn query_text(doc: &SearchDoc, rng: &mut Rng) -> (TextForm, String) {
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
        0 => (TextForm::Words, analysis::fold(&word(rng))),
        1 => (TextForm::Words, format!("{} {}", word(rng), word(rng))),
        2 => (
            TextForm::Words,
            doc.materials.first().cloned().unwrap_or_else(|| word(rng)),
        ),
        3 => (TextForm::Typo, typo(&analysis::fold(&word(rng)), rng)),
        4 => {
            let w = analysis::fold(&word(rng));
            let cut = w.char_indices().nth(4).map_or(w.len(), |(i, _)| i);
            (TextForm::Prefix, format!("{} {}", word(rng), &w[..cut]))
        }
        5 => match (&doc.departement, doc.materials.first()) {
            (Some(d), Some(m)) => (TextForm::Departement, format!("{d} {m}")),
            _ => (TextForm::Words, word(rng)),
        },
        6 => {
            let start = rng.below(words.len().max(1));
            let phrase: Vec<&str> = words.iter().skip(start).take(2).copied().collect();
            (TextForm::Phrase, format!("\"{}\"", phrase.join(" ")))
        }
        7 => (
            TextForm::Words,
            doc.commune.clone().unwrap_or_else(|| word(rng)),
        ),
        _ => (
            TextForm::Words,
            format!("{} {} {}", word(rng), word(rng), word(rng)),
        ),
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
