//! What a whole relay refuses, over real QUIC on loopback: missing, unknown and revoked
//! certificates, reused, expired and revoked tokens, a wrong ALPN, oversize and garbage
//! frames, a hostile Automerge sync message, a spoofed automerge-repo sender on the WebSocket,
//! and writes from a read-only office. After each, a legitimate office still syncs.
//!
//! The relay crate's own tests cover each refusal against a stub handler; these check the
//! assembled relay, with the sync engine behind the handshake.

use std::collections::BTreeMap;
use std::sync::Arc;

use atelier_core::document::Edit;
use atelier_core::store::{keys, Batch, HeadsHash, MAX_DOCUMENT_BYTES};
use atelier_core::sync::{DocBytes, Message, Refusal};
use atelier_core::DocumentId;
use atelier_relay::client::{self, ClientError};
use atelier_relay::framing::FramedStream;
use atelier_relay::handshake::{ClientHandshake, CloseCode};
use atelier_relay::identity::TLS_NAME;
use atelier_relay::transport;
use automerge::transaction::Transactable;
use quinn::{Connection, ConnectionError, TransportErrorCode};
use rand::rngs::OsRng;
use serde_json::json;
use tokio::time::timeout;

use crate::harness::{atelier_async, corpus, edit_doc, Office, SyncFailed, TestRelay, WAIT};

/// A relay with one legitimate office that has synced once.
struct Fixture {
    relay: TestRelay,
    legit: Office,
}

impl Fixture {
    async fn start() -> Self {
        let relay = TestRelay::start().await;
        let legit = Office::enrolled("caue-63", &relay, false).await;
        legit.create("Maison du Parc", "Basalte.");
        legit.sync(&relay).await;
        Self { relay, legit }
    }

    /// The legitimate office adds a resource and syncs; the relay has it after.
    async fn legit_still_syncs(&self, title: &str) {
        let id = self.legit.create(title, "Toujours là.");
        let stats = self.legit.sync(&self.relay).await;
        assert!(stats.docs_sent >= 1, "{stats:?}");
        assert!(self.relay.store().contains(&id).unwrap());
        assert_eq!(corpus(self.relay.store()), corpus(self.legit.store()));
    }
}

fn refused_because(result: Result<impl std::fmt::Debug, SyncFailed>, words: &str) {
    match result {
        Err(SyncFailed::Connect(ClientError::Refused { reason })) => {
            assert!(
                reason.contains(words),
                "refused for {reason:?}, not {words:?}"
            )
        }
        other => panic!("expected a refusal ({words}), got {other:?}"),
    }
}

fn enrol_refused_because(result: Result<client::Enrolled, ClientError>, words: &str) {
    match result {
        Err(ClientError::Refused { reason }) => {
            assert!(
                reason.contains(words),
                "refused for {reason:?}, not {words:?}"
            )
        }
        other => panic!("expected a refusal ({words}), got {other:?}"),
    }
}

/// How the server closed a connection: our close code and reason, or a TLS alert.
async fn closed_by_relay(connection: &Connection) -> ConnectionError {
    timeout(WAIT, connection.closed())
        .await
        .expect("the relay did not close the connection")
}

