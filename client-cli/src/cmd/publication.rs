//! `atelier publication`: publications numériques (title, subtitle, introduction, sections of
//! resources, texts, maps and group themes) created, listed, shown, edited, exported as a
//! folder or one HTML file that opens offline, and regenerated with what changed since.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_core::fr;
use atelier_core::replica::SinceExport;
use atelier_core::work::publication::{Cover, NewPublication, PublicationEdit, SectionContent};
use atelier_web::api::publication::{ExportBundle, PublicationView, SectionRequest};
use atelier_web::publication::ExportFile;
use serde_json::json;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// Exported files are made to be shared (copied to a web server, sent to partners): readable
/// by all, like any document.
const EXPORT_FILE_MODE: u32 = 0o644;

/// Publications numériques : des fiches, des textes, des cartes et des thèmes de groupe
/// assemblés en un document qui s'exporte (un dossier ou un seul fichier HTML, lisible sans
/// connexion, imprimable en A4).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Crée une publication (elle est aussi rangée parmi les fiches, au genre « Publication
    /// numérique »).
    Creer(CreateArgs),
    /// Liste les publications.
    Liste(JsonArg),
    /// Montre une publication : ses sections dans l'ordre, son dernier export.
    Voir(NameArgs),
    /// Modifie le titre, le sous-titre, l'introduction ou la couverture.
    Modifier(EditArgs),
    /// Ajoute, déplace ou retire une section.
    Section(SectionArgs),
    /// Exporte la publication dans un dossier (index.html et ses images) ou un seul fichier.
    Export(ExportArgs),
    /// Dit ce qui a changé depuis le dernier export ; avec --out, exporte à nouveau.
    Regenerer(RegenerateArgs),
}

#[derive(clap::Args, Debug)]
pub struct JsonArg {
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Titre de la publication.
    #[arg(value_name = "TITRE")]
    pub title: String,
    #[arg(long = "sous-titre")]
    pub subtitle: Option<String>,
    /// Introduction (séparez les paragraphes par une ligne vide).
    #[arg(long)]
    pub introduction: Option<String>,
    /// Affiche le résultat en JSON : {"id": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct NameArgs {
    /// La publication : son titre (ou son début), son identifiant, ou la référence de sa fiche.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// La publication : son titre (ou son début), son identifiant, ou la référence de sa fiche.
    #[arg(value_name = "NOM")]
    pub name: String,
    #[arg(long = "titre")]
    pub title: Option<String>,
    #[arg(long = "sous-titre")]
    pub subtitle: Option<String>,
    /// Remplace l'introduction (les modifications simultanées se fusionnent).
    #[arg(long)]
    pub introduction: Option<String>,
    /// Photo de couverture : la fiche qui la porte, et le numéro de la photo dans sa
    /// médiathèque (FICHE ou FICHE#2 ; la première par défaut).
    #[arg(long = "couverture", value_name = "FICHE[#N]")]
    pub cover: Option<String>,
    /// Retire la photo de couverture.
    #[arg(long = "sans-couverture", conflicts_with = "cover")]
    pub no_cover: bool,
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SectionArgs {
    #[command(subcommand)]
    pub command: SectionSub,
}

#[derive(clap::Subcommand, Debug)]
pub enum SectionSub {
    /// Ajoute une section : une fiche, un texte, une carte ou un thème de groupe.
    Add(AddArgs),
    /// Déplace une section à une autre place.
    Move(MoveArgs),
    /// Retire une section.
    Rm(RmArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["fiche", "texte", "carte", "theme"])))]
