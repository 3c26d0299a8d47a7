//! A deterministic in-memory network for sync sessions: seeded reordering across connections,
//! dropped connections, duplicated frames, partitions, and live changes fanned out by stores.
//!
//! Within one connection frames stay in order (QUIC streams are ordered); a lost frame kills its
//! connection, as a real transport would, and peers reconnect with fresh sessions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Role, Session, SyncError};
use crate::mutex::lock;
use crate::store::{DocChange, DocStore};

/// Fault probabilities, per delivered frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// The frame is lost and its connection dies.
    pub drop: f64,
    /// The frame is delivered twice (an application-level retry after a reconnect).
    pub duplicate: f64,
}

struct Conn {
    initiator: usize,
    responder: usize,
    sessions: [Session; 2],
    /// Frames in flight towards sessions[0] and sessions[1].
    queues: [VecDeque<Vec<u8>>; 2],
}

/// Several stores and the connections between them.
pub struct SimNet {
    rng: StdRng,
    pub stores: Vec<Arc<DocStore>>,
    live: Vec<Arc<Mutex<VecDeque<DocChange>>>>,
    conns: Vec<Conn>,
    pub faults: Faults,
    /// Errors sessions reported (each closed its connection).
    pub errors: Vec<String>,
    /// Frames delivered, for cost assertions.
    pub delivered: u64,
    pub bytes: u64,
    /// Print every delivered frame to stderr (debugging a failing case).
    pub trace: bool,
}

