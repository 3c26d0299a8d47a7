//! `atelier sync --watch`: a sync, then a live session that applies the relay's changes as they
//! come; when the relay goes away, reconnects with a bounded, jittered exponential backoff;
//! Ctrl-C ends it cleanly.
//!
//! Each connection starts with a sync until converged (so the summary and the relay record are
//! exact), then opens the live session, which starts with its own reconciliation round (one
//! round trip when nothing moved in between) and then pushes changes both ways.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use atelier_core::replica::Replica;
use atelier_core::search::IndexedSearch;
use atelier_core::store::DocChange;
use atelier_core::DocumentId;
use atelier_relay::identity::Identity;
use atelier_relay::sync_conn::{drive, LiveChanges, Mode};
use rand::Rng;
use serde_json::json;
use tokio::sync::broadcast;

use super::net::{self, FailureKind, SyncFailure, Target};
use super::state::{SyncState, WatchState};
use super::{record, sync_once, Report};
use crate::Ctx;

/// First wait after a lost connection. Short: a relay restart takes about that long.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts: an office back online is in sync within half a minute, and
/// ninety offices retrying do not hammer a relay that is coming back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The replica's local API (the web app, on a free loopback port, with `server.json`), served
/// while watching: the other `atelier` commands, which find the replica locked, go through it.
/// The caller shuts it down (which removes `server.json`).
pub async fn local_api(replica: &Arc<Replica>) -> anyhow::Result<atelier_web::WebHandle> {
    let config = atelier_web::WebConfig {
        search: Some(Arc::new(
            IndexedSearch::open(replica.clone()).context("ouverture de l'index de recherche")?,
        )),
        ..atelier_web::WebConfig::default()
    };
    atelier_web::spawn(replica.clone(), config).await
}

/// Runs until Ctrl-C (exit 0), or until the relay refuses this device (retrying would not help).
pub async fn run(
    replica: &Replica,
    identity: &Identity,
    target: &Target,
    json: bool,
    ctx: &Ctx,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let live = LiveChanges::attach(replica.store());
    let mut events = Events { json, out, ctx };
    let mut backoff = Backoff::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        let cycle = connected(replica, identity, target, &live, &mut events, &mut backoff);
        let failure = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            failure = cycle => failure,
        };
        if failure.kind == FailureKind::Refused {
            break Err(failure);
        }
        let wait = backoff.next();
        watch_state(ctx, false, Some(failure.message.clone()));
        events.disconnected(&failure, wait)?;
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    };
    replica.store().flush()?;
    if let Err(e) = SyncState::update(&ctx.dir, |s| s.watch = None) {
        tracing::warn!(error = %e, "clearing the watch state");
    }
    match outcome {
        Ok(()) => events.stopped(),
        Err(failure) => Err(failure.into()),
    }
}

/// One connection's life: a converged sync, then live until the link breaks. Returns why it
/// ended (a relay that closes the live session cleanly is a lost connection too).
async fn connected(
    replica: &Replica,
    identity: &Identity,
    target: &Target,
    live: &LiveChanges,
    events: &mut Events<'_>,
    backoff: &mut Backoff,
) -> SyncFailure {
    let started = std::time::Instant::now();
    let stats = match sync_once(replica, identity, target, |_| {}).await {
        Ok(stats) => stats,
        Err(f) => return f,
    };
    if let Err(e) = record(replica, &events.ctx.dir, target, &stats) {
        tracing::warn!(error = %e, "recording the sync");
    }
    backoff.reset();
    if let Err(e) = events.synced(&Report::new(target, started.elapsed(), stats)) {
        return other(format!("écriture sur la sortie standard : {e}"));
    }

    // Subscribed before connecting: no local change between the two sessions is missed.
    let session_changes = live.subscribe();
    let mut received = live.subscribe();
    let opened = match net::connect(identity, target).await {
        Ok(c) => c,
        Err(f) => return f,
    };
    let (connection, stream) = (opened.connection, opened.stream);
    let mut session = super::session(replica, opened.read_only);
    if let Err(e) = session.start() {
        net::close(&connection);
        return other(format!("lecture du réplica : {e}"));
    }
    watch_state(events.ctx, true, None);
    let session = drive(session, stream, Mode::Live(session_changes), |_| {});
    tokio::pin!(session);
    let ended = loop {
        tokio::select! {
            ended = &mut session => break ended,
            change = received.recv() => match change {
                Ok(change) => {
                    if let Err(e) = on_change(replica, target, &change, events) {
                        net::close(&connection);
                        return other(e.to_string());
                    }
                }
                // Missed notices only delay the relay record until the next converged sync.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {}
            },
        }
    };
    net::close(&connection);
    match ended {
        Ok(_) => SyncFailure {
            kind: FailureKind::Network,
            message: format!("{} a fermé la connexion", target.describe()),
        },
        Err(e) => net::from_drive_error(e, &target.describe()),
    }
}

