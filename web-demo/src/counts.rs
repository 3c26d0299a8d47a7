//! The counts in every page's header: unread « Quoi de neuf » items and « Pour vous » items.
//!
//! Computing them reads change histories and threads (`Replica::news`, `Replica::for_you`),
//! far too much to do for every page of a corpus of 10,000 resources. So they are cached:
//! a store observer bumps a generation number at every write (local, sync, CLI), « Marquer
//! comme lu » bumps it too, and the `refresh` middleware recomputes the counts off the async
//! threads at most once per page request, only when the generation moved. The header reads
//! the cache and never touches the replica.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atelier_core::clock::now_ms;
use atelier_core::replica::Replica;
use atelier_core::work::news::day_of;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// What the header shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// The counts and the generation they were computed at.
    cached: Mutex<Option<(u64, HeaderCounts)>>,
}

impl Counts {
    /// A cache fed by `replica`'s writes.
    pub fn observing(replica: &Replica) -> Self {
        let counts = Self::default();
        let generation = counts.generation.clone();
        replica.store().observe(Box::new(move |_| {
            generation.fetch_add(1, Ordering::Relaxed);
        }));
        counts
    }

    /// Something the counts depend on changed outside the store (news marked read).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The last counts computed, if any.
    pub fn get(&self) -> Option<HeaderCounts> {
        atelier_core::mutex::lock(&self.cached).map(|(_, c)| c)
    }

    fn fresh(&self) -> Option<u64> {
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

/// Middleware of the pages: before a page is drawn, brings the counts up to date if the
/// replica changed since they were computed. Scripts, assets, events and fragments skip it.
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
    if page {
        if let Some(generation) = state.counts().fresh() {
            let counted = state.blocking(move |r| Ok(compute(r, now_ms())?)).await;
            match counted {
                Ok(c) => state.counts().store(generation, c),
                Err(e) => tracing::warn!(error = %e, "header counts not computed"),
            }
        }
    }
    next.run(req).await
}
