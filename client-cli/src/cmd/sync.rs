//! `atelier sync`: brings this replica and the relay (or another office's replica, `--peer`) to
//! the same documents, once, or continuously with `--watch`.
//!
//! The protocol is atelier-core's sans-IO `Session`, driven over QUIC by the relay crate's
//! `drive`; this module opens the connection, shows progress, records the sync (relay record,
//! last sync time) and says what happened, in French. Texts come first: the summary is printed
//! as soon as they are settled; then photos and documents move on the same connection, with a
//! progress bar in bytes (`--text-only` stops after the texts).

pub mod net;
pub mod pin;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use atelier_core::fr;
use atelier_core::replica::{PeerSync, RefusedDoc, Replica};
use atelier_core::search::IndexedSearch;
use atelier_core::sync::{Role, Session, SyncStats};
use atelier_relay::agent;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::media_sync::{MediaReport, MediaSyncError, MediaTransfer};
use atelier_relay::quic_url::QuicUrl;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

pub use net::{FailureKind, SyncFailure, Target};
use pin::RelayPin;

use super::init::IDENTITY_DIR;
use super::write_json;
use crate::{Ctx, UsageError};

/// Synchronise ce réplica avec le relais choisi par « atelier join » : reçoit ce que les autres
/// offices ont publié, envoie ce qui a été fait ici, jusqu'à ce que les deux côtés aient
/// exactement les mêmes documents. Avec --peer, synchronise directement avec le poste d'un
/// autre office qui lance « atelier serve », sans relais.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Reste connecté : les modifications arrivent et partent au fil de l'eau, avec
    /// reconnexion automatique si le relais s'absente. Les autres commandes atelier restent
    /// utilisables pendant ce temps. Ctrl-C pour arrêter.
    #[arg(long)]
    pub watch: bool,
    /// Synchronise directement avec le poste à cette adresse (son « atelier serve »), sans
    /// passer par le relais.
    #[arg(long, value_name = "quic://HÔTE:PORT", requires = "fingerprint")]
    pub peer: Option<QuicUrl>,
    /// Empreinte du certificat du poste --peer (son « atelier serve » l'affiche) : tout autre
    /// certificat est refusé.
    #[arg(long, value_name = "EMPREINTE", requires = "peer")]
    pub fingerprint: Option<Fingerprint>,
    /// Affiche le résultat en JSON (avec --watch : un objet JSON par ligne et par événement).
    #[arg(long)]
    pub json: bool,
    /// S'arrête dès que les textes sont à jour, sans recevoir ni envoyer les photos et
    /// documents (la prochaine synchronisation s'en chargera).
    #[arg(long, conflicts_with = "watch")]
    pub text_only: bool,
}

/// What a sync did, for the summary (`--json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `quic://…`.
    pub target: String,
    /// True for the relay, false for a peer.
    pub relay: bool,
    pub duration_ms: u64,
    /// Resources (documents listed with an office) received and sent, by office.
    pub resources_received: u64,
    pub resources_sent: u64,
    #[serde(flatten)]
    pub stats: SyncStats,
    /// Photos and documents moved after the texts (absent with `--text-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaReport>,
}

