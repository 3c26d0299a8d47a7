//! The sync status provider: what the sync engine tells the web app about the relay.
//!
//! The web app does not know how sync works; it asks a [`SyncStatus`] for a [`SyncState`] and
//! shows it on every page (« connecté au relais », « hors ligne », pending changes). The sync
//! engine implements the trait and hands it to [`crate::WebConfig::sync`]; without one, the
//! pages say that sync is not configured and editing stays local.

use serde::Serialize;

/// What the sync engine knows about the link to the relay, as shown to staff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// Whether a connection to the relay is up right now.
    pub connected: bool,
    /// The relay this replica syncs with (an address or a name), if one is configured.
    pub relay: Option<String>,
    /// Local changes the relay has not acknowledged yet.
    pub pending_changes: usize,
    /// When the replica was last fully in step with the relay (milliseconds since the epoch).
    pub last_sync: Option<i64>,
}

/// Implemented by the sync engine. Both methods are called from async tasks and must not block
/// for long: `status` reads a snapshot, `sync_now` only asks for a sync round and returns.
pub trait SyncStatus: Send + Sync {
    /// The current state of the link to the relay.
    fn status(&self) -> SyncState;
    /// Asks for a sync round as soon as possible (the « Synchroniser maintenant » button).
    fn sync_now(&self);
    /// Whether sync is configured at all; the default provider says no.
    fn configured(&self) -> bool {
        true
    }
}

/// The provider used when the server was started without one: no relay, nothing to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotConfigured;

impl SyncStatus for NotConfigured {
    fn status(&self) -> SyncState {
        SyncState::default()
    }

    fn sync_now(&self) {}

    fn configured(&self) -> bool {
        false
    }
}

/// The state as the pages show it: a short French headline and a longer plain explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncView {
    /// `connecte`, `hors_ligne` or `non_configure` (a CSS class and a test hook).
    pub kind: &'static str,
    pub headline: String,
    pub detail: String,
    #[serde(flatten)]
    pub state: SyncState,
}

impl SyncView {
    /// Words for the indicator; `now_ms` dates the last sync (« il y a 3 min »).
    pub fn of(provider: &dyn SyncStatus, now_ms: i64) -> Self {
        let state = provider.status();
        if !provider.configured() {
            return Self {
                kind: "non_configure",
                headline: "Synchronisation non configurée".into(),
                detail:
                    "Les modifications restent sur cet ordinateur : aucun relais n'est configuré."
                        .into(),
                state,
            };
        }
        let pending = match state.pending_changes {
            0 => "à jour".to_string(),
            1 => "1 modification pas encore sur le relais".to_string(),
            n => format!("{n} modifications pas encore sur le relais"),
        };
        let last = state
            .last_sync
            .map(|t| format!(" Dernière synchronisation : {}.", ago(now_ms - t)))
            .unwrap_or_default();
        let relay = state
            .relay
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        if state.connected {
            Self {
                kind: "connecte",
                headline: format!("Connecté au relais · {pending}"),
                detail: format!("Les modifications partent vers les autres offices au fil de l'eau{relay}.{last}"),
                state,
            }
        } else {
            Self {
                kind: "hors_ligne",
                headline: format!("Hors ligne · {pending}"),
                detail: format!(
                    "Vous pouvez continuer à travailler : tout est enregistré sur cet ordinateur et partira au retour de la connexion{relay}.{last}"
                ),
                state,
            }
        }
    }
}

/// « à l'instant », « il y a 5 min », « il y a 2 h », « il y a 3 jours ».
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => "à l'instant".into(),
        60..=3599 => format!("il y a {} min", s / 60),
        3600..=86_399 => format!("il y a {} h", s / 3600),
        _ => match s / 86_400 {
            1 => "il y a 1 jour".into(),
            d => format!("il y a {d} jours"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(SyncState);
    impl SyncStatus for Fixed {
        fn status(&self) -> SyncState {
            self.0.clone()
        }
        fn sync_now(&self) {}
    }

    #[test]
    fn words_follow_the_state() {
        let v = SyncView::of(&NotConfigured, 0);
        assert_eq!(v.kind, "non_configure");
        let off = Fixed(SyncState {
            connected: false,
            relay: None,
            pending_changes: 3,
            last_sync: Some(0),
        });
        let v = SyncView::of(&off, 120_000);
        assert_eq!(
            v.headline,
            "Hors ligne · 3 modifications pas encore sur le relais"
        );
        assert!(v.detail.contains("il y a 2 min"), "{}", v.detail);
        let on = Fixed(SyncState {
            connected: true,
            relay: Some("relais.caue".into()),
            pending_changes: 0,
            last_sync: None,
        });
        assert_eq!(SyncView::of(&on, 0).headline, "Connecté au relais · à jour");
    }
}
