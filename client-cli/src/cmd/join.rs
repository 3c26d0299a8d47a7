//! `atelier join`: enrols this device with a relay using a one-time token, and pins the relay
//! (address and certificate fingerprint) in the replica directory for `atelier sync`.

use std::io::Write;

use anyhow::Context as _;
use atelier_relay::client;
use atelier_relay::identity::{Fingerprint, Identity};
use atelier_relay::quic_url::QuicUrl;
use serde_json::json;

use super::init::IDENTITY_DIR;
use super::sync::net::{self, FailureKind, SyncFailure};
use super::sync::pin::RelayPin;
use super::write_json;
use crate::Ctx;

/// Inscrit cet appareil auprès du relais de synchronisation avec le jeton à usage unique donné
/// par son administrateur (« atelier-relay invite »), puis retient le relais et son empreinte
/// dans le dossier du réplica : « atelier sync » s'y connectera ensuite, et refusera tout
/// serveur qui ne présente pas ce certificat.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Adresse du relais, ex. quic://relais.caue.fr:4433.
    #[arg(value_name = "quic://HÔTE:PORT")]
    pub relay: QuicUrl,
    /// Empreinte du certificat du relais (64 chiffres hexadécimaux, donnée avec le jeton).
    #[arg(long, value_name = "EMPREINTE")]
    pub fingerprint: Fingerprint,
    /// Jeton d'inscription à usage unique.
    #[arg(long, value_name = "JETON")]
    pub token: String,
    /// Affiche le résultat en JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = &ctx.dir;
    // Held for the whole command: nobody syncs with the old relay while the pin changes, and a
    // replica in use is reported before the token is spent.
    let replica = crate::migrate::open_replica(dir)?;
    let identity_dir = dir.join(IDENTITY_DIR);
    let identity = Identity::load_or_create(&identity_dir)
        .with_context(|| format!("identité de l'appareil dans « {} »", identity_dir.display()))?;
    let previous = RelayPin::load(dir).ok().flatten();
    let who = format!("le relais {}", args.relay);
    let rt = net::runtime()?;
    let enrolled = rt.block_on(async {
        let addr = args.relay.resolve().await.map_err(|e| SyncFailure {
            kind: FailureKind::Network,
            message: format!("adresse de {who} introuvable ({e})"),
        })?;
        match client::enrol(&identity, addr, &args.fingerprint, args.token.trim()).await {
            Ok(e) => Ok((e.office, Some(e.read_only))),
            // Joining again after a first `join` (a new token, a lost relay.toml): the device
            // is enrolled already, which is what was asked.
            Err(client::ClientError::Refused { reason }) if reason.contains("already enrolled") => {
                let office = reason
                    .rsplit_once(" for ")
                    .map(|(_, o)| o.trim().to_string())
                    .unwrap_or_else(|| replica.office().to_string());
                Ok((office, None))
            }
            Err(e) => Err(net::from_client_error(&e, &who)),
        }
    })?;
    let (office, read_only) = enrolled;
    let same_relay = previous
        .as_ref()
        .is_some_and(|p| p.fingerprint == args.fingerprint);
    let read_only =
        read_only.unwrap_or_else(|| same_relay && previous.as_ref().is_some_and(|p| p.read_only));
    let pin = RelayPin {
        address: args.relay.clone(),
        fingerprint: args.fingerprint,
        office: office.clone(),
        read_only,
    };
    if !same_relay {
        // Another relay holds nothing of ours yet: forget what the previous one had, and when
        // we last synced with it.
        replica.forget_synced()?;
    }
    pin.save(dir)?;
    let mismatch = office != replica.office().as_str();
    if args.json {
        return write_json(
            out,
            &json!({
                "relay": pin.address,
                "fingerprint": pin.fingerprint.to_string(),
                "office": office,
                "read_only": read_only,
                "device_fingerprint": identity.fingerprint().to_string(),
                "replica_office": replica.office(),
            }),
        );
    }
    let access = if read_only {
        "lecture seule"
    } else {
        "lecture et écriture"
    };
    writeln!(
        out,
        "Appareil inscrit sur le relais {} pour {office} ({access}).",
        pin.address
    )?;
    writeln!(
        out,
        "Relais retenu dans « {} » (empreinte {}).",
        RelayPin::path(dir).display(),
        pin.fingerprint
    )?;
    if mismatch {
        writeln!(
            out,
            "Attention : le relais a inscrit cet appareil pour {office}, mais ce réplica est celui \
             de {} ; vérifiez le jeton auprès de l'administrateur du relais.",
            replica.office()
        )?;
    }
    writeln!(out, "\nEt ensuite :")?;
    writeln!(
        out,
        "  atelier sync            échanger les ressources avec le relais"
    )?;
    writeln!(
        out,
        "  atelier sync --watch    rester synchronisé en continu"
    )?;
    writeln!(
        out,
        "  atelier status          voir ce qui n'est pas encore sur le relais"
    )?;
    Ok(())
}
