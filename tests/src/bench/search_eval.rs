//! `search-eval`: relevance of the search on a query file, beside a baseline without French analysis.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use atelier_core::search::eval::{self, EvalQuery, EvalReport, MRR_DEPTH};
use atelier_core::search::{Analysis, Filters, SearchIndex, SearchQuery};

use super::corpus;

/// Indexes a corpus twice (Atelier's French analysis, and tantivy's default tokenizer with
/// the same fields and weights), runs every query on both and prints pass counts, MRR and
/// failures by category. Exits with status 2 if Atelier misses a query.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Queries in the corpus README format (one JSON object per line).
    #[arg(long)]
    pub queries: PathBuf,
    /// Do not index the French labels of vocabulary codes.
    #[arg(long)]
    pub without_labels: bool,
    /// Print the two reports as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the evaluation.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let docs = corpus::load(&args.corpus, !args.without_labels)?;
    let text = std::fs::read_to_string(&args.queries)
        .with_context(|| format!("reading {}", args.queries.display()))?;
    let queries = eval::parse_queries(&text)?;
    let atelier = score(&docs, &queries, Analysis::French)?;
    let baseline = score(&docs, &queries, Analysis::Baseline)?;
    if args.json {
        let out = serde_json::json!({ "atelier": atelier, "baseline": baseline });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&atelier, &baseline);
    }
    Ok(if atelier.passed == atelier.queries {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn score(
    docs: &[atelier_core::search::SearchDoc],
    queries: &[EvalQuery],
    analysis: Analysis,
) -> anyhow::Result<EvalReport> {
    let mut index = SearchIndex::in_memory_with(analysis)?;
    index.upsert(docs)?;
    let mut error = None;
    let report = eval::evaluate(queries, |q, filters: &Filters| {
        let query = SearchQuery {
            text: q.to_string(),
            filters: filters.clone(),
            limit: MRR_DEPTH.max(queries.iter().map(|x| x.top).max().unwrap_or(0)),
            ..SearchQuery::default()
        };
        match index.search(&query) {
            Ok(results) => results.hits.into_iter().filter_map(|h| h.ref_).collect(),
            Err(e) => {
                error.get_or_insert(e);
                Vec::new()
            }
        }
    });
    match error {
        Some(e) => Err(e).context(format!("searching with {analysis:?} analysis")),
        None => Ok(report),
    }
}

fn print_table(atelier: &EvalReport, baseline: &EvalReport) {
    println!("{:<20} {:>10} {:>10}", "", "Atelier", "baseline");
    let ratio = |r: &EvalReport| format!("{}/{}", r.passed, r.queries);
    println!(
        "{:<20} {:>10} {:>10}",
        "passed",
        ratio(atelier),
        ratio(baseline)
    );
    println!("{:<20} {:>10.3} {:>10.3}", "MRR", atelier.mrr, baseline.mrr);
    let categories: BTreeSet<&String> = atelier.categories.keys().collect();
    for c in categories {
        let cell = |r: &EvalReport| {
            let (n, passed) = r.categories.get(c).copied().unwrap_or_default();
            format!("{passed}/{n}")
        };
        println!("{:<20} {:>10} {:>10}", c, cell(atelier), cell(baseline));
    }
    for (name, report) in [("Atelier", atelier), ("baseline", baseline)] {
        println!();
        if report.failures.is_empty() {
            println!("{name}: no failure");
            continue;
        }
        println!("{name} failures:");
        for (category, failures) in report.failures_by_category() {
            for f in failures {
                let missing: Vec<String> = f
                    .missing
                    .iter()
                    .map(|(r, rank)| match rank {
                        Some(k) => format!("{r} at {k}"),
                        None => format!("{r} not found"),
                    })
                    .collect();
                println!(
                    "  [{category}] {:?} (top {}): {}",
                    f.q,
                    f.top,
                    missing.join(", ")
                );
            }
        }
    }
}