impl SimNet {
    pub fn new(seed: u64, stores: Vec<Arc<DocStore>>) -> Self {
        let live = stores
            .iter()
            .map(|s| {
                let q: Arc<Mutex<VecDeque<DocChange>>> = Arc::default();
                let q2 = q.clone();
                s.observe_changes(Box::new(move |c| lock(&q2).push_back(c.clone())));
                q
            })
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            stores,
            live,
            conns: Vec::new(),
            faults: Faults::default(),
            errors: Vec::new(),
            delivered: 0,
            bytes: 0,
            trace: false,
        }
    }

    /// Opens a connection from `a` (initiator) to `b` and starts reconciliation.
    pub fn connect(&mut self, a: usize, b: usize) {
        let mut sa = Session::new(self.stores[a].clone(), Role::Initiator);
        let sb = Session::new(self.stores[b].clone(), Role::Responder);
        if let Err(e) = sa.start() {
            self.errors.push(e.to_string());
            return;
        }
        let mut conn = Conn {
            initiator: a,
            responder: b,
            sessions: [sa, sb],
            queues: [VecDeque::new(), VecDeque::new()],
        };
        pump(&mut conn, 0);
        self.conns.push(conn);
    }

    /// Closes every connection touching `peer`.
    pub fn disconnect(&mut self, peer: usize) {
        self.conns
            .retain(|c| c.initiator != peer && c.responder != peer);
    }

    /// Closes every connection.
    pub fn disconnect_all(&mut self) {
        self.conns.clear();
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The state of every connection's sessions, for failing tests.
    pub fn describe(&self) -> String {
        self.conns
            .iter()
            .map(|c| {
                format!(
                    "[{} -> {}: {} | {}]",
                    c.initiator,
                    c.responder,
                    c.sessions[0].describe(),
                    c.sessions[1].describe()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The counters of connection `conn`'s initiator and responder, in that order.
    pub fn stats(&self, conn: usize) -> [&super::SyncStats; 2] {
        let c = &self.conns[conn];
        [c.sessions[0].stats(), c.sessions[1].stats()]
    }

    /// Whether the initiator of every open connection has converged.
    pub fn all_converged(&self) -> bool {
        self.conns.iter().all(|c| c.sessions[0].is_converged())
    }

    /// Delivers one frame (chosen at random among connections) and whatever live changes the
    /// stores produced. False when nothing is in flight.
    pub fn step(&mut self) -> bool {
        self.fan_out_live();
        let busy: Vec<(usize, usize)> = self
            .conns
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                (0..2)
                    .filter(move |s| !c.queues[*s].is_empty())
                    .map(move |s| (i, s))
            })
            .collect();
        if busy.is_empty() {
            return false;
        }
        let (ci, side) = busy[self.rng.gen_range(0..busy.len())];
        let dropped = self.rng.gen_bool(self.faults.drop.clamp(0.0, 1.0));
        let duplicated = self.rng.gen_bool(self.faults.duplicate.clamp(0.0, 1.0));
        let conn = &mut self.conns[ci];
        let Some(frame) = conn.queues[side].pop_front() else {
            return true;
        };
        if dropped {
            self.conns.swap_remove(ci);
            return true;
        }
        self.delivered += 1;
        self.bytes += frame.len() as u64;
        if self.trace {
            let to = if side == 0 {
                conn.initiator
            } else {
                conn.responder
            };
            eprintln!("  -> {to}: {}", summarize(&frame));
        }
        let mut result = conn.sessions[side].handle_frame(&frame);
        if duplicated && result.is_ok() {
            result = conn.sessions[side].handle_frame(&frame);
        }
        match result {
            Ok(()) => pump(conn, side),
            Err(e) => {
                self.errors.push(e.to_string());
                self.conns.swap_remove(ci);
            }
        }
        true
    }

    /// Steps until nothing moves or `max_steps` frames were delivered; returns the steps taken.
    pub fn run(&mut self, max_steps: usize) -> usize {
        let mut n = 0;
        while n < max_steps && self.step() {
            n += 1;
        }
        n
    }

    fn fan_out_live(&mut self) {
        for (store, q) in self.live.iter().enumerate() {
            let changes: Vec<DocChange> = lock(q).drain(..).collect();
            for change in changes {
                for conn in &mut self.conns {
                    for side in 0..2 {
                        let owner = if side == 0 {
                            conn.initiator
                        } else {
                            conn.responder
                        };
                        if owner == store {
                            conn.sessions[side].handle_local_change(&change);
                            pump(conn, side);
                        }
                    }
                }
            }
        }
    }
}

/// Moves every frame `side` wants to send into the other side's queue.
fn pump(conn: &mut Conn, side: usize) {
    while let Some(frame) = conn.sessions[side].poll_transmit() {
        conn.queues[1 - side].push_back(frame);
    }
}

/// Convenience for tests: a session error as text.
pub fn describe(e: &SyncError) -> String {
    e.to_string()
}

fn summarize(frame: &[u8]) -> String {
    use super::Message;
    match Message::decode(frame) {
        Ok(Message::Summary { round, .. }) => format!("summary round {round}"),
        Ok(Message::Entries { round, buckets }) => format!(
            "entries round {round}: {} buckets {} entries",
            buckets.len(),
            buckets.iter().map(|b| b.entries.len()).sum::<usize>()
        ),
        Ok(Message::Want { ids }) => format!("want {}", ids.len()),
        Ok(Message::Resync) => "resync".into(),
        Ok(Message::Docs { docs, .. }) => format!(
            "docs {:?}",
            docs.iter()
                .map(|d| (crate::DocumentId::from_bytes(d.id), d.bytes.len()))
                .collect::<Vec<_>>()
        ),
        Ok(Message::Sync { msgs }) => format!(
            "sync {:?}",
            msgs.iter()
                .map(|d| {
                    let m = automerge::sync::Message::decode(&d.bytes).ok();
                    (
                        crate::DocumentId::from_bytes(d.id),
                        d.bytes.len(),
                        m.map(|m| {
                            format!(
                                "heads {:?} need {:?} have {} changes {}",
                                m.heads,
                                m.need,
                                m.have.len(),
                                m.changes.len()
                            )
                        }),
                    )
                })
                .collect::<Vec<_>>()
        ),
        Err(e) => format!("undecodable: {e}"),
    }
}
