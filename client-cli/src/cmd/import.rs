//! `atelier import`: a FORMAT.md JSON Lines file, a spreadsheet (CSV) or a GeoJSON file,
//! validated whole before anything is written.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_core::{fr, jsonl};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

mod sheet;

use super::{write_json, FileFormat};
use crate::backend::ImportCounts;
use crate::{backend, media_folder, Ctx, UsageError};

/// Imports of fewer resources than this finish in well under a second: no progress bar.
const PROGRESS_MIN: usize = 200;

/// Importe un fichier JSON Lines du format d'échange (FORMAT.md), un tableur enregistré en CSV
/// ou un fichier GeoJSON. Tout le fichier est vérifié d'abord : au moindre problème, rien
/// n'est importé et chaque problème est indiqué par ligne (et colonne). Une référence (« ref »)
/// déjà présente met à jour sa ressource, sans doublon ; les champs inconnus du format sont
/// gardés. Pour un tableur, les colonnes sont reconnues à leur en-tête (« Maître d'ouvrage »,
/// « Année de livraison », « Commune »…) ou données par --mapping ; essayez d'abord --apercu.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fichier à importer (« - » : l'entrée standard).
    #[arg(value_name = "FICHIER")]
    pub file: PathBuf,
    /// Dossier des photos et documents (un fichier par empreinte, tel qu'écrit par
    /// « atelier export --media »). Par défaut : « corpus.media » à côté de « corpus.jsonl »,
    /// s'il existe. Chaque fichier est vérifié avant que quoi que ce soit soit importé.
    #[arg(long, value_name = "DOSSIER")]
    pub media: Option<PathBuf>,
    /// Affiche le résultat en JSON : {"created", "updated", "unchanged"}, et
    /// "media": {"imported", "missing"} quand les fiches citent des médias ; avec --apercu,
    /// {"columns", "problems", "notes", "ready"}.
    #[arg(long)]
    pub json: bool,
    /// Format du fichier : jsonl, csv ou geojson. Par défaut, d'après son extension (.csv,
    /// .geojson ; jsonl sinon).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Correspondance des colonnes d'un tableur, des valeurs par défaut et des valeurs à lire
    /// comme un code (fichier TOML, décrit dans docs/OPENDATA.md).
    #[arg(long, value_name = "FICHIER")]
    pub mapping: Option<PathBuf>,
    /// Montre les colonnes reconnues, les remarques et tous les problèmes, sans rien importer.
    #[arg(long)]
    pub apercu: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let format = args.format.unwrap_or_else(|| by_extension(&args.file));
    if format != FileFormat::Jsonl {
        return sheet::run(args, format, ctx, out);
    }
    if args.mapping.is_some() || args.apercu {
        return Err(UsageError(
            "--mapping et --apercu s'emploient avec --format csv ou geojson".into(),
        )
        .into());
    }
    let name = args.file.display().to_string();
    let text = read(&args.file).with_context(|| format!("lecture de « {name} »"))?;
    let resources = jsonl::parse(text.as_bytes()).with_context(|| format!("« {name} » refusé"))?;
    let wanted = media_folder::referenced(&resources);
    let folder = match args.media {
        Some(dir) if !dir.is_dir() => {
            return Err(UsageError(format!(
                "dossier de médias « {} » introuvable",
                dir.display()
            ))
            .into())
        }
        Some(dir) => Some(dir),
        None => Some(media_folder::default_for(&args.file)).filter(|d| d.is_dir()),
    };
    // Every media file is checked before anything is written.
    let (found, missing) = match &folder {
        Some(dir) => media_folder::check(dir, &wanted)?,
        None => (Vec::new(), wanted.len()),
    };
    let backend = backend::open(&ctx.dir)?;
    let media_bytes = media_folder::import(backend.as_ref(), &found)?;
    let bar = progress_bar(resources.len());
    let counts = backend.import(&text, &resources, &mut |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(counts)?;
        // Only files with media say so: the shape without media stays as it was.
        if !wanted.is_empty() {
            v["media"] = serde_json::json!({"imported": found.len(), "missing": missing});
        }
        return write_json(out, &v);
    }
    writeln!(out, "Import de « {name} » : {}.", describe(&counts))?;
    if !found.is_empty() {
        writeln!(
            out,
            "Médias : {} ({}) rangés sur ce poste.",
            fr::count(found.len() as u64, "fichier"),
            fr::size(media_bytes)
        )?;
    }
    if missing > 0 {
        writeln!(
            out,
            "{} cité{} par les fiches {} pas dans le dossier de médias : {} par la synchronisation si un autre poste {} a.",
            fr::count(missing as u64, "fichier"),
            fr::plural_s(missing as u64),
            if missing > 1 { "ne sont" } else { "n'est" },
            if missing > 1 { "ils arriveront" } else { "il arrivera" },
            if missing > 1 { "les" } else { "l'" },
        )?;
    }
    Ok(())
}

/// The format a file's extension says.
fn by_extension(path: &Path) -> FileFormat {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => FileFormat::Csv,
        Some("geojson") => FileFormat::Geojson,
        _ => FileFormat::Jsonl,
    }
}

fn read(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path)?;
    }
    Ok(text)
}

/// A bar on standard error for long imports, hidden when standard error is not a terminal.
pub(super) fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_MIN || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} ressources (reste {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

pub(super) fn describe(c: &ImportCounts) -> String {
    let s = |n: usize| fr::plural_s(n as u64);
    format!(
        "{} créée{}, {} mise{} à jour, {} inchangée{}",
        c.created,
        s(c.created),
        c.updated,
        s(c.updated),
        c.unchanged,
        s(c.unchanged)
    )
}
