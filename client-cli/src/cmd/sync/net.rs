//! Reaching the relay or a peer: the runtime, the connection, and what a failure means for the
//! user (a French message and an exit code: retry later, or ask for access).

use std::fmt;

pub use atelier_relay::agent::Target;
use atelier_relay::agent::{ConnectError, LinkError};
use atelier_relay::client::ClientError;
use atelier_relay::framing::FrameError;
use atelier_relay::handshake::CloseCode;
use atelier_relay::media_sync::MediaSyncError;
use atelier_relay::sync_conn::DriveError;
use atelier_relay::transport::TransportError;
use quinn::ConnectionError;

use crate::Exit;

/// Worker threads of the sync runtime: one runs the session (store work, under
/// `block_in_place`), one keeps QUIC and the frame reader and writer going.
const WORKER_THREADS: usize = 2;

/// « le relais quic://… » or « le poste quic://… », for messages.
pub fn describe(target: &Target) -> String {
    if target.is_relay {
        format!("le relais {}", target.url)
    } else {
        format!("le poste {}", target.url)
    }
}

/// Why a sync could not be done, and whether trying again later may help.
#[derive(Debug)]
pub struct SyncFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// The kinds of failure, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Unreachable, connection lost, or the corpus kept moving: try again later (exit 4).
    Network,
    /// The relay or peer refused this device, or is not the one pinned (exit 5).
    Refused,
    /// Something broke the protocol or the local store failed (exit 1).
    Other,
}

impl SyncFailure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn exit(&self) -> Exit {
        match self.kind {
            FailureKind::Network => Exit::Network,
            FailureKind::Refused => Exit::Refused,
            FailureKind::Other => Exit::Runtime,
        }
    }
}

impl fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyncFailure {}

/// The runtime the network commands run on. Multi-threaded: the sync driver moves store work
/// off the async threads with `block_in_place`, which a current-thread runtime does not allow.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("démarrage du moteur réseau")
}

/// What a sync (one-shot, or a connection of the watch) that failed means for the user.
pub fn from_link_error(e: &LinkError, target: &Target) -> SyncFailure {
    use FailureKind::*;
    let who = describe(target);
    match e {
        LinkError::Connect(ConnectError::Resolve(e)) => {
            SyncFailure::new(Network, format!("adresse de {who} introuvable ({e})"))
        }
        LinkError::Connect(ConnectError::Client(e)) => from_client_error(e, &who),
        LinkError::Start(e) => SyncFailure::new(Other, format!("lecture du réplica : {e}")),
        LinkError::Drive(e) => from_drive_error(e, &who),
        &LinkError::Stalled(limit) => SyncFailure::new(
            Other,
            format!(
                "la synchronisation avec {who} tourne en rond : des messages s'échangent mais \
                 aucun document n'a changé depuis {} s ; ce qui avait été reçu est gardé. \
                 Relancez « atelier sync » ; si cela se reproduit, signalez-le avec le journal \
                 obtenu par RUST_LOG=debug",
                limit.as_secs()
            ),
        ),
        LinkError::Closed => SyncFailure::new(Network, format!("{who} a fermé la connexion")),
        LinkError::Local(message) => SyncFailure::new(Other, message.clone()),
    }
}

/// What a media transfer that broke off means for the user (texts are already settled then).
pub fn from_media_error(e: &MediaSyncError, target: &Target) -> SyncFailure {
    use FailureKind::*;
    let who = describe(target);
    match e {
        MediaSyncError::Connection(_) | MediaSyncError::Frame(_) => SyncFailure::new(
            Network,
            format!(
                "la connexion avec {who} s'est interrompue pendant le transfert des photos et \
                 documents (les textes sont à jour) : relancez « atelier sync », les fichiers \
                 reprendront où ils en étaient"
            ),
        ),
        MediaSyncError::Local(m) => {
            SyncFailure::new(Other, format!("photos et documents de ce poste : {m}"))
        }
        other @ (MediaSyncError::Malformed(_) | MediaSyncError::Unexpected(_)) => SyncFailure::new(
            Other,
            format!(
                "réponse inattendue de {who} pendant le transfert des photos et documents ({})",
                chain(other)
            ),
        ),
    }
}

/// What a failed handshake (enrolment or `Hello`) means for the user.
pub fn from_client_error(e: &ClientError, who: &str) -> SyncFailure {
    use FailureKind::*;
    match e {
        ClientError::Transport(TransportError::FingerprintMismatch { expected, found }) => {
            SyncFailure::new(
                Refused,
                format!(
                    "{who} présente le certificat d'empreinte {found}, et non celui attendu \
                     ({expected}) : connexion refusée. Vérifiez l'empreinte auprès de son \
                     administrateur ; si son certificat a vraiment changé, relancez « atelier \
                     join » avec la nouvelle (pour un poste : corrigez --fingerprint)"
                ),
            )
        }
        ClientError::Transport(TransportError::Connection(c)) | ClientError::Connection(c) => {
            from_connection_error(c, who)
        }
        ClientError::Transport(other) => SyncFailure::new(
            Network,
            format!("connexion à {who} impossible ({})", chain(other)),
        ),
        ClientError::Refused { reason } => SyncFailure::new(Refused, refusal(who, reason)),
        ClientError::Closed {
            code: Some(CloseCode::Refused),
            reason,
        } => SyncFailure::new(Refused, refusal(who, reason)),
        ClientError::Closed {
            code: Some(CloseCode::ShuttingDown),
            ..
        } => SyncFailure::new(Network, format!("{who} est en cours d'arrêt")),
        ClientError::Closed { reason, .. } => {
            SyncFailure::new(Network, format!("{who} a fermé la connexion ({reason})"))
        }
        ClientError::Timeout => SyncFailure::new(
            Network,
            format!("{who} ne répond pas (délai de connexion dépassé)"),
        ),
        other @ (ClientError::Frame(_)
        | ClientError::Handshake(_)
        | ClientError::Unexpected(_)
        | ClientError::FingerprintMismatch { .. }) => SyncFailure::new(
            Other,
            format!("réponse inattendue de {who} ({})", chain(other)),
        ),
    }
}

