//! `atelier backup`: the office replica (documents, sync record, device identity, pinned relay,
//! media) in one checked file, for `atelier restore`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use atelier_core::replica::{Replica, FORMAT_VERSION};
use atelier_relay::backup;
use serde_json::json;

use super::write_json;
use crate::Ctx;

/// What a replica's backup leaves out: the store (copied entry by entry), the search index
/// (rebuilt by `atelier restore`), and the running web app's address and token (this machine's).
pub const SKIPPED: &[&str] = &["db", "search", "server.json"];

/// Sauvegarde le réplica (fiches, historique, état de synchronisation, identité de l'appareil,
/// relais retenu, médias) dans un fichier vérifié. Le réplica ne doit pas être ouvert par une
/// autre commande (arrêtez `atelier sync --watch` ou l'application web le temps de la
/// sauvegarde).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fichier de sauvegarde à écrire (remplacé seulement une fois la sauvegarde complète).
    #[arg(long, value_name = "FICHIER")]
    pub out: PathBuf,
    /// Affiche le résultat en JSON : {"file", "entries", "files", "bytes"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    // Held by this process for the whole copy: nothing else writes meanwhile.
    let replica = Replica::open(&ctx.dir)?;
    let header = backup::header("replica", FORMAT_VERSION, None);
    let summary = atelier_core::fs::write_atomic_with(&args.out, Some(0o600), |file| {
        backup::write_store_and_files(
            &header,
            replica.store().kv().as_ref(),
            &ctx.dir,
            SKIPPED,
            file,
        )
        .map(|(summary, _)| summary)
        .map_err(anyhow::Error::from)
    })
    .with_context(|| format!("écriture de la sauvegarde {}", args.out.display()))?;
    let office = replica.office().to_string();
    drop(replica);
    if args.json {
        return write_json(
            out,
            &json!({
                "file": args.out,
                "entries": summary.entries,
                "files": summary.files,
                "bytes": summary.bytes,
            }),
        );
    }
    writeln!(
        out,
        "Réplica de {office} sauvegardé dans « {} » ({} entrées, {} fichiers, {} octets).",
        args.out.display(),
        summary.entries,
        summary.files,
        summary.bytes
    )?;
    writeln!(
        out,
        "Pour le restaurer : atelier restore {} --dir NOUVEAU_DOSSIER",
        args.out.display()
    )?;
    Ok(())
}