impl Report {
    fn new(target: &Target, duration: Duration, stats: SyncStats) -> Self {
        Self {
            target: target.url.to_string(),
            relay: target.is_relay,
            duration_ms: duration.as_millis() as u64,
            resources_received: stats.received_by_office.values().sum(),
            resources_sent: stats.sent_by_office.values().sum(),
            stats,
            media: None,
        }
    }
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    // The pin is read once: it gives the target and says whether this device only reads.
    let (target, read_only) = target(&args, &ctx.dir)?;
    let replica = Arc::new(crate::migrate::open_replica(&ctx.dir)?);
    let identity = load_identity(&ctx.dir)?;
    let rt = net::runtime()?;
    if args.watch {
        return rt.block_on(async {
            let api = watch::local_api(&replica).await?;
            let result = watch::run(&replica, identity, &target, args.json, ctx, out).await;
            api.shutdown().await;
            result
        });
    }
    let bar = progress(args.json);
    bar.set_message(format!("connexion à {}…", net::describe(&target)));
    let started = Instant::now();
    // A large pull (a fresh office's) fills the search index as documents arrive, so the
    // first search after it answers at once instead of building the index then.
    let (converged, indexed) = IndexedSearch::index_during(&replica, || {
        let converged = rt.block_on(converge(&replica, &identity, &target, |s| {
            bar.set_message(progress_message(s));
        }));
        bar.set_message("mise à jour de l'index de recherche…");
        converged
    });
    bar.finish_and_clear();
    if let Err(e) = indexed {
        // The documents are stored and still marked for the index: the next search takes them.
        tracing::warn!(error = %e, "search index not updated during the sync");
    }
    let converged = converged?;
    let mut report = Report::new(&target, started.elapsed(), converged.stats.clone());
    record(&replica, &target, &report.stats)?;
    if !args.json {
        // The texts are settled: say so before the photos, which may take a while.
        summary(out, &report)?;
        if target.is_relay && report.stats.unpublished == 0 && read_only {
            writeln!(
                out,
                "  (accès en lecture seule : ce qui est modifié ici n'est pas publié sur le relais)"
            )?;
        }
        out.flush()?;
    }
    let media = if args.text_only {
        Ok(None)
    } else {
        transfer_media(&rt, &replica, &converged, !target.is_relay, args.json).map(Some)
    };
    converged.close();
    report.media = media.map_err(|e| net::from_media_error(&e, &target))?;
    if args.json {
        return write_json(out, &report);
    }
    match &report.media {
        Some(m) => media_summary(out, m, &target)?,
        None => writeln!(
            out,
            "  photos et documents : non transférés (--text-only) ; « atelier status » dit ce qui \
             reste"
        )?,
    }
    Ok(())
}

/// Sends the outbox and fetches what the media policy wants, with a progress bar in bytes.
fn transfer_media(
    rt: &tokio::runtime::Runtime,
    replica: &Arc<Replica>,
    converged: &agent::Converged,
    to_peer: bool,
    json: bool,
) -> Result<MediaReport, MediaSyncError> {
    let status = replica
        .media_status()
        .map_err(|e| MediaSyncError::Local(e.to_string()))?;
    let mut total = status.to_receive_bytes;
    if !converged.read_only {
        total += status.to_send_bytes;
    }
    if total == 0 {
        // Nothing missing and nothing to send: no media stream at all.
        return Ok(MediaReport::default());
    }
    let bar = bytes_bar(json, total);
    let inc = bar.clone();
    let transfer = MediaTransfer::new(converged.connection.clone(), replica.clone())
        .read_only(converged.read_only)
        .to_peer(to_peer)
        .on_bytes(move |n| inc.inc(n));
    let report = rt.block_on(transfer.run());
    bar.finish_and_clear();
    report
}

/// One sync that goes until both sides hold the same documents; the connection stays open for
/// media.
pub async fn converge(
    replica: &Replica,
    identity: &Identity,
    target: &Target,
    on_progress: impl FnMut(&SyncStats) + Send,
) -> Result<agent::Converged, SyncFailure> {
    let session = |read_only| session(replica, read_only);
    agent::converge(identity, target, session, on_progress)
        .await
        .map_err(|e| net::from_link_error(&e, target))
}

/// The initiating session for `replica`, with the office lookup of the summary; a read-only
/// device pulls only (the relay would ignore what it offers).
fn session(replica: &Replica, read_only: bool) -> Session {
    let session = Session::new(replica.store().clone(), Role::Initiator)
        .with_office_lookup(replica.office_lookup());
    if read_only {
        session.pull_only()
    } else {
        session
    }
}

