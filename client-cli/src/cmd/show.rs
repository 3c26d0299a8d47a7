//! `atelier show`: one resource, readable or as JSON.

use std::io::Write;

use super::{write_json, ResourceArg};
use crate::{backend, render, Ctx};

/// Affiche une ressource, avec les libellés des vocabulaires.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Affiche la ressource en JSON : {"id", "resource" (format d'échange), "created_at",
    /// "deleted"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let view = backend::open(&ctx.dir)?.show(&args.resource.id)?;
    if args.json {
        return write_json(out, &view);
    }
    render::resource(out, &view, ctx.offset)?;
    Ok(())
}
