//! The relay's automerge-repo WebSocket endpoint against clients nobody here wrote: the stock
//! JavaScript automerge-repo (`tests/js/edit-doc.mjs`, run with Node) and samod 0.16.

use std::process::Output;

use atelier_core::store::StoreError;
use atelier_core::DocumentId;
use automerge::transaction::Transactable;
use automerge::ReadDoc;

use crate::harness::{edit_doc, samod, wait_until, TestRelay};

/// A relay holding one document created in Rust, and a WebSocket token of caue-63's.
struct Fixture {
    relay: TestRelay,
    doc: DocumentId,
    token: String,
}

impl Fixture {
    async fn start(name: &str) -> Self {
        let relay = TestRelay::start().await;
        let doc = DocumentId::derived(name);
        relay
            .store()
            .update(&doc, |d, _| {
                d.put(automerge::ROOT, "titre", "Maison du Parc")
                    .map_err(StoreError::from)
            })
            .unwrap();
        let token = relay.ws_token("caue-63", false);
        Self { relay, doc, token }
    }

    /// Runs `edit-doc.mjs` on the document with `token`, as `peer_id`.
    async fn edit_doc(&self, token: &str, peer_id: &str, env: &[(&str, &str)]) -> Output {
        let url = self.relay.ws_url();
        edit_doc(
            &url,
            token,
            &self.doc.url(),
            ("commune", "Riom"),
            peer_id,
            env,
        )
        .await
    }

    /// Asserts that the script was refused with exit code `code` and a reason containing
    /// `reason` on stderr (`why` says what the code means), and that its edit is not stored.
    fn assert_refused(&self, out: &Output, code: i32, why: &str, reason: &str) {
        assert_eq!(out.status.code(), Some(code), "expected {why}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(reason));
        assert_eq!(self.field("commune"), None);
    }

    /// A string field of the stored document: a scalar string (Rust, samod) or a Text object
    /// (what JS Automerge 3 makes of `doc[field] = "…"`).
    fn field(&self, key: &str) -> Option<String> {
        let doc = self.relay.store().load(&self.doc).unwrap()?;
        match doc.get(automerge::ROOT, key).unwrap()? {
            (automerge::Value::Object(automerge::ObjType::Text), text) => doc.text(&text).ok(),
            (value, _) => value.into_string().ok(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_reads_and_edits_a_document_created_in_rust() {
    let f = Fixture::start("js-edit").await;
    let out = f.edit_doc(&f.token, "caue-63/node", &[]).await;
    assert_eq!(out.status.code(), Some(0));

    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let found = lines.next().expect("no found line");
    assert_eq!(
        found["doc"]["titre"], "Maison du Parc",
        "JS did not read the Rust document"
    );
    let stored = lines.next().expect("no stored line");
    assert_eq!(stored["doc"]["commune"], "Riom");

    // The relay acknowledged only after storing, so the edit is already there.
    assert_eq!(f.field("commune").as_deref(), Some("Riom"));
    assert_eq!(f.field("titre").as_deref(), Some("Maison du Parc"));
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_with_a_bad_token_is_refused() {
    let f = Fixture::start("js-bad-token").await;
    let out = f.edit_doc("faux-jeton", "caue-63/node", &[]).await;
    f.assert_refused(&out, 3, "a refused connection", "401");
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_claiming_another_office_is_refused() {
    let f = Fixture::start("js-foreign-office").await;
    let out = f.edit_doc(&f.token, "caue-15/intrus", &[]).await;
    f.assert_refused(&out, 4, "the relay's error message", "caue-63/");
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_switching_sender_id_is_cut_off() {
    let f = Fixture::start("js-spoof").await;
    let spoof = [("ATELIER_SPOOF_SENDER", "caue-63/quelquun-dautre")];
    let out = f.edit_doc(&f.token, "caue-63/node", &spoof).await;
    f.assert_refused(&out, 4, "the relay's error message", "senderId");
    f.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_finds_edits_and_follows_live_changes() {
    let f = Fixture::start("samod").await;
    let (repo, relay_peer) = samod::dial(&f.relay, &f.token, "caue-63/samod").await;
    assert_eq!(relay_peer.peer_id, ::samod::PeerId::from("atelier-relay"));

    let handle = samod::find(&repo, &f.doc).await;
    assert_eq!(
        samod::string(&handle, "titre").as_deref(),
        Some("Maison du Parc")
    );

    // samod → relay.
    samod::put(&handle, "commune", "Thiers");
    wait_until(
        f.relay.store(),
        "samod's commune = Thiers at the relay",
        || f.field("commune").as_deref() == Some("Thiers"),
    )
    .await;

    // Relay store → samod, live.
    f.relay
        .store()
        .update(&f.doc, |d, _| {
            d.put(automerge::ROOT, "etat", "publié")
                .map_err(StoreError::from)
        })
        .unwrap();
    samod::wait_for_string(&handle, "etat", "publié", "the store's edit").await;

    repo.stop().await;
    f.relay.shutdown().await;
}
