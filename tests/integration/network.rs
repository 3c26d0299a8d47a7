//! Sync over a bad network and against a hostile peer, on loopback: a relay that vanishes
//! mid-sync is noticed within seconds, a restarted relay resets the connections of its
//! previous run and offices come back at once, offices editing through a lossy link that is
//! cut for a while converge with nothing lost (through the harness's UDP proxy), and a peer
//! that floods the relay with work and never reads keeps it within its stated memory bound,
//! and a flood of half-open handshakes does not keep enrolled offices out.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atelier_cli::cmd::sync::net::from_drive_error;
use atelier_core::document::Edit;
use atelier_core::store::BUCKETS;
use atelier_core::sync::{Message, WANT_BATCH};
use atelier_core::DocumentId;
use atelier_relay::agent::{AgentHooks, SyncAgent, Target};
use atelier_relay::client;
use atelier_relay::identity::Identity;
use atelier_relay::sync_conn::{LiveChanges, MAX_CONNECTION_MEMORY};
use atelier_relay::transport;
use atelier_relay::transport::LIVE_IDLE_TIMEOUT;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::harness::{
    corpus, wait_until_any, Faults, Office, SyncFailed, TestRelay, UdpProxy, WAIT,
};

/// How soon an office must notice a relay gone mid-sync: generous for a loaded CI machine,
/// well under the ~41 s it took before keep-alives and a short idle timeout.
const NOTICED_WITHIN: Duration = Duration::from_secs(10);

/// Where an office's agent syncs: the relay, reached through `proxy`.
fn through(proxy: &UdpProxy, relay: &TestRelay) -> Target {
    Target {
        url: proxy.addr().into(),
        fingerprint: relay.fingerprint(),
        is_relay: true,
    }
}

