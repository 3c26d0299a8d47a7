//! `atelier import`: a FORMAT.md JSON Lines file, validated whole before anything is written.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_core::{fr, jsonl};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::write_json;
use crate::backend::ImportCounts;
use crate::{backend, Ctx};

/// Imports of fewer resources than this finish in well under a second: no progress bar.
const PROGRESS_MIN: usize = 200;

/// Importe un fichier JSON Lines du format d'échange (FORMAT.md). Tout le fichier est vérifié
/// d'abord : si une ligne est invalide, rien n'est importé et les lignes fautives sont
/// indiquées. Une référence (« ref ») déjà présente met à jour sa ressource, sans doublon ; les
/// champs inconnus du format sont gardés.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fichier à importer (« - » : l'entrée standard).
    #[arg(value_name = "FICHIER")]
    pub file: PathBuf,
    /// Affiche le résultat en JSON : {"created", "updated", "unchanged"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let text = read(&args.file).with_context(|| format!("lecture de « {name} »"))?;
    let resources = jsonl::parse(text.as_bytes()).with_context(|| format!("« {name} » refusé"))?;
    let backend = backend::open(&ctx.dir)?;
    let bar = progress_bar(resources.len());
    let counts = backend.import(&text, &resources, &mut |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if args.json {
        return write_json(out, &counts);
    }
    writeln!(out, "Import de « {name} » : {}.", describe(&counts))?;
    Ok(())
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
fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_MIN || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} ressources (reste {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn describe(c: &ImportCounts) -> String {
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
