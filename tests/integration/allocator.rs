//! Every binary allocates through mimalloc with Atelier's option, set before its first
//! allocation (`atelier_core::binary_allocator!`), unless the operator set it.

use std::process::Command;

use atelier_core::malloc::ARENA_EAGER_COMMIT;

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
fn every_binary_runs_mimalloc_with_our_option_unless_the_operator_set_it() {
    let bins = crash_bins();
    for bin in [&bins.atelier, &bins.atelier_web, &bins.relay] {
        let ours = format!("option 'arena_eager_commit': {ARENA_EAGER_COMMIT}");
        let printed = options_printed(bin, &[]);
        assert!(printed.contains(&ours), "{}: {printed}", bin.display());

        let theirs = "option 'arena_eager_commit': 7";
        let printed = options_printed(bin, &[("MIMALLOC_ARENA_EAGER_COMMIT", "7")]);
        assert!(printed.contains(theirs), "{}: {printed}", bin.display());
    }
}
