//! `atelier sync`: brings this replica and the relay (or another office's replica, `--peer`) to
//! the same documents, once, or continuously with `--watch`.
//!
//! The protocol is atelier-core's sans-IO `Session`, driven over QUIC by the relay crate's
//! `drive`; this module opens the connection, shows progress, records the sync (relay record,
//! last sync time) and says what happened, in French.

pub mod net;
pub mod pin;
pub mod state;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use atelier_core::fr;
use atelier_core::replica::Replica;
use atelier_core::sync::{Role, Session, SyncStats};
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::sync_conn::{drive, Mode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

pub use net::{FailureKind, SyncFailure, Target};
use pin::{QuicUrl, RelayPin};
use state::{PeerSync, SyncState};

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
        }
    }
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let target = target(&args, &ctx.dir)?;
    let replica = std::sync::Arc::new(Replica::open(&ctx.dir)?);
    let identity = load_identity(&ctx.dir)?;
    let rt = net::runtime()?;
    if args.watch {
        return rt.block_on(async {
            let api = watch::local_api(&replica).await?;
            let result = watch::run(&replica, &identity, &target, args.json, ctx, out).await;
            api.shutdown().await;
            result
        });
    }
    let bar = progress(args.json);
    bar.set_message(format!("connexion à {}…", target.describe()));
    let started = Instant::now();
    let stats = rt.block_on(sync_once(&replica, &identity, &target, |s| {
        bar.set_message(progress_message(s));
    }));
    bar.finish_and_clear();
    let report = Report::new(&target, started.elapsed(), stats?);
    record(&replica, &ctx.dir, &target, &report.stats)?;
    if args.json {
        return write_json(out, &report);
    }
    summary(out, &report)?;
    if target.is_relay && report.stats.unpublished == 0 && read_only_pin(&ctx.dir) {
        writeln!(
            out,
            "  (accès en lecture seule : ce qui est modifié ici n'est pas publié sur le relais)"
        )?;
    }
    Ok(())
}

/// One sync that goes until both sides hold the same documents.
pub async fn sync_once(
    replica: &Replica,
    identity: &Identity,
    target: &Target,
    mut on_progress: impl FnMut(&SyncStats) + Send,
) -> Result<SyncStats, SyncFailure> {
    let opened = net::connect(identity, target).await?;
    let (connection, stream) = (opened.connection, opened.stream);
    let moved = Moved::new();
    let on_progress = |s: &SyncStats| {
        Moved::update(&moved, s);
        on_progress(s);
    };
    let mut session = session(replica, opened.read_only);
    if let Err(e) = session.start() {
        net::close(&connection);
        return Err(SyncFailure {
            kind: FailureKind::Other,
            message: format!("lecture du réplica : {e}"),
        });
    }
    let driven = drive(session, stream, Mode::UntilConverged, on_progress);
    let result = until_stalled(driven, &moved).await;
    net::close(&connection);
    match result {
        Some(result) => result.map_err(|e| net::from_drive_error(e, &target.describe())),
        None => Err(SyncFailure {
            kind: FailureKind::Other,
            message: format!(
                "la synchronisation avec {} tourne en rond : des messages s'échangent mais aucun \
                 document n'a changé depuis {} s ; ce qui avait été reçu est gardé. Relancez « \
                 atelier sync » ; si cela se reproduit, signalez-le avec le journal obtenu par \
                 RUST_LOG=debug",
                target.describe(),
                STALL_LIMIT.as_secs()
            ),
        }),
    }
}

/// The initiating session for `replica`; a read-only device pulls only (the relay would ignore
/// what it offers).
fn session(replica: &Replica, read_only: bool) -> Session {
    let session = Session::new(replica.store().clone(), Role::Initiator)
        .with_office_lookup(replica.office_lookup());
    if read_only {
        session.pull_only()
    } else {
        session
    }
}

/// How long a sync may exchange frames without any document moving before it is abandoned: a
/// last line of defence against a protocol livelock (a healthy sync moves documents every few
/// milliseconds, even while one large document is reconciled).
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Frames received without any document moving, on top of `STALL_LIMIT`, before a sync counts
/// as stalled: a slow link that delivers little is not a stall.
const STALL_FRAMES: u64 = 200;

