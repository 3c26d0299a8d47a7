//! `atelier-powercut-writer`: the child the power-cut test kills: creates resources in a replica,
//! one line on stdout per acknowledged write.
//!
//! Usage: `atelier-powercut-writer DIR FIRST`. Each line is `<document id> <n>`, printed once
//! `Replica::create` has returned (the write is flushed: what a user is told is saved). Resource
//! `n` is titled `Coupure n° <n>`; every fourth has a description large enough to go to one of
//! sled's blob files. Writes until killed, or `MAX_WRITES`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use atelier_core::replica::Replica;
use atelier_core::resource::Resource;
use rand::SeedableRng;

/// Bound on one run's writes, so a writer the test forgot to kill stops by itself.
const MAX_WRITES: u64 = 2_000;
/// Description size of every fourth resource: above sled's blob threshold (a quarter of its
/// 512 KiB segment), so the test covers the blob files too.
const LARGE_DESCRIPTION_BYTES: usize = 200 * 1024;

atelier_core::binary_allocator!();

fn main() -> ExitCode {
    // As the binaries it stands for (see `atelier_core::malloc`).
    atelier_core::malloc::configure();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: atelier-powercut-writer DIR FIRST")?,
    );
    let first: u64 = args
        .next()
        .and_then(|a| a.into_string().ok())
        .and_then(|a| a.parse().ok())
        .context("FIRST: the number of the first resource")?;
    let replica = Replica::open(&dir).context("opening the replica")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(first);
    let mut out = std::io::stdout().lock();
    for n in first..first + MAX_WRITES {
        let resource = resource(n, replica.office().to_string())?;
        let id = replica.create(&resource, &mut rng, 1_700_000_000_000 + n as i64)?;
        writeln!(out, "{id} {n}")?;
        out.flush()?;
    }
    Ok(())
}

/// Resource `n`, as the test expects to find it.
pub fn resource(n: u64, office: String) -> anyhow::Result<Resource> {
    let description = if n % 4 == 3 {
        "pisé ".repeat(LARGE_DESCRIPTION_BYTES / 6)
    } else {
        String::new()
    };
    let value = serde_json::json!({
        "kind": "realisation",
        "title": format!("Coupure n° {n}"),
        "office": office,
        "description": description,
    });
    Resource::from_json(&value).map_err(|e| anyhow::anyhow!("{e}"))
}
