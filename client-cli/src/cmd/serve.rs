//! `atelier serve`: lets other offices' replicas sync directly with this one, without a relay
//! (`atelier sync --peer`). Only the devices named with `--allow` get in, each pinned by its
//! certificate fingerprint, as on the relay.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use atelier_core::replica::Replica;
use atelier_core::sync::{Role, Session, SyncStats};
use atelier_core::{fr, OfficeId};
use atelier_relay::framing::FramedStream;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::media_sync::{BlobService, ReplicaBlobs};
use atelier_relay::server::{self, ConnectionHandler, Peer, PinnedPeers, ServerConfig};
use atelier_relay::sync_conn::{respond, LiveChanges};
use quinn::Connection;
use serde_json::json;
use tokio::sync::mpsc;

use super::init::IDENTITY_DIR;
use super::sync::net;
use crate::{Ctx, UsageError};

/// Events buffered between connection tasks and the printer; a sync reports two.
const EVENT_QUEUE: usize = 64;

/// Accepte la synchronisation directe des postes d'autres offices (« atelier sync --peer »),
/// sans relais. Seuls les appareils autorisés par --allow entrent, reconnus à l'empreinte de
/// leur certificat (« atelier init » l'affiche). Affiche l'empreinte de ce poste, à donner aux
/// autres. Ctrl-C pour arrêter.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Adresse d'écoute (UDP). Par défaut ce poste seulement ; 0.0.0.0:4434 pour accepter le
    /// réseau local.
    #[arg(long, value_name = "ADRESSE", default_value = "127.0.0.1:4434")]
    pub listen: SocketAddr,
    /// Appareil autorisé, EMPREINTE:OFFICE, ex. 3f2a…9c:caue-15 (répétable).
    #[arg(long = "allow", value_name = "EMPREINTE:OFFICE", value_parser = parse_allowed)]
    pub allow: Vec<Allowed>,
    /// Appareil autorisé en lecture seule : il reçoit tout, ses modifications sont ignorées
    /// (répétable).
    #[arg(long = "allow-read-only", value_name = "EMPREINTE:OFFICE", value_parser = parse_allowed)]
    pub allow_read_only: Vec<Allowed>,
    /// Affiche les événements en JSON, un objet par ligne.
    #[arg(long)]
    pub json: bool,
}

/// A device allowed to connect.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub fingerprint: Fingerprint,
    pub office: OfficeId,
}

fn parse_allowed(text: &str) -> Result<Allowed, String> {
    let (fp, office) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("« {text} » : attendu EMPREINTE:OFFICE, ex. 3f2a…9c:caue-15"))?;
    Ok(Allowed {
        fingerprint: fp
            .parse()
            .map_err(|e| format!("empreinte « {fp} » invalide : {e}"))?,
        office: office.parse().map_err(|e| format!("{e}"))?,
    })
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.allow.is_empty() && args.allow_read_only.is_empty() {
        return Err(UsageError(
            "aucun poste autorisé : ajoutez --allow EMPREINTE:OFFICE pour chaque appareil qui \
             pourra se synchroniser ici"
                .into(),
        )
        .into());
    }
    let replica = Arc::new(crate::migrate::open_replica(&ctx.dir)?);
    let identity_dir = ctx.dir.join(IDENTITY_DIR);
    let identity = Identity::load_or_create(&identity_dir)
        .with_context(|| format!("identité de l'appareil dans « {} »", identity_dir.display()))?;
    let fingerprint = identity.fingerprint();
    let peers: Vec<Peer> = args
        .allow
        .iter()
        .map(|a| (a, false))
        .chain(args.allow_read_only.iter().map(|a| (a, true)))
        .map(|(a, read_only)| Peer {
            fingerprint: a.fingerprint,
            office: a.office.to_string(),
            read_only,
        })
        .collect();
    let rt = net::runtime()?;
    rt.block_on(async {
        let (events, mut rx) = mpsc::channel(EVENT_QUEUE);
        let handler = PeerHandler {
            replica: replica.clone(),
            live: LiveChanges::attach(replica.store()),
            events,
        };
        let server = server::spawn(ServerConfig::new(
            identity,
            args.listen,
            Arc::new(PinnedPeers::new(peers.clone())),
            Arc::new(handler),
        ))
        .with_context(|| format!("écoute sur {}", args.listen))?;
        let addr = server.local_addr();
        if args.json {
            let allowed: Vec<_> = peers
                .iter()
                .map(|p| json!({"fingerprint": p.fingerprint.to_string(), "office": p.office, "read_only": p.read_only}))
                .collect();
            let line = json!({"event": "listening", "address": format!("quic://{addr}"), "fingerprint": fingerprint.to_string(), "allowed": allowed});
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "Réplica de {} ouvert à la synchronisation directe sur quic://{addr}",
                replica.office()
            )?;
            writeln!(out, "  empreinte de ce poste : {fingerprint}")?;
            for p in &peers {
                let access = if p.read_only { " (lecture seule)" } else { "" };
                writeln!(out, "  autorisé : {} {}{access}", p.office, p.fingerprint)?;
            }
            writeln!(
                out,
                "Sur l'autre poste : atelier sync --peer quic://{addr} --fingerprint {fingerprint}"
            )?;
            writeln!(out, "Ctrl-C pour arrêter.")?;
        }
        out.flush()?;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                Some(event) = rx.recv() => {
                    event.print(args.json, out)?;
                    out.flush()?;
                }
            }
        }
        server.shutdown().await;
        replica.store().flush()?;
        if args.json {
            writeln!(out, "{}", json!({"event": "stopped"}))?;
        } else {
            writeln!(out, "Arrêté.")?;
        }
        Ok(())
    })
}