/// What a sync that started but did not finish means for the user.
pub fn from_drive_error(e: &DriveError, who: &str) -> SyncFailure {
    use FailureKind::*;
    match e {
        DriveError::Frame(FrameError::Read(quinn::ReadError::ConnectionLost(c))) => {
            from_connection_error(c, who)
        }
        DriveError::Frame(FrameError::Write(quinn::WriteError::ConnectionLost(c))) => {
            from_connection_error(c, who)
        }
        DriveError::Frame(f) => {
            SyncFailure::new(Network, format!("connexion avec {who} perdue ({f})"))
        }
        DriveError::PeerClosed => SyncFailure::new(
            Network,
            format!("{who} a fermé la connexion avant la fin de la synchronisation"),
        ),
        DriveError::NotSettled => SyncFailure::new(
            Network,
            "la synchronisation ne s'est pas stabilisée (d'autres offices modifiaient le corpus \
             en même temps) : ce qui a été échangé est gardé, relancez « atelier sync »",
        ),
        DriveError::Sync(s) => SyncFailure::new(
            Other,
            format!("synchronisation avec {who} interrompue ({s})"),
        ),
    }
}

fn from_connection_error(c: &ConnectionError, who: &str) -> SyncFailure {
    use FailureKind::*;
    match c {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            match CloseCode::from_code(close.error_code) {
                Some(CloseCode::Refused) => SyncFailure::new(Refused, refusal(who, &reason)),
                Some(CloseCode::ShuttingDown) => {
                    SyncFailure::new(Network, format!("{who} s'est arrêté"))
                }
                Some(CloseCode::Done) => {
                    SyncFailure::new(Network, format!("{who} a fermé la connexion avant la fin"))
                }
                _ => SyncFailure::new(Other, format!("{who} a coupé la connexion ({reason})")),
            }
        }
        ConnectionError::TimedOut => {
            SyncFailure::new(Network, format!("{who} ne répond pas (délai dépassé)"))
        }
        ConnectionError::Reset => SyncFailure::new(
            Network,
            format!("{who} a redémarré pendant la synchronisation : relancez « atelier sync »"),
        ),
        ConnectionError::ConnectionClosed(close) => SyncFailure::new(
            Refused,
            format!("{who} a refusé la connexion sécurisée ({close})"),
        ),
        other => SyncFailure::new(Network, format!("connexion avec {who} perdue ({other})")),
    }
}

/// The server's reason for a refusal (English, from the relay or a peer), said in French.
fn refusal(who: &str, reason: &str) -> String {
    let known = [
        (
            "not enrolled",
            "cet appareil n'y est pas inscrit : demandez un jeton d'inscription à \
             l'administrateur du relais, puis lancez « atelier join »",
        ),
        ("has been revoked", "l'accès de cet appareil a été révoqué"),
        ("is revoked", "l'accès de cet appareil a été révoqué"),
        (
            "token already used",
            "ce jeton a déjà servi à un autre appareil",
        ),
        (
            "token expired",
            "ce jeton a expiré : demandez-en un nouveau",
        ),
        ("token revoked", "ce jeton a été révoqué"),
        ("unknown token", "ce jeton est inconnu : vérifiez-le"),
        (
            "malformed token",
            "ce jeton est mal formé (64 chiffres hexadécimaux attendus)",
        ),
        (
            "not a pinned peer",
            "ce poste n'y est pas autorisé (à ajouter avec --allow à son « atelier serve »)",
        ),
        (
            "does not accept enrolment",
            "on ne s'inscrit pas auprès d'un poste, seulement auprès du relais",
        ),
    ];
    match known.iter().find(|(k, _)| reason.contains(k)) {
        Some((_, french)) => format!("{who} refuse : {french}"),
        None => format!("{who} refuse la connexion ({reason})"),
    }
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_said_in_french_with_an_exit_code() {
        let f = from_client_error(
            &ClientError::Refused {
                reason: "this device has been revoked".into(),
            },
            "le relais quic://x:1",
        );
        assert_eq!(f.exit(), Exit::Refused);
        assert!(f.message.contains("révoqué"), "{}", f.message);
        let f = from_client_error(&ClientError::Timeout, "le relais");
        assert_eq!(f.exit(), Exit::Network);
        let f = from_drive_error(&DriveError::NotSettled, "le relais");
        assert_eq!(f.exit(), Exit::Network);
        assert!(refusal("x", "something new").contains("something new"));
    }
}
