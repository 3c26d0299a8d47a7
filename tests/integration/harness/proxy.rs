//! A UDP proxy between offices and a relay on loopback, with fault knobs: datagrams dropped,
//! delayed (hence reordered), or the link cut, drawn from a seeded generator.
//!
//! Each client address gets its own socket towards the relay, as a NAT would give it, so the
//! relay sees one stable address per office and a restarted relay answers the same 4-tuple.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Largest datagram relayed: QUIC never sends more than a path MTU, and loopback's is 64 KiB.
const MAX_DATAGRAM: usize = 65_535;

/// What happens to each datagram, either way.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    /// Share of datagrams dropped.
    pub drop: f64,
    /// Share of datagrams held back for up to `max_delay` (which reorders them).
    pub delay: f64,
    pub max_delay: Duration,
    /// Every datagram from the relay dropped: clients whose handshakes never complete, as a
    /// spoofed source that never sees the answers.
    pub drop_replies: bool,
}

/// What the proxy did, for tests to check that faults really happened.
#[derive(Debug, Default)]
pub(crate) struct ProxyStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub delayed: AtomicU64,
    /// Dropped because the link was cut.
    pub cut: AtomicU64,
    /// Clients the relay answered at least once (whatever became of the answer).
    pub answered: AtomicU64,
}

struct Shared {
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    is_cut: AtomicBool,
    stats: ProxyStats,
    /// Woken each time the relay answers a new client.
    answered: Notify,
}

/// A running proxy; dropping it stops it.
pub(crate) struct UdpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl UdpProxy {
    /// A proxy on `127.0.0.1:0` towards `upstream`, its faults drawn from `seed`.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            is_cut: AtomicBool::new(false),
            stats: ProxyStats::default(),
            answered: Notify::new(),
        });
        let task = tokio::spawn(run(front, upstream, shared.clone()));
        Self { addr, shared, task }
    }

    /// Where clients connect instead of the relay.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link (every datagram dropped, both ways) or heals it.
    pub fn cut(&self, cut: bool) {
        self.shared.is_cut.store(cut, Ordering::SeqCst);
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }

    /// Waits (up to [`crate::harness::WAIT`]) until the relay has answered `clients` clients.
    pub async fn wait_answered(&self, clients: u64) {
        let waited = tokio::time::timeout(crate::harness::WAIT, async {
            loop {
                let woken = self.shared.answered.notified();
                if self.shared.stats.answered.load(Ordering::SeqCst) >= clients {
                    break;
                }
                woken.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the relay never answered {clients} clients");
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxy's task: reads clients' datagrams, opens a socket towards the relay per client,
/// and owns every task that relays or delays datagrams (aborted with it).
async fn run(front: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let back = match backs.get(&client) {
            Some(back) => back.clone(),
            None => {
                let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                back.connect(upstream).await.unwrap();
                backs.insert(client, back.clone());
                tasks.spawn(replies(back.clone(), front.clone(), client, shared.clone()));
                back
            }
        };
        let datagram = buf[..len].to_vec();
        match decide(&shared) {
            Fate::Now => {
                let _ = back.send(&datagram).await;
            }
            Fate::Later(delay) => {
                let shared = shared.clone();
                tasks.spawn(async move {
                    if later(&shared, delay).await {
                        let _ = back.send(&datagram).await;
                    }
                });
            }
            Fate::Lost => {}
        }
        while tasks.try_join_next().is_some() {}
    }
}

/// Relays what the relay sends to one client.
async fn replies(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut answered = false;
    loop {
        let Ok(len) = back.recv(&mut buf).await else {
            continue;
        };
        if !answered {
            answered = true;
            shared.stats.answered.fetch_add(1, Ordering::SeqCst);
            shared.answered.notify_waiters();
        }
        if shared.faults.lock().unwrap().drop_replies {
            shared.stats.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let datagram = buf[..len].to_vec();
        match decide(&shared) {
            Fate::Now => {
                let _ = front.send_to(&datagram, client).await;
            }
            Fate::Later(delay) => {
                let (shared, front) = (shared.clone(), front.clone());
                tasks.spawn(async move {
                    if later(&shared, delay).await {
                        let _ = front.send_to(&datagram, client).await;
                    }
                });
            }
            Fate::Lost => {}
        }
        while tasks.try_join_next().is_some() {}
    }
}

/// What becomes of one datagram.
enum Fate {
    Now,
    Later(Duration),
    Lost,
}

/// Waits `delay`; whether the datagram still goes (a link cut meanwhile loses what was in
/// flight on it).
async fn later(shared: &Shared, delay: Duration) -> bool {
    tokio::time::sleep(delay).await;
    !shared.is_cut.load(Ordering::SeqCst)
}

/// Draws the fate of a datagram, as the link and the faults say.
fn decide(shared: &Shared) -> Fate {
    let stats = &shared.stats;
    let fate = if shared.is_cut.load(Ordering::SeqCst) {
        stats.cut.fetch_add(1, Ordering::SeqCst);
        Fate::Lost
    } else {
        let faults = *shared.faults.lock().unwrap();
        let (roll, delay) = {
            let mut rng = shared.rng.lock().unwrap();
            let roll: f64 = rng.gen();
            (roll, faults.max_delay.mul_f64(rng.gen()))
        };
        if roll < faults.drop {
            stats.dropped.fetch_add(1, Ordering::SeqCst);
            Fate::Lost
        } else if roll < faults.drop + faults.delay {
            stats.delayed.fetch_add(1, Ordering::SeqCst);
            Fate::Later(delay)
        } else {
            stats.forwarded.fetch_add(1, Ordering::SeqCst);
            Fate::Now
        }
    };
    fate
}