/// Runs a sync, or gives up (`None`) when it keeps exchanging frames without moving documents.
async fn until_stalled<T>(
    driven: impl std::future::Future<Output = T>,
    progress: &std::sync::Mutex<Moved>,
) -> Option<T> {
    tokio::pin!(driven);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut driven => return Some(result),
            _ = tick.tick() => {
                let moved = progress.lock().unwrap_or_else(|p| p.into_inner());
                if moved.since.elapsed() >= STALL_LIMIT
                    && moved.frames_now - moved.frames_then >= STALL_FRAMES
                {
                    return None;
                }
            }
        }
    }
}

/// When documents last moved during a sync, for [`until_stalled`].
struct Moved {
    docs: u64,
    since: Instant,
    frames_then: u64,
    frames_now: u64,
}

impl Moved {
    fn new() -> std::sync::Mutex<Self> {
        std::sync::Mutex::new(Self {
            docs: 0,
            since: Instant::now(),
            frames_then: 0,
            frames_now: 0,
        })
    }

    fn update(progress: &std::sync::Mutex<Self>, s: &SyncStats) {
        let mut m = progress.lock().unwrap_or_else(|p| p.into_inner());
        let docs = s.docs_received + s.docs_sent;
        m.frames_now = s.frames_received;
        if docs != m.docs {
            m.docs = docs;
            m.since = Instant::now();
            m.frames_then = s.frames_received;
        }
    }
}

/// Records a converged sync: with the relay, what it now holds (for `status`) and when.
pub fn record(
    replica: &Replica,
    dir: &Path,
    target: &Target,
    stats: &SyncStats,
) -> anyhow::Result<()> {
    let now = crate::now_ms();
    if target.is_relay {
        replica
            .record_synced_except(&stats.unpublished_ids)
            .context("enregistrement de l'état du relais")?;
        SyncState::update(dir, |s| {
            s.last_sync_ms = Some(now);
            s.last_relay = Some(target.url.to_string());
        })
    } else {
        SyncState::update(dir, |s| {
            s.last_peer_sync = Some(PeerSync {
                peer: target.url.to_string(),
                at_ms: now,
            });
        })
    }
}

/// The relay pinned by `join`, or the peer given on the command line.
fn target(args: &Args, dir: &Path) -> anyhow::Result<Target> {
    if let (Some(url), Some(fingerprint)) = (&args.peer, args.fingerprint) {
        return Ok(Target {
            url: url.clone(),
            fingerprint,
            is_relay: false,
        });
    }
    let pin = RelayPin::load(dir)?.ok_or_else(|| {
        UsageError(
            "aucun relais pour ce réplica : inscrivez d'abord cet appareil avec « atelier join \
             quic://HÔTE:PORT --fingerprint EMPREINTE --token JETON » (l'administrateur du relais \
             vous les donne), ou synchronisez directement avec un poste : --peer"
                .into(),
        )
    })?;
    Ok(Target {
        url: pin.address,
        fingerprint: pin.fingerprint,
        is_relay: true,
    })
}

fn read_only_pin(dir: &Path) -> bool {
    matches!(RelayPin::load(dir), Ok(Some(pin)) if pin.read_only)
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

/// The count of `sync --watch` lines (`watch.rs` still calls it through here).
pub(crate) use atelier_core::fr::integer as count;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sync_that_moves_no_document_for_long_is_abandoned() {
        let moved = Moved::new();
        let stats = SyncStats {
            docs_received: 3,
            frames_received: 10,
            ..Default::default()
        };
        Moved::update(&moved, &stats);
        // Documents moved just now: a sync still running is waited for.
        let running = until_stalled(std::future::pending::<()>(), &moved);
        assert!(tokio::time::timeout(Duration::from_millis(50), running)
            .await
            .is_err());
        // Frames kept coming for longer than the limit without any document moving.
        {
            let mut m = moved.lock().unwrap();
            m.since = Instant::now() - STALL_LIMIT;
            m.frames_now = m.frames_then + STALL_FRAMES;
        }
        assert_eq!(
            until_stalled(std::future::pending::<()>(), &moved).await,
            None
        );
        assert_eq!(until_stalled(async { 7 }, &moved).await, Some(7));
    }

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