pub struct AddArgs {
    /// La publication.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// Une fiche (référence, identifiant ou titre), montrée avec son résumé, ses informations
    /// clés et ses photos.
    #[arg(long)]
    pub fiche: Option<String>,
    /// Un texte libre.
    #[arg(long)]
    pub texte: Option<String>,
    /// Une carte des fiches qu'un filtre retient : la fin de l'adresse de la liste des fiches
    /// (ex. kind=realisation&departement=63 ; vide : toutes).
    #[arg(long, value_name = "FILTRE")]
    pub carte: Option<String>,
    /// Un thème de groupe : GROUPE:THÈME (ex. « Massif central:Construire avec la terre »).
    #[arg(long, value_name = "GROUPE:THÈME")]
    pub theme: Option<String>,
    /// Titre d'un texte ou d'une carte.
    #[arg(long)]
    pub titre: Option<String>,
    /// Place de la section (1 : la première) ; à la fin par défaut.
    #[arg(long)]
    pub position: Option<usize>,
    /// Sortie JSON : {"id": …, "section": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct MoveArgs {
    /// La publication.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// La section : son numéro (affiché par « publication voir ») ou son identifiant.
    #[arg(value_name = "SECTION")]
    pub section: String,
    /// Sa nouvelle place (1 : la première).
    #[arg(value_name = "PLACE")]
    pub to: usize,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// La publication.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// La section : son numéro ou son identifiant.
    #[arg(value_name = "SECTION")]
    pub section: String,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// La publication.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// Le dossier où écrire l'export (créé s'il n'existe pas ; un export précédent y est
    /// remplacé).
    #[arg(long, value_name = "DOSSIER")]
    pub out: PathBuf,
    /// Un seul fichier HTML, images incluses, plutôt qu'index.html et un dossier images/.
    #[arg(long = "un-fichier")]
    pub single_file: bool,
    /// Sortie JSON : les fichiers écrits et ce qui a changé depuis l'export précédent.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RegenerateArgs {
    /// La publication.
    #[arg(value_name = "NOM")]
    pub name: String,
    /// Exporte à nouveau dans ce dossier.
    #[arg(long, value_name = "DOSSIER")]
    pub out: Option<PathBuf>,
    /// Un seul fichier HTML (avec --out).
    #[arg(long = "un-fichier", requires = "out")]
    pub single_file: bool,
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    match args.command {
        Sub::Creer(a) => {
            let new = NewPublication {
                title: a.title,
                subtitle: a.subtitle.unwrap_or_default(),
                introduction: a.introduction.unwrap_or_default(),
            };
            let id = backend.create_publication(&new)?;
            if a.json {
                return write_json(out, &json!({ "id": id.url() }));
            }
            writeln!(
                out,
                "Publication « {} » créée : {}",
                new.title.trim(),
                id.url()
            )?;
        }
        Sub::Liste(a) => {
            let all = backend.publications()?;
            if a.json {
                return write_json(out, &all);
            }
            if all.is_empty() {
                writeln!(
                    out,
                    "Aucune publication. Créez-en une : atelier publication creer TITRE"
                )?;
            }
            for p in all {
                writeln!(
                    out,
                    "{}  ({})",
                    p.title,
                    fr::count(p.sections as u64, "section")
                )?;
            }
        }
        Sub::Voir(a) => {
            let view = backend.publication(&a.name)?;
            if a.json {
                return write_json(out, &view);
            }
            show(out, &view)?;
        }
        Sub::Modifier(a) => {
            let mut edits = Vec::new();
            for (field, value) in [
                ("title", a.title),
                ("subtitle", a.subtitle),
                ("introduction", a.introduction),
            ] {
                if let Some(value) = value {
                    edits.push(PublicationEdit::Set {
                        field: field.into(),
                        value,
                    });
                }
            }
            if a.no_cover {
                edits.push(PublicationEdit::Cover(None));
            }
            if let Some(c) = &a.cover {
                edits.push(PublicationEdit::Cover(Some(cover(&*backend, c)?)));
            }
            if edits.is_empty() {
                return Err(UsageError(
                    "rien à modifier : indiquez --titre, --sous-titre, --introduction ou --couverture"
                        .into(),
                )
                .into());
            }
            let (id, fields) = backend.edit_publication(&a.name, &edits)?;
            if a.json {
                return write_json(out, &json!({ "id": id.url(), "fields": fields }));
            }
            writeln!(out, "Publication modifiée : {}", fields.join(", "))?;
        }
        Sub::Section(s) => match s.command {
            SectionSub::Add(a) => {
                let req = SectionRequest {
                    fiche: a.fiche,
                    texte: a.texte,
                    carte: a.carte,
                    theme: a.theme,
                    titre: a.titre.unwrap_or_default(),
                    position: a.position,
                };
                let (id, section) = backend.add_section(&a.name, &req)?;
                if a.json {
                    return write_json(out, &json!({ "id": id.url(), "section": section }));
                }
                writeln!(out, "Section ajoutée ({section}).")?;
            }
            SectionSub::Move(a) => {
                let view = backend.publication(&a.name)?;
                let (i, sid) = section_of(&view, &a.section)?;
                if a.to == 0 || a.to > view.publication.sections.len() {
                    return Err(UsageError(format!(
                        "place {} : entre 1 et {}",
                        a.to,
                        view.publication.sections.len()
                    ))
                    .into());
                }
                let edit = PublicationEdit::MoveSection {
                    id: sid,
                    index: a.to - 1,
                };
                backend.edit_publication(&view.id.url(), &[edit])?;
                writeln!(
                    out,
                    "Section « {} » déplacée de la place {} à la place {}.",
                    view.headings[i],
                    i + 1,
                    a.to
                )?;
            }
            SectionSub::Rm(a) => {
                let view = backend.publication(&a.name)?;
                let (i, sid) = section_of(&view, &a.section)?;
                backend.edit_publication(&view.id.url(), &[PublicationEdit::RemoveSection(sid)])?;
                writeln!(out, "Section « {} » retirée.", view.headings[i])?;
            }
        },
        Sub::Export(a) => {
            let bundle = backend.export_publication(&a.name, a.single_file)?;
            let written = write_export(&a.out, &bundle)?;
            if a.json {
                return write_json(
                    out,
                    &json!({ "id": bundle.id.url(), "files": written, "since": bundle.since }),
                );
            }
            say_written(out, &a.out, &written)?;
        }
        Sub::Regenerer(a) => {
            let since = backend.publication_since(&a.name)?;
            let written = match &a.out {
                Some(dir) => {
                    let bundle = backend.export_publication(&a.name, a.single_file)?;
                    Some(write_export(dir, &bundle)?)
                }
                None => None,
            };
            if a.json {
                return write_json(out, &json!({ "since": since, "files": written }));
            }
            say_since(out, &since)?;
            match (&a.out, &written) {
                (Some(dir), Some(files)) => say_written(out, dir, files)?,
                _ => writeln!(
                    out,
                    "Pour exporter à nouveau : atelier publication regenerer \"{}\" --out DOSSIER",
                    a.name
                )?,
            }
        }
    }
    Ok(())
}

