//! `atelier search`: French full-text search over the replica, with filters and facet counts.

use std::io::Write;

use atelier_core::search::{Filters, SearchQuery};
use atelier_core::vocab::*;
use atelier_core::OfficeId;
use serde_json::{json, Value};

use super::{codes, write_json};
use crate::{backend, Ctx};

/// Cherche dans toutes les ressources du réplica (sans accents, fautes de frappe et pluriels
/// compris, sigles comme PLUi ou MOA, numéro de département comme « 63 »).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ce que vous cherchez, ex. « ecole pise », « maison de sante 15 », "cœur de bourg".
    pub query: Vec<String>,
    /// Seulement ce type (répétable).
    #[arg(long, value_parser = codes(KINDS), value_name = "TYPE")]
    pub kind: Vec<String>,
    /// Seulement cet office (répétable), ex. caue-63.
    #[arg(long, value_name = "OFFICE")]
    pub office: Vec<OfficeId>,
    /// Seulement ce département (répétable), ex. 07, 63, 2A.
    #[arg(long, value_name = "CODE")]
    pub departement: Vec<String>,
    /// Seulement ce thème (répétable).
    #[arg(long, value_parser = codes(THEMES), value_name = "THÈME")]
    pub theme: Vec<String>,
    /// Seulement cette filière (répétable).
    #[arg(long, value_parser = codes(SECTORS), value_name = "FILIÈRE")]
    pub sector: Vec<String>,
    /// Année à partir de laquelle.
    #[arg(long, value_name = "ANNÉE")]
    pub year_from: Option<i64>,
    /// Année jusqu'à laquelle.
    #[arg(long, value_name = "ANNÉE")]
    pub year_to: Option<i64>,
    /// Nombre de résultats au plus.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// Affiche les résultats en JSON : {"total", "hits": [...], "facets": {...}}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let query = SearchQuery {
        text: args.query.join(" "),
        filters: Filters {
            kind: args.kind,
            office: args.office.iter().map(ToString::to_string).collect(),
            departement: args
                .departement
                .iter()
                .map(|d| d.trim().to_ascii_uppercase())
                .collect(),
            theme: args.theme,
            sector: args.sector,
            year_from: args.year_from,
            year_to: args.year_to,
            ..Filters::default()
        },
        limit: args.limit,
        ..SearchQuery::default()
    };
    let results = backend::open(&ctx.dir)?.search(&query)?;
    if args.json {
        return write_json(out, &for_scripts(&results));
    }
    render(out, &results)
}

/// The documented `--json` shape: hits keep only what scripts need.
fn for_scripts(results: &Value) -> Value {
    let hits: Vec<Value> = results["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            json!({
                "id": h["id"], "ref": h["ref"], "title": h["title"], "kind": h["kind"],
                "office": h["office"], "score": h["score"], "snippet": h["snippet"],
            })
        })
        .collect();
    json!({ "total": results["total"], "hits": hits, "facets": results["facets"] })
}

fn render(out: &mut dyn Write, results: &Value) -> anyhow::Result<()> {
    let total = results["total"].as_u64().unwrap_or(0);
    if total == 0 {
        writeln!(out, "Aucun résultat.")?;
        return Ok(());
    }
    writeln!(out, "{total} résultat(s)\n")?;
    for (i, hit) in results["hits"].as_array().into_iter().flatten().enumerate() {
        let kind = hit["kind"].as_str().unwrap_or_default();
        writeln!(
            out,
            "{:>2}. {}  [{} · {}]",
            i + 1,
            hit["title"].as_str().unwrap_or_default(),
            label(KINDS, kind).unwrap_or(kind),
            hit["office"].as_str().unwrap_or_default()
        )?;
        let snippet = hit["snippet"].as_str().unwrap_or_default();
        if !snippet.is_empty() {
            writeln!(out, "    {snippet}")?;
        }
        let reference = hit["ref"]
            .as_str()
            .unwrap_or_else(|| hit["id"].as_str().unwrap_or_default());
        writeln!(out, "    → atelier show {reference}")?;
    }
    if let Some(kinds) = results["facets"]["kind"].as_object() {
        let parts: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{} {}", label(KINDS, k).unwrap_or(k), n))
            .collect();
        writeln!(out, "\nPar type : {}", parts.join(", "))?;
    }
    Ok(())
}
