//! `atelier demo`: a throw-away replica filled with the built-in examples.

use std::io::Write;

use anyhow::Context as _;
use atelier_core::replica::{ListFilter, Replica};

use crate::backend::{Backend, Local};
use crate::{demo, render, Ctx};

/// The office of the demo replica.
const DEMO_OFFICE: &str = "caue-63";

/// Démonstration : crée un réplica jetable (dossier temporaire) avec une vingtaine de
/// ressources d'exemple des sept CAUE du Massif central, montre la liste et l'historique
/// d'une ressource modifiée par deux offices en même temps, puis démarre un relais et deux
/// offices (caue-63 et caue-15) avec leur application web, et affiche les adresses à ouvrir.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Garde les données de démonstration au lieu de les supprimer (leur dossier est affiché).
    #[arg(long)]
    pub keep: bool,
    /// Montre seulement la liste et l'historique, sans démarrer le relais ni les applications web.
    #[arg(long)]
    pub no_serve: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("atelier-demo-")
        .tempdir()
        .context("création du dossier temporaire de la démonstration")?;
    let dir = tmp.path().join(DEMO_OFFICE);
    let replica = Replica::init(&dir, DEMO_OFFICE.parse()?)?;
    let seeded = demo::seed(&replica, ctx.now_ms())?;
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
    let replica = std::sync::Arc::new(replica);
    let local = Local::shared(replica.clone());
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
    let publication = replica.publication(&seeded.publication)?;
    writeln!(
        out,
        "\nPublication numérique « {} » : {} ; voyez « atelier publication voir \"{}\" » et « publication export … --out DOSSIER ».",
        publication.title,
        atelier_core::fr::count(publication.sections.len() as u64, "section"),
        publication.title
    )?;
    let group = local.group(&seeded.group.to_string())?;
    let late: usize = group.shares.iter().map(|s| s.late).sum();
    writeln!(
        out,
        "\nGroupe de travail « {} » ({}) : {} thèmes, {} dont {late} en retard, {} pour {DEMO_OFFICE} ; voyez « atelier groupe voir », « taches », « relecture liste », « discussion {} », « pour-vous ».",
        group.group.name,
        group.group.members.join(", "),
        group.themes.len(),
        atelier_core::fr::count(group.group.tasks.len() as u64, "tâche"),
        {
            let n = local.to_review()?.len() as u64;
            format!("{n} fiche{} à relire", atelier_core::fr::plural_s(n))
        },
        demo::STORY_REF
    )?;
    drop(local);
    if !args.no_serve {
        serve(tmp.path(), replica, out)?;
    }
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

/// Starts the relay and the two offices' web apps, prints the addresses, and waits for Ctrl-C.
fn serve(
    dir: &std::path::Path,
    first: std::sync::Arc<Replica>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (second_office, _) = crate::live_demo::OFFICES[1];
    let second = std::sync::Arc::new(Replica::init(
        &dir.join(second_office),
        second_office.parse()?,
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("démarrage du moteur asynchrone")?;
    runtime.block_on(async {
        let live = crate::live_demo::start(dir, vec![first, second], true, true).await?;
        writeln!(
            out,
            "\nRelais : quic://{}  (navigateurs : ws://{})",
            live.relay.quic_addr(),
            live.relay.ws_addr()
        )?;
        writeln!(
            out,
            "Ouvrez les deux offices dans votre navigateur (chaque lien sert une fois, pendant {} minutes) :",
            atelier_web::auth::LOGIN_LINK_TTL.as_secs() / 60
        )?;
        for office in &live.offices {
            writeln!(out, "  {}  {}", office.office, office.web.login_url("/"))?;
            writeln!(
                out,
                "           (nouveau lien : atelier --dir {} ouvrir)",
                office.replica.dir().display()
            )?;
        }
        writeln!(
            out,
            "Modifiez une ressource dans l'un : elle change dans l'autre. Ctrl-C pour arrêter."
        )?;
        out.flush()?;
        tokio::signal::ctrl_c().await.context("attente de Ctrl-C")?;
        writeln!(out, "\nArrêt de la démonstration…")?;
        live.shutdown().await;
        anyhow::Ok(())
    })
}
