//! The `atelier-relay` binary: parses arguments and runs the command (see `atelier_relay::cli`).

use std::process::ExitCode;

use atelier_relay::cli::{self, Cli};
use clap::Parser;

atelier_core::binary_allocator!();

fn main() -> ExitCode {
    // Before tokio starts its threads (see `atelier_core::malloc`).
    atelier_core::malloc::configure();
    start()
}

#[tokio::main]
async fn start() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erreur : {e:#}");
            ExitCode::FAILURE
        }
    }
}