/// A document changed while live. This process holds the replica, so nothing else writes to
/// it: every change came from the relay, which stored it before sending it.
fn on_change(
    replica: &Replica,
    target: &Target,
    change: &DocChange,
    events: &mut Events<'_>,
) -> anyhow::Result<()> {
    if target.is_relay {
        replica.mark_synced(&[change.id])?;
    }
    if let Some(entry) = replica.listing(&change.id)? {
        events.received(&change.id, &entry.title, &entry.office)?;
    }
    Ok(())
}

fn other(message: String) -> SyncFailure {
    SyncFailure {
        kind: FailureKind::Other,
        message,
    }
}

/// Tells `atelier status` (which cannot open the replica while we hold it) how the watch goes.
fn watch_state(ctx: &Ctx, connected: bool, last_error: Option<String>) {
    let now = ctx.now_ms();
    let result = SyncState::update(&ctx.dir, |s| {
        let since_ms = match &s.watch {
            Some(w) if w.connected == connected && w.pid == std::process::id() => w.since_ms,
            _ => now,
        };
        s.watch = Some(WatchState {
            pid: std::process::id(),
            connected,
            since_ms,
            last_error,
        });
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "recording the watch state");
    }
}

/// Exponential backoff, doubled after each failure up to `MAX_BACKOFF`, each wait drawn
/// uniformly between half and all of the current step so that offices cut off by the same
/// relay restart do not all come back in the same instant.
#[derive(Debug)]
struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { step: MIN_BACKOFF }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(MAX_BACKOFF);
        let half = step / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    fn reset(&mut self) {
        self.step = MIN_BACKOFF;
    }
}

/// What the watch prints: French lines, or one JSON object per line with `--json`.
struct Events<'a> {
    json: bool,
    out: &'a mut dyn Write,
    ctx: &'a Ctx,
}

impl Events<'_> {
    fn clock(&self) -> String {
        let format = time::macros::format_description!("[hour]:[minute]:[second]");
        time::OffsetDateTime::now_utc()
            .to_offset(self.ctx.offset)
            .format(&format)
            .unwrap_or_default()
    }

    fn line(&mut self, text: String, value: serde_json::Value) -> anyhow::Result<()> {
        if self.json {
            writeln!(self.out, "{value}")?;
        } else {
            writeln!(self.out, "{} {text}", self.clock())?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn synced(&mut self, r: &Report) -> anyhow::Result<()> {
        let text = format!(
            "synchronisé avec {} : {} reçu{}, {} envoyé{} ; à l'écoute des modifications",
            r.target,
            super::count(r.stats.docs_received),
            if r.stats.docs_received > 1 { "s" } else { "" },
            super::count(r.stats.docs_sent),
            if r.stats.docs_sent > 1 { "s" } else { "" },
        );
        let mut value = serde_json::to_value(r)?;
        value["event"] = json!("synced");
        self.line(text, value)
    }

    fn received(&mut self, id: &DocumentId, title: &str, office: &str) -> anyhow::Result<()> {
        self.line(
            format!("reçu : « {title} » ({office})"),
            json!({"event": "changed", "id": id, "title": title, "office": office}),
        )
    }

    fn disconnected(&mut self, f: &SyncFailure, wait: Duration) -> anyhow::Result<()> {
        let secs = format!("{:.1}", wait.as_secs_f64()).replace('.', ",");
        self.line(
            format!("{} ; nouvel essai dans {secs} s", f.message),
            json!({"event": "disconnected", "error": f.message, "retry_in_ms": wait.as_millis() as u64}),
        )
    }

    fn stopped(&mut self) -> anyhow::Result<()> {
        self.line(
            "arrêt demandé : synchronisation continue terminée".into(),
            json!({"event": "stopped"}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        let mut previous_step = Duration::ZERO;
        for _ in 0..20 {
            let step = b.step;
            let wait = b.next();
            assert!(
                wait >= step / 2 && wait <= step,
                "{wait:?} outside {step:?}"
            );
            assert!(step >= previous_step && step <= MAX_BACKOFF);
            previous_step = step;
        }
        assert_eq!(b.step, MAX_BACKOFF);
        b.reset();
        assert!(b.next() <= MIN_BACKOFF);
    }
}