/// Records a converged sync in the replica: with the relay, what it now holds (for `status`)
/// and when; with a peer, when.
pub fn record(replica: &Replica, target: &Target, stats: &SyncStats) -> anyhow::Result<()> {
    let now = crate::now_ms();
    if target.is_relay {
        // Documents left out are not on the relay as they are here.
        let mut except = stats.unpublished_ids.clone();
        except.extend(stats.skipped.keys().copied());
        replica
            .record_synced_except(&except)
            .context("enregistrement de l'état du relais")?;
    }
    let with = target.url.to_string();
    replica
        .update_sync_record(|s| {
            s.refused.retain(|r| r.with != with);
            s.refused
                .extend(stats.skipped.iter().map(|(id, reason)| RefusedDoc {
                    id: *id,
                    with: with.clone(),
                    reason: reason.clone(),
                }));
            if target.is_relay {
                s.last_sync_ms = Some(now);
                s.last_relay = Some(target.url.to_string());
            } else {
                s.last_peer_sync = Some(PeerSync {
                    peer: target.url.to_string(),
                    at_ms: now,
                });
            }
        })
        .context("enregistrement de la synchronisation")?;
    Ok(())
}

/// The relay pinned by `join`, or the peer given on the command line; and whether the relay
/// enrolled this device read-only.
fn target(args: &Args, dir: &Path) -> anyhow::Result<(Target, bool)> {
    if let (Some(url), Some(fingerprint)) = (&args.peer, args.fingerprint) {
        let peer = Target {
            url: url.clone(),
            fingerprint,
            is_relay: false,
        };
        return Ok((peer, false));
    }
    let pin = RelayPin::load(dir)?.ok_or_else(|| {
        UsageError(
            "aucun relais pour ce réplica : inscrivez d'abord cet appareil avec « atelier join \
             quic://HÔTE:PORT --fingerprint EMPREINTE --token JETON » (l'administrateur du relais \
             vous les donne), ou synchronisez directement avec un poste : --peer"
                .into(),
        )
    })?;
    let relay = Target {
        url: pin.address,
        fingerprint: pin.fingerprint,
        is_relay: true,
    };
    Ok((relay, pin.read_only))
}

/// This device's identity, made by `atelier init` (or `join`).
pub fn load_identity(dir: &Path) -> anyhow::Result<Identity> {
    let path = dir.join(IDENTITY_DIR);
    if !path.exists() {
        return Err(UsageError(format!(
            "cet appareil n'a pas d'identité dans « {} » : lancez « atelier join » pour l'inscrire",
            path.display()
        ))
        .into());
    }
    Identity::load(&path)
        .with_context(|| format!("lecture de l'identité de l'appareil « {} »", path.display()))
}

/// A progress bar in bytes on standard error, hidden like the spinner.
fn bytes_bar(json: bool, total: u64) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "photos et documents {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, reste {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// What the media part of a sync did, in French.
fn media_summary(out: &mut dyn Write, m: &MediaReport, target: &Target) -> anyhow::Result<()> {
    let who = if target.is_relay {
        "le relais"
    } else {
        "le poste"
    };
    if m.received == 0 && m.sent == 0 && m.complete() {
        writeln!(out, "  photos et documents : déjà à jour")?;
        return Ok(());
    }
    writeln!(
        out,
        "  photos et documents : {} reçu{} ({}), {} envoyé{} ({})",
        fr::count(m.received, "fichier"),
        fr::plural_s(m.received),
        fr::size(m.received_bytes),
        fr::count(m.sent, "fichier"),
        fr::plural_s(m.sent),
        fr::size(m.sent_bytes),
    )?;
    if m.not_there > 0 {
        writeln!(
            out,
            "  {} pas encore sur {who} : {} à la prochaine synchronisation",
            fr::count(m.not_there, "fichier"),
            if m.not_there == 1 {
                "demandé"
            } else {
                "demandés"
            }
        )?;
    }
    if m.corrupt > 0 {
        writeln!(
            out,
            "  {} reçu{} altéré{} (empreinte différente) : écarté{}, redemandé{} plus tard",
            fr::count(m.corrupt, "fichier"),
            fr::plural_s(m.corrupt),
            fr::plural_s(m.corrupt),
            fr::plural_s(m.corrupt),
            fr::plural_s(m.corrupt),
        )?;
    }
    if let Some(reason) = m.refused.first() {
        writeln!(
            out,
            "  {} refusé{} par {who} ({reason}) : {} dans la file d'envoi",
            fr::count(m.refused.len() as u64, "envoi"),
            fr::plural_s(m.refused.len() as u64),
            if m.refused.len() == 1 {
                "il reste"
            } else {
                "ils restent"
            }
        )?;
    }
    Ok(())
}

