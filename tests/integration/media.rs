//! Media sync end to end over real QUIC on loopback: photos added in one office reach another
//! byte-identical through a whole relay, per the media policy, resuming a cut transfer, never
//! served corrupt, refused from a read-only device, and live while an agent runs.

use atelier_core::clock::now_ms;
use atelier_core::media::store::MediaStore;
use atelier_core::media::{BlobHash, BlobRef, MediaPolicy, Tier};
use atelier_core::replica::NewMedia;
use atelier_core::DocumentId;
use atelier_relay::agent::{AgentHooks, SyncAgent};
use atelier_relay::media_sync::{MediaReport, MediaTransfer};
use atelier_relay::sync_conn::LiveChanges;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::harness::{atelier_async as cli, Office, TestRelay, WAIT};

/// A deterministic noisy JPEG (noise keeps it from compressing to nothing: several chunks).
fn photo(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let img = image::RgbImage::from_fn(w, h, |i, j| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = (x >> 24) as u8;
        image::Rgb([((i * 255 / w) as u8) ^ (n / 4), (j * 255 / h) as u8, n])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&img)
        .unwrap();
    out
}

/// Adds one photo per seed to `id` in `office`; returns the resource's blobs.
fn add_photos(office: &Office, id: &DocumentId, seeds: &[u32]) -> Vec<BlobRef> {
    let files = seeds
        .iter()
        .map(|&s| NewMedia {
            name: format!("photo-{s}.jpg"),
            bytes: photo(s, 900, 700),
            credit: Some("© CAUE".into()),
            alt: Some("Façade en pisé".into()),
            ..Default::default()
        })
        .collect();
    office.replica.add_media(id, files, now_ms()).unwrap();
    office.replica.listing(id).unwrap().unwrap().media
}

/// The relay's blobs, as kept on its disk by default.
fn relay_media(relay: &TestRelay) -> MediaStore {
    MediaStore::new(relay.dir.path().join("media"))
}