/// The cover a user named: `FICHE` or `FICHE#N` (the Nth photo or plan of its médiathèque).
fn cover(backend: &dyn backend::Backend, text: &str) -> anyhow::Result<Cover> {
    let (fiche, n) = match text.rsplit_once('#') {
        Some((f, n)) => (
            f,
            n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                UsageError(format!(
                    "--couverture : « {n} » n'est pas un numéro de photo"
                ))
            })?,
        ),
        None => (text, 1),
    };
    let view = backend.show(fiche)?;
    let media: Vec<atelier_core::media::Media> = view.resource["media"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| serde_json::from_value(m.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let images: Vec<_> = media
        .iter()
        .filter(|m| m.kind != atelier_core::media::MediaKind::Document)
        .collect();
    let m = images.get(n - 1).ok_or_else(|| {
        UsageError(format!(
            "--couverture : la fiche « {fiche} » a {} ; pas de photo n° {n}",
            fr::count(images.len() as u64, "photo")
        ))
    })?;
    Ok(Cover {
        resource: view.id,
        hash: m.hash,
    })
}

/// The section a user named: its 1-based number, or its id (or a unique start of it).
fn section_of(view: &PublicationView, text: &str) -> Result<(usize, String), UsageError> {
    let sections = &view.publication.sections;
    let ids: Vec<&str> = sections.iter().map(|s| s.id.as_str()).collect();
    match section_index(&ids, text) {
        Some(i) => Ok((i, sections[i].id.clone())),
        None => Err(UsageError(format!(
            "« {} » ne désigne pas une section (numéro entre 1 et {}, ou identifiant)",
            text.trim(),
            sections.len()
        ))),
    }
}

/// Which of `ids` the user's `text` names. A number is a position and never the start of an
/// id: ids are random, and « 9 » out of range must not quietly pick a section whose id begins
/// with a 9.
fn section_index(ids: &[&str], text: &str) -> Option<usize> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<usize>() {
            Ok(n) if n >= 1 && n <= ids.len() => Some(n - 1),
            _ => ids.iter().position(|id| *id == text),
        };
    }
    let found: Vec<usize> = (0..ids.len())
        .filter(|i| ids[*i].starts_with(text))
        .collect();
    match found[..] {
        [i] => Some(i),
        _ => None,
    }
}

/// Writes an export into `dir`: a folder's files (any earlier `index.html` and `images/` are
/// replaced whole: the new ones are written beside, then renamed in), or the single file.
/// Returns the paths written, relative to `dir`.
fn write_export(dir: &Path, bundle: &ExportBundle) -> anyhow::Result<Vec<String>> {
    let files: Vec<ExportFile> = bundle
        .decoded()
        .ok_or_else(|| anyhow::anyhow!("export illisible reçu de l'application web"))?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("création du dossier {}", dir.display()))?;
    let fresh = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(dir)
        .with_context(|| format!("écriture dans {}", dir.display()))?;
    for f in &files {
        let path = fresh.path().join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        atelier_core::fs::write_atomic(&path, &f.bytes, Some(EXPORT_FILE_MODE))
            .with_context(|| format!("écriture de {}", path.display()))?;
    }
    // Everything is written: move it in (the images first, so index.html never names an
    // image that is not there).
    let mut tops: Vec<String> = files
        .iter()
        .map(|f| f.path.split('/').next().unwrap_or_default().to_string())
        .collect();
    tops.sort_by_key(|t| (t.ends_with(".html"), t.clone()));
    tops.dedup();
    for top in &tops {
        let target = dir.join(top);
        if target.is_dir() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("remplacement de {}", target.display()))?;
        }
        std::fs::rename(fresh.path().join(top), &target)
            .with_context(|| format!("écriture de {}", target.display()))?;
    }
    atelier_core::fs::sync_dir(dir).ok();
    Ok(files.into_iter().map(|f| f.path).collect())
}

