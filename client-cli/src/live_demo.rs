//! The live demo: a relay and two offices (caue-63 and caue-15) in one process, each office with
//! its replica, its sync agent and its web app, all on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use atelier_core::replica::Replica;
use atelier_core::store::DocStore;
use atelier_relay::access::AccessStore;
use atelier_relay::agent::{plain_session, AgentHooks, SyncAgent, Target};
use atelier_relay::config::RelayConfig;
use atelier_relay::identity::Identity;
use atelier_relay::relay::{self, RelayHandle};
use atelier_relay::sync_conn::LiveChanges;
use atelier_web::search::SearchBackend;
use atelier_web::sync_status::{SyncState, SyncStatus};
use atelier_web::{WebConfig, WebHandle};

/// The two offices of the demo and the ports their web apps try first (then any free port).
pub const OFFICES: [(&str, u16); 2] = [("caue-63", 8063), ("caue-15", 8015)];

/// One running office.
pub struct Office {
    pub office: String,
    pub replica: Arc<Replica>,
    pub web: WebHandle,
    pub agent: Arc<SyncAgent>,
}

/// Everything the demo started.
pub struct LiveDemo {
    pub relay: RelayHandle,
    pub offices: Vec<Office>,
}

impl LiveDemo {
    /// Stops the web apps, the agents and the relay, in that order.
    pub async fn shutdown(self) {
        for office in self.offices {
            office.web.shutdown().await;
            if let Ok(agent) = Arc::try_unwrap(office.agent) {
                agent.shutdown().await;
            }
        }
        self.relay.shutdown().await;
    }
}

/// Starts the relay in `dir/relay` and one office per `replicas` entry, enrolled on it.
/// `fixed_ports` tries the well-known ports first (the interactive demo); tests pass false.
/// `media` lets the offices' agents move photos and documents (the demo); the browser test
/// turns it off to hand blobs over itself, so it sees the « en cours de réception » state.
pub async fn start(
    dir: &Path,
    replicas: Vec<Arc<Replica>>,
    fixed_ports: bool,
    media: bool,
) -> Result<LiveDemo> {
    let relay_dir = dir.join("relay");
    let relay_identity = Identity::load_or_create(&relay_dir).context("identité du relais")?;
    let access = AccessStore::new(&relay_dir);
    let now = time::OffsetDateTime::now_utc();
    let mut identities = Vec::new();
    for replica in &replicas {
        let identity = Identity::load_or_create(&replica.dir().join("identity"))
            .context("identité du poste")?;
        let office = replica.office().to_string();
        let fp = identity.fingerprint();
        access
            .update(|r| {
                let token = r.invite(
                    &mut rand::rngs::OsRng,
                    &office,
                    false,
                    time::Duration::hours(1),
                    now,
                )?;
                r.redeem(&token, &fp, now)
            })
            .with_context(|| format!("inscription de {office} sur le relais"))?;
        identities.push(identity);
    }
    let loopback = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let relay = relay::spawn(&RelayConfig {
        listen: loopback(0),
        ws_listen: loopback(0),
        admin_listen: loopback(0),
        data_dir: relay_dir,
        ..RelayConfig::default()
    })
    .await?;
    debug_assert_eq!(relay.fingerprint(), relay_identity.fingerprint());
    preload(relay.store(), &replicas)?;
    let target = Target {
        url: relay.quic_addr().into(),
        fingerprint: relay.fingerprint(),
        is_relay: true,
    };
    let mut offices = Vec::new();
    for (replica, identity) in replicas.into_iter().zip(identities) {
        let office = replica.office().to_string();
        let live = LiveChanges::attach(replica.store());
        let (settled, received) = (replica.clone(), replica.clone());
        // The web app starts after its agent: a blob that arrives before it has no page to tell.
        let page: Arc<std::sync::OnceLock<atelier_web::AppState>> = Default::default();
        let arrived = page.clone();
        let mut hooks = AgentHooks::default()
            .session(move |read_only| {
                let replica = received.clone();
                // What the relay pushes is on it: the page does not count it as to send.
                plain_session(received.store(), read_only).on_peer_change(move |change| {
                    if let Err(e) = replica.mark_synced_from_relay(change) {
                        tracing::warn!(error = %e, "recording what the relay holds");
                    }
                })
            })
            .on_settled(move |s| {
                if let Err(e) = settled.record_synced_except(&s.stats.unpublished_ids) {
                    tracing::warn!(error = %e, "recording what the relay holds");
                }
            });
        if media {
            hooks = hooks.media(replica.clone()).on_blob(move |hash| {
                if let Some(state) = arrived.get() {
                    state.media_arrived(hash);
                }
            });
        }
        let agent = Arc::new(SyncAgent::spawn(
            replica.store().clone(),
            live,
            identity,
            target.clone(),
            hooks,
        ));
        let port = OFFICES
            .iter()
            .find(|(o, _)| *o == office)
            .map(|(_, p)| *p)
            .unwrap_or(0);
        let search: Arc<dyn SearchBackend> = Arc::new(
            atelier_web::search::CatchingUp::open(replica.clone())
                .context("ouverture de l'index de recherche")?,
        );
        let config = |listen| WebConfig {
            listen,
            sync: Some(Arc::new(AgentStatus(agent.clone(), replica.clone())) as Arc<dyn SyncStatus>),
            search: Some(search.clone()),
            ..WebConfig::default()
        };
        let web = match atelier_web::spawn(
            replica.clone(),
            config(loopback(if fixed_ports { port } else { 0 })),
        )
        .await
        {
            Ok(web) => web,
            Err(_) if fixed_ports => {
                atelier_web::spawn(replica.clone(), config(loopback(0))).await?
            }
            Err(e) => return Err(e),
        };
        let _ = page.set(web.state().clone());
        offices.push(Office {
            office,
            replica,
            web,
            agent,
        });
    }
    Ok(LiveDemo { relay, offices })
}

/// The web app's view of a sync agent and of what the replica holds that the relay lacks.
pub struct AgentStatus(pub Arc<SyncAgent>, pub Arc<Replica>);

impl SyncStatus for AgentStatus {
    fn status(&self) -> SyncState {
        let s = self.0.status();
        SyncState {
            connected: s.connected,
            relay: Some(s.relay),
            pending_changes: self.1.unsynced().map(|u| u.len()).unwrap_or(0),
            last_sync: s.last_sync_ms,
        }
    }

    fn sync_now(&self) {
        self.0.sync_now();
    }
}

/// Gives the demo's new relay what the offices already hold, as a relay they had synced with
/// before would hold it. The seeded story carries a change another office made (merged into
/// this replica offline), which a relay takes only from the office that made it; written here
/// as the relay's own data, it reaches every office like the rest of the corpus.
fn preload(store: &DocStore, replicas: &[Arc<Replica>]) -> Result<()> {
    for replica in replicas {
        let mut ids = Vec::new();
        replica.store().for_each_heads(&mut |id, _| {
            ids.push(id);
            true
        })?;
        for id in ids {
            if let Some(bytes) = replica.store().saved(&id)? {
                store
                    .apply_bytes(&id, &bytes)
                    .with_context(|| format!("préchargement du relais ({id})"))?;
            }
        }
    }
    store.flush()?;
    Ok(())
}
