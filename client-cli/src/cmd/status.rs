//! `atelier status`: the pinned relay, the last sync, what has not reached the relay yet, and the
//! photos and documents still to receive and to send.

use std::io::Write;

use atelier_core::replica::{
    MediaStatus, PeerSync, RefusedDoc, Replica, ReplicaError, SyncRecord, Unsynced, WatchState,
};
use atelier_core::store::StoreError;
use atelier_core::sync::Refusal;
use atelier_core::{fr, DocumentId};
use serde::Serialize;

use atelier_relay::identity::Identity;

use super::init::IDENTITY_DIR;
use super::sync::pin::RelayPin;
use super::write_json;
use crate::backend::{Backend as _, Remote, ServerInfo};
use crate::migrate::open_replica;
use crate::Ctx;

/// Resources listed by name; beyond, only their number.
const SHOWN: usize = 20;

/// Montre le relais de synchronisation, la date de la dernière synchronisation, et les
/// ressources modifiées ici (ou reçues d'un autre poste) qui ne sont pas encore sur le relais.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Affiche l'état en JSON.
    #[arg(long)]
    pub json: bool,
}

/// The status, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Status {
    relay: Option<RelayPin>,
    /// This device's certificate fingerprint (what a peer's `serve --allow` needs).
    device_fingerprint: Option<String>,
    /// Milliseconds since the epoch.
    last_sync_ms: Option<i64>,
    last_peer_sync: Option<PeerSync>,
    /// A `sync --watch` holding the replica.
    watch: Option<WatchState>,
    /// Documents the last sync (with the relay, or each peer) left out: one side refused them.
    refused: Vec<RefusedDoc>,
    /// Resources not on the relay yet; `null` when the replica is held by another process.
    pending: Option<Vec<Pending>>,
    /// Other documents (catalog) not on the relay yet.
    pending_other: Option<usize>,
    /// Blobs still to receive (per the media policy) and to send; `null` when unknown (the
    /// process holding the replica did not answer).
    media: Option<MediaStatus>,
    /// False when the replica is held by a process that did not give its sync record: then the
    /// last sync is unknown rather than « jamais ».
    #[serde(skip)]
    record_known: bool,
}

#[derive(Debug, Serialize)]
struct Pending {
    id: DocumentId,
    title: String,
    office: String,
    /// `new` (the relay never had it) or `changed`.
    state: Unsynced,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = &ctx.dir;
    let relay = RelayPin::load(dir)?;
    let (record, pending, pending_other, watch, media) = match open_replica(dir) {
        Ok(replica) => {
            let (p, o) = pending(&replica)?;
            let media = replica.media_status()?;
            // We hold the replica, so no watch runs: a leftover record is from a crash.
            (
                Some(replica.sync_record()?),
                Some(p),
                Some(o),
                None,
                Some(media),
            )
        }
        Err(ReplicaError::Store(StoreError::InUse(_))) => {
            let (record, media) = held_record(dir);
            let watch = record.as_ref().and_then(|r| r.watch.clone());
            (record, None, None, watch, media)
        }
        Err(e) => return Err(e.into()),
    };
    let record_known = record.is_some();
    let record = record.unwrap_or_default();
    let device_fingerprint = Identity::load(&dir.join(IDENTITY_DIR))
        .ok()
        .map(|i| i.fingerprint().to_string());
    let status = Status {
        relay,
        device_fingerprint,
        last_sync_ms: record.last_sync_ms,
        last_peer_sync: record.last_peer_sync,
        watch,
        refused: record.refused,
        pending,
        pending_other,
        media,
        record_known,
    };
    if args.json {
        return write_json(out, &status);
    }
    show(out, &status, ctx)
}

/// The sync record and media status of a replica another process holds, from that process's
/// local API (a `sync --watch` or `atelier-web`); `None` when it has none or does not answer.
fn held_record(dir: &std::path::Path) -> (Option<SyncRecord>, Option<MediaStatus>) {
    let Some(info) = ServerInfo::read(dir) else {
        return (None, None);
    };
    let remote = Remote::new(dir, info);
    let record = remote
        .sync_record()
        .inspect_err(|e| tracing::warn!(error = %e, "sync record from the local API"))
        .ok();
    let media = remote
        .media_status()
        .inspect_err(|e| tracing::warn!(error = %e, "media status from the local API"))
        .ok();
    (record, media)
}

/// Resources (sorted by title) and the number of other documents not on the relay.
fn pending(replica: &Replica) -> anyhow::Result<(Vec<Pending>, usize)> {
    let mut resources = Vec::new();
    let mut other = 0;
    for (id, state) in replica.unsynced()? {
        match replica.listing(&id)? {
            Some(e) => resources.push(Pending {
                id,
                title: e.title,
                office: e.office,
                state,
            }),
            None => other += 1,
        }
    }
    resources.sort_by_key(|p| fr::sort_key(&p.title));
    Ok((resources, other))
}

/// The documents the last sync left out, each with why, in French.
fn show_refused(out: &mut dyn Write, refused: &[RefusedDoc]) -> anyhow::Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    let n = refused.len() as u64;
    writeln!(
        out,
        "Laissé{} de côté à la dernière synchronisation (tout le reste est synchronisé) : {}",
        fr::plural_s(n),
        fr::count(n, "document")
    )?;
    for r in refused.iter().take(SHOWN) {
        let why = match &r.reason {
            Refusal::TooLarge { size } => format!(
                "trop gros ({}, {} au plus)",
                fr::size(*size as u64),
                fr::size(atelier_core::store::MAX_DOCUMENT_BYTES as u64)
            ),
            Refusal::Unreadable { detail } => format!("illisible ({detail})"),
            Refusal::ByPeer => "refusé par l'autre côté (son journal dit pourquoi)".to_string(),
        };
        writeln!(out, "  {} avec {} : {why}", r.id, r.with)?;
    }
    if refused.len() > SHOWN {
        writeln!(out, "  … et {} autres", fr::integer(n - SHOWN as u64))?;
    }
    Ok(())
}

