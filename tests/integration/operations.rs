//! Running a relay for years: its admin listener (Prometheus metrics that move when an office
//! syncs, health and readiness), backups of a running relay restored on a new data directory
//! with the same fingerprint, an office replica's backup and restore, `wss://` with a
//! certificate renewed on SIGHUP, JSON logs, and the install recipes (systemd unit, container).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use atelier_core::replica::Replica;
use atelier_core::repo_wire::{PeerId, RepoMessage};
use atelier_core::sync::{Role, Session};
use atelier_core::DocumentId;
use atelier_relay::backup;
use atelier_relay::client;
use atelier_relay::config::MediaConfig;
use atelier_relay::handshake::CloseCode;
use atelier_relay::quota::QuotaConfig;
use atelier_relay::sync_conn::{drive, Mode};
use atelier_relay::tls_reload::TlsConfig;
use automerge::sync::SyncDoc;
use futures::{SinkExt, StreamExt};
use prometheus_parse::{LineInfo, Scrape, Value};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::harness::{atelier_async, corpus, crash_bins, http_get, Office, TestRelay, WAIT};

/// `GET /metrics`, checked line by line against the text format, as samples by name and labels.
async fn scrape(admin: SocketAddr) -> BTreeMap<String, f64> {
    let answer =
        tokio::task::spawn_blocking(move || http_get(&format!("http://{admin}/metrics"), None))
            .await
            .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let text = answer.body;
    // Every line is a HELP, a TYPE, a sample or the OpenMetrics end: the parser below skips
    // lines it cannot read, so that it reads them all is checked here.
    for line in text.lines() {
        let known = match LineInfo::parse(line) {
            LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Sample { .. } => true,
            _ => line == "# EOF" || line.starts_with("# UNIT "),
        };
        assert!(known, "not Prometheus text format: {line:?}\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    let parsed = Scrape::parse(text.as_bytes().lines()).unwrap();
    let mut samples = BTreeMap::new();
    for s in parsed.samples {
        let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            // A histogram's count (its `+Inf` bucket).
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    samples
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {samples:#?}"))
}

async fn status(admin: SocketAddr, path: &str) -> u16 {
    let url = format!("http://{admin}{path}");
    tokio::task::spawn_blocking(move || http_get(&url, None).status)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_as_prometheus_text_and_move_when_an_office_syncs() {
    let relay = TestRelay::start().await;
    let admin = relay.handle().admin_addr();
    assert!(admin.ip().is_loopback());
    let before = scrape(admin).await;
    assert_eq!(get(&before, "atelier_relay_ready{}"), 1.0);
    assert_eq!(get(&before, "atelier_relay_enrolled_devices{}"), 0.0);

    let office = Office::enrolled("caue-15", &relay, false).await;
    for i in 0..5 {
        office.create(&format!("Maison {i}"), "Une maison en pierre.");
    }
    office.sync(&relay).await;
    // A device the relay does not know is refused, and counted.
    let stranger = Office::new("caue-63");
    assert!(stranger
        .sync_with(relay.addr(), &relay.fingerprint())
        .await
        .is_err());
    // A browser without a token too.
    let tcp = TcpStream::connect(relay.handle().ws_addr()).await.unwrap();
    match tokio_tungstenite::client_async(relay.ws_url(), tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => {
            assert_eq!(answer.status(), 401)
        }
        other => panic!("a websocket without a token: {:?}", other.map(|_| ())),
    }

    let after = scrape(admin).await;
    assert_eq!(get(&after, "atelier_relay_enrolled_devices{}"), 1.0);
    assert_eq!(
        get(&after, "atelier_relay_documents{}"),
        corpus(relay.store()).len() as f64
    );
    assert!(get(&after, "atelier_relay_documents{}") >= 5.0);
    assert!(get(&after, "atelier_relay_store_bytes{}") > 0.0);
    assert!(get(&after, "atelier_relay_connections_total{kind=quic}") >= 1.0);
    for direction in ["in", "out"] {
        let frames = format!("atelier_relay_frames_total{{direction={direction},kind=quic}}");
        let bytes = format!("atelier_relay_frame_bytes_total{{direction={direction},kind=quic}}");
        assert!(get(&after, &frames) >= 2.0, "{frames}");
        assert!(get(&after, &bytes) > get(&after, &frames) * 4.0, "{bytes}");
    }
    // Five resources went up: at least their bytes came in.
    assert!(
        get(
            &after,
            "atelier_relay_frame_bytes_total{direction=in,kind=quic}"
        ) > 5.0 * 100.0
    );
    assert_eq!(
        get(
            &after,
            "atelier_relay_refusals_total{reason=device_refused}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            "atelier_relay_refusals_total{reason=ws_missing_token}"
        ),
        1.0
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_flips_while_the_relay_drains_and_liveness_stays() {
    let relay = TestRelay::start().await;
    let admin = relay.handle().admin_addr();
    assert_eq!(status(admin, "/healthz").await, 200);
    assert_eq!(status(admin, "/readyz").await, 200);
    // What `shutdown` does first, held here so the answer can be read before the store closes.
    relay.handle().drain();
    assert_eq!(status(admin, "/readyz").await, 503);
    assert_eq!(status(admin, "/healthz").await, 200);
    assert_eq!(get(&scrape(admin).await, "atelier_relay_ready{}"), 0.0);
    // The backup route wants the admin token.
    assert_eq!(status(admin, "/backup").await, 401);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_an_office_uploads_restores_with_the_same_fingerprint() {
    let relay = TestRelay::start().await;
    let office = Office::enrolled("caue-15", &relay, false).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(office.create(&format!("Maison {i}"), "Avant la sauvegarde."));
    }
    office.sync(&relay).await;
    let synced_before = corpus(relay.store());
    for i in 0..300 {
        ids.push(office.create(&format!("Grange {i}"), "Pendant la sauvegarde."));
    }

    // The backup and the upload at once.
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("relais.atelier-backup");
    let token = std::fs::read_to_string(relay.dir.path().join("admin-token")).unwrap();
    let admin = relay.handle().admin_addr();
    let fetched = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || backup::fetch(admin, token.trim(), &file))
    };
    let (_, fetched) = tokio::join!(office.sync(&relay), fetched);
    let (header, summary) = fetched.unwrap().unwrap();
    assert_eq!(header.kind, "relay");
    assert_eq!(header.fingerprint, Some(relay.fingerprint().to_string()));
    assert!(summary.documents >= synced_before.len() as u64);

    // On a new machine: a new, empty data directory.
    let data = tempfile::tempdir().unwrap();
    let reader = std::fs::File::open(&file).unwrap();
    backup::restore(reader, data.path(), |_| Ok(()), "store").unwrap();
    let restored = TestRelay::start_in(data, MediaConfig::default(), QuotaConfig::default()).await;
    assert_eq!(restored.fingerprint(), relay.fingerprint());
    let held = corpus(restored.store());
    for (id, heads) in &synced_before {
        assert_eq!(
            held.get(id),
            Some(heads),
            "{id} lost or changed by the backup"
        );
    }
    // Whatever the backup caught of the upload is a state the relay had: the office's own.
    let original = corpus(relay.store());
    assert!(held.keys().all(|id| original.contains_key(id)));
    relay.shutdown().await;

    // The office reconnects unchanged (same device, same pinned fingerprint) and sends what the
    // backup missed; a new office then pulls the whole corpus.
    office.sync(&restored).await;
    let fresh = Office::enrolled("caue-63", &restored, false).await;
    fresh.sync(&restored).await;
    assert_eq!(corpus(fresh.store()), corpus(restored.store()));
    let mine = corpus(office.store());
    let theirs = corpus(fresh.store());
    for id in &ids {
        assert_eq!(theirs.get(id), mine.get(id), "{id}");
    }
    restored.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_office_replica_backup_restores_and_syncs_as_before() {
    let relay = TestRelay::start().await;
    let office = Office::enrolled("caue-15", &relay, false).await;
    for i in 0..20 {
        office.create(&format!("Maison {i}"), "Une maison.");
    }
    office.sync(&relay).await;
    let Office { dir, replica } = office;
    let saved = corpus(replica.store());
    // Closed, as `atelier backup` wants it: the sync's media tasks may still hold the replica
    // for a moment, and sled lets go of its lock from a background thread.
    let started = std::time::Instant::now();
    let mut replica = replica;
    let replica = loop {
        match Arc::try_unwrap(replica) {
            Ok(r) => break r,
            Err(shared) => {
                assert!(
                    started.elapsed() < crate::harness::WAIT,
                    "the replica stayed shared"
                );
                replica = shared;
                tokio::task::yield_now().await;
            }
        }
    };
    drop(replica);
    atelier_tests::crash::wait_released(&dir.path().join("db")).unwrap();

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("caue-15.atelier-backup");
    let file_arg = file.to_str().unwrap();
    atelier_async(dir.path(), &["backup", "--out", file_arg])
        .await
        .ok();
    let target = tempfile::tempdir().unwrap();
    let restored = atelier_async(target.path(), &["restore", file_arg, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(restored["office"], "caue-15");
    // Restoring over a replica is refused, with nothing written.
    let refused = atelier_async(dir.path(), &["restore", file_arg]).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("rien n'a été écrit"),
        "{}",
        refused.stderr
    );

    let replica = Arc::new(Replica::open(target.path()).unwrap());
    assert_eq!(corpus(replica.store()), saved);
    let office = Office {
        dir: target,
        replica,
    };
    // Same device identity: still enrolled, nothing left to send.
    let stats = office.sync(&relay).await;
    assert_eq!(stats.docs_sent, 0);
    assert_eq!(
        std::fs::read(dir.path().join("identity/identity.key.der")).unwrap(),
        std::fs::read(office.dir.path().join("identity/identity.key.der")).unwrap()
    );
    relay.shutdown().await;
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written where `[tls]` will read it;
/// returns the certificate, for clients to trust.
fn write_certificate(tls: &TlsConfig) -> CertificateDer<'static> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    // Renewed in place as certbot does: new files renamed over the old ones.
    let tmp_cert = tls.cert.with_extension("new");
    let tmp_key = tls.key.with_extension("new");
    std::fs::write(&tmp_cert, cert.cert.pem()).unwrap();
    std::fs::write(&tmp_key, cert.signing_key.serialize_pem()).unwrap();
    std::fs::rename(&tmp_cert, &tls.cert).unwrap();
    std::fs::rename(&tmp_key, &tls.key).unwrap();
    cert.cert.der().clone()
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A `wss://` connection to the relay trusting only `root`, joined as an automerge-repo peer
/// of caue-15; the certificate the relay presented.
async fn wss_join(
    addr: SocketAddr,
    token: &str,
    root: &CertificateDer<'static>,
) -> Result<(Wss, CertificateDer<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let url = format!("wss://localhost:{}/?token={token}", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    let join = RepoMessage::Join {
        sender_id: PeerId::new("caue-15/navigateur").unwrap(),
        supported_protocol_versions: vec!["1".into()],
        peer_metadata: None,
    };
    ws.send(WsMessage::Binary(join.encode().into()))
        .await
        .unwrap();
    match next_message(&mut ws).await {
        RepoMessage::Peer { .. } => Ok((ws, presented)),
        other => Err(format!("expected peer, got {other:?}")),
    }
}

async fn next_message(ws: &mut Wss) -> RepoMessage {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no answer from the relay")
            .expect("websocket closed")
            .unwrap();
        if let WsMessage::Binary(bytes) = frame {
            return RepoMessage::decode(&bytes).unwrap();
        }
    }
}

/// Asks for `id` as automerge-repo's `request` does; the document the relay answers with.
async fn request(ws: &mut Wss, id: &DocumentId) -> automerge::AutoCommit {
    let mut doc = automerge::AutoCommit::new();
    let mut state = automerge::sync::State::new();
    let first = doc.sync().generate_sync_message(&mut state).unwrap();
    let ask = RepoMessage::Request {
        sender_id: PeerId::new("caue-15/navigateur").unwrap(),
        target_id: PeerId::new(atelier_relay::ws::RELAY_PEER_ID).unwrap(),
        document_id: *id,
        data: first.encode(),
    };
    ws.send(WsMessage::Binary(ask.encode().into()))
        .await
        .unwrap();
    loop {
        match next_message(ws).await {
            RepoMessage::Sync {
                document_id, data, ..
            } if document_id == *id => {
                let message = automerge::sync::Message::decode(&data).unwrap();
                doc.sync()
                    .receive_sync_message(&mut state, message)
                    .unwrap();
                if !doc.get_heads().is_empty() {
                    return doc;
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wss_serves_automerge_repo_and_a_renewed_certificate_keeps_quic_sessions() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsConfig {
        cert: certs.path().join("fullchain.pem"),
        key: certs.path().join("privkey.pem"),
    };
    let first = write_certificate(&tls);
    let relay = TestRelay::start_with_tls(tls.clone()).await;
    assert!(relay.handle().is_tls());
    let office = Office::enrolled("caue-15", &relay, false).await;
    let id = office.create("Maison de pays", "Sur wss.");
    office.sync(&relay).await;
    let token = relay.ws_token("caue-15", false);
    let ws_addr = relay.handle().ws_addr();

    // A browser over wss:// gets the document.
    let (mut browser, presented) = wss_join(ws_addr, &token, &first).await.unwrap();
    assert_eq!(presented, first);
    let mut doc = request(&mut browser, &id).await;
    assert_eq!(
        atelier_core::store::HeadsHash::of(&doc.get_heads()),
        office.store().heads_hash(&id).unwrap().unwrap()
    );

    // An office's QUIC session, open across the renewal.
    let opened = client::open(&office.identity(), relay.addr(), &relay.fingerprint())
        .await
        .unwrap();
    let connection = opened.connection.clone();

    let renewed = write_certificate(&tls);
    assert!(relay.handle().reload_tls().unwrap());

    // New handshakes present the renewed certificate; a client that trusts only the old one
    // is refused, one that trusts the new one joins.
    assert!(wss_join(ws_addr, &token, &first).await.is_err());
    let (mut second, presented) = wss_join(ws_addr, &token, &renewed).await.unwrap();
    assert_eq!(presented, renewed);
    request(&mut second, &id).await;
    // The browser connected before the renewal still talks to the relay.
    request(&mut browser, &id).await;
    // And the QUIC session opened before it still syncs.
    assert!(connection.close_reason().is_none());
    let id2 = office.create("Grange", "Après le renouvellement.");
    let session = Session::new(office.store().clone(), Role::Initiator)
        .with_office_lookup(office.replica.office_lookup());
    let mut session = session;
    session.start().unwrap();
    let stats = tokio::time::timeout(
        WAIT,
        drive(session, opened.stream, Mode::UntilConverged, |_| {}),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(stats.docs_sent >= 1);
    assert!(relay.store().contains(&id2).unwrap());
    connection.close(CloseCode::Done.code(), b"done");
    relay.shutdown().await;
}

/// The unit file as installed, with the relay binary where this build put it (verify checks
/// that every `Exec` command exists).
fn unit_with_binary(dir: &Path, relay: &Path) -> PathBuf {
    let unit = include_str!("../../deploy/atelier-relay.service")
        .replace("/usr/local/bin/atelier-relay", relay.to_str().unwrap());
    let path = dir.join("atelier-relay.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify_and_is_hardened() {
    // Debian's `systemd` package has it; scripts/test installs it. Never skipped: a machine
    // without it fails here, saying so.
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("systemd-analyze not found: install Debian's systemd package (scripts/test does)");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_binary(dir.path(), &crash_bins().relay);
    let verify = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    // Warnings (an unknown key, a bad value) are printed with success: none allowed.
    assert!(
        !stderr.contains("atelier-relay.service"),
        "systemd-analyze verify warns:\n{stderr}"
    );
    // systemd's own exposure score, 0 (locked down) to 10 (unprotected): at most 2.0.
    let security = Command::new(analyze)
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );
    let text = include_str!("../../deploy/atelier-relay.service");
    for line in [
        "User=atelier-relay",
        "ProtectSystem=strict",
        "StateDirectory=atelier-relay",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing");
    }
}

#[test]
fn the_container_recipe_builds_the_relay_and_matches_its_defaults() {
    // `docker build -f deploy/Containerfile .` (or podman) builds it; this checks what can be
    // checked without a container engine: two stages, the relay built locked, a non-root user,
    // the data volume, and the ports of relay.toml's defaults.
    let recipe = include_str!("../../deploy/Containerfile");
    let froms = recipe.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "a build stage and a runtime stage");
    assert!(recipe.contains("cargo build --release --locked -p atelier-relay"));
    let user = recipe
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
    let defaults = atelier_relay::config::RelayConfig::default();
    for port in [
        format!("{}/udp", defaults.listen.port()),
        format!("{}/tcp", defaults.ws_listen.port()),
    ] {
        assert!(recipe.contains(&port), "EXPOSE {port} missing");
    }
    assert!(recipe.contains("VOLUME [\"/data\"]"));
    // Every file the recipe copies from the repository exists.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for line in recipe
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(root.join(source).exists(), "{line}: {source} missing");
        }
    }
}

/// Reads lines from `lines` until one satisfies `want`, within [`WAIT`].
async fn line_where<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("output ended before {what}"));
            if want(&line) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_binary_logs_json_reloads_wss_on_sighup_and_backs_up_and_restores() {
    use tokio::io::AsyncBufReadExt;
    let relay_bin = crash_bins().relay;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = TlsConfig {
        cert: dir.path().join("fullchain.pem"),
        key: dir.path().join("privkey.pem"),
    };
    write_certificate(&tls);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&relay_bin)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let data_arg = data.to_str().unwrap();
    let init = run(&["--data", data_arg, "init", "--json"]);
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             data_dir = \"data\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            tls.cert.display(),
            tls.key.display()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let mut child = tokio::process::Command::new(&relay_bin)
        .args(["serve", "--config", config_arg, "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    line_where(&mut stdout, "the wss:// address", |l| l.contains("wss://")).await;
    let admin_line = line_where(&mut stdout, "the admin address", |l| {
        l.contains("administration")
    })
    .await;
    let admin = admin_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap()
        .to_owned();
    // Every log line is one JSON object.
    let started = line_where(&mut stderr, "the start log", |l| {
        l.contains("relais démarré")
    })
    .await;
    let event: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["fields"]["fingerprint"], init["fingerprint"]);

    // A renewed certificate, then `systemctl reload` (SIGHUP).
    write_certificate(&tls);
    let pid = child.id().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    let reloaded = line_where(&mut stderr, "the reload log", |l| l.contains("reloaded")).await;
    assert!(reloaded.contains("wss certificate reloaded"), "{reloaded}");

    // `atelier-relay backup` of the running relay, then `restore` on a new data directory.
    let file = dir.path().join("relais.atelier-backup");
    let file_arg = file.to_str().unwrap();
    let saved = run(&[
        "backup", "--config", config_arg, "--admin", &admin, "--out", file_arg, "--json",
    ]);
    assert_eq!(saved["fingerprint"], init["fingerprint"]);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let moved = dir.path().join("new-machine");
    let restored = run(&[
        "--data",
        moved.to_str().unwrap(),
        "restore",
        file_arg,
        "--json",
    ]);
    assert_eq!(restored["fingerprint"], init["fingerprint"]);
    // Restoring over it again is refused, and it stays as it was.
    let again = std::process::Command::new(&relay_bin)
        .args(["--data", moved.to_str().unwrap(), "restore", file_arg])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("rien n'a été écrit"));
}
