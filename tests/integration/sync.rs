//! Corpus sync end to end, in process over real QUIC on loopback: offices that edit offline and
//! sync through a whole relay (sled store, QUIC, WebSocket) in various orders, a relay restarted
//! from disk, peer-to-peer sync without a relay, live sessions, and automerge-repo clients
//! (JavaScript and samod) editing a resource that an office then receives.

use std::path::Path;
use std::str::FromStr;

use atelier_core::document::Edit;
use atelier_core::sync::{Role, Session};
use atelier_core::DocumentId;
use atelier_relay::client::{self, ClientError};
use atelier_relay::handshake::CloseCode;
use atelier_relay::sync_conn::{drive, LiveChanges, Mode};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::harness::{
    atelier_async as cli, atelier_bin, corpus, edit_doc, samod, set, wait_until, Office,
    SyncFailed, TestRelay, WAIT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_offices_edit_offline_and_converge_through_the_relay_in_any_order() {
    let mut relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let c = Office::enrolled("caue-07", &relay, false).await;

    // A shared resource everybody has before going offline.
    let shared = a.create("Maison commune", "Début.");
    a.sync(&relay).await;
    b.sync(&relay).await;
    c.sync(&relay).await;
    assert_eq!(b.titles(), ["Maison commune"]);

    // Offline: new resources everywhere; A retitles the shared one while B and C both change
    // its description.
    a.create("Grange de Riom", "Ossature bois.");
    a.create("Guide du pisé", "Terre crue.");
    a.edit(&shared, set("title", json!("Maison commune rénovée")));
    b.create("Halle du Cantal", "Charpente.");
    b.edit(
        &shared,
        Edit::Append {
            field: "description".into(),
            text: " Note de B.".into(),
        },
    );
    c.create("Moulinage ardéchois", "Soie.");
    c.edit(
        &shared,
        Edit::Splice {
            field: "description".into(),
            pos: 0,
            delete: 0,
            insert: "C : ".into(),
        },
    );
    assert!(!a.replica.unsynced().unwrap().is_empty());

    // Different orders: C first, then A, then B; then A and C again to pick up the rest.
    let first = c.sync(&relay).await;
    assert!(first.docs_sent > 0);
    a.sync(&relay).await;
    let last = b.sync(&relay).await;
    assert!(last.docs_received > 0 && last.docs_sent > 0, "{last:?}");
    assert_eq!(last.received_by_office.get("caue-63"), Some(&3));
    a.sync(&relay).await;
    c.sync(&relay).await;

    let everything = corpus(relay.store());
    for office in [&a, &b, &c] {
        assert_eq!(
            corpus(office.store()),
            everything,
            "{} differs from the relay",
            office.replica.office()
        );
        assert!(office.replica.unsynced().unwrap().is_empty());
    }
    let want = [
        "Grange de Riom",
        "Guide du pisé",
        "Halle du Cantal",
        "Maison commune rénovée",
        "Moulinage ardéchois",
    ];
    for office in [&a, &b, &c] {
        assert_eq!(office.titles(), want);
        let merged = office.replica.get(&shared).unwrap().resource;
        assert_eq!(merged.title, "Maison commune rénovée");
        assert_eq!(merged.description, "C : Début. Note de B.");
    }

    // The relay restarts from disk; a fourth office, new, gets the whole corpus at once.
    relay.restart().await;
    assert_eq!(corpus(relay.store()), everything);
    let d = Office::enrolled("caue-2A", &relay, false).await;
    let pulled = d.sync(&relay).await;
    assert_eq!(pulled.docs_sent, 0);
    assert_eq!(corpus(d.store()), everything);
    assert_eq!(d.titles(), want);
    assert_eq!(pulled.received_by_office.values().sum::<u64>(), 5);
    // The relay sent each document with its card, so the fresh office listed them without
    // loading them; editing one loads it, and the edit reaches the others.
    d.edit(&shared, set("title", json!("Maison commune du Cantal")));
    d.sync(&relay).await;
    a.sync(&relay).await;
    assert_eq!(
        a.replica.get(&shared).unwrap().resource.title,
        "Maison commune du Cantal"
    );
    assert_eq!(corpus(a.store()), corpus(d.store()));

    // A resync with nothing new is one round trip.
    let again = d.sync(&relay).await;
    assert_eq!(
        (again.rounds, again.docs_received, again.docs_sent),
        (1, 0, 0)
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sync_directly_without_a_relay() {
    let a = Office::new("caue-63");
    let b = Office::new("caue-15");
    a.create("Ferme de Chadieu", "Pisé.");
    let from_b = b.create("Buron du Cézallier", "Lauze.");

    // A serves its replica to B only, as `atelier serve --allow FP:caue-15` does.
    let served = a.serve_to(&b);

    let stats = b
        .sync_with(served.local_addr(), &a.identity().fingerprint())
        .await
        .unwrap();
    assert_eq!(stats.received_by_office.get("caue-63"), Some(&1));
    assert_eq!(stats.sent_by_office.get("caue-15"), Some(&1));
    // The server applied B's documents before answering the last round.
    assert_eq!(corpus(a.store()), corpus(b.store()));
    assert_eq!(a.titles(), ["Buron du Cézallier", "Ferme de Chadieu"]);
    // Received from a peer, not on any relay yet: status lists it.
    assert!(a
        .replica
        .unsynced()
        .unwrap()
        .iter()
        .any(|(id, _)| *id == from_b));

    // Anybody else is refused, whatever it claims; a wrong pin refuses the server.
    let c = Office::new("caue-07");
    let refused = c
        .sync_with(served.local_addr(), &a.identity().fingerprint())
        .await;
    assert!(
        matches!(&refused, Err(SyncFailed::Connect(ClientError::Refused { reason })) if reason.contains("not a pinned peer")),
        "{refused:?}"
    );
    let wrong_pin = b
        .sync_with(served.local_addr(), &c.identity().fingerprint())
        .await;
    assert!(
        matches!(
            wrong_pin,
            Err(SyncFailed::Connect(ClientError::Transport(_)))
        ),
        "{wrong_pin:?}"
    );
    served.shutdown().await;
}

/// A live session as `atelier sync --watch` runs it; the task ends when the relay closes.
fn go_live(office: &Office, relay: &TestRelay, tasks: &mut tokio::task::JoinSet<()>) {
    let store = office.store().clone();
    let rx = LiveChanges::attach(&store).subscribe();
    let identity = office.identity();
    let (addr, fp) = (relay.addr(), relay.fingerprint());
    tasks.spawn(async move {
        let client::Opened {
            connection, stream, ..
        } = client::open(&identity, addr, &fp).await.unwrap();
        let mut session = Session::new(store, Role::Initiator);
        session.start().unwrap();
        let _ = drive(session, stream, Mode::Live(rx), |_| {}).await;
        connection.close(CloseCode::Done.code(), b"done");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_edits_reach_the_other_office_through_the_relay() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let id = a.create("École de Thiers", "Brique.");
    a.sync(&relay).await;
    b.sync(&relay).await;

    let mut tasks = tokio::task::JoinSet::new();
    go_live(&a, &relay, &mut tasks);
    go_live(&b, &relay, &mut tasks);

    let title = |o: &Office| o.replica.get(&id).unwrap().resource.title;
    a.edit(&id, set("title", json!("École de Thiers, rénovée")));
    wait_until(b.store(), "A's edit at B", || {
        title(&b) == "École de Thiers, rénovée"
    })
    .await;
    b.edit(
        &id,
        Edit::Append {
            field: "description".into(),
            text: " Isolée en 2024.".into(),
        },
    );
    wait_until(a.store(), "B's edit at A", || {
        a.replica.get(&id).unwrap().resource.description == "Brique. Isolée en 2024."
    })
    .await;
    // A new resource travels live too.
    let fresh = b.create("Gare de Murat", "Basalte.");
    wait_until(a.store(), "B's new resource at A", || {
        a.replica.get(&fresh).is_ok()
    })
    .await;
    // The new resource's catalog entry travels as its own change, just after it.
    wait_until(a.store(), "the same corpus at A and B", || {
        corpus(a.store()) == corpus(b.store())
    })
    .await;

    relay.shutdown().await;
    timeout(WAIT, async { while tasks.join_next().await.is_some() {} })
        .await
        .expect("live sessions did not end with the relay");
    assert_eq!(corpus(a.store()), corpus(b.store()));
}

/// Runs `node tests/js/edit-doc.mjs` against the relay's WebSocket, which must succeed;
/// returns its stdout lines.
async fn js_edit(
    relay: &TestRelay,
    token: &str,
    doc: &DocumentId,
    field: &str,
    value: &str,
) -> Vec<Value> {
    let out = edit_doc(
        &relay.ws_url(),
        token,
        &doc.url(),
        (field, value),
        "caue-63/navigateur",
        &[],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "edit-doc.mjs failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn javascript_client_edits_a_resource_that_the_office_then_receives() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let id = a.create("Chapelle de Vassivière", "Granit.");
    a.sync(&relay).await;

    // The JS client writes `doc.title = "…"`. Automerge 3's JS API makes any assigned string a
    // Text object, where Atelier writes a plain string: the office reads both.
    let token = relay.ws_token("caue-63", false);
    let edited = "Chapelle Notre-Dame de Vassivière";
    let lines = js_edit(&relay, &token, &id, "title", edited).await;
    assert_eq!(lines[0]["doc"]["title"], "Chapelle de Vassivière");
    assert_eq!(lines[0]["doc"]["@type"], "atelier.resource");
    assert_eq!(lines[0]["doc"]["description"], "Granit.");
    assert_eq!(lines[1]["doc"]["title"], edited);

    let stats = a.sync(&relay).await;
    assert_eq!(stats.received_by_office.get("caue-63"), Some(&1));
    let stored = a.replica.get(&id).unwrap().resource;
    assert_eq!(stored.title, edited);
    assert_eq!(stored.description, "Granit.");
    // Listed and searchable under the new title, and editable again by the office.
    assert!(a.titles().contains(&edited.to_string()));
    a.edit(&id, set("description", json!("Granit et lauze.")));
    assert_eq!(a.replica.get(&id).unwrap().resource.title, edited);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn samod_client_edits_a_resource_that_the_office_then_receives() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let id = a.create("Viaduc de Garabit", "Fer puddlé.");
    a.sync(&relay).await;

    let token = relay.ws_token("caue-63", false);
    let (repo, _) = samod::dial(&relay, &token, "caue-63/samod").await;
    let handle = samod::find(&repo, &id).await;
    samod::put(&handle, "year", 1884_i64);
    let relay_year = || {
        relay
            .store()
            .load(&id)
            .unwrap()
            .and_then(|d| atelier_core::document::read(&d).ok())
            .and_then(|s| s.resource.year)
            == Some(1884)
    };
    wait_until(relay.store(), "samod's edit at the relay", relay_year).await;

    // And the relay's later changes reach samod live, as they reach offices.
    let b = Office::enrolled("caue-15", &relay, false).await;
    b.sync(&relay).await;
    b.edit(&id, set("title", json!("Viaduc de Garabit (Eiffel)")));
    b.sync(&relay).await;
    samod::wait_for_string(&handle, "title", "Viaduc de Garabit (Eiffel)", "B's edit").await;
    repo.stop().await;

    a.sync(&relay).await;
    let stored = a.replica.get(&id).unwrap().resource;
    assert_eq!(stored.year, Some(1884));
    assert_eq!(stored.title, "Viaduc de Garabit (Eiffel)");
    relay.shutdown().await;
}

/// `atelier sync --watch --json` as a child process, read line by line.
struct Watcher {
    child: std::process::Child,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event read so far, in order.
    seen: Vec<Value>,
}

impl Watcher {
    fn start(dir: &Path) -> Self {
        let mut child = std::process::Command::new(atelier_bin())
            .args(["sync", "--watch", "--json"])
            .env("ATELIER_DIR", dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next event named `event`, skipping others.
    async fn next(&mut self, event: &str) -> Value {
        timeout(WAIT, async {
            loop {
                let line = self.lines.recv().await.expect("atelier sync --watch ended");
                self.seen.push(line.clone());
                if line["event"] == event {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {event} event from atelier sync --watch"))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_joins_syncs_watches_through_a_relay_restart_and_stops_cleanly() {
    let mut relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    a.create("Maison du Parc", "Basalte.");
    a.sync(&relay).await;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("caue-15");
    let url = format!("quic://{}", relay.addr());
    let fp = relay.fingerprint().to_string();
    let token = relay.invite("caue-15", false);
    assert_eq!(cli(&dir, &["init", "--office", "caue-15"]).await.code, 0);
    let joined = cli(
        &dir,
        &["join", &url, "--fingerprint", &fp, "--token", &token],
    )
    .await;
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert!(joined.stdout.contains("pour caue-15"), "{}", joined.stdout);

    cli(
        &dir,
        &["add", "--kind", "outil", "--title", "Guide du pisé"],
    )
    .await;
    let status: Value =
        serde_json::from_str(&cli(&dir, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["pending"][0]["title"], "Guide du pisé");
    assert_eq!(status["pending"][0]["state"], "new");
    let synced = cli(&dir, &["sync", "--json"]).await;
    assert_eq!(synced.code, 0, "{}", synced.stderr);
    let report: Value = serde_json::from_str(&synced.stdout).unwrap();
    assert_eq!(report["resources_received"], 1);
    assert_eq!(report["resources_sent"], 1);
    assert_eq!(report["received_by_office"]["caue-63"], 1);
    let status: Value =
        serde_json::from_str(&cli(&dir, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["pending"], json!([]));
    let last_sync_ms = status["last_sync_ms"].as_i64().unwrap();

    // Live: A's new resource shows up in the watcher's output.
    let mut watcher = Watcher::start(&dir);
    watcher.next("synced").await;
    a.create("Halle de Brioude", "Charpente.");
    a.sync(&relay).await;
    let changed = watcher.next("changed").await;
    assert_eq!(changed["title"], "Halle de Brioude");

    // The other commands still work while the watcher holds the replica (through its local
    // API), and what they write reaches the relay live.
    let added = cli(
        &dir,
        &[
            "add",
            "--kind",
            "outil",
            "--title",
            "Fiche chantier",
            "--json",
        ],
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let added: Value = serde_json::from_str(&added.stdout).unwrap();
    let added = DocumentId::from_str(added["id"].as_str().unwrap()).unwrap();
    wait_until(relay.store(), "the watcher's live push", || {
        relay.store().contains(&added).unwrap()
    })
    .await;
    let listed = cli(&dir, &["list", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("Fiche chantier"),
        "{}",
        listed.stdout
    );
    // `status` cannot open the held replica: it reads the sync record through the watcher's
    // local API, so the last sync and the running watch still show.
    let held = cli(&dir, &["status", "--json"]).await;
    assert_eq!(held.code, 0, "{}", held.stderr);
    let held: Value = serde_json::from_str(&held.stdout).unwrap();
    assert_eq!(held["pending"], Value::Null);
    assert!(
        held["last_sync_ms"].as_i64().unwrap() >= last_sync_ms,
        "{held}"
    );
    assert_eq!(held["watch"]["connected"], true, "{held}");
    let held = cli(&dir, &["status"]).await;
    assert!(
        held.stdout.contains("Dernière synchronisation : ")
            && held.stdout.contains("Synchronisation continue en cours"),
        "{}",
        held.stdout
    );

    // The relay goes away and comes back on the same address: the watcher reconnects.
    let addrs = relay.stop().await;
    let lost = watcher.next("disconnected").await;
    assert!(lost["retry_in_ms"].as_u64().unwrap() <= 30_000, "{lost}");
    relay.resume(addrs).await;
    watcher.next("synced").await;
    a.create("Gare de Neussargues", "Basalte.");
    a.sync(&relay).await;
    assert_eq!(
        watcher.next("changed").await["title"],
        "Gare de Neussargues"
    );

    // Ctrl-C: a clean stop, exit 0, and the replica is free and up to date.
    let pid = watcher.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    watcher.next("stopped").await;
    // What the other commands wrote through the watcher was not reported as received.
    let received: Vec<_> = (watcher.seen.iter())
        .filter(|e| e["event"] == "changed")
        .map(|e| e["title"].clone())
        .collect();
    assert_eq!(received, ["Halle de Brioude", "Gare de Neussargues"]);
    let status = tokio::task::spawn_blocking(move || watcher.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let listed = cli(&dir, &["list", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(
        listed.stdout.matches("\"title\"").count(),
        5,
        "{}",
        listed.stdout
    );
    let status: Value =
        serde_json::from_str(&cli(&dir, &["status", "--json"]).await.stdout).unwrap();
    assert_eq!(status["pending"], json!([]));

    // A revoked device is told so, with exit code 5; an unreachable relay gives 4.
    relay
        .access()
        .update(|r| r.revoke_office("caue-15"))
        .unwrap();
    let refused = cli(&dir, &["sync"]).await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(refused.stderr.contains("révoqué"), "{}", refused.stderr);
    relay.shutdown().await;
    let unreachable = cli(&dir, &["sync"]).await;
    assert_eq!(unreachable.code, 4, "{}", unreachable.stderr);
}
