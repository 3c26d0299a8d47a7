//! A running relay's access registry over real QUIC and WebSocket on loopback: revoking an
//! office from another process cuts its live sessions, WebSocket tokens expire and are revoked
//! one by one, and a flood of bad tokens neither reads `access.json` nor keeps a valid client
//! out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use atelier_core::sync::{Role, Session};
use atelier_relay::access::AccessStore;
use atelier_relay::client;
use atelier_relay::handshake::CloseCode;
use atelier_relay::live_access::{ACCESS_POLL_INTERVAL, REVOKED_REASON};
use atelier_relay::sync_conn::{drive, LiveChanges, Mode};
use quinn::ConnectionError;
use rand::rngs::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::harness::{samod, Office, TestRelay, WAIT};

/// How soon a revocation must reach live sessions: a few polls of the registry, with room for
/// a loaded 2-core machine. The promise to staff is "a second or two".
const REVOCATION_WAIT: Duration = Duration::from_secs(10);

/// The status of a WebSocket upgrade request to the relay with `token` (101 when accepted).
async fn upgrade_status(addr: SocketAddr, token: &str) -> u16 {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /?token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line")
    };
    timeout(WAIT, exchange)
        .await
        .expect("upgrade answer in time")
}

/// Waits (bounded) until `check` holds, looking again at every registry poll.
async fn eventually(what: &str, bound: Duration, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(ACCESS_POLL_INTERVAL / 5).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_an_office_cuts_its_live_quic_and_websocket_sessions() {
    let relay = TestRelay::start().await;
    let revoked = Office::enrolled("caue-15", &relay, false).await;
    let kept = Office::enrolled("caue-63", &relay, false).await;
    let id = revoked.create("Halle de Saint-Flour", "Basalte.");
    revoked.sync(&relay).await;
    kept.sync(&relay).await;

    // caue-15's live QUIC session, as `atelier sync --watch` runs it, and caue-63's.
    let mut live = tokio::task::JoinSet::new();
    let mut connections = Vec::new();
    for office in [&revoked, &kept] {
        let store = office.store().clone();
        let rx = LiveChanges::attach(&store).subscribe();
        let opened = client::open(&office.identity(), relay.addr(), &relay.fingerprint())
            .await
            .unwrap();
        connections.push(opened.connection.clone());
        let mut session = Session::new(store, Role::Initiator);
        session.start().unwrap();
        live.spawn(async move {
            let _ = drive(session, opened.stream, Mode::Live(rx), |_| {}).await;
        });
    }
    // caue-15's browser, on the automerge-repo WebSocket (samod), holding the resource.
    let token = relay.ws_token("caue-15", false);
    let (repo, _) = samod::dial(&relay, &token, "caue-15/navigateur").await;
    samod::find(&repo, &id).await;
    let access = relay.handle().access().clone();
    eventually("three live sessions", WAIT, || access.live_sessions() == 3).await;

    // `atelier-relay revoke --office caue-15` runs in another process: its own store.
    AccessStore::new(relay.dir.path())
        .update(|r| r.revoke_office("caue-15"))
        .unwrap();
    let took = eventually("the revoked sessions closed", REVOCATION_WAIT, || {
        access.live_sessions() == 1 && connections[0].close_reason().is_some()
    })
    .await;
    eprintln!("revocation reached the live sessions in {took:?}");
    match connections[0].close_reason() {
        Some(ConnectionError::ApplicationClosed(close)) => {
            assert_eq!(
                CloseCode::from_code(close.error_code),
                Some(CloseCode::Refused)
            );
            assert_eq!(&close.reason[..], REVOKED_REASON.as_bytes());
        }
        other => panic!("expected the relay's close, got {other:?}"),
    }
    // The WebSocket cannot come back with the revoked token; the other office lives on.
    assert_eq!(upgrade_status(relay.handle().ws_addr(), &token).await, 401);
    assert!(connections[1].close_reason().is_none());
    kept.create("Toujours synchronisé", "Oui.");
    kept.sync(&relay).await;

    repo.stop().await;
    relay.shutdown().await;
    timeout(WAIT, async { while live.join_next().await.is_some() {} })
        .await
        .expect("live sessions end with the relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_and_revoked_tokens_are_refused_and_others_still_work() {
    let relay = TestRelay::start().await;
    let ws = relay.handle().ws_addr();
    let now = time::OffsetDateTime::now_utc();
    let store = relay.access();
    // Issued two hours ago for one hour: expired.
    let expired = store
        .update(|r| {
            r.issue_ws_token(
                &mut OsRng,
                "caue-15",
                false,
                time::Duration::hours(1),
                now - time::Duration::hours(2),
            )
        })
        .unwrap();
    let first = relay.ws_token("caue-15", false);
    let second = relay.ws_token("caue-15", false);
    let access = relay.handle().access().clone();
    eventually("the new tokens known to the relay", WAIT, || {
        access.registry().ws_tokens().count() == 3
    })
    .await;
    assert_eq!(upgrade_status(ws, &expired).await, 401);
    assert_eq!(upgrade_status(ws, &first).await, 101);

    // `atelier-relay revoke --token <id>`: one token only.
    let id = store
        .read(|r| r.authorize_ws_token(&first, now).unwrap().id)
        .unwrap();
    store.update(|r| r.revoke_ws_token(&id)).unwrap();
    eventually("the revocation known to the relay", REVOCATION_WAIT, || {
        access.registry().authorize_ws_token(&first, now).is_err()
    })
    .await;
    assert_eq!(upgrade_status(ws, &first).await, 401);
    let (repo, _) = samod::dial(&relay, &second, "caue-15/autre").await;
    repo.stop().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_token_flood_reads_nothing_and_a_valid_client_still_connects() {
    /// Upgrade attempts with bad tokens, in waves of [`CONCURRENT`].
    const ATTEMPTS: usize = 400;
    const CONCURRENT: usize = 40;
    let relay = TestRelay::start().await;
    let token = relay.ws_token("caue-63", false);
    let access = relay.handle().access().clone();
    eventually("the token known to the relay", WAIT, || {
        access.registry().ws_tokens().count() == 1
    })
    .await;
    let ws = relay.handle().ws_addr();
    let loads = access.store().loads();
    let start = Instant::now();
    for wave in 0..ATTEMPTS / CONCURRENT {
        let mut attempts = tokio::task::JoinSet::new();
        for n in 0..CONCURRENT {
            let bad = format!("{:064x}", wave * CONCURRENT + n);
            attempts.spawn(async move { upgrade_status(ws, &bad).await });
        }
        while let Some(status) = attempts.join_next().await {
            assert_eq!(status.unwrap(), 401);
        }
    }
    eprintln!(
        "{ATTEMPTS} bad-token upgrades refused in {:?}",
        start.elapsed()
    );
    // The relay's access poll may still be taking in the token's write (it and the harness
    // both notice it; each reads the file once): at most that one read, never one per attempt.
    let reads = access.store().loads() - loads;
    assert!(
        reads <= 1,
        "{reads} reads of access.json during {ATTEMPTS} token checks"
    );
    let (repo, _) = samod::dial(&relay, &token, "caue-63/navigateur").await;
    repo.stop().await;
    relay.shutdown().await;
}