fn assert_identical(from: &Office, to: &Office, blobs: &[BlobRef]) {
    for b in blobs {
        let want = from.replica.media_store().read(&b.hash).unwrap().unwrap();
        let got = to.replica.media_store().read(&b.hash).unwrap();
        assert_eq!(
            got.as_ref(),
            Some(&want),
            "{:?} {:?} differs",
            b.tier,
            b.hash
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photos_added_in_one_office_reach_another_byte_identical() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let id = a.create("École de Thiers", "Pisé.");
    let blobs = add_photos(&a, &id, &[1, 2]);
    assert_eq!(
        blobs.len(),
        6,
        "two photos: originals, display sizes, thumbnails"
    );

    let up = a.sync_media(&relay).await;
    assert_eq!((up.sent, up.already_there), (6, 0), "{up:?}");
    assert!(up.complete(), "{up:?}");
    assert!(a.replica.media_outbox().unwrap().is_empty());
    for x in &blobs {
        assert!(relay_media(&relay).contains(&x.hash), "relay lacks {x:?}");
    }

    let down = b.sync_media(&relay).await;
    assert_eq!(down.received, 6, "{down:?}");
    assert_eq!(
        down.received_bytes,
        blobs.iter().map(|x| x.bytes).sum::<u64>()
    );
    assert_identical(&a, &b, &blobs);
    assert_eq!(b.replica.media_status().unwrap().to_receive, 0);

    // A no-op resync: nothing missing, nothing queued; one small stream asks whether the
    // relay lost any blob, and that is all.
    for office in [&a, &b] {
        let converged = office.converge(&relay).await;
        let before = converged.connection.stats();
        let report = MediaTransfer::new(converged.connection.clone(), office.replica.clone())
            .run()
            .await
            .unwrap();
        assert_eq!(report, MediaReport::default());
        let after = converged.connection.stats();
        assert!(
            after.frame_tx.stream - before.frame_tx.stream <= 2,
            "{before:?} {after:?}"
        );
        let sent = after.udp_tx.bytes - before.udp_tx.bytes;
        let received = after.udp_rx.bytes - before.udp_rx.bytes;
        assert!(
            sent + received < 1_000,
            "a no-op media pass cost {sent} + {received} bytes"
        );
        converged.close();
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_vignettes_policy_leaves_originals_on_the_relay() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    b.replica.set_media_policy(&MediaPolicy::Vignettes).unwrap();
    let id = a.create("Halle", "Charpente.");
    let blobs = add_photos(&a, &id, &[3]);
    a.sync_media(&relay).await;

    let down = b.sync_media(&relay).await;
    assert_eq!(down.received, 2, "{down:?}");
    for x in &blobs {
        let here = b.replica.media_store().contains(&x.hash);
        assert_eq!(here, x.tier != Tier::Original, "{x:?}");
    }
    assert_eq!(b.replica.media_status().unwrap().to_receive, 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_cut_mid_blob_resumes_from_the_partial_offset() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let id = a.create("Moulinage", "Soie.");
    let blobs = add_photos(&a, &id, &[4]);
    a.sync_media(&relay).await;
    let total: u64 = blobs.iter().map(|x| x.bytes).sum();
    // Mid-way, and not on a chunk boundary.
    let budget = total / 2 + 12_345;

    let first = b.media_with(&relay, |t| t.byte_budget(budget)).await;
    assert!(first.cut, "{first:?}");
    assert_eq!(first.received_bytes, budget);
    let store = b.replica.media_store();
    let mut kept = 0;
    let mut partial = false;
    for x in &blobs {
        if store.contains(&x.hash) {
            kept += x.bytes;
        } else {
            let offset = store.receive(&x.hash, x.bytes).unwrap().offset();
            partial |= offset > 0;
            kept += offset;
        }
    }
    assert_eq!(kept, budget, "every byte received is kept");
    assert!(partial, "one blob was cut mid-way");

    let second = b.sync_media(&relay).await;
    assert!(second.complete(), "{second:?}");
    assert_eq!(
        second.received_bytes,
        total - budget,
        "only the rest was sent"
    );
    assert_identical(&a, &b, &blobs);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_blob_on_the_relay_is_not_served_and_the_rest_still_arrives() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let id = a.create("Grange", "Bois.");
    let blobs = add_photos(&a, &id, &[5]);
    a.sync_media(&relay).await;
    let thumb = blobs.iter().find(|x| x.tier == Tier::Thumb).unwrap().hash;
    let path = relay_media(&relay).path(&thumb);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let down = b.sync_media(&relay).await;
    assert_eq!((down.received, down.not_there), (2, 1), "{down:?}");
    assert!(!b.replica.media_store().contains(&thumb));
    assert!(
        !relay_media(&relay).contains(&thumb),
        "the relay drops a blob that fails verification"
    );

    // The relay asks for it back; the office that made it sends it again; then it arrives.
    assert_eq!(a.sync_media(&relay).await.sent, 1);
    assert_eq!(a.sync_media(&relay).await.sent, 0, "asked back once only");
    let again = b.sync_media(&relay).await;
    assert_eq!(again.received, 1, "{again:?}");
    assert_identical(&a, &b, &blobs);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_device_does_not_upload_and_the_relay_refuses_if_it_tries() {
    let relay = TestRelay::start().await;
    let r = Office::enrolled("caue-07", &relay, true).await;
    let id = r.create("Note locale", "Brouillon.");
    let blobs = add_photos(&r, &id, &[6]);

    let report = r.sync_media(&relay).await;
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(r.replica.media_outbox().unwrap().len(), 3);

    // A client that sends anyway is refused by the relay.
    let forced = r.media_with(&relay, |t| t.read_only(false)).await;
    assert_eq!(forced.sent, 0, "{forced:?}");
    assert_eq!(forced.refused.len(), 3, "{forced:?}");
    for x in &blobs {
        assert!(!relay_media(&relay).contains(&x.hash));
    }
    assert_eq!(r.replica.media_outbox().unwrap().len(), 3, "still queued");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_photo_added_while_live_reaches_the_other_office() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let (settled_tx, mut settled) = mpsc::unbounded_channel();
    let (blob_tx, mut arrived) = mpsc::unbounded_channel::<BlobHash>();
    let agent = |office: &Office, hooks: AgentHooks| {
        let tx = settled_tx.clone();
        SyncAgent::spawn(
            office.store().clone(),
            LiveChanges::attach(office.store()),
            office.identity(),
            Office::target(&relay),
            hooks.media(office.replica.clone()).on_settled(move |_| {
                let _ = tx.send(());
            }),
        )
    };
    let agent_a = agent(&a, AgentHooks::default());
    let agent_b = agent(
        &b,
        AgentHooks::default().on_blob(move |h| {
            let _ = blob_tx.send(*h);
        }),
    );
    for _ in 0..2 {
        timeout(WAIT, settled.recv())
            .await
            .expect("agents did not connect");
    }

    let id = a.create("Atelier d'artiste", "Verrière.");
    let blobs = add_photos(&a, &id, &[7]);
    let thumb = blobs.iter().find(|x| x.tier == Tier::Thumb).unwrap().hash;
    let waited = timeout(WAIT, async {
        while let Some(h) = arrived.recv().await {
            if h == thumb {
                return;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "B never received the thumbnail");
    assert_identical(&a, &b, &blobs[..1]);
    assert_eq!(blobs[0].tier, Tier::Thumb);
    agent_a.shutdown().await;
    agent_b.shutdown().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_sync_reports_texts_then_media_and_status_counts_what_is_left() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let id = a.create("Maison du Parc", "Basalte.");
    let blobs = add_photos(&a, &id, &[8]);
    a.sync_media(&relay).await;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("caue-15");
    let url = format!("quic://{}", relay.addr());
    let (fp, token) = (
        relay.fingerprint().to_string(),
        relay.invite("caue-15", false),
    );
    assert_eq!(cli(&dir, &["init", "--office", "caue-15"]).await.code, 0);
    let joined = cli(
        &dir,
        &["join", &url, "--fingerprint", &fp, "--token", &token],
    )
    .await;
    assert_eq!(joined.code, 0, "{}", joined.stderr);

    let texts = cli(&dir, &["sync", "--text-only"]).await;
    assert_eq!(texts.code, 0, "{}", texts.stderr);
    assert!(
        texts.stdout.contains("non transférés (--text-only)"),
        "{}",
        texts.stdout
    );
    let status: serde_json::Value =
        serde_json::from_str(&cli(&dir, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["media"]["to_receive"], 3, "{status}");
    let total: u64 = blobs.iter().map(|x| x.bytes).sum();
    assert_eq!(status["media"]["to_receive_bytes"], total);
    let shown = cli(&dir, &["status"]).await.stdout;
    assert!(
        shown.contains("Photos et documents : 3 fichiers à recevoir"),
        "{shown}"
    );

    let synced = cli(&dir, &["sync"]).await;
    assert_eq!(synced.code, 0, "{}", synced.stderr);
    let out = &synced.stdout;
    let texts_at = out.find("Déjà à jour").expect(out);
    let media_at = out
        .find("photos et documents : 3 fichiers reçus")
        .expect(out);
    assert!(texts_at < media_at, "texts are reported first: {out}");
    let shown = cli(&dir, &["status"]).await.stdout;
    assert!(
        shown.contains("Photos et documents : tout est là"),
        "{shown}"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_automerge_repo_client_sees_media_entries_and_fetches_blobs_over_http() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let id = a.create("Préau en chêne", "Charpente.");
    let blobs = add_photos(&a, &id, &[9]);
    a.sync(&relay).await;
    a.sync_media(&relay).await;
    let token = relay.ws_token("caue-15", false);
    let http = format!("http://{}", relay.handle().ws_addr());
    let out = crate::harness::fetch_media(
        &relay.ws_url(),
        &http,
        &token,
        &id.url(),
        "caue-15/navigateur",
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let original = blobs.iter().find(|b| b.tier == Tier::Original).unwrap();
    let thumb = blobs.iter().find(|b| b.tier == Tier::Thumb).unwrap();
    assert_eq!(
        seen["hash"],
        original.hash.to_hex(),
        "the document's media map is keyed by hash"
    );
    assert_eq!(seen["entry"]["credit"], "© CAUE");
    assert_eq!(seen["entry"]["thumb"]["hash"], thumb.hash.to_hex());
    assert_eq!(seen["whole"]["status"], 200);
    assert_eq!(seen["whole"]["etag"], format!("\"{}\"", thumb.hash));
    let body = base64_decode(seen["whole"]["base64"].as_str().unwrap());
    assert_eq!(
        BlobHash::of(&body),
        thumb.hash,
        "the bytes served are the blob"
    );
    assert_eq!(seen["range"]["status"], 206);
    assert_eq!(seen["range"]["length"], 100);
    assert_eq!(
        seen["range"]["contentRange"],
        format!("bytes 0-99/{}", thumb.bytes)
    );
    assert_eq!(seen["unauthorized"], 401);
    relay.shutdown().await;
}

/// Standard base64 (what Node's `Buffer.toString("base64")` writes).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    } as u32;
    let mut out = Vec::new();
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offices_syncing_directly_exchange_photos_and_keep_them_queued_for_the_relay() {
    use atelier_relay::agent::Target;

    let a = Office::new("caue-63");
    let b = Office::new("caue-15");
    let id_a = a.create("Halle", "Bois.");
    let from_a = add_photos(&a, &id_a, &[11]);
    let id_b = b.create("Grange", "Pierre.");
    let from_b = add_photos(&b, &id_b, &[12]);
    // A serves its replica to B, as `atelier serve --allow FP:caue-15` does.
    let served = a.serve_to(&b);
    let peer = Target {
        url: served.local_addr().into(),
        fingerprint: a.identity().fingerprint(),
        is_relay: false,
    };
    let converged = b.converge_to(&peer).await;
    let report = timeout(
        WAIT,
        MediaTransfer::new(converged.connection.clone(), b.replica.clone())
            .to_peer(true)
            .run(),
    )
    .await
    .unwrap()
    .unwrap();
    converged.close();
    assert_eq!((report.received, report.sent), (3, 3), "{report:?}");
    assert_identical(&a, &b, &from_a);
    assert_identical(&b, &a, &from_b);
    // A peer is not the relay: both offices still owe the relay all six blobs.
    assert_eq!(a.replica.media_outbox().unwrap().len(), 6);
    assert_eq!(b.replica.media_outbox().unwrap().len(), 6);
    served.shutdown().await;
}