/// A spinner on standard error, hidden for `--json` and when standard error is not a terminal.
fn progress(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn progress_message(s: &SyncStats) -> String {
    format!(
        "synchronisation : {} document{} reçu{}, {} envoyé{} ({} reçus)",
        fr::integer(s.docs_received),
        fr::plural_s(s.docs_received),
        fr::plural_s(s.docs_received),
        fr::integer(s.docs_sent),
        fr::plural_s(s.docs_sent),
        fr::size(s.bytes_received),
    )
}

/// The French summary of a sync.
fn summary(out: &mut dyn Write, r: &Report) -> anyhow::Result<()> {
    let who = if r.relay { "le relais" } else { "le poste" };
    let secs = fr::duration_ms(r.duration_ms);
    let s = &r.stats;
    if s.docs_received == 0 && s.docs_sent == 0 {
        writeln!(
            out,
            "Déjà à jour avec {who} {} : rien à recevoir ni à envoyer ({secs}).",
            r.target
        )?;
    } else {
        writeln!(out, "Synchronisé avec {who} {} en {secs}.", r.target)?;
        writeln!(
            out,
            "  reçu   : {}",
            direction(s.docs_received, r.resources_received, &s.received_by_office)
        )?;
        writeln!(
            out,
            "  envoyé : {}",
            direction(s.docs_sent, r.resources_sent, &s.sent_by_office)
        )?;
    }
    writeln!(
        out,
        "  réseau : {} reçus, {} envoyés, {} tour{} d'échange",
        fr::size(s.bytes_received),
        fr::size(s.bytes_sent),
        s.rounds,
        fr::plural_s(s.rounds as u64)
    )?;
    if s.unpublished > 0 {
        writeln!(
            out,
            "  {} document{} modifié{} ici non publié{} : cet appareil est inscrit en lecture seule",
            fr::integer(s.unpublished),
            fr::plural_s(s.unpublished),
            fr::plural_s(s.unpublished),
            fr::plural_s(s.unpublished)
        )?;
    }
    if s.refused_changes > 0 {
        writeln!(
            out,
            "  {} modification{} refusée{} par {who}",
            fr::integer(s.refused_changes),
            fr::plural_s(s.refused_changes),
            fr::plural_s(s.refused_changes)
        )?;
    }
    Ok(())
}

/// « 12 documents, dont 10 ressources (caue-15 : 6, caue-63 : 4) ».
fn direction(
    docs: u64,
    resources: u64,
    by_office: &std::collections::BTreeMap<String, u64>,
) -> String {
    if docs == 0 {
        return "rien".into();
    }
    let mut text = format!("{} document{}", fr::integer(docs), fr::plural_s(docs));
    if resources > 0 {
        let offices: Vec<String> = by_office
            .iter()
            .map(|(office, n)| format!("{office} : {}", fr::integer(*n)))
            .collect();
        text.push_str(&format!(
            ", dont {} ressource{} ({})",
            fr::integer(resources),
            fr::plural_s(resources),
            offices.join(", ")
        ));
    }
    if docs > resources {
        let other = docs - resources;
        text.push_str(&format!(
            " ; {} de catalogue",
            if other == 1 {
                "1".into()
            } else {
                fr::integer(other)
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_offices_and_catalog_documents() {
        let mut stats = SyncStats {
            docs_received: 12,
            docs_sent: 0,
            rounds: 2,
            bytes_received: 4_200,
            ..Default::default()
        };
        stats.received_by_office.insert("caue-15".into(), 6);
        stats.received_by_office.insert("caue-63".into(), 4);
        let target = Target {
            url: "quic://127.0.0.1:4433".parse().unwrap(),
            fingerprint: Fingerprint::from_bytes([0; 32]),
            is_relay: true,
        };
        let report = Report::new(&target, Duration::from_millis(1400), stats);
        let mut out = Vec::new();
        summary(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("en 1,4 s"), "{text}");
        assert!(
            text.contains(
                "12 documents, dont 10 ressources (caue-15 : 6, caue-63 : 4) ; 2 de catalogue"
            ),
            "{text}"
        );
        assert!(text.contains("envoyé : rien"), "{text}");
    }
}
