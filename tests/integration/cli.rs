//! End-to-end tests of the `atelier` binary: real processes on temporary replicas (see
//! `harness::atelier` for how the binary is found).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use atelier_core::replica::Replica;
use atelier_core::store::{keys, Batch};
use atelier_core::{jsonl, Resource};
use serde_json::json;

use crate::harness::{atelier, http_get, WebHeld, FIXTURE};

fn fixture_resources() -> Vec<Resource> {
    jsonl::parse(FIXTURE.as_bytes()).unwrap()
}

#[test]
fn init_add_edit_show_list_history_and_rm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let run = |args: &[&str]| atelier(&dir, args, "");

    let init = run(&["init", "--office", "caue-63"]).ok();
    assert!(
        init.stdout.contains("Réplica de caue-63 créé"),
        "{}",
        init.stdout
    );
    assert!(dir.join("identity").is_dir());
    let again = run(&["init", "--office", "caue-63"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("existe déjà"), "{}", again.stderr);

    let added = run(&[
        "add",
        "--kind",
        "realisation",
        "--title",
        "Maison en pisé",
        "--ref",
        "e2e-1",
        "--theme",
        "habitat",
        "--material",
        "pisé",
        "--commune",
        "Riom",
        "--departement",
        "63",
        "--year",
        "2021",
        "--description",
        "Murs en terre.",
        "--json",
    ])
    .ok();
    let id = added.json()["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("automerge:"));
    let from_stdin = atelier(
        &dir,
        &["add", "-"],
        r#"{"kind":"outil","title":"Guide de la lauze","themes":["patrimoine"],"couleur":"ocre"}"#,
    )
    .ok();
    assert!(
        from_stdin.stdout.contains("Guide de la lauze"),
        "{}",
        from_stdin.stdout
    );
    let duplicate = run(&[
        "add", "--kind", "outil", "--title", "Autre", "--ref", "e2e-1",
    ]);
    assert_eq!(duplicate.code, 2, "{}", duplicate.stderr);

    let edited = run(&[
        "edit",
        "e2e-1",
        "--set",
        "title=Maison en pisé à Riom",
        "--set",
        "themes=habitat,patrimoine",
        "--set",
        "location.insee=63300",
        "--append-text",
        "description",
        " Enduits à la chaux.",
    ])
    .ok();
    assert!(
        edited
            .stdout
            .contains("title, themes, location.insee, description"),
        "{}",
        edited.stdout
    );
    let refused = run(&["edit", &id, "--set", "kind=maison"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("champ « kind »"),
        "{}",
        refused.stderr
    );

    let shown = run(&["show", &id, "--json"]).ok().json();
    assert_eq!(shown["id"], json!(id));
    assert_eq!(shown["deleted"], json!(false));
    let r = &shown["resource"];
    assert_eq!(r["title"], json!("Maison en pisé à Riom"));
    assert_eq!(r["themes"], json!(["habitat", "patrimoine"]));
    assert_eq!(r["location"]["insee"], json!("63300"));
    assert_eq!(
        r["description"],
        json!("Murs en terre. Enduits à la chaux.")
    );
    assert_eq!(r["office"], json!("caue-63"));
    let readable = run(&["show", "e2e-1"]).ok().stdout;
    assert!(
        readable.contains("Réalisation (observatoire)") && readable.contains("Habitat, logement")
    );

    let listed = run(&["list", "--json"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let outils = run(&["list", "--kind", "outil", "--json"]).ok().json();
    assert_eq!(outils[0]["title"], json!("Guide de la lauze"));
    assert_eq!(
        outils[0]["office"],
        json!("caue-63"),
        "--office defaults to the replica's"
    );
    assert!(run(&["list"]).ok().stdout.contains("2 ressources"));

    let history = run(&["history", "e2e-1"]).ok().stdout;
    assert!(
        history.contains("création") && history.contains("titre, thèmes"),
        "{history}"
    );
    let changes = run(&["history", &id, "--json"]).ok().json();
    assert_eq!(changes.as_array().unwrap().len(), 2);
    assert_eq!(changes[1]["office"], json!("caue-63"));

    let removed = run(&["rm", "e2e-1"]).ok().stdout;
    assert!(removed.contains("atelier history e2e-1"), "{removed}");
    assert_eq!(
        run(&["list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        run(&["list", "--deleted", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        run(&["show", &id, "--json"]).ok().json()["deleted"],
        json!(true)
    );
    run(&["edit", "e2e-1", "--restore"]).ok();
    assert_eq!(
        run(&["list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let missing = run(&["show", "nulle-part"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("aucune ressource « nulle-part »"),
        "{}",
        missing.stderr
    );
    let usage = run(&["list", "--kind", "maison"]);
    assert_eq!(usage.code, 2);
    assert!(
        usage.stderr.contains("valeurs possibles"),
        "{}",
        usage.stderr
    );
}

#[test]
fn import_is_all_or_nothing_then_idempotent_and_export_gives_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-15"], "").ok();

    let mut bad: Vec<&str> = FIXTURE.lines().collect();
    bad.insert(2, "{pas du json");
    bad.insert(
        7,
        r#"{"kind":"realisation","title":"Sans office","year":"2020"}"#,
    );
    let bad_path = tmp.path().join("mauvais.jsonl");
    std::fs::write(&bad_path, bad.join("\n")).unwrap();
    let refused = atelier(&dir, &["import", bad_path.to_str().unwrap()], "");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for needle in [
        "ligne 3",
        "ligne 8",
        "champ « office »",
        "rien n'a été importé",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle} missing in:\n{}",
            refused.stderr
        );
    }
    let listed = atelier(&dir, &["list", "--deleted", "--json"], "")
        .ok()
        .json();
    assert_eq!(
        listed,
        json!([]),
        "a refused file must leave nothing behind"
    );

    let path = tmp.path().join("ressources.jsonl");
    std::fs::write(&path, FIXTURE).unwrap();
    let n = fixture_resources().len();
    let first = atelier(&dir, &["import", path.to_str().unwrap()], "").ok();
    assert!(
        first.stdout.contains(&format!("{n} créées")),
        "{}",
        first.stdout
    );
    let again = atelier(&dir, &["import", path.to_str().unwrap(), "--json"], "")
        .ok()
        .json();
    assert_eq!(again, json!({"created": 0, "updated": 0, "unchanged": n}));
    assert_eq!(
        atelier(&dir, &["list", "--json"], "")
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        n
    );

    let exported = atelier(&dir, &["export"], "").ok().stdout;
    let back = jsonl::parse(exported.as_bytes()).unwrap();
    let mut expected = fixture_resources();
    expected.sort_by(|a, b| a.ref_.cmp(&b.ref_));
    assert_eq!(
        back, expected,
        "export must give back every field, unknown ones included"
    );

    let out = tmp.path().join("export").join("corpus.jsonl");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    let written = atelier(&dir, &["export", "--out", out.to_str().unwrap()], "").ok();
    assert!(
        written
            .stdout
            .contains(&format!("{n} ressources exportées")),
        "{}",
        written.stdout
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), exported);
    let leftovers = std::fs::read_dir(out.parent().unwrap()).unwrap().count();
    assert_eq!(
        leftovers, 1,
        "the temporary file was renamed, not left beside the export"
    );
    let nowhere = tmp.path().join("absent").join("x.jsonl");
    let failed = atelier(&dir, &["export", "--out", nowhere.to_str().unwrap()], "");
    assert_eq!(failed.code, 1);
    assert!(!nowhere.exists());
}

#[test]
fn export_names_an_unreadable_document_and_writes_every_other_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-15"], "").ok();
    let path = tmp.path().join("ressources.jsonl");
    std::fs::write(&path, FIXTURE).unwrap();
    atelier(&dir, &["import", path.to_str().unwrap()], "").ok();
    let n = fixture_resources().len();

    // One resource's document turns unreadable (a corrupt chunk, or a document an older
    // version stored past the size cap): its listing entry, which is derived, still names it.
    let bad = {
        let replica = Replica::open(&dir).unwrap();
        let entry = replica.list(&Default::default()).unwrap()[1].clone();
        let mut batch = Batch::default();
        batch.put(keys::chunk_key(&entry.id, 0), b"pas un document".to_vec());
        replica.store().kv().apply(batch).unwrap();
        replica.store().flush().unwrap();
        entry
    };

    for to_file in [false, true] {
        let out = tmp.path().join("corpus.jsonl");
        let run = match to_file {
            true => atelier(&dir, &["export", "--out", out.to_str().unwrap()], ""),
            false => atelier(&dir, &["export"], ""),
        };
        assert_eq!(run.code, 1, "an incomplete export must not look whole");
        assert!(
            run.stderr.contains(&bad.id.to_string()) && run.stderr.contains(&bad.title),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("export incomplet"), "{}", run.stderr);
        let written = match to_file {
            true => std::fs::read_to_string(&out).unwrap(),
            false => run.stdout,
        };
        let back = jsonl::parse(written.as_bytes()).unwrap();
        assert_eq!(back.len(), n - 1);
        assert!(back.iter().all(|r| r.title != bad.title));
    }
}

#[test]
fn search_builds_its_index_once_saying_so_then_follows_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let run = |args: &[&str]| atelier(&dir, args, "");
    run(&["init", "--office", "caue-15"]).ok();
    let path = tmp.path().join("f.jsonl");
    std::fs::write(&path, FIXTURE).unwrap();
    run(&["import", path.to_str().unwrap()]).ok();

    // French analysis: "lauzes" finds "lauze"; the first search builds the index and says so.
    let first = run(&["search", "lauzes"]).ok();
    assert!(
        first
            .stdout
            .contains("Gîte d'étape en pisé et lauze à Murat"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stderr
            .contains("Construction de l'index de recherche"),
        "{}",
        first.stderr
    );
    let found = run(&["search", "lauze", "--json"]).ok();
    assert!(found.stderr.is_empty(), "{}", found.stderr);
    let hits = found.json()["hits"].as_array().unwrap().len();
    assert!(hits >= 1, "{}", found.stdout);

    run(&["edit", "fx-001", "--set", "title=Gîte du Cézallier"]).ok();
    let after = run(&["search", "cézallier", "--json"]).ok().json();
    assert_eq!(after["hits"][0]["title"], "Gîte du Cézallier", "{after}");
}

#[test]
fn demo_shows_the_list_and_a_history_merged_from_two_offices() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = atelier(&tmp.path().join("unused"), &["demo", "--no-serve"], "").ok();
    for needle in [
        "25 ressources",
        "Historique de « Maison de santé",
        "caue-15",
        "kinésithérapie",
        "Visite publique",
        "Groupe de travail « Massif central » (caue-15, caue-63) : 3 thèmes, 6 tâches dont 1 en retard, 1 fiche à relire",
    ] {
        assert!(
            demo.stdout.contains(needle),
            "{needle} missing in:\n{}",
            demo.stdout
        );
    }
    assert!(
        !tmp.path().join("unused").exists(),
        "the demo must not touch the configured replica"
    );
}

#[test]
fn a_second_process_is_told_the_replica_is_in_use_with_exit_code_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let _held = Replica::init(&dir, "caue-34".parse().unwrap()).unwrap();
    let run = atelier(&dir, &["list"], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("utilisé par un autre processus"),
        "{}",
        run.stderr
    );
}

/// A stand-in for `atelier-web`'s local API: answers canned JSON and records each request.
struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if !serve_one(stream, &seen) {
                    break;
                }
            }
        });
        Self {
            url,
            requests,
            thread: Some(thread),
        }
    }

    /// (method, path, authorization) of the requests received.
    fn requests(&self) -> Vec<(String, String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Wake the accept loop with a request that tells it to stop.
        if let Ok(mut s) = TcpStream::connect(self.url.trim_start_matches("http://")) {
            let _ = s.write_all(b"QUIT / HTTP/1.1\r\n\r\n");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request; false when told to stop.
fn serve_one(stream: TcpStream, seen: &Mutex<Vec<(String, String, String)>>) -> bool {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return true;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    if method == "QUIT" {
        return false;
    }
    let (mut auth, mut length) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.to_ascii_lowercase().as_str() {
            "authorization" => auth = value.trim().to_string(),
            "content-length" => length = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    seen.lock()
        .unwrap()
        .push((method.clone(), path.clone(), auth));
    let id = atelier_core::DocumentId::derived("web-1").url();
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("GET", p) if p.starts_with("/api/resources?") || p == "/api/resources" => (
            200,
            json!([{"id":id,"ref":"web-1","kind":"outil",
                "office":"caue-63","title":"Vu par l'application web","summary":"","status":"publie",
                "commune":null,"departement":"63","axes":[],"themes":[],"sectors":[],"year":null,
                "created_at":0,"deleted":false}])
            .to_string(),
        ),
        ("POST", "/api/resources") => (201, json!({ "id": id }).to_string()),
        ("POST", "/api/import") => (
            422,
            json!({"error":"1 ligne(s) invalide(s), rien n'a été importé :\n  ligne 1 : champ « kind »"}).to_string(),
        ),
        _ => (404, json!({"error":"aucune ressource « x »"}).to_string()),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    true
}

#[test]
fn while_the_web_app_holds_the_replica_commands_go_to_its_local_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let _held = Replica::init(&dir, "caue-63".parse().unwrap()).unwrap();
    let server = FakeServer::start();
    let info = json!({"url": server.url, "token": "c0ffee", "pid": std::process::id()});
    std::fs::write(dir.join("server.json"), info.to_string()).unwrap();

    let listed = atelier(&dir, &["list", "--kind", "outil", "--json"], "")
        .ok()
        .json();
    assert_eq!(listed[0]["title"], json!("Vu par l'application web"));
    let added = atelier(
        &dir,
        &[
            "add", "--kind", "outil", "--title", "Guide", "--office", "caue-63",
        ],
        "",
    )
    .ok();
    let id = atelier_core::DocumentId::derived("web-1").url();
    assert!(added.stdout.contains(&id), "{}", added.stdout);
    let missing = atelier(&dir, &["show", "réf 1/2"], "");
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("aucune ressource"),
        "{}",
        missing.stderr
    );
    let path = tmp.path().join("f.jsonl");
    std::fs::write(&path, FIXTURE).unwrap();
    let refused = atelier(&dir, &["import", path.to_str().unwrap()], "");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("ligne 1"), "{}", refused.stderr);

    let requests = server.requests();
    let summary: Vec<(&str, &str)> = requests
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/api/resources?kind=outil"),
            ("POST", "/api/resources"),
            ("GET", "/api/resources/r%C3%A9f%201%2F2"),
            ("POST", "/api/import"),
        ]
    );
    assert!(requests.iter().all(|(_, _, auth)| auth == "Bearer c0ffee"));

    drop(server);
    let gone = atelier(&dir, &["list"], "");
    assert_eq!(gone.code, 3, "{}", gone.stderr);
    let pid = format!("pid {}", std::process::id());
    assert!(
        gone.stderr.contains(&pid) && gone.stderr.contains("ne répond pas"),
        "{}",
        gone.stderr
    );
}

