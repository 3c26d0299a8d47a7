//! `crash`: the crash loops of [`crate::crash`] at scale: `kill -9` against the relay during
//! uploads, and against `atelier sync --watch`/`atelier-web` during writes; prints the kills,
//! the acknowledged writes checked and the writes lost (none, or the command fails).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::bench::loopback::relay_bin;
use crate::crash::{office_kills, relay_kills, Bins, Report};

/// Kills the relay `--kills` times during uploads and an office's replica holder
/// `--office-kills` times during writes, checking after each kill that every acknowledged
/// write is on disk, and at the end that a fresh office pulls the same corpus.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kills of the relay during uploads.
    #[arg(long, default_value_t = 1000)]
    pub kills: usize,
    /// Kills of the process holding an office's replica during writes.
    #[arg(long, default_value_t = 1000)]
    pub office_kills: usize,
    /// Seed of where the kills land.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `atelier-relay` binary; default: beside this one (build with `cargo build --release
    /// -p atelier-relay -p atelier-cli -p atelier-web`).
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs both loops and prints their table.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let relay = relay_bin(args.relay_bin.as_deref())?;
    let beside = |name: &str| -> anyhow::Result<PathBuf> {
        let bin = relay.with_file_name(name);
        anyhow::ensure!(
            bin.is_file(),
            "{} not found beside the relay binary",
            bin.display()
        );
        Ok(bin)
    };
    let bins = Bins {
        atelier: beside("atelier")?,
        atelier_web: beside("atelier-web")?,
        relay: relay.clone(),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let relay_report = rt.block_on(relay_kills(&relay, args.kills, args.seed))?;
    let office_report = rt.block_on(office_kills(&bins, args.office_kills, args.seed))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"relay": relay_report, "office": office_report})
        );
    } else {
        println!("| loop | kills | writes | acknowledged | checks after kills | lost | converged | time |");
        println!("|---|---:|---:|---:|---:|---:|---|---:|");
        for (name, r) in [
            ("relay during uploads", &relay_report),
            ("watch / web app during writes", &office_report),
        ] {
            println!("{}", row(name, r));
        }
    }
    let failed = [&relay_report, &office_report]
        .iter()
        .any(|r| !r.lost.is_empty() || !r.converged);
    for lost in relay_report.lost.iter().chain(&office_report.lost) {
        eprintln!("lost: {lost}");
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn row(name: &str, r: &Report) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {:.0} s |",
        r.kills,
        r.writes,
        r.acknowledged,
        r.checked,
        r.lost.len(),
        if r.converged { "yes" } else { "NO" },
        r.seconds
    )
}