fn say_written(out: &mut dyn Write, dir: &Path, files: &[String]) -> anyhow::Result<()> {
    let page = files
        .iter()
        .find(|f| f.ends_with(".html"))
        .cloned()
        .unwrap_or_default();
    let images = files.len().saturating_sub(1);
    writeln!(
        out,
        "Publication exportée : {} ({}) — s'ouvre sans connexion ; pour un PDF, imprimez-la depuis le navigateur (A4).",
        dir.join(&page).display(),
        if page != atelier_web::publication::INDEX_FILE {
            "images incluses".to_string()
        } else if images == 0 {
            "sans image".to_string()
        } else {
            format!("et {}", fr::count(images as u64, "image"))
        }
    )?;
    Ok(())
}

fn say_since(out: &mut dyn Write, s: &SinceExport) -> anyhow::Result<()> {
    match &s.export {
        None => writeln!(out, "Jamais exportée : tout est nouveau.")?,
        Some(e) => {
            let when = time::OffsetDateTime::from_unix_timestamp(e.at / 1000)
                .map(|d| {
                    format!(
                        "{:02}/{:02}/{} {:02}h{:02} (UTC)",
                        d.day(),
                        u8::from(d.month()),
                        d.year(),
                        d.hour(),
                        d.minute()
                    )
                })
                .unwrap_or_default();
            writeln!(out, "Dernier export : {when} par {}.", e.by)?;
            if s.is_empty() {
                writeln!(out, "Rien n'a changé depuis.")?;
            }
        }
    }
    if !s.publication.is_empty() {
        writeln!(out, "Dans la publication : {}", s.publication.join(", "))?;
    }
    for (label, items) in [
        ("Fiches modifiées", &s.changed),
        ("Fiches ajoutées", &s.added),
        ("Fiches retirées", &s.removed),
    ] {
        if !items.is_empty() {
            writeln!(out, "{label} ({}) :", items.len())?;
            for i in items {
                writeln!(out, "  {}", i.title)?;
            }
        }
    }
    Ok(())
}

fn show(out: &mut dyn Write, v: &PublicationView) -> anyhow::Result<()> {
    let p = &v.publication;
    writeln!(out, "Publication « {} » — {}", p.title, v.id.url())?;
    if !p.subtitle.is_empty() {
        writeln!(out, "{}", p.subtitle)?;
    }
    if let Some(r) = &p.resource {
        writeln!(out, "Sa fiche : {}", r.url())?;
    }
    if !p.introduction.is_empty() {
        writeln!(out, "\nIntroduction :")?;
        for line in p.introduction.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    writeln!(out, "\nSections ({}) :", p.sections.len())?;
    for (i, s) in p.sections.iter().enumerate() {
        let detail = match &s.content {
            SectionContent::Map { filter, .. } if !filter.is_empty() => format!(" [{filter}]"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:>2}. {:<16} {}{detail}  ({})",
            i + 1,
            s.content.label(),
            v.headings.get(i).map(String::as_str).unwrap_or_default(),
            s.id
        )?;
    }
    match p.last_export() {
        Some(e) => writeln!(
            out,
            "\nDernier export par {} ({} documents).",
            e.by,
            e.heads.len()
        )?,
        None => writeln!(
            out,
            "\nPas encore exportée : atelier publication export \"{}\" --out DOSSIER",
            p.title
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::section_index;

    #[test]
    fn a_section_is_named_by_position_or_by_the_start_of_its_id() {
        let ids = ["9f3a", "b71c", "b7d0"];
        assert_eq!(section_index(&ids, "2"), Some(1));
        assert_eq!(section_index(&ids, " 3 "), Some(2));
        assert_eq!(section_index(&ids, "b71"), Some(1));
        // Out of range stays refused even though an id starts with 9.
        assert_eq!(section_index(&ids, "9"), None);
        assert_eq!(section_index(&ids, "0"), None);
        // An ambiguous start, or nothing, names no section.
        assert_eq!(section_index(&ids, "b7"), None);
        assert_eq!(section_index(&ids, ""), None);
        assert_eq!(section_index(&ids, "9f"), Some(0));
    }
}