fn show(out: &mut dyn Write, s: &Status, ctx: &Ctx) -> anyhow::Result<()> {
    match &s.relay {
        Some(pin) => {
            let access = if pin.read_only {
                "lecture seule"
            } else {
                "lecture et écriture"
            };
            writeln!(out, "Relais : {} ({}, {access})", pin.address, pin.office)?;
            writeln!(out, "  empreinte : {}", pin.fingerprint)?;
        }
        None => writeln!(
            out,
            "Relais : aucun (inscrivez cet appareil avec « atelier join quic://HÔTE:PORT \
             --fingerprint EMPREINTE --token JETON »)"
        )?,
    }
    if let Some(fp) = &s.device_fingerprint {
        writeln!(out, "Cet appareil : empreinte {fp}")?;
    }
    let when = |ms: i64| ago(ms, ctx);
    match s.last_sync_ms {
        Some(ms) => writeln!(out, "Dernière synchronisation : {}", when(ms))?,
        None if s.relay.is_some() && s.record_known => writeln!(
            out,
            "Dernière synchronisation : jamais (lancez « atelier sync »)"
        )?,
        None => {}
    }
    if let Some(p) = &s.last_peer_sync {
        writeln!(
            out,
            "Dernière synchronisation directe : {} avec {}",
            when(p.at_ms),
            p.peer
        )?;
    }
    if let Some(w) = &s.watch {
        let state = if w.connected {
            "connectée"
        } else {
            "en attente de reconnexion"
        };
        writeln!(
            out,
            "Synchronisation continue en cours (processus {}) : {state} depuis {}",
            w.pid,
            when(w.since_ms)
        )?;
        if let (false, Some(e)) = (w.connected, &w.last_error) {
            writeln!(out, "  dernière erreur : {e}")?;
        }
    }
    show_refused(out, &s.refused)?;
    if let Some(m) = &s.media {
        show_media(out, m)?;
    }
    let (Some(pending), Some(other)) = (&s.pending, s.pending_other) else {
        writeln!(
            out,
            "Le réplica est utilisé par un autre processus : ce qui reste à envoyer sera visible \
             quand il l'aura libéré."
        )?;
        return Ok(());
    };
    if pending.is_empty() && other == 0 {
        if s.last_sync_ms.is_some() {
            writeln!(out, "Tout est sur le relais.")?;
        } else {
            writeln!(out, "Rien à envoyer : le réplica est vide.")?;
        }
        return Ok(());
    }
    let n = pending.len();
    let read_only = s.relay.as_ref().is_some_and(|pin| pin.read_only);
    writeln!(
        out,
        "{} : {}{}",
        if read_only {
            "Modifié ici, non publié (accès en lecture seule)"
        } else {
            "Pas encore sur le relais"
        },
        fr::count(n as u64, "ressource"),
        match other {
            0 => String::new(),
            1 => " et 1 document de catalogue".into(),
            k => format!(" et {} documents de catalogue", fr::integer(k as u64)),
        }
    )?;
    for p in pending.iter().take(SHOWN) {
        let state = match p.state {
            Unsynced::New => "nouvelle",
            Unsynced::Changed => "modifiée",
        };
        writeln!(out, "  {state:<9} « {} » ({}) {}", p.title, p.office, p.id)?;
    }
    if n > SHOWN {
        writeln!(out, "  … et {} autres", fr::integer((n - SHOWN) as u64))?;
    }
    if read_only {
        writeln!(
            out,
            "Pour les publier, demandez un accès en écriture à l'administrateur du relais."
        )?;
    } else {
        writeln!(out, "Pour les envoyer : atelier sync")?;
    }
    Ok(())
}

/// « Photos et documents : 3 fichiers à recevoir (1,2 Mo), 1 à envoyer (4 Mo) ».
fn show_media(out: &mut dyn Write, m: &MediaStatus) -> anyhow::Result<()> {
    if m.to_receive == 0 && m.to_send == 0 {
        writeln!(out, "Photos et documents : tout est là, rien à envoyer.")?;
        return Ok(());
    }
    let mut parts = Vec::new();
    if m.to_receive > 0 {
        parts.push(format!(
            "{} à recevoir ({})",
            fr::count(m.to_receive, "fichier"),
            fr::size(m.to_receive_bytes)
        ));
    }
    if m.to_send > 0 {
        parts.push(format!(
            "{} à envoyer ({})",
            fr::count(m.to_send, "fichier"),
            fr::size(m.to_send_bytes)
        ));
    }
    writeln!(out, "Photos et documents : {}.", parts.join(", "))?;
    Ok(())
}

/// « 29/11/2026 14:03 (il y a 5 min) ».
fn ago(ms: i64, ctx: &Ctx) -> String {
    let at = fr::date_time(ms / 1000, ctx.offset);
    let minutes = (ctx.now_ms() - ms).max(0) / 60_000;
    let ago = match minutes {
        0 => "à l'instant".to_string(),
        m if m < 60 => format!("il y a {m} min"),
        m if m < 48 * 60 => format!("il y a {} h", m / 60),
        m => format!("il y a {} jours", m / (24 * 60)),
    };
    format!("{at} ({ago})")
}
