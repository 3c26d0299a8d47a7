//! `atelier demo`: a throw-away replica filled with the built-in examples.

use std::io::Write;

use anyhow::Context as _;
use atelier_core::replica::{ListFilter, Replica};

use crate::backend::{Backend, Local};
use crate::{demo, render, Ctx};

/// The office of the demo replica.
const DEMO_OFFICE: &str = "caue-63";

/// Démonstration : crée un réplica jetable (dossier temporaire) avec une vingtaine de
/// ressources d'exemple des sept CAUE du Massif central, puis montre la liste et l'historique
/// d'une ressource modifiée par deux offices en même temps.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Garde le réplica de démonstration au lieu de le supprimer (son dossier est affiché).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("atelier-demo-")
        .tempdir()
        .context("création du dossier temporaire de la démonstration")?;
    let dir = tmp.path().to_path_buf();
    let replica = Replica::init(&dir, DEMO_OFFICE.parse()?)?;
    let seeded = demo::seed(&replica, &mut rand::thread_rng(), ctx.now_ms())?;
    writeln!(
        out,
        "Démonstration : réplica de {DEMO_OFFICE} dans « {} ».",
        dir.display()
    )?;
    writeln!(
        out,
        "{} ressources d'exemple importées (CAUE 07, 12, 15, 34, 63, 71, 87).\n",
        seeded.report.created
    )?;
    render::table(out, &replica.list(&ListFilter::default())?)?;
    let local = Local::new(replica);
    let story = seeded.story.to_string();
    let view = local.show(&story)?;
    writeln!(out)?;
    render::history(out, &view, &local.history(&story)?, ctx.offset)?;
    writeln!(
        out,
        "\n{} et {DEMO_OFFICE} ont écrit en même temps dans la description ; les deux textes sont gardés :",
        demo::OTHER_OFFICE
    )?;
    let description = view
        .resource
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("");
    for line in description.lines() {
        writeln!(out, "  {line}")?;
    }
    drop(local);
    if args.keep {
        let kept = tmp.keep();
        writeln!(
            out,
            "\nRéplica gardé. Essayez : atelier --dir {} show {}",
            kept.display(),
            demo::STORY_REF
        )?;
    } else {
        writeln!(
            out,
            "\nLe réplica de démonstration est supprimé (--keep le garde)."
        )?;
    }
    Ok(())
}
