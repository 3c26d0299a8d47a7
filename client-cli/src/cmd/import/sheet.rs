//! `atelier import --format csv|geojson`: a spreadsheet or GeoJSON file mapped to fields,
//! every problem listed by line and column, then imported as JSON Lines are (all or nothing).

use std::io::{Read as _, Write};

use anyhow::Context as _;
use atelier_core::opendata::sheet::{self, ColumnPlan, Mapping, Options, Origin, Plan, Problem};
use atelier_core::{fr, jsonl};
use serde_json::json;

use super::{describe, progress_bar, Args};
use crate::cmd::{write_json, FileFormat};
use crate::{backend, Ctx, UsageError};

pub fn run(args: Args, format: FileFormat, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.media.is_some() {
        return Err(UsageError(
            "--media s'emploie avec un fichier JSON Lines (les tableurs n'ont pas de médias)"
                .into(),
        )
        .into());
    }
    let name = args.file.display().to_string();
    let mut bytes = Vec::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&args.file).with_context(|| format!("lecture de « {name} »"))?;
    }
    let read = match format {
        FileFormat::Geojson => sheet::read_geojson(&bytes),
        _ => sheet::read_csv(&bytes),
    };
    let sheet = read.map_err(|e| UsageError(format!("« {name} » refusé : {e}")))?;
    let mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("lecture de « {} »", path.display()))?;
            Mapping::from_toml(&text).map_err(|e| UsageError(e.to_string()))?
        }
        None => Mapping::default(),
    };
    let backend = backend::open(&ctx.dir)?;
    let options = Options {
        office: backend.office().map(|o| o.to_string()),
        mapping,
    };
    let plan = sheet::plan(&sheet, &options);
    if args.apercu {
        if args.json {
            return write_json(out, &plan_json(&plan));
        }
        preview(out, &plan)?;
        writeln!(out, "Aperçu seulement : rien n'a été importé.")?;
        return Ok(());
    }
    let Some(resources) = plan.resources() else {
        if !args.json {
            preview(out, &plan)?;
        }
        let n = plan.problems.len() as u64;
        return Err(UsageError(format!(
            "« {name} » refusé : {} (voir ci-dessus), rien n'a été importé",
            fr::count(n, "problème")
        ))
        .into());
    };
    // The same import as JSON Lines, through whichever process holds the replica.
    let mut text = Vec::new();
    jsonl::write(
        &mut text,
        &resources.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    )?;
    let text = String::from_utf8(text).context("export JSON Lines")?;
    let bar = progress_bar(resources.len());
    let counts = backend.import(&text, &resources, &mut |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if args.json {
        return write_json(out, &counts);
    }
    for note in &plan.notes {
        writeln!(out, "Remarque : {note}")?;
    }
    writeln!(out, "Import de « {name} » : {}.", describe(&counts))?;
    Ok(())
}

/// What the preview prints: the columns, the notes, the problems, and what would be imported.
fn preview(out: &mut dyn Write, plan: &Plan) -> anyhow::Result<()> {
    writeln!(out, "Colonnes :")?;
    for c in &plan.columns {
        writeln!(out, "  {} → {}", c.describe(), column_text(c))?;
    }
    if !plan.notes.is_empty() {
        writeln!(out, "Remarques :")?;
        for n in &plan.notes {
            writeln!(out, "  {n}")?;
        }
    }
    if plan.problems.is_empty() {
        writeln!(
            out,
            "Aucun problème : {} prête{} à importer.",
            fr::count(plan.resources.len() as u64, "fiche"),
            fr::plural_s(plan.resources.len() as u64)
        )?;
    } else {
        writeln!(out, "Problèmes ({}) :", plan.problems.len())?;
        for p in &plan.problems {
            writeln!(out, "  {}", problem_text(p))?;
        }
    }
    Ok(())
}

fn column_text(c: &ColumnPlan) -> String {
    let how = match c.origin {
        Origin::Mapping => "choisi",
        Origin::Guessed => "reconnu",
        Origin::Inherited => "comme la colonne de gauche (en-tête fusionné)",
        Origin::Unknown => "en-tête inconnu",
        Origin::Blank => "sans en-tête",
    };
    format!("{} ({how})", c.target.label())
}

fn problem_text(p: &Problem) -> String {
    match &p.suggestion {
        Some(s) => format!("{p} [suggestion : {s}]"),
        None => p.to_string(),
    }
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    let problem = |p: &Problem| {
        json!({
            "line": p.line,
            "column": p.column.map(|i| plan.columns[i].letter.trim_start_matches("colonne ").to_string()),
            "message": p.message,
            "suggestion": p.suggestion,
            "text": p.to_string(),
        })
    };
    json!({
        "columns": plan.columns.iter().map(|c| json!({
            "column": c.letter.trim_start_matches("colonne "),
            "header": c.header,
            "field": c.target.name(),
        })).collect::<Vec<_>>(),
        "problems": plan.problems.iter().map(problem).collect::<Vec<_>>(),
        "notes": plan.notes.iter().map(problem).collect::<Vec<_>>(),
        "ready": plan.resources.len(),
    })
}
