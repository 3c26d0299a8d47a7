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
    #[command(flatten)]
    pub filters: Filters,
    /// Montre aussi les ressources supprimées.
    #[arg(long)]
    pub deleted: bool,
    /// Affiche la liste en JSON.
    #[arg(long)]
    pub json: bool,
}

/// The filters of `list`, also those of `export`.
#[derive(clap::Args, Debug, Default)]
pub struct Filters {
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
}

impl Filters {
    /// The listing filter these options ask for (deleted resources left out).
    pub fn filter(self) -> ListFilter {
        ListFilter {
            kind: self.kind,
            office: self.office.map(|o| o.to_string()),
            departement: self.departement.map(|d| d.trim().to_ascii_uppercase()),
            theme: self.theme,
            sector: self.sector,
            status: self.status,
            include_deleted: false,
        }
    }

    /// Whether any filter is set.
    pub fn any(&self) -> bool {
        self.kind.is_some()
            || self.office.is_some()
            || self.departement.is_some()
            || self.theme.is_some()
            || self.sector.is_some()
            || self.status.is_some()
    }
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let filter = ListFilter {
        include_deleted: args.deleted,
        ..args.filters.filter()
    };
    let entries = backend::open(&ctx.dir)?.list(&filter)?;
    if args.json {
        return write_json(out, &entries);
    }
    render::table(out, &entries)?;
    Ok(())
}
