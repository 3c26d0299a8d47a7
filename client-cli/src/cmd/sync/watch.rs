//! `atelier sync --watch`: the relay crate's sync agent (a sync, then a live session that
//! applies the relay's changes as they come; when the relay goes away, reconnection with its
//! bounded, jittered exponential backoff), with hooks that record, report and print what
//! happens; Ctrl-C ends it cleanly.
//!
//! Each connection starts with a sync until converged (so the summary and the relay record are
//! exact), then opens the live session, which starts with its own reconciliation round (one
//! round trip when nothing moved in between) and then pushes changes both ways; photos and
//! documents follow on the same connection once the texts are settled.

use std::io::Write;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use atelier_core::replica::{Replica, WatchState};
use atelier_core::store::DocChange;
use atelier_core::{fr, DocumentId};
use atelier_relay::agent::{AgentHooks, SyncAgent};
use atelier_relay::identity::Identity;
use atelier_relay::sync_conn::LiveChanges;
use serde_json::json;
use tokio::sync::mpsc;

use super::net::{self, FailureKind, SyncFailure, Target};
use super::{record, Report};
use crate::Ctx;

/// The replica's local API (the web app, on a free loopback port, with `server.json`), served
/// while watching: the other `atelier` commands, which find the replica locked, go through it.
/// The caller shuts it down (which removes `server.json`).
pub async fn local_api(replica: &Arc<Replica>) -> anyhow::Result<atelier_web::WebHandle> {
    let config = atelier_web::WebConfig {
        search: Some(Arc::new(
            atelier_web::search::CatchingUp::open(replica.clone())
                .context("ouverture de l'index de recherche")?,
        )),
        ..atelier_web::WebConfig::default()
    };
    atelier_web::spawn(replica.clone(), config).await
}

/// Runs until Ctrl-C (exit 0), or until the relay refuses this device (retrying would not help).
pub async fn run(
    replica: &Arc<Replica>,
    identity: Identity,
    target: &Target,
    json: bool,
    ctx: &Ctx,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = SyncAgent::spawn(
        replica.store().clone(),
        LiveChanges::attach(replica.store()),
        identity,
        target.clone(),
        hooks(replica, target, tx),
    );
    let mut events = Events { json, out, ctx };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        let event = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            event = rx.recv() => event,
        };
        match event {
            Some(Event::Synced(report)) => events.synced(&report)?,
            Some(Event::Received { id, title, office }) => events.received(&id, &title, &office)?,
            Some(Event::Disconnected(failure, wait)) => events.disconnected(&failure, wait)?,
            Some(Event::Refused(failure)) => break Err(failure),
            // The agent stops only after a refusal, which comes first.
            None => break Ok(()),
        }
    };
    agent.shutdown().await;
    replica.store().flush()?;
    if let Err(e) = replica.update_sync_record(|s| s.watch = None) {
        tracing::warn!(error = %e, "clearing the watch state");
    }
    match outcome {
        Ok(()) => events.stopped(),
        Err(failure) => Err(failure.into()),
    }
}

/// What the sync agent tells the printer.
enum Event {
    /// Connected and converged: the summary of that sync.
    Synced(Box<Report>),
    /// A document changed while live.
    Received {
        id: DocumentId,
        title: String,
        office: String,
    },
    /// The connection was lost; the agent retries after the wait.
    Disconnected(SyncFailure, Duration),
    /// The relay refused this device: the agent has stopped.
    Refused(SyncFailure),
}

/// The watch's part in the sync loop: each connection starts with a sync until converged (so
/// the summary and the relay record are exact), recorded and reported, then goes live: every
/// change received live is reported and, from a relay, counted as on it at once; changes
/// written here (by the other commands, through the local API) are counted as on the relay
/// once the round confirming them settles.
fn hooks(replica: &Arc<Replica>, target: &Target, tx: mpsc::UnboundedSender<Event>) -> AgentHooks {
    let (for_session, session_target, session_tx) = (replica.clone(), target.clone(), tx.clone());
    let (settled, settled_target, settled_tx) = (replica.clone(), target.clone(), tx.clone());
    let (down, down_target) = (replica.clone(), target.clone());
    AgentHooks::default()
        .session(move |read_only| {
            let (replica, target, tx) = (
                for_session.clone(),
                session_target.clone(),
                session_tx.clone(),
            );
            super::session(&for_session, read_only).on_peer_change(move |change| {
                if let Err(e) = received(&replica, &target, change, &tx) {
                    tracing::warn!(error = %e, "recording a change received live");
                }
            })
        })
        .converge_first()
        .media(replica.clone())
        .on_settled(move |s| {
            // Every settled round leaves the relay holding what this replica holds, local
            // changes included; only a connection's first is reported.
            if let Err(e) = record(&settled, &settled_target, s.stats) {
                tracing::warn!(error = %e, "recording the sync");
            }
            if !s.first {
                return;
            }
            watch_state(&settled, true, None);
            let report = Report::new(&settled_target, s.elapsed, s.stats.clone());
            let _ = settled_tx.send(Event::Synced(Box::new(report)));
        })
        .on_link_down(move |e, wait| {
            let failure = net::from_link_error(e, &down_target);
            if failure.kind == FailureKind::Refused {
                let _ = tx.send(Event::Refused(failure));
                return ControlFlow::Break(());
            }
            watch_state(&down, false, Some(failure.message.clone()));
            let _ = tx.send(Event::Disconnected(failure, wait));
            ControlFlow::Continue(())
        })
}

/// A change the live session applied from the relay or peer: reported, and from a relay
/// counted as on it (see `Replica::mark_synced_from_relay`).
fn received(
    replica: &Replica,
    target: &Target,
    change: &DocChange,
    tx: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    if target.is_relay {
        replica.mark_synced_from_relay(change)?;
    }
    if let Some(entry) = replica.listing(&change.id)? {
        let _ = tx.send(Event::Received {
            id: change.id,
            title: entry.title,
            office: entry.office,
        });
    }
    Ok(())
}

/// Records how the watch goes, for `atelier status` (which cannot open the replica while we
/// hold it, and reads the record through the local API).
fn watch_state(replica: &Replica, connected: bool, last_error: Option<String>) {
    let now = crate::now_ms();
    let result = replica.update_sync_record(|s| {
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
            "synchronisé avec {} : {}, {} ; à l'écoute des modifications",
            r.target,
            fr::count(r.stats.docs_received, "reçu"),
            fr::count(r.stats.docs_sent, "envoyé"),
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
