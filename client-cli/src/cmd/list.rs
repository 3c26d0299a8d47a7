//! `atelier list`: the listing, filtered, as a table or JSON.

use std::io::Write;

use atelier_core::replica::ListFilter;
use atelier_core::vocab::*;
use atelier_core::OfficeId;

use super::{codes, write_json};
use crate::{backend, render, Ctx};

/// Liste les ressources (les supprimées sont cachées, sauf avec --deleted), par titre.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seulement ce type.
    #[arg(long, value_parser = codes(KINDS), value_name = "TYPE")]
    pub kind: Option<String>,
    /// Seulement cet office, ex. caue-63.
    #[arg(long, value_name = "OFFICE")]
    pub office: Option<OfficeId>,
    /// Seulement ce département (code, ex. 07, 63, 2A).
    #[arg(long, value_name = "CODE")]
    pub departement: Option<String>,
    /// Seulement ce thème.
    #[arg(long, value_parser = codes(THEMES), value_name = "THÈME")]
    pub theme: Option<String>,
    /// Seulement cette filière.
    #[arg(long, value_parser = codes(SECTORS), value_name = "FILIÈRE")]
    pub sector: Option<String>,
    /// Seulement ce statut.
    #[arg(long, value_parser = codes(STATUSES), value_name = "STATUT")]
    pub status: Option<String>,
    /// Montre aussi les ressources supprimées.
    #[arg(long)]
    pub deleted: bool,
    /// Affiche la liste en JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let filter = ListFilter {
        kind: args.kind,
        office: args.office.map(|o| o.to_string()),
        departement: args.departement.map(|d| d.trim().to_ascii_uppercase()),
        theme: args.theme,
        sector: args.sector,
        status: args.status,
        include_deleted: args.deleted,
    };
    let entries = backend::open(&ctx.dir)?.list(&filter)?;
    if args.json {
        return write_json(out, &entries);
    }
    render::table(out, &entries)?;
    Ok(())
}
