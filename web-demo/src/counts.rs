//! The counts in every page's header: unread « Quoi de neuf » items and « Pour vous » items.
//!
//! Computing them reads change histories and threads (`Replica::news`, `Replica::for_you`):
//! measured at 12 s in a test build for 10,000 resources changed within the month, far too
//! much for a page. So they are cached and kept current off the request path: a store
//! observer bumps a generation number at every write (local, sync, CLI) and wakes the
//! server's `keep_current` task, which recomputes at most once per [`COUNTS_MIN_INTERVAL`]
//! and pushes the new counts to open pages (`counts` live event). Pages read the cache and
//! never wait. A router used without `spawn` (the route tests) has no such task: its `refresh`
//! middleware recomputes before a page when the generation moved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atelier_core::clock::now_ms;
use atelier_core::replica::Replica;
use atelier_core::work::news::day_of;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use tokio::sync::Notify;

use crate::AppState;

/// The least time between two computations of the counts: a burst of writes (an import, a
/// sync catching up) costs one computation per interval, and the header lags a change by
/// about this much plus the computation.
pub const COUNTS_MIN_INTERVAL: Duration = Duration::from_secs(2);

/// What the header shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HeaderCounts {
    /// « Quoi de neuf » items since the last « Marquer comme lu ».
    pub news: usize,
    /// « Pour vous » items: reviews asked, mentions, open tasks.
    pub for_you: usize,
}

/// The cache, shared by every request.
#[derive(Default)]
pub struct Counts {
    /// Bumped by every store write and every « Marquer comme lu ».
    generation: Arc<AtomicU64>,
    /// Wakes `keep_current` when the generation moves.
    changed: Arc<Notify>,
    /// The counts and the generation they were computed at.
    cached: Mutex<Option<(u64, HeaderCounts)>>,
    /// Whether `keep_current` runs (then pages never compute).
    worker: AtomicBool,
}

impl Counts {
    /// A cache fed by `replica`'s writes.
    pub fn observing(replica: &Replica) -> Self {
        let counts = Self::default();
        let (generation, changed) = (counts.generation.clone(), counts.changed.clone());
        replica.store().observe(Box::new(move |_| {
            generation.fetch_add(1, Ordering::Relaxed);
            changed.notify_one();
        }));
        counts
    }

    /// « Marquer comme lu »: no unread news from now on; the rest is recomputed.
    pub fn news_read(&self) {
        if let Some((_, c)) = atelier_core::mutex::lock(&self.cached).as_mut() {
            c.news = 0;
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// The last counts computed, if any.
    pub fn get(&self) -> Option<HeaderCounts> {
        atelier_core::mutex::lock(&self.cached).map(|(_, c)| c)
    }

    /// The generation to compute at, if the cache is behind it.
    fn stale(&self) -> Option<u64> {
        let now = self.generation.load(Ordering::Relaxed);
        match *atelier_core::mutex::lock(&self.cached) {
            Some((at, _)) if at == now => None,
            _ => Some(now),
        }
    }

    fn store(&self, generation: u64, counts: HeaderCounts) {
        let mut cached = atelier_core::mutex::lock(&self.cached);
        // A slower computation must not replace a newer one.
        if cached.is_none_or(|(at, _)| at <= generation) {
            *cached = Some((generation, counts));
        }
    }
}

/// Computes the counts from the replica (the costly part).
pub fn compute(r: &Replica, now: i64) -> Result<HeaderCounts, atelier_core::replica::ReplicaError> {
    Ok(HeaderCounts {
        news: r.news(r.news_since(now)?)?.len(),
        for_you: r.for_you(&day_of(now))?.len(),
    })
}

/// Brings the cache up to date if it is behind; returns the new counts if it computed them.
async fn update(state: &AppState) -> Option<HeaderCounts> {
    let generation = state.counts().stale()?;
    match state.blocking(move |r| Ok(compute(r, now_ms())?)).await {
        Ok(c) => {
            state.counts().store(generation, c);
            Some(c)
        }
        Err(e) => {
            tracing::warn!(error = %e, "header counts not computed");
            None
        }
    }
}

/// The server's task that keeps the counts current (see the module doc); ends at shutdown.
pub async fn keep_current(state: AppState) {
    state.counts().worker.store(true, Ordering::Relaxed);
    let mut stop = state.shutdown_signal();
    loop {
        if let Some(c) = update(&state).await {
            // No open page is not an error.
            let _ = state.events().send(crate::events::LiveEvent::Counts(c));
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(COUNTS_MIN_INTERVAL) => {}
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = state.counts().changed.notified() => {}
        }
    }
}

/// Middleware of the pages, for a router without `keep_current` (tests): before a page is
/// drawn, brings the counts up to date if the replica changed. Scripts, assets, events and
/// fragments skip it.
pub async fn refresh(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let page = req.method() == Method::GET
        && ![
            "/assets/",
            "/events",
            "/media/",
            "/fragments/",
            "/connexion",
        ]
        .iter()
        .any(|p| path.starts_with(p))
        && !path.ends_with("/texte");
    if page && !state.counts().worker.load(Ordering::Relaxed) {
        update(&state).await;
    }
    next.run(req).await
}
