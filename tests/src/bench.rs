//! The `atelier-bench` command line: one module per subcommand.

pub mod atlas;
pub mod corpus;
pub mod crash;
pub mod doc_cost;
pub mod durability;
pub mod fanout;
pub mod import;
pub mod loopback;
pub mod media;
pub mod search_bench;
pub mod search_eval;
pub mod search_try;
pub mod splice;
pub mod sync;
pub mod web_client;
pub mod webstart;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks and evaluations of Atelier.
///
/// Exit status: 0 on success, 1 on error, 2 when an evaluation ran but missed its target.
#[derive(Debug, Parser)]
#[command(name = "atelier-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scores the search on a query file (pass count, MRR), against a baseline without French
    /// analysis.
    SearchEval(search_eval::Args),
    /// Measures index build time, index size and search latency on a large corpus.
    SearchBench(search_bench::Args),
    /// Runs queries on a corpus and prints the ranked hits with their snippets.
    SearchTry(search_try::Args),
    /// Imports a corpus into a fresh replica: throughput, size on disk, reopen and list, memory.
    Import(import::Args),
    /// What one resource document costs Automerge to load and read, text fields as `Text` or
    /// as scalar strings: the floor under a fresh pull.
    DocCost(doc_cost::Args),
    /// Corpus sync through a relay over QUIC: fresh pull, resync, edit latency, JS baseline.
    Sync(sync::Args),
    /// A fresh office's pull of a corpus with photos through a relay: texts first, thumbnails,
    /// originals; against plain loopback transfers and rsync.
    Media(media::Args),
    /// `kill -9` loops against the relay during uploads and against an office's replica holder
    /// during writes: every acknowledged write must survive.
    Crash(crash::Args),
    /// What durable flushes cost (fsyncs after sled's flush), per write and per batch, against
    /// sled's flush alone.
    Durability(durability::Args),
    /// The atlas of a corpus as the web app serves it: its counts per département against the
    /// corpus file's.
    Atlas(atlas::Args),
    /// A remote one-character edit of a long description, applied by the receiving office:
    /// load, apply, save, card, and the whole store write.
    Splice(splice::Args),
    /// One edit to many live devices (separate QUIC endpoints in several processes) through
    /// one relay, and their idle cost on the relay; against automerge-repo's sync server.
    Fanout(fanout::Args),
    /// The web app's first start after importing a corpus (first page, search catching up),
    /// then its list page's latency with facets.
    Webstart(webstart::Args),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::SearchEval(args) => search_eval::run(&args),
        Command::SearchBench(args) => search_bench::run(&args),
        Command::SearchTry(args) => search_try::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Sync(args) => sync::run(&args),
        Command::Media(args) => media::run(&args),
        Command::DocCost(args) => doc_cost::run(&args),
        Command::Crash(args) => crash::run(&args),
        Command::Durability(args) => durability::run(&args),
        Command::Atlas(args) => atlas::run(&args),
        Command::Splice(args) => splice::run(&args),
        Command::Fanout(args) => fanout::run(&args),
        Command::Webstart(args) => webstart::run(&args),
    }
}
