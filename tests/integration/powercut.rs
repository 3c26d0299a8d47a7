//! Power cuts (`atelier_tests::powercut`: everything not fsynced is dropped): every write a
//! replica acknowledged to its user, and every change a relay acknowledged to an office, is
//! still there after the cut, in a store that opens.

use std::path::Path;
use std::process::{Command, Stdio};

use atelier_core::replica::Replica;
use atelier_core::{DocumentId, OfficeId};
use atelier_tests::powercut::PowerCutFs;

use atelier_relay::config::MediaConfig;
use atelier_relay::quota::QuotaConfig;

use crate::harness::{corpus, Office, TestRelay, WAIT};

/// Cuts per test, each after a different number of acknowledged writes (a fourth of them large
/// enough for sled's blob files), each followed by a reopen on what the disk kept.
const CUTS: u64 = 3;
const FIRST_CUT_AFTER: usize = 9;

#[test]
fn every_acknowledged_write_survives_a_power_cut() {
    let mnt = tempfile::tempdir().unwrap();
    let mut fs = PowerCutFs::mount(mnt.path())
        .expect("mounting the power-cut filesystem needs /dev/fuse and root");
    let dir = fs.path().join("replica");
    let office: OfficeId = "caue-63".parse().unwrap();
    drop(Replica::init(&dir, office).unwrap());
    fs.settle();

    let mut acked: Vec<(DocumentId, u64)> = Vec::new();
    for cut in 0..CUTS {
        // Numbers far apart: a writer that was cut restarts on fresh ids and titles.
        let first = cut * 10_000;
        let wanted = FIRST_CUT_AFTER + 4 * cut as usize + 1;
        acked.extend(write_then_cut(&mut fs, &dir, first, wanted, cut + 1));
        eprintln!("cut {cut}: {} acknowledged writes so far", acked.len());

        let replica = Replica::open(&dir).expect("the replica opens after a power cut");
        for (id, n) in &acked {
            let stored = replica
                .get(id)
                .unwrap_or_else(|e| panic!("acknowledged write n° {n} ({id}) lost: {e}"));
            assert_eq!(stored.resource.title, format!("Coupure n° {n}"));
        }
        let mut documents = 0;
        replica
            .store()
            .for_each_heads(&mut |_, _| {
                documents += 1;
                true
            })
            .unwrap();
        assert!(
            documents >= acked.len(),
            "{documents} documents for {} acknowledged",
            acked.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_keeps_what_it_acknowledged_through_a_power_cut() {
    let mnt = tempfile::tempdir().unwrap();
    let mut fs = PowerCutFs::mount(mnt.path())
        .expect("mounting the power-cut filesystem needs /dev/fuse and root");
    let data = tempfile::tempdir_in(fs.path()).unwrap();
    let mut relay = TestRelay::start_in(data, MediaConfig::default(), QuotaConfig::default()).await;
    let office = Office::enrolled("caue-63", &relay, false).await;
    fs.settle();

    for n in 0..FIRST_CUT_AFTER {
        // A large description now and then: the relay's sled puts those in blob files.
        let description = if n % 4 == 3 {
            "pisé ".repeat(40_000)
        } else {
            String::new()
        };
        office.create(&format!("Relais n° {n}"), &description);
    }
    // A finished sync is the relay's acknowledgement: it flushed before its last `Entries`.
    office.sync(&relay).await;
    let cut = fs.cut();
    let addrs = relay.stop().await;
    let lost = fs.power_on(cut).unwrap();
    eprintln!("relay power cut: {lost:?}");

    relay.resume(addrs).await;
    let on_relay = corpus(relay.store());
    for (id, heads) in corpus(office.store()) {
        assert_eq!(
            on_relay.get(&id),
            Some(&heads),
            "{id} acknowledged by the relay, then lost"
        );
    }
    relay.shutdown().await;
}

/// Runs the writer from resource `first` until it has acknowledged `wanted` writes and made
/// `more` write requests since, cuts the power there, in the middle of its next write, kills it
/// (SIGKILL), turns the power back on and returns the writes it acknowledged before the cut.
fn write_then_cut(
    fs: &mut PowerCutFs,
    dir: &Path,
    first: u64,
    wanted: usize,
    more: u64,
) -> Vec<(DocumentId, u64)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atelier-powercut-writer"))
        .arg(dir)
        .arg(first.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = atelier_tests::node::stdout_lines(&mut child).unwrap();
    let mut acked = Vec::new();
    while acked.len() < wanted {
        let line = match lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("writer: no acknowledgement after {} ({e})", acked.len());
            }
        };
        let (id, n) = line.split_once(' ').expect("`<id> <n>`");
        acked.push((id.parse().unwrap(), n.parse().unwrap()));
    }
    let target = fs.writes() + more;
    if !fs.wait_for_writes(target, WAIT) {
        let _ = child.kill();
        panic!("writer: no write after its acknowledgement n° {wanted}");
    }
    let cut = fs.cut();
    child.kill().unwrap();
    child.wait().unwrap();
    let lost = fs.power_on(cut).unwrap();
    eprintln!("power cut {more} write requests after the last acknowledgement: {lost:?}");
    acked
}
