//! `search-try`: runs queries on a corpus and prints the ranked hits, to see what the search does.

use std::path::PathBuf;

use atelier_core::search::{SearchIndex, SearchQuery};

use super::corpus;

/// Indexes a corpus in memory and prints the first hits of each query (ref, score, kind,
/// title, snippet), with the total.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Hits shown per query.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Queries, as typed.
    #[arg(required = true)]
    pub queries: Vec<String>,
}

/// Runs the queries.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let docs = corpus::load(&args.corpus, true)?;
    let mut index = SearchIndex::in_memory()?;
    index.upsert(&docs)?;
    for text in &args.queries {
        let results = index.search(&SearchQuery {
            limit: args.limit,
            ..SearchQuery::text(text.as_str())
        })?;
        let relaxed = if results.relaxed { ", relaxed" } else { "" };
        println!("== {text:?}: {} hits{relaxed}", results.total);
        for h in &results.hits {
            println!(
                "  {:<10} {:>7.2} {:<12} {}",
                h.ref_.as_deref().unwrap_or("-"),
                h.score,
                h.kind,
                h.title
            );
            println!("  {:>31} {}", "", h.snippet);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
