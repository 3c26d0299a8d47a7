//! `atelier history`: every change of a resource, oldest first.

use std::io::Write;

use super::{write_json, ResourceArg};
use crate::{backend, render, Ctx};

/// Affiche l'historique d'une ressource : pour chaque changement, l'office, l'heure locale et les
/// champs modifiés.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Affiche l'historique en JSON : [{"hash", "time" (secondes), "office", "fields"}].
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let changes = backend.history(&args.resource.id)?;
    if args.json {
        return write_json(out, &changes);
    }
    let view = backend.show(&args.resource.id)?;
    render::history(out, &view, &changes, ctx.offset)?;
    Ok(())
}