/// What an agent tells its owner, as test events.
#[derive(Debug)]
enum Event {
    Settled(&'static str),
    /// A link went down: whether by a stateless reset, the wait before retrying, the error.
    Down(&'static str, bool, Duration, String),
}

/// `office`'s live agent towards `target`, reporting on `events` under `name`.
fn agent(
    name: &'static str,
    office: &Office,
    target: Target,
    events: &mpsc::UnboundedSender<Event>,
) -> SyncAgent {
    let (settled, down) = (events.clone(), events.clone());
    SyncAgent::spawn(
        office.store().clone(),
        LiveChanges::attach(office.store()),
        office.identity(),
        target,
        AgentHooks::default()
            .on_settled(move |_| {
                let _ = settled.send(Event::Settled(name));
            })
            .on_link_down(move |e, wait| {
                let _ = down.send(Event::Down(name, e.is_reset(), wait, format!("{e:?}")));
                ControlFlow::Continue(())
            }),
    )
}

/// Waits for the next event that `pick` accepts, skipping others.
async fn next<T>(
    events: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let found = timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            if let Some(found) = pick(event) {
                return Some(found);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Waits until `check` holds, woken by changes of either office's store.
async fn wait_both(a: &Office, b: &Office, what: &str, check: impl Fn() -> bool) {
    wait_until_any(&[a.store(), b.store()], what, check).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_vanishes_mid_sync_is_noticed_within_seconds() {
    let relay = TestRelay::start().await;
    let proxy = UdpProxy::start(relay.addr(), Faults::default(), 11).await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    for i in 0..10 {
        a.create(&format!("Maison {i}"), "Pisé.");
    }
    // The link goes dead after the relay's first answer, as if it were killed: the office
    // still has documents to send and a round to finish, and hears nothing more.
    let cut_at = Mutex::new(None);
    let result = a
        .sync_within(proxy.addr(), &relay.fingerprint(), WAIT, |_| {
            let mut cut_at = cut_at.lock().unwrap();
            if cut_at.is_none() {
                proxy.cut(true);
                *cut_at = Some(Instant::now());
            }
        })
        .await;
    let cut_at = cut_at
        .lock()
        .unwrap()
        .expect("the sync never got an answer");
    let noticed = cut_at.elapsed();
    let Err(SyncFailed::Drive(e)) = result else {
        panic!("the sync should fail once the relay is gone, got {result:?}");
    };
    assert!(
        noticed < NOTICED_WITHIN,
        "the office took {noticed:?} to notice that the relay was gone"
    );
    let said = from_drive_error(&e, "le relais").message;
    assert!(said.contains("ne répond pas"), "{said}");
    assert!(proxy.stats().cut.load(std::sync::atomic::Ordering::SeqCst) > 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_relay_resets_old_connections_and_the_agent_is_back_at_once() {
    let mut relay = TestRelay::start().await;
    let proxy = UdpProxy::start(relay.addr(), Faults::default(), 12).await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let agent_a = agent("A", &a, through(&proxy, &relay), &tx);
    next(&mut events, "A to connect", |e| {
        matches!(e, Event::Settled(_)).then_some(())
    })
    .await;

    // The relay goes away without a word reaching A (its goodbye is lost, as with kill -9),
    // and comes back on the same port from the same data directory.
    proxy.cut(true);
    let addrs = relay.stop().await;
    relay.resume(addrs).await;
    let back = Instant::now();
    proxy.cut(false);

    let (reset, wait, error) = next(&mut events, "A to lose its link", |e| match e {
        Event::Down(_, reset, wait, error) => Some((reset, wait, error)),
        Event::Settled(_) => None,
    })
    .await;
    assert!(reset, "A should be told by a stateless reset, not: {error}");
    // An idle live link learns of the restart at its next keep-alive: well before it would
    // have given the relay up as silent.
    assert!(
        back.elapsed() < LIVE_IDLE_TIMEOUT,
        "the reset should come before the idle timeout"
    );
    assert_eq!(
        wait,
        Duration::ZERO,
        "a reset relay is up: reconnect at once"
    );
    next(&mut events, "A to reconnect", |e| {
        matches!(e, Event::Settled(_)).then_some(())
    })
    .await;

    // And A is live again: what B publishes reaches it.
    let id = b.create("Halle de Sancoins", "Charpente.");
    b.sync(&relay).await;
    crate::harness::wait_until(a.store(), "B's resource at A", || {
        a.replica.get(&id).is_ok()
    })
    .await;
    agent_a.shutdown().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offices_editing_through_a_lossy_link_cut_for_a_while_converge_with_nothing_lost() {
    let relay = TestRelay::start().await;
    // About 30 % of datagrams, either way, lost or held back (and so reordered).
    let lossy = Faults {
        drop: 0.1,
        delay: 0.2,
        max_delay: Duration::from_millis(40),
        ..Faults::default()
    };
    let proxy = UdpProxy::start(relay.addr(), lossy, 13).await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let shared = a.create("Maison commune", "Pierre.");
    a.sync(&relay).await;
    b.sync(&relay).await;

    let (tx, mut events) = mpsc::unbounded_channel();
    let agent_a = agent("A", &a, through(&proxy, &relay), &tx);
    let agent_b = agent("B", &b, through(&proxy, &relay), &tx);
    let mut connected = BTreeSet::new();
    while connected.len() < 2 {
        let name = next(&mut events, "both agents to connect", |e| match e {
            Event::Settled(name) => Some(name),
            Event::Down(..) => None,
        })
        .await;
        connected.insert(name);
    }

    // Both edit through the lossy link: new resources, and the same description.
    let append = |o: &Office, text: &str| {
        o.edit(
            &shared,
            Edit::Append {
                field: "description".into(),
                text: text.into(),
            },
        )
    };
    let mut made: Vec<DocumentId> = Vec::new();
    for i in 0..4 {
        made.push(a.create(&format!("Lavoir {i}"), "Granit."));
        made.push(b.create(&format!("Moulin {i}"), "Bois."));
    }
    append(&a, " Toit de lauze.");
    append(&b, " Porche.");

    // The link is cut for a while: both keep editing, and both notice it is down.
    proxy.cut(true);
    for i in 0..3 {
        made.push(a.create(&format!("Grange {i}"), "Torchis."));
        made.push(b.create(&format!("Four {i}"), "Brique."));
    }
    append(&a, " Enduit à la chaux.");
    append(&b, " Cadran solaire.");
    let mut down = BTreeSet::new();
    while down.len() < 2 {
        let name = next(&mut events, "both agents to notice the cut", |e| match e {
            Event::Down(name, ..) => Some(name),
            Event::Settled(_) => None,
        })
        .await;
        down.insert(name);
    }
    proxy.cut(false);

    // Healed (still lossy): every edit of each side is on both, and the corpora are equal.
    let description = |o: &Office| o.replica.get(&shared).unwrap().resource.description;
    let complete = |o: &Office| {
        made.iter().all(|id| o.replica.get(id).is_ok())
            && [
                " Toit de lauze.",
                " Porche.",
                " Enduit à la chaux.",
                " Cadran solaire.",
            ]
            .iter()
            .all(|t| description(o).contains(t))
    };
    wait_both(&a, &b, "every edit on both sides", || {
        complete(&a) && complete(&b) && corpus(a.store()) == corpus(b.store())
    })
    .await;
    let stats = proxy.stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::SeqCst);
    assert!(count(&stats.dropped) > 0 && count(&stats.delayed) > 0 && count(&stats.cut) > 0);
    agent_a.shutdown().await;
    agent_b.shutdown().await;
    relay.shutdown().await;
}

/// What the hostile peer tries to make the relay take: well above one connection's bound, so
/// a relay that kept reading it would show.
const FLOOD_BYTES: usize = 160 * 1024 * 1024;

/// How long a write of the hostile peer may stay blocked before it counts as refused: the
/// relay has stopped reading it (a slow machine only makes that happen sooner).
const FLOOD_BLOCKED: Duration = Duration::from_secs(2);

/// The relay is in process, so its memory is measured by what it accepted: everything a
/// connection holds comes from the bytes read on it, and the session's queue for a peer that
/// does not read is bounded by core's `MAX_QUEUED_*` (unit-tested in `core/src/sync.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_floods_work_and_never_reads_is_read_no_further_than_its_bound() {
    let relay = TestRelay::start().await;
    let honest = Office::enrolled("caue-63", &relay, false).await;
    let hostile = Office::enrolled("caue-15", &relay, false).await;
    // A corpus on the relay, so that every random summary costs it a real answer.
    for i in 0..200 {
        honest.create(&format!("Chapelle {i}"), "Granit.");
    }
    honest.sync(&relay).await;

    let opened = timeout(
        WAIT,
        client::open(&hostile.identity(), relay.addr(), &relay.fingerprint()),
    )
    .await
    .unwrap()
    .unwrap();
    let mut stream = opened.stream;
    let flood = async move {
        let mut rng = StdRng::seed_from_u64(2);
        let mut sent = 0;
        while sent < FLOOD_BYTES {
            let frame = if rng.gen_ratio(1, 8) {
                let digests = (0..BUCKETS).map(|_| rng.gen()).collect();
                Message::Summary { round: 1, digests }
            } else {
                let ids = (0..WANT_BATCH).map(|_| rng.gen()).collect();
                Message::Want { ids }
            };
            let frame = frame.encode();
            match timeout(FLOOD_BLOCKED, stream.send(&frame)).await {
                Ok(Ok(())) => sent += frame.len(),
                Ok(Err(e)) => panic!("the relay should stop reading, not fail: {e}"),
                Err(_) => break,
            }
        }
        (sent, stream)
    };
    // Meanwhile another office edits and syncs as usual.
    let syncs = async {
        for i in 0..3 {
            let id = honest.create(&format!("Croix {i}"), "Basalte.");
            honest.sync(&relay).await;
            assert!(relay.store().card_json(&id).unwrap().is_some());
        }
    };
    let ((sent, _stream), ()) = tokio::join!(flood, syncs);
    assert!(
        sent < MAX_CONNECTION_MEMORY,
        "the relay took {} MiB of work from a peer that never reads (bound {} MiB)",
        sent >> 20,
        MAX_CONNECTION_MEMORY >> 20
    );
    opened.connection.close(0u32.into(), b"done");
    relay.shutdown().await;
}

/// Half-open handshakes in the flood: twice the relay's cap in the test below, so that today's
/// code (every Initial holds a slot until the handshake timeout) would be full.
const FLOOD: usize = 16;

/// The relay's cap in the flood test: small, so that a bounded flood would fill it.
const FLOOD_TEST_MAX_CONNECTIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_half_open_handshakes_does_not_keep_enrolled_offices_out() {
    let relay = TestRelay::start_with_max_connections(FLOOD_TEST_MAX_CONNECTIONS).await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    a.create("Maison en pisé", "Pendant l'attaque.");
    // Clients whose handshakes never complete: the proxy drops every answer, as a spoofed
    // source never sees them. Each has its own address, so the relay sees sixteen clients.
    let silent = Faults {
        drop_replies: true,
        ..Faults::default()
    };
    let proxy = UdpProxy::start(relay.addr(), silent, 14).await;
    let flooder = Identity::generate().unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let endpoint = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let (identity, fingerprint, to) = (flooder.clone(), relay.fingerprint(), proxy.addr());
        flood.spawn(async move {
            let _ = transport::connect(&endpoint, &identity, to, &fingerprint).await;
            endpoint
        });
    }
    // Every flood Initial has been dealt with (slot taken, Retry or refusal) before the
    // offices' first packet reaches the relay.
    proxy.wait_answered(FLOOD as u64).await;

    a.converge(&relay).await.close();
    b.converge(&relay).await.close();
    assert_eq!(b.titles(), ["Maison en pisé"]);
    // The flood is still there, none of it got through.
    assert!(flood.try_join_next().is_none(), "a flood handshake ended");
    assert!(
        proxy
            .stats()
            .dropped
            .load(std::sync::atomic::Ordering::SeqCst)
            >= FLOOD as u64
    );
    flood.abort_all();
    // Dropped rather than shut down: a graceful shutdown waits ~3 s for the half-open
    // handshakes it closed to drain, which the silent flood never acknowledges.
    drop(relay);
}