#[test]
fn every_command_works_through_the_real_web_app() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let web = WebHeld::start(&dir, "caue-87");
    assert!(dir.join("server.json").exists());
    let run = |args: &[&str]| atelier(&dir, args, "");

    let path = tmp.path().join("f.jsonl");
    std::fs::write(&path, FIXTURE).unwrap();
    let n = fixture_resources().len();
    let imported = run(&["import", path.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(
        imported,
        json!({"created": n, "updated": 0, "unchanged": 0})
    );
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"maison\"}\n").unwrap();
    let refused = run(&["import", bad.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("ligne 1"), "{}", refused.stderr);

    let added = run(&[
        "add",
        "--kind",
        "action",
        "--title",
        "Balade à Bellac",
        "--office",
        "caue-87",
        "--json",
    ])
    .ok()
    .json();
    let id = added["id"].as_str().unwrap().to_string();
    run(&[
        "edit",
        &id,
        "--set",
        "status=publie",
        "--append-text",
        "description",
        "Départ 14 h.",
    ])
    .ok();
    let shown = run(&["show", &id, "--json"]).ok().json();
    assert_eq!(shown["resource"]["status"], json!("publie"));
    assert_eq!(shown["resource"]["description"], json!("Départ 14 h."));
    assert!(run(&["show", "fx-001"])
        .ok()
        .stdout
        .contains("Gîte d'étape"));
    let history = run(&["history", &id, "--json"]).ok().json();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(
        run(&["list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        n + 1
    );
    assert_eq!(
        run(&["list", "--office", "caue-15", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    run(&["rm", "fx-002"]).ok();
    assert_eq!(
        run(&["list", "--deleted", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        n + 1
    );
    let exported = run(&["export"]).ok().stdout;
    assert_eq!(exported.lines().count(), n);
    assert!(exported.contains("\"photo_credit\""));
    let missing = run(&["show", "nulle-part"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    let reindex = run(&["reindex"]);
    assert_eq!(reindex.code, 2, "{}", reindex.stderr);
    assert!(
        reindex.stderr.contains("l'application web"),
        "{}",
        reindex.stderr
    );

    web.stop();
    assert!(!dir.join("server.json").exists());
}

#[test]
fn a_browser_logs_in_only_with_the_one_time_link_atelier_open_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let none = atelier(&dir, &["ouvrir"], "");
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("atelier-web --dir"), "{}", none.stderr);

    let web = WebHeld::start(&dir, "caue-87");
    let run = |args: &[&str]| atelier(&dir, args, "");
    run(&[
        "add",
        "--kind",
        "outil",
        "--title",
        "Guide du torchis",
        "--office",
        "caue-87",
    ])
    .ok();

    // Someone who cannot read server.json gets neither the cookie nor the data.
    let stranger = http_get(&web.url(), None);
    assert_eq!(stranger.status, 401);
    assert_eq!(stranger.cookie, None);
    assert!(!stranger.body.contains("torchis"), "{}", stranger.body);
    assert!(stranger.body.contains("ouvrir"), "{}", stranger.body);

    // `atelier ouvrir` (the local API, with server.json's token) prints a link that logs in once.
    let link = run(&["ouvrir", "--page", "/lexique", "--json"]).ok().json();
    let url = link["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/connexion?jeton=", web.url())),
        "{url}"
    );
    let login = http_get(&url, None);
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.location.as_deref(), Some("/lexique"));
    let cookie = login.cookie.expect("the link set no cookie");
    let list = http_get(&web.url(), Some(&cookie));
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Guide du torchis"));
    let replayed = http_get(&url, None);
    assert_eq!(replayed.status, 401, "the link worked twice");
    assert_eq!(replayed.cookie, None);
    let printed = run(&["open"]).ok().stdout;
    assert!(printed.contains("/connexion?jeton="), "{printed}");
    web.stop();
}
