//! Every binary allocates through mimalloc with Atelier's options, set before its first
//! allocation (`atelier_core::binary_allocator!`), unless the operator set them.

use std::process::Command;

use atelier_core::malloc::{ARENA_EAGER_COMMIT, PURGE_DELAY_MS};

use crate::harness::crash_bins;

/// mimalloc's option table as the binary printed it at start (`MIMALLOC_VERBOSE=1`).
fn options_printed(bin: &std::path::Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .envs(env.iter().copied())
        .output()
        .expect("running the binary");
    assert!(out.status.success(), "{} --version failed", bin.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_binary_runs_mimalloc_with_our_options_unless_the_operator_set_them() {
    let bins = crash_bins();
    for bin in [&bins.atelier, &bins.atelier_web, &bins.relay] {
        let printed = options_printed(bin, &[]);
        let eager = format!("option 'arena_eager_commit': {ARENA_EAGER_COMMIT}");
        let purge = format!("option 'purge_delay': {PURGE_DELAY_MS}");
        assert!(printed.contains(&eager), "{}: {printed}", bin.display());
        assert!(printed.contains(&purge), "{}: {printed}", bin.display());

        let printed = options_printed(bin, &[("MIMALLOC_PURGE_DELAY", "7")]);
        assert!(
            printed.contains("option 'purge_delay': 7"),
            "{}: {printed}",
            bin.display()
        );
        assert!(printed.contains(&eager), "{}: {printed}", bin.display());
    }
}