/// What the printer is told about a peer's session.
enum Event {
    Connected(Peer),
    Ended(Peer, Result<SyncStats, String>),
}

impl Event {
    fn print(&self, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
        match (self, json) {
            (Event::Connected(p), true) => writeln!(
                out,
                "{}",
                json!({"event": "connected", "office": p.office, "fingerprint": p.fingerprint.to_string()})
            ),
            (Event::Connected(p), false) => writeln!(out, "{} se synchronise…", p.office),
            (Event::Ended(p, Ok(s)), true) => writeln!(
                out,
                "{}",
                json!({"event": "ended", "office": p.office, "stats": s})
            ),
            (Event::Ended(p, Ok(s)), false) => {
                let ignored = match s.refused_changes {
                    0 => String::new(),
                    k => format!(
                        ", {} ignorée{} (lecture seule)",
                        fr::count(k, "modification"),
                        fr::plural_s(k)
                    ),
                };
                writeln!(
                    out,
                    "{} : {} reçu{}, {} envoyé{}{ignored}",
                    p.office,
                    fr::count(s.docs_received, "document"),
                    fr::plural_s(s.docs_received),
                    fr::count(s.docs_sent, "document"),
                    fr::plural_s(s.docs_sent),
                )
            }
            (Event::Ended(p, Err(e)), true) => writeln!(
                out,
                "{}",
                json!({"event": "ended", "office": p.office, "error": e})
            ),
            (Event::Ended(p, Err(e)), false) => writeln!(out, "{} : interrompu ({e})", p.office),
        }
    }
}

/// Answers one peer's sync and keeps pushing this replica's changes to it until it leaves; serves
/// and stores blobs on its media streams meanwhile.
struct PeerHandler {
    replica: Arc<Replica>,
    live: LiveChanges,
    events: mpsc::Sender<Event>,
}

type HandlerFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;

impl ConnectionHandler for PeerHandler {
    fn handle(&self, peer: Peer, stream: FramedStream, connection: Connection) -> HandlerFuture {
        let mut session = Session::new(self.replica.store().clone(), Role::Responder)
            .with_office_lookup(self.replica.office_lookup());
        if peer.read_only {
            session = session.read_only_peer();
        }
        let changes = self.live.subscribe();
        let events = self.events.clone();
        // Peers fetch this replica's blobs too; what they send is kept like the relay's.
        let blobs: Arc<dyn BlobService> = Arc::new(ReplicaBlobs::new(self.replica.clone()));
        Box::pin(async move {
            let _ = events.send(Event::Connected(peer.clone())).await;
            let result = respond(
                session,
                stream,
                changes,
                connection,
                peer.clone(),
                Some(blobs),
            )
            .await;
            let report = result.as_ref().map(Clone::clone).map_err(|e| e.to_string());
            let _ = events.send(Event::Ended(peer, report)).await;
            result.map(|_| ()).map_err(Into::into)
        })
    }
}
