//! The relay's metrics, in the OpenMetrics text format Prometheus scrapes (`GET /metrics` on the
//! admin listener, [`crate::admin`]).
//!
//! Counters move where the work happens (the QUIC accept loop and handshake, the sync driver's
//! reader and writer, the WebSocket connection loop, the quota gate); gauges that describe what
//! the relay holds (enrolled devices, documents, bytes on disk) are read when scraped, so they
//! cost nothing between scrapes. One [`RelayMetrics`] per relay: tests run several relays in
//! one process and each one's counters stay its own.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Every metric's name starts with this (`atelier_relay_connections_total`, …).
pub const PREFIX: &str = "atelier_relay";

/// The content type of [`RelayMetrics::encode`]'s text (what Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the session-duration histogram, in seconds: 0.05 s (a one-shot sync of an
/// office already in sync) to ~3.6 h (a live session held through a working day) by factors of
/// 4, so both a slow first pull and a day-long watch land in a bucket of their own.
const SESSION_BUCKETS: (f64, f64, u16) = (0.05, 4.0, 9);

/// Which listener a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An office's QUIC sync connection (`atelier-sync/1`).
    Quic,
    /// An automerge-repo WebSocket (browsers, JavaScript apps).
    Ws,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Quic => "quic",
            Kind::Ws => "ws",
        }
    }
}

/// Whether bytes came in from a peer or went out to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// One relay's metrics. Cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct RelayMetrics {
    inner: Arc<Metrics>,
}

struct Metrics {
    registry: Registry,
    connections: Family<Labels1, Counter>,
    connections_open: Family<Labels1, Gauge>,
    sync_sessions: Family<Labels1, Counter>,
    session_seconds: Family<Labels1, Histogram, fn() -> Histogram>,
    frames: Family<Labels2, Counter>,
    bytes: Family<Labels2, Counter>,
    refusals: Family<Labels1, Counter>,
    quota_hits: Family<Labels1, Counter>,
    devices: Gauge,
    documents: Gauge,
    store_bytes: Gauge,
    ready: Gauge,
}

fn session_histogram() -> Histogram {
    let (start, factor, count) = SESSION_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, count))
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics {
            connections: Family::default(),
            connections_open: Family::default(),
            sync_sessions: Family::default(),
            session_seconds: Family::new_with_constructor(session_histogram),
            frames: Family::default(),
            bytes: Family::default(),
            refusals: Family::default(),
            quota_hits: Family::default(),
            devices: Gauge::default(),
            documents: Gauge::default(),
            store_bytes: Gauge::default(),
            ready: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Connections that reached a session (authenticated QUIC sync or WebSocket upgrade), by kind",
            m.connections.clone(),
        );
        registry.register(
            "connections_open",
            "Sessions open now, by kind",
            m.connections_open.clone(),
        );
        registry.register(
            "sync_sessions",
            "Sync sessions ended, by kind",
            m.sync_sessions.clone(),
        );
        registry.register(
            "sync_session_duration_seconds",
            "How long sync sessions lasted, by kind",
            m.session_seconds.clone(),
        );
        registry.register(
            "frames",
            "Sync frames (QUIC) and WebSocket messages, by kind and direction",
            m.frames.clone(),
        );
        registry.register(
            "frame_bytes",
            "Bytes of sync frames and WebSocket messages, by kind and direction",
            m.bytes.clone(),
        );
        registry.register(
            "refusals",
            "Connections, handshakes and writes refused, by reason",
            m.refusals.clone(),
        );
        registry.register(
            "quota_hits",
            "Writes refused because an office reached a quota, by quota",
            m.quota_hits.clone(),
        );
        registry.register(
            "enrolled_devices",
            "Devices enrolled and not revoked",
            m.devices.clone(),
        );
        registry.register("documents", "Documents in the store", m.documents.clone());
        registry.register(
            "store_bytes",
            "Bytes of the document store on disk",
            m.store_bytes.clone(),
        );
        registry.register(
            "ready",
            "1 while the relay accepts work, 0 while it starts or shuts down",
            m.ready.clone(),
        );
        Self {
            inner: Arc::new(Metrics { registry, ..m }),
        }
    }

    /// A session of `kind` opened; the guard counts it closed, with its duration, when dropped.
    pub fn session(&self, kind: Kind) -> SessionGuard {
        let labels = [("kind", kind.as_str())];
        self.inner.connections.get_or_create(&labels).inc();
        self.inner.connections_open.get_or_create(&labels).inc();
        SessionGuard {
            metrics: self.clone(),
            kind,
            started: std::time::Instant::now(),
        }
    }

    /// One frame of `bytes` bytes went `direction` on a `kind` session.
    pub fn frame(&self, kind: Kind, direction: Direction, bytes: usize) {
        let labels = [("kind", kind.as_str()), ("direction", direction.as_str())];
        self.inner.frames.get_or_create(&labels).inc();
        self.inner
            .bytes
            .get_or_create(&labels)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Something was refused; `reason` is a short snake_case word (`too_many_connections`,
    /// `not_enrolled`, `ws_unknown_token`, `forged_office`, …).
    pub fn refusal(&self, reason: &'static str) {
        self.inner
            .refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// An office's write hit `quota` (`documents`, `bytes`, `rate`, `media`).
    pub fn quota_hit(&self, quota: &'static str) {
        self.inner
            .quota_hits
            .get_or_create(&[("quota", quota)])
            .inc();
    }

    /// Sets what the relay holds, read just before a scrape.
    pub fn set_holdings(&self, devices: usize, documents: usize, store_bytes: u64) {
        self.inner.devices.set(to_i64(devices as u64));
        self.inner.documents.set(to_i64(documents as u64));
        self.inner.store_bytes.set(to_i64(store_bytes));
    }

    /// Whether the relay accepts work (the `/readyz` answer, also exported).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// Every metric, in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would only be a bug of ours.
        if let Err(e) = encode(&mut text, &self.inner.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        text
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An open session, counted closed when dropped (whatever way its task ends).
pub struct SessionGuard {
    metrics: RelayMetrics,
    kind: Kind,
    started: std::time::Instant,
}

impl SessionGuard {
    /// How long the session has lasted.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let labels = [("kind", self.kind.as_str())];
        let m = &self.metrics.inner;
        m.connections_open.get_or_create(&labels).dec();
        m.sync_sessions.get_or_create(&labels).inc();
        m.session_seconds
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_are_encoded_with_the_prefix() {
        let m = RelayMetrics::new();
        {
            let _s = m.session(Kind::Quic);
            m.frame(Kind::Quic, Direction::In, 100);
            m.frame(Kind::Quic, Direction::In, 20);
        }
        m.refusal("not_enrolled");
        m.quota_hit("documents");
        m.set_holdings(3, 42, 4096);
        m.set_ready(true);
        let text = m.encode();
        for line in [
            "atelier_relay_connections_total{kind=\"quic\"} 1",
            "atelier_relay_connections_open{kind=\"quic\"} 0",
            "atelier_relay_sync_sessions_total{kind=\"quic\"} 1",
            "atelier_relay_frames_total{kind=\"quic\",direction=\"in\"} 2",
            "atelier_relay_frame_bytes_total{kind=\"quic\",direction=\"in\"} 120",
            "atelier_relay_refusals_total{reason=\"not_enrolled\"} 1",
            "atelier_relay_quota_hits_total{quota=\"documents\"} 1",
            "atelier_relay_enrolled_devices 3",
            "atelier_relay_documents 42",
            "atelier_relay_store_bytes 4096",
            "atelier_relay_ready 1",
            "atelier_relay_sync_session_duration_seconds_count{kind=\"quic\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
