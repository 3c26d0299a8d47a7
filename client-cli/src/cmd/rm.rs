//! `atelier rm`: deletes a resource (a tombstone, kept in the history and synced).

use std::io::Write;

use serde_json::json;

use super::{write_json, ResourceArg};
use crate::{backend, Ctx};

/// Supprime une ressource, sans confirmation : la suppression est un changement comme un autre,
/// visible dans l'historique et annulable (atelier edit ID --restore).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Affiche le résultat en JSON : {"id": …, "deleted": true}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let view = backend.show(&args.resource.id)?;
    let title = view
        .resource
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or("?")
        .to_string();
    let already = view.deleted;
    if !already {
        backend.delete(&args.resource.id)?;
    }
    if args.json {
        return write_json(out, &json!({ "id": view.id, "deleted": true }));
    }
    if already {
        writeln!(out, "« {title} » ({}) était déjà supprimée.", view.id)?;
    } else {
        writeln!(out, "Supprimée : « {title} » ({}).", view.id)?;
    }
    writeln!(
        out,
        "Elle reste dans l'historique : atelier history {}",
        args.resource.id
    )?;
    writeln!(out, "Pour la voir dans la liste : atelier list --deleted")?;
    writeln!(
        out,
        "Pour la rétablir : atelier edit {} --restore",
        args.resource.id
    )?;
    Ok(())
}
