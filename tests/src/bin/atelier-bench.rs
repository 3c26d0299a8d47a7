//! `atelier-bench`: Atelier's benchmarks and evaluations, one subcommand each.

use std::process::ExitCode;

use clap::Parser;

atelier_core::binary_allocator!();

fn main() -> ExitCode {
    // As the binaries it measures: its child processes stand for `atelier sync`.
    atelier_core::malloc::configure();
    let cli = atelier_tests::bench::Cli::parse();
    match atelier_tests::bench::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
