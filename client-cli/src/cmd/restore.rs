//! `atelier restore`: brings back a replica saved by `atelier backup` into a new directory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use atelier_core::replica::{Replica, FORMAT_VERSION};
use atelier_relay::backup::{self, BackupError, Header};
use serde_json::json;

use super::write_json;
use crate::Ctx;

/// Restaure une sauvegarde faite par `atelier backup` dans le dossier du réplica (--dir), qui
/// doit être vide ou absent ; l'index de recherche est reconstruit. L'appareil garde son
/// identité et son relais : il se synchronise ensuite comme avant.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fichier de sauvegarde.
    #[arg(value_name = "FICHIER")]
    pub file: PathBuf,
    /// Affiche le résultat en JSON : {"dir", "office", "documents"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("ouverture de {}", args.file.display()))?;
    let check = |h: &Header| {
        if h.kind != "replica" {
            return Err(BackupError::Invalid(format!(
                "c'est la sauvegarde d'un {}, pas d'un réplica (utilisez atelier-relay restore)",
                h.kind
            )));
        }
        if h.store_format > FORMAT_VERSION {
            return Err(BackupError::Newer(format!(
                "la sauvegarde vient d'un réplica au format {}, cette version d'atelier lit le format {FORMAT_VERSION} : mettez atelier à jour",
                h.store_format
            )));
        }
        Ok(())
    };
    backup::restore(file, &ctx.dir, check, "db").with_context(|| {
        format!(
            "restauration de {} dans « {} » (rien n'a été écrit dans ce dossier)",
            args.file.display(),
            ctx.dir.display()
        )
    })?;
    let replica = Replica::open(&ctx.dir)?;
    let office = replica.office().to_string();
    drop(replica);
    // The search index is not in the backup: rebuilt here, with the listing and refs.
    let documents = crate::backend::open(&ctx.dir)?
        .reindex()
        .context("reconstruction des index après restauration")?;
    if args.json {
        return write_json(
            out,
            &json!({ "dir": ctx.dir, "office": office, "documents": documents }),
        );
    }
    writeln!(
        out,
        "Réplica de {office} restauré dans « {} » ({documents} documents, index reconstruits).",
        ctx.dir.display()
    )?;
    Ok(())
}
