//! The `atelier` binary: parses arguments, sets up tracing, runs the command, maps errors to a
//! French message and an exit code (`Exit`: 1 runtime error, 2 usage or invalid input, 3 replica
//! in use, 4 relay or peer unreachable, 5 refused by the relay or peer).

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

atelier_core::binary_allocator!();

fn main() -> ExitCode {
    // Before any thread starts (see `atelier_core::malloc`).
    atelier_core::malloc::configure();
    let cli = match atelier_cli::Cli::from_env() {
        Ok(cli) => cli,
        Err(e) => return atelier_cli::usage_exit(e),
    };
    let default = match cli.verbose {
        0 => "warn",
        1 => "info,atelier_cli=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_env("ATELIER_LOG").unwrap_or_else(|_| default.into()))
        .init();
    match atelier_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if atelier_cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erreur : {}", atelier_cli::describe_error(&e));
            ExitCode::from(atelier_cli::exit_code(&e) as u8)
        }
    }
}
