//! Crash tests: `kill -9` against the relay during uploads and against the process holding an
//! office's replica during writes (the loops of `atelier_tests::crash`, which
//! `atelier-bench crash` runs a thousand times); nothing acknowledged is lost.

use atelier_tests::crash::{office_kills, relay_kills, Report};

use crate::harness::crash_bins;

/// Kills per loop here; `atelier-bench crash` runs 1,000 (figures in the README).
const RELAY_KILLS: usize = 24;
const OFFICE_KILLS: usize = 12;

fn assert_nothing_lost(report: &Report, kills: usize) {
    assert_eq!(report.kills, kills, "{report:?}");
    assert!(
        report.lost.is_empty(),
        "acknowledged writes lost: {report:?}"
    );
    assert!(
        report.checked > 0,
        "nothing was checked after a kill: {report:?}"
    );
    assert!(report.acknowledged > 0, "{report:?}");
    assert!(
        report.converged,
        "a fresh office did not pull the same corpus: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_during_uploads_keeps_every_acknowledged_change() {
    let report = relay_kills(&crash_bins().relay, RELAY_KILLS, 7)
        .await
        .unwrap();
    assert_nothing_lost(&report, RELAY_KILLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_web_app_killed_during_writes_keep_every_acknowledged_write() {
    let report = office_kills(&crash_bins(), OFFICE_KILLS, 7).await.unwrap();
    assert_nothing_lost(&report, OFFICE_KILLS);
}
