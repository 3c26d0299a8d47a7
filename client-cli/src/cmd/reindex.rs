//! `atelier reindex`: rebuilds the derived indexes from the documents.

use std::io::Write;

use serde_json::json;

use super::write_json;
use crate::{backend, Ctx};

/// Reconstruit les index dérivés (liste, références, recherche) à partir des documents, et
/// complète le catalogue des clients automerge-repo. Sans risque : les fiches ne sont pas
/// modifiées.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Affiche le résultat en JSON : {"documents": N}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let n = backend::open(&ctx.dir)?.reindex()?;
    if args.json {
        return write_json(out, &json!({ "documents": n }));
    }
    writeln!(out, "Index reconstruits à partir de {n} documents.")?;
    Ok(())
}