fn app_close(e: &ConnectionError) -> (Option<CloseCode>, String) {
    match e {
        ConnectionError::ApplicationClosed(close) => (
            CloseCode::from_code(close.error_code),
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_unknown_and_wrong_protocol_clients_are_refused() {
    let f = Fixture::start().await;

    // A certificate the relay never enrolled.
    let stranger = Office::new("caue-15");
    refused_because(
        stranger
            .sync_with(f.relay.addr(), &f.relay.fingerprint())
            .await,
        "not enrolled",
    );

    // No certificate at all: TLS ends with certificate_required (alert 116).
    let error = anonymous_connect(&f.relay, b"atelier-sync/1").await;
    assert_eq!(error, TransportErrorCode::crypto(116), "no certificate");

    // Another application protocol: no_application_protocol (alert 120).
    let error = anonymous_connect(&f.relay, b"h3").await;
    assert_eq!(error, TransportErrorCode::crypto(120), "wrong ALPN");

    f.legit_still_syncs("Après les inconnus").await;
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_office_reused_and_expired_tokens_are_refused() {
    let f = Fixture::start().await;
    let access = f.relay.access();
    let now = time::OffsetDateTime::now_utc();

    // A token spent by one device is refused to another; its own device may retry.
    let token = f.relay.invite("caue-15", false);
    let x = Office::new("caue-15");
    let y = Office::new("caue-15");
    let (addr, fp) = (f.relay.addr(), f.relay.fingerprint());
    client::enrol(&x.identity(), addr, &fp, &token)
        .await
        .unwrap();
    client::enrol(&x.identity(), addr, &fp, &token)
        .await
        .unwrap();
    enrol_refused_because(
        client::enrol(&y.identity(), addr, &fp, &token).await,
        "token already used",
    );

    // A token whose lifetime is over.
    let expired = access
        .update(|r| {
            let issued = now - time::Duration::hours(2);
            r.invite(
                &mut OsRng,
                "caue-15",
                false,
                time::Duration::hours(1),
                issued,
            )
        })
        .unwrap();
    enrol_refused_because(
        client::enrol(&y.identity(), addr, &fp, &expired).await,
        "token expired",
    );

    // Revoking an office cuts its devices and its pending tokens.
    x.sync(&f.relay).await;
    let pending = f.relay.invite("caue-15", false);
    let revoked = access.update(|r| r.revoke_office("caue-15")).unwrap();
    // The device, the pending token and the expired one.
    assert_eq!((revoked.devices, revoked.invites), (1, 2));
    refused_because(x.sync_with(addr, &fp).await, "revoked");
    enrol_refused_because(
        client::enrol(&y.identity(), addr, &fp, &pending).await,
        "token revoked",
    );

    f.legit_still_syncs("Après les révocations").await;
    f.relay.shutdown().await;
}

/// A connection past `Hello`, on which the test writes raw bytes.
async fn authenticated_stream(f: &Fixture, who: &Office) -> (Connection, FramedStream) {
    timeout(
        WAIT,
        client::open(&who.identity(), f.relay.addr(), &f.relay.fingerprint()),
    )
    .await
    .unwrap()
    .map(|o| (o.connection, o.stream))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversize_garbage_and_hostile_frames_close_only_that_connection() {
    let f = Fixture::start().await;
    let mallory = Office::enrolled("caue-15", &f.relay, false).await;
    let target = *corpus(f.relay.store()).keys().next().unwrap();

    // Before the handshake: bytes that are not a frame ("GET " read as a length is ~1.2 GB).
    let endpoint = transport::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = transport::connect(
        &endpoint,
        &mallory.identity(),
        f.relay.addr(),
        &f.relay.fingerprint(),
    )
    .await
    .unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let (code, reason) = app_close(&closed_by_relay(&connection).await);
    assert_eq!(code, Some(CloseCode::Protocol), "{reason}");

    // After `Hello`: a frame header announcing 4 GiB (the sync handler reads it, and fails).
    let (connection, mut stream) = authenticated_stream(&f, &mallory).await;
    stream.send.write_all(&[0xff; 4]).await.unwrap();
    let (code, reason) = app_close(&closed_by_relay(&connection).await);
    assert_eq!(code, Some(CloseCode::HandlerFailed));
    assert!(reason.contains("exceeds the limit"), "{reason}");

    // A well-sized frame of garbage.
    let (connection, mut stream) = authenticated_stream(&f, &mallory).await;
    stream
        .send(b"\x07 ceci n'est pas un message")
        .await
        .unwrap();
    let (code, reason) = app_close(&closed_by_relay(&connection).await);
    assert_eq!(code, Some(CloseCode::HandlerFailed));
    assert!(reason.contains("malformed"), "{reason}");

    // A second handshake where sync frames are expected.
    let (connection, mut stream) = authenticated_stream(&f, &mallory).await;
    stream
        .send(&ClientHandshake::Hello.encode().unwrap())
        .await
        .unwrap();
    assert_eq!(
        app_close(&closed_by_relay(&connection).await).0,
        Some(CloseCode::HandlerFailed)
    );

    // design/SYNC.md's hostile input 1: a Bloom filter with 0 bits per entry, which would make
    // Automerge 0.12 panic on the next message it generates for that document.
    let hostile = Message::Sync {
        msgs: vec![DocBytes {
            id: *target.as_bytes(),
            bytes: vec![0x42, 0x00, 0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00],
        }],
    };
    // It costs that document only: the relay leaves it out of the session and answers
    // "nothing more" about it, and the connection stays open.
    let (connection, mut stream) = authenticated_stream(&f, &mallory).await;
    stream.send(&hostile.encode()).await.unwrap();
    let answer = timeout(WAIT, stream.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        Message::decode(&answer).unwrap(),
        Message::Sync {
            msgs: vec![DocBytes {
                id: *target.as_bytes(),
                bytes: Vec::new(),
            }],
        }
    );
    assert!(connection.close_reason().is_none());
    connection.close(CloseCode::Done.code(), b"done");

    // Mallory itself may still sync properly; so may everybody else.
    mallory.sync(&f.relay).await;
    f.legit_still_syncs("Après les trames hostiles").await;
    f.relay.shutdown().await;
}

/// Random bytes, which no column compression shrinks.
fn noise(len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(13).fill_bytes(&mut bytes);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_document_on_the_relay_is_skipped_and_reported_while_the_rest_syncs() {
    let mut f = Fixture::start().await;
    // Past the cap, as a relay of an older version (which checked sizes before writing) could
    // hold it: written through its key-value store, then the relay restarted to read it.
    let huge = DocumentId::derived("trop gros pour être synchronisé");
    let mut doc = atelier_core::store::new_doc();
    doc.put(automerge::ROOT, "blob", noise(MAX_DOCUMENT_BYTES + 1024))
        .unwrap();
    let mut batch = Batch::default();
    batch.put(keys::chunk_key(&huge, 0), doc.save());
    let heads = HeadsHash::of(&doc.get_heads());
    batch.put(keys::heads_key(&huge), heads.0.to_vec());
    f.relay.store().kv().apply(batch).unwrap();
    f.relay.restart().await;

    // An office's sync converges for everything else and names the document it left out.
    let id = f
        .legit
        .create("Après le document trop gros", "Synchronisée.");
    let stats = f.legit.sync(&f.relay).await;
    assert!(stats.settled, "{stats:?}");
    assert_eq!(stats.skipped, BTreeMap::from([(huge, Refusal::ByPeer)]));
    assert!(f.relay.store().contains(&id).unwrap());
    let mut held = corpus(f.relay.store());
    assert!(held.remove(&huge).is_some());
    assert_eq!(held, corpus(f.legit.store()));

    // `atelier sync` on a fresh replica: exit 0, everything else received, and `atelier
    // status` says which document was left out and why.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("caue-15");
    let (url, fp) = (
        format!("quic://{}", f.relay.addr()),
        f.relay.fingerprint().to_string(),
    );
    let token = f.relay.invite("caue-15", false);
    atelier_async(&dir, &["init", "--office", "caue-15"])
        .await
        .ok();
    atelier_async(
        &dir,
        &["join", &url, "--fingerprint", &fp, "--token", &token],
    )
    .await
    .ok();
    atelier_async(&dir, &["sync"]).await.ok();
    let status = atelier_async(&dir, &["status"]).await.ok().stdout;
    assert!(
        status.contains(&huge.to_string()) && status.contains("refusé par l'autre côté"),
        "{status}"
    );
    let status = atelier_async(&dir, &["status", "--json"]).await.ok().json();
    assert_eq!(status["refused"][0]["id"], json!(huge.url()));
    assert_eq!(status["refused"][0]["reason"]["kind"], json!("by_peer"));
    let listed = atelier_async(&dir, &["list", "--json"]).await.ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoofed_websocket_sender_is_cut_off_by_the_relay() {
    let f = Fixture::start().await;
    let id = f.legit.replica.list(&Default::default()).unwrap()[0].id;
    let token = f.relay.ws_token("caue-63", false);
    let out = edit_doc(
        &f.relay.ws_url(),
        &token,
        &id.url(),
        ("description", "usurpé"),
        "caue-63/node",
        &[("ATELIER_SPOOF_SENDER", "caue-15/quelquun-dautre")],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("senderId"), "{stderr}");
    let stored = atelier_core::document::read(&f.relay.store().load(&id).unwrap().unwrap())
        .unwrap()
        .resource;
    assert_eq!(stored.description, "Basalte.");

    f.legit_still_syncs("Après l'usurpation").await;
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_office_receives_but_its_edits_reach_nobody() {
    let f = Fixture::start().await;
    let reader = Office::enrolled("caue-43", &f.relay, true).await;
    reader.sync(&f.relay).await;
    assert_eq!(reader.titles(), ["Maison du Parc"]);
    let shared = reader.replica.list(&Default::default()).unwrap()[0].id;

    // Offline edits on the read-only device, then a sync: the relay ignores them.
    reader.edit(
        &shared,
        Edit::Set {
            field: "title".into(),
            value: json!("Titre du lecteur"),
        },
    );
    reader.create("Ressource du lecteur", "Jamais publiée.");
    let before = corpus(f.relay.store());
    // The device knows from the relay's welcome that it is read-only: it pulls, offers
    // nothing, and its sync ends as soon as it holds everything the relay holds.
    let stats = reader.sync(&f.relay).await;
    assert!(stats.settled, "{stats:?}");
    // Two resources, plus the catalog shards that list them.
    assert!(stats.unpublished >= 2, "{stats:?}");
    assert_eq!(stats.docs_sent, 0, "{stats:?}");
    assert_eq!(corpus(f.relay.store()), before);

    // Its local edits stay local, and what others publish still reaches it.
    f.legit.edit(
        &shared,
        Edit::Set {
            field: "summary".into(),
            value: json!("Résumé de l'office"),
        },
    );
    f.legit.sync(&f.relay).await;
    let stats = reader.sync(&f.relay).await;
    assert!(stats.settled && stats.docs_received >= 1, "{stats:?}");
    let mine = reader.replica.get(&shared).unwrap().resource;
    assert_eq!(mine.title, "Titre du lecteur");
    // `atelier status` keeps listing them as not on the relay.
    let unsynced: Vec<_> = reader.replica.unsynced().unwrap();
    assert!(unsynced.iter().any(|(id, _)| *id == shared), "{unsynced:?}");
    assert!(stats.unpublished_ids.contains(&shared), "{stats:?}");
    assert_eq!(mine.summary, "Résumé de l'office");
    assert!(reader.titles().iter().any(|t| t == "Ressource du lecteur"));

    f.legit_still_syncs("Après la lecture seule").await;
    assert!(!f.legit.titles().iter().any(|t| t.contains("lecteur")));
    let title = f.legit.replica.get(&shared).unwrap().resource.title;
    assert_eq!(title, "Maison du Parc");
    f.relay.shutdown().await;
}

/// Connects without a client certificate, with `alpn`, and returns the TLS alert the relay
/// closed the connection with.
async fn anonymous_connect(relay: &TestRelay, alpn: &[u8]) -> TransportErrorCode {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint
        .connect_with(anonymous_client(relay, alpn), relay.addr(), TLS_NAME)
        .unwrap();
    // TLS 1.3 clients finish their side before the server checks their certificate: the
    // refusal may come as a failed handshake or as a close right after it.
    let error = match timeout(WAIT, connecting).await.unwrap() {
        Ok(connection) => closed_by_relay(&connection).await,
        Err(e) => e,
    };
    match error {
        ConnectionError::ConnectionClosed(close) => close.error_code,
        other => panic!("expected a TLS alert, got {other:?}"),
    }
}

/// A QUIC client that offers no certificate and trusts the relay's own: its self-signed
/// certificate is the one trust anchor, so rustls' standard verifier accepts it (and only it).
fn anonymous_client(relay: &TestRelay, alpn: &[u8]) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(relay.identity().certificate().clone()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ))
}
