//! Real-browser tests of the web app: two offices' servers (caue-63, caue-15) in one process,
//! linked by a test stand-in for sync, driven by Debian's chromium through Playwright
//! (`tests/browser/web.test.mjs`). Screenshots land in `test-output/screenshots/`.
//!
//! The stand-in ([`Exchange`]) is *not* the sync engine: on every change of one replica it copies
//! the document's saved bytes into the other (`DocStore::update` + `load_incremental`), on a
//! thread of its own, and can be paused to play « offline ». It also implements `SyncStatus`, so
//! the pages' indicator is exercised. Replace it with the real engine once it lands.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use atelier_core::replica::Replica;
use atelier_core::store::StoreError;
use atelier_core::DocumentId;
use atelier_web::{SyncState, SyncStatus, WebConfig};

/// How long the whole browser script may run before the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// Where Debian puts chromium (`apt-get install chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn two_offices_edit_together_in_a_real_browser() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    require_tools(&browser_dir);

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Arc::new(Replica::init(dirs[0].path(), "caue-63".parse().unwrap()).unwrap());
    let b = Arc::new(Replica::init(dirs[1].path(), "caue-15".parse().unwrap()).unwrap());
    let exchange = Exchange::link(a.clone(), b.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (ha, hb) = runtime.block_on(async {
        let config = |side| WebConfig {
            sync: Some(Arc::new(exchange.status(side)) as Arc<dyn SyncStatus>),
            ..WebConfig::default()
        };
        let ha = atelier_web::spawn(a.clone(), config(0)).await.unwrap();
        let hb = atelier_web::spawn(b.clone(), config(1)).await.unwrap();
        (ha, hb)
    });
    let control = Control::start(exchange.clone());
    let shots = root.join("test-output/screenshots");
    // Screenshots of an earlier run would mislead a reader: start clean.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let mut child = Command::new("node")
        .arg(browser_dir.join("web.test.mjs"))
        .args([
            "--a",
            &ha.url(),
            "--b",
            &hb.url(),
            "--control",
            &control.url(),
        ])
        .arg("--a-dir")
        .arg(dirs[0].path())
        .arg("--shots")
        .arg(&shots)
        .env("CHROMIUM", CHROMIUM)
        .spawn()
        .expect("node could not be started");
    let status = wait_with_timeout(&mut child, SCRIPT_TIMEOUT);

    runtime.block_on(async {
        ha.shutdown().await;
        hb.shutdown().await;
    });
    control.stop();
    exchange.stop();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("the browser script failed ({s}); its output above says which step"),
        None => panic!("the browser script took more than {SCRIPT_TIMEOUT:?} and was stopped"),
    }
    // Both replicas converged on the same resources.
    let titles = |r: &Replica| {
        let mut t: Vec<String> = r
            .list(&Default::default())
            .unwrap()
            .into_iter()
            .map(|e| e.title)
            .collect();
        t.sort();
        t
    };
    exchange_settle(&a, &b);
    assert_eq!(titles(&a), titles(&b));
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Fails loudly, saying what to install, when node, npm or chromium is missing; installs the
/// script's npm dependencies (playwright-core only, which downloads no browser) when absent.
fn require_tools(browser_dir: &Path) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: the browser tests need Node.js 18+ (apt-get install -y nodejs npm)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests drive Debian's chromium (apt-get install -y chromium chromium-driver)"
    );
    if !browser_dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(browser_dir)
            .status()
            .expect("npm is missing: apt-get install -y npm");
        assert!(
            status.success(),
            "npm ci in {} failed",
            browser_dir.display()
        );
    }
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until neither replica has anything left to exchange.
fn exchange_settle(a: &Replica, b: &Replica) {
    for _ in 0..100 {
        if a.list(&Default::default()).unwrap().len() == b.list(&Default::default()).unwrap().len()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Test stand-in for sync: copies changed documents between two replicas, pausable.
#[derive(Clone)]
struct Exchange(Arc<ExchangeInner>);

struct ExchangeInner {
    replicas: [Arc<Replica>; 2],
    /// (side that changed, document), in order.
    queue: Mutex<VecDeque<(usize, DocumentId)>>,
    wake: Condvar,
    paused: AtomicBool,
    stopped: AtomicBool,
    busy: AtomicBool,
    last_sync: AtomicI64,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Exchange {
    fn link(a: Arc<Replica>, b: Arc<Replica>) -> Self {
        let inner = Arc::new(ExchangeInner {
            replicas: [a, b],
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            paused: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            last_sync: AtomicI64::new(0),
            worker: Mutex::new(None),
        });
        for side in 0..2 {
            // The observer runs inside the store's write: it only queues (copying here would
            // take the other store's lock, then this one's again on the way back).
            let weak = Arc::downgrade(&inner);
            inner.replicas[side].store().observe(Box::new(move |id| {
                if let Some(inner) = weak.upgrade() {
                    inner.queue.lock().unwrap().push_back((side, *id));
                    inner.wake.notify_all();
                }
            }));
        }
        let worker_inner = inner.clone();
        *inner.worker.lock().unwrap() = Some(std::thread::spawn(move || worker_inner.run()));
        Exchange(inner)
    }

    fn status(&self, side: usize) -> ExchangeStatus {
        ExchangeStatus {
            inner: self.0.clone(),
            side,
        }
    }

    fn pause(&self, paused: bool) {
        self.0.paused.store(paused, Ordering::SeqCst);
        self.0.wake.notify_all();
    }

    /// Blocks until the queue is empty and nothing is being copied.
    fn wait_idle(&self) {
        for _ in 0..200 {
            if self.0.queue.lock().unwrap().is_empty() && !self.0.busy.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("stand-in exchange did not settle");
    }

    fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.wake.notify_all();
        if let Some(worker) = self.0.worker.lock().unwrap().take() {
            worker.join().unwrap();
        }
    }
}

impl ExchangeInner {
    fn run(&self) {
        loop {
            let (from, id) = {
                let mut queue = self.queue.lock().unwrap();
                loop {
                    if self.stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    if !self.paused.load(Ordering::SeqCst) {
                        if let Some(item) = queue.pop_front() {
                            self.busy.store(true, Ordering::SeqCst);
                            break item;
                        }
                    }
                    queue = self
                        .wake
                        .wait_timeout(queue, Duration::from_millis(100))
                        .unwrap()
                        .0;
                }
            };
            if let Err(e) = self.copy(from, &id) {
                eprintln!("stand-in exchange: {id} not copied: {e}");
            }
            self.last_sync
                .store(atelier_web::events::now_ms(), Ordering::SeqCst);
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    fn copy(&self, from: usize, id: &DocumentId) -> Result<(), StoreError> {
        let Some(bytes) = self.replicas[from].store().saved(id)? else {
            return Ok(());
        };
        let to = self.replicas[1 - from].store();
        to.update(id, |doc, _| {
            doc.load_incremental(&bytes)
                .map(|_| ())
                .map_err(StoreError::from)
        })?;
        to.flush()
    }
}

/// The stand-in seen from one office, as the pages' sync indicator reads it.
struct ExchangeStatus {
    inner: Arc<ExchangeInner>,
    side: usize,
}

impl SyncStatus for ExchangeStatus {
    fn status(&self) -> SyncState {
        let queue = self.inner.queue.lock().unwrap();
        let mut mine: Vec<&DocumentId> = queue
            .iter()
            .filter(|(s, _)| *s == self.side)
            .map(|(_, id)| id)
            .collect();
        mine.sort();
        mine.dedup();
        let last = self.inner.last_sync.load(Ordering::SeqCst);
        SyncState {
            connected: !self.inner.paused.load(Ordering::SeqCst),
            relay: Some("échange de test".into()),
            pending_changes: mine.len(),
            last_sync: (last > 0).then_some(last),
        }
    }

    fn sync_now(&self) {
        self.inner.wake.notify_all();
    }
}

/// `GET /pause`, `GET /resume`: the browser script plays « offline » through these.
struct Control {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Control {
    fn start(exchange: Exchange) -> Self {
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
                    exchange.pause(true);
                    "paused"
                } else if request.starts_with("GET /resume ") {
                    exchange.pause(false);
                    "resumed"
                } else if request.starts_with("GET /idle ") {
                    exchange.wait_idle();
                    "idle"
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
