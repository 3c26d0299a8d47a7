//! Real-browser tests of the web app: two offices (caue-63, caue-15) with their web apps, linked
//! by the real sync engine through an in-process relay (`atelier demo`'s wiring), driven by
//! Debian's chromium through Playwright (`tests/browser/web.test.mjs`). Screenshots land in
//! `test-output/screenshots/`. « Offline » pauses both offices' sync agents: their connections
//! to the relay close, editing goes on, and resuming reconnects and reconciles. The médiathèque
//! steps upload photos drawn here (`--photos DIR`); `GET /media-arrive` hands office B the blobs
//! it lacks and tells its open pages (`AppState::media_arrived`), as media sync will.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_cli::live_demo::{self, LiveDemo};
use atelier_core::replica::Replica;

use crate::harness::{corpus, wait_for, BROWSER};

/// How long the whole browser script may run before the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// How long `idle` waits for the two offices to hold the same corpus, all of it on the relay.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Debian puts chromium (`apt-get install chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn two_offices_edit_together_in_a_real_browser() {
    require_tools();

    let tmp = tempfile::tempdir().unwrap();
    let a =
        Arc::new(Replica::init(&tmp.path().join("caue-63"), "caue-63".parse().unwrap()).unwrap());
    let b =
        Arc::new(Replica::init(&tmp.path().join("caue-15"), "caue-15".parse().unwrap()).unwrap());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let live = runtime
        .block_on(live_demo::start(
            tmp.path(),
            vec![a.clone(), b.clone()],
            false,
            // Blobs are handed over by `/media-arrive`, so the script sees them missing first
            // (media sync itself is tested in `media.rs`).
            false,
        ))
        .unwrap();
    let (url_a, url_b) = (live.offices[0].web.url(), live.offices[1].web.url());
    // What `atelier demo` prints: one-time login links, with which the script logs in.
    let (login_a, login_b) = (
        live.offices[0].web.login_url("/"),
        live.offices[1].web.login_url("/"),
    );
    let live = Arc::new(live);
    let net = Net(live.clone());
    net.wait_idle();
    let control = Control::start(net.clone());
    let shots = workspace_root().join("test-output/screenshots");
    // Screenshots of an earlier run would mislead a reader: start clean.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let photos = tmp.path().join("photos");
    write_photos(&photos);

    let mut child = Command::new("node")
        .arg(BROWSER.script("web.test.mjs"))
        .args(["--a", &url_a, "--b", &url_b, "--control", &control.url()])
        .args(["--a-login", &login_a, "--b-login", &login_b])
        .arg("--a-dir")
        .arg(a.dir())
        .arg("--shots")
        .arg(&shots)
        .arg("--photos")
        .arg(&photos)
        .env("CHROMIUM", CHROMIUM)
        .spawn()
        .expect("node could not be started");
    let status = wait_for(&mut child, SCRIPT_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    control.stop();
    net.pause(false);
    let settled = net.settled_within(SETTLE_TIMEOUT);
    drop(net);
    if let Ok(live) = Arc::try_unwrap(live) {
        runtime.block_on(live.shutdown());
    }
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("the browser script failed ({s}); its output above says which step"),
        None => panic!("the browser script took more than {SCRIPT_TIMEOUT:?} and was stopped"),
    }
    assert!(
        settled,
        "the two offices did not converge through the relay after the script"
    );
}

/// The two offices' sync, as the browser script drives it.
#[derive(Clone)]
struct Net(Arc<LiveDemo>);

impl Net {
    /// Pauses (offline) or resumes both offices' sync agents.
    fn pause(&self, paused: bool) {
        for office in &self.0.offices {
            office.agent.set_enabled(!paused);
        }
    }

    /// Gives office B every blob office A has and B lacks, and tells B's open pages, as media
    /// sync does when a blob arrives.
    fn hand_media_to_b(&self) {
        let (a, b) = (&self.0.offices[0], &self.0.offices[1]);
        for hash in a.replica.media_store().list() {
            if b.replica.media_store().contains(&hash) {
                continue;
            }
            if let Ok(Some(bytes)) = a.replica.media_blob(&hash) {
                b.replica.media_store().put(&bytes).unwrap();
                b.web.state().media_arrived(&hash);
            }
        }
    }

    /// Waits until both offices are connected, hold the same documents, and have nothing the
    /// relay lacks.
    fn wait_idle(&self) {
        assert!(
            self.settled_within(SETTLE_TIMEOUT),
            "the offices did not settle through the relay within {SETTLE_TIMEOUT:?}"
        );
    }

    fn settled_within(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let offices = &self.0.offices;
            let connected = offices.iter().all(|o| o.agent.status().connected);
            let empty = offices
                .iter()
                .all(|o| o.replica.unsynced().is_ok_and(|u| u.is_empty()));
            if connected
                && empty
                && corpus(offices[0].replica.store()) == corpus(offices[1].replica.store())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        for o in &self.0.offices {
            eprintln!(
                "{}: {:?}, unsynced {:?}, digests equal {}",
                o.office,
                o.agent.status(),
                o.replica.unsynced().map(|u| u.len()),
                corpus(self.0.offices[0].replica.store())
                    == corpus(self.0.offices[1].replica.store())
            );
        }
        false
    }
}

/// Photos for the upload steps: JPEGs drawn here, a landscape and a portrait (gradients and
/// shapes, so thumbnails look like something at 1280 and 390 px).
fn write_photos(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let draw = |w: u32, h: u32, tint: [u8; 3]| {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let sky = y < h / 2;
            let wall = (x / (w / 8)).is_multiple_of(2);
            let shade = |c: u8, k: u32| (c as u32 * k / 255) as u8;
            if sky {
                image::Rgb([150, 190, shade(250, 255 - y * 100 / h)])
            } else if wall {
                image::Rgb([tint[0], tint[1], shade(tint[2], 200 + x * 55 / w)])
            } else {
                image::Rgb([shade(tint[0], 180), shade(tint[1], 180), tint[2] / 2])
            }
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    };
    std::fs::write(
        dir.join("facade-sud.jpg"),
        draw(1800, 1200, [196, 150, 104]),
    )
    .unwrap();
    std::fs::write(dir.join("preau.jpg"), draw(900, 1200, [170, 120, 80])).unwrap();
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Fails loudly, saying what to install, when node, npm or chromium is missing; installs the
/// script's npm dependencies (playwright-core only, which downloads no browser) when absent.
fn require_tools() {
    if let Err(e) = BROWSER.ensure() {
        panic!("{e:#}: the browser tests need Node.js and npm");
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests drive Debian's chromium (apt-get install -y chromium chromium-driver)"
    );
}

/// `GET /pause`, `GET /resume`: the browser script plays « offline » through these.
struct Control {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Control {
    fn start(net: Net) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let body = if request.starts_with("GET /pause ") {
                    net.pause(true);
                    "paused"
                } else if request.starts_with("GET /resume ") {
                    net.pause(false);
                    "resumed"
                } else if request.starts_with("GET /idle ") {
                    net.wait_idle();
                    "idle"
                } else if request.starts_with("GET /media-arrive ") {
                    net.hand_media_to_b();
                    "media"
                } else {
                    "?"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Control { addr, stop, thread }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}
