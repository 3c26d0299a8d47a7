//! `atelier media`: a resource's photos, plans and documents — add, list, get, edit, remove —
//! and the replica's media policy.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use atelier_core::document::Edit;
use atelier_core::fr;
use atelier_core::media::{BlobHash, Media, MediaKind, MediaPolicy, Tier};
use atelier_core::replica::NewMedia;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// Photos, plans et documents (PDF) d'une ressource. Les fichiers sont rangés à part, chacun
/// désigné par son empreinte ; la fiche les liste avec leur crédit et leur description.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: MediaCommand,
}

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// Ajoute des photos, plans ou documents à une ressource (tout ou rien).
    Add(AddArgs),
    /// Liste les médias d'une ressource, et s'ils sont déjà reçus sur ce poste.
    List(ListArgs),
    /// Enregistre un média dans un fichier.
    Get(GetArgs),
    /// Modifie le crédit, la légende ou la description d'un média.
    Edit(EditArgs),
    /// Retire un média de la fiche (il reste dans l'historique).
    Rm(RmArgs),
    /// Montre ou change ce que ce poste reçoit : tout, vignettes, ou une sélection.
    Policy(PolicyArgs),
}

/// Ajoute un ou plusieurs fichiers (JPEG, PNG, WebP, PDF) à une ressource. Des vignettes
/// (320 px) et une image d'affichage (1 600 px) sont faites sur ce poste, sans les métadonnées
/// de la photo. Rien n'est ajouté si un seul fichier est refusé.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// La ressource : identifiant, URL automerge:… ou référence.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Les fichiers à ajouter.
    #[arg(value_name = "FICHIER", required = true)]
    pub files: Vec<PathBuf>,
    /// Le crédit, obligatoire pour une photo ou un plan : « © J. Martin / CAUE 63 ».
    #[arg(long)]
    pub credit: Option<String>,
    /// Une légende affichée sous l'image.
    #[arg(long)]
    pub caption: Option<String>,
    /// Une courte description pour les personnes qui ne voient pas l'image (obligatoire pour
    /// une photo) : « Façade sud en pisé, enduit ocre ».
    #[arg(long)]
    pub alt: Option<String>,
    /// Les images sont des plans (et non des photos).
    #[arg(long)]
    pub plan: bool,
    /// Publie la position GPS enregistrée dans la photo, et la prend comme lieu de la fiche
    /// si elle n'en a pas. Sans cette option, la position reste privée.
    #[arg(long)]
    pub gps: bool,
    /// Affiche le résultat en JSON.
    #[arg(long)]
    pub json: bool,
}

/// Liste les médias d'une ressource, dans l'ordre de la galerie.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// Affiche les entrées en JSON (format d'échange, champ `media`).
    #[arg(long)]
    pub json: bool,
}

/// La taille à enregistrer.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Size {
    /// Le fichier tel qu'il a été ajouté.
    Original,
    /// L'image d'affichage (1 600 px).
    Affichage,
    /// La vignette (320 px).
    Vignette,
}

/// Enregistre le média numéro N (voir atelier media list) dans un fichier.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// Numéro du média dans la liste (1, 2…), ou début de son empreinte.
    #[arg(value_name = "N")]
    pub n: String,
    /// Le fichier à écrire.
    #[arg(long, short, value_name = "FICHIER")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "original")]
    pub size: Size,
}

/// Modifie les textes d'un média.
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(value_name = "N")]
    pub n: String,
    #[arg(long)]
    pub credit: Option<String>,
    #[arg(long)]
    pub caption: Option<String>,
    #[arg(long)]
    pub alt: Option<String>,
}

/// Retire le média numéro N de la fiche. Il reste dans l'historique, et son fichier sur le
/// relais.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(value_name = "N")]
    pub n: String,
}

/// Ce que ce poste reçoit : les vignettes et images d'affichage toujours, les originaux selon
/// la règle. Sans argument : montre la règle actuelle.
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// `tout` (originaux compris), `vignettes` (originaux laissés sur le relais) ou `selection`.
    #[arg(value_name = "REGLE", value_parser = ["tout", "vignettes", "selection"])]
    pub policy: Option<String>,
    /// Avec `selection` : originaux des ressources de ces départements (63, 15…).
    #[arg(long = "departement", value_name = "CODE")]
    pub departements: Vec<String>,
    /// Avec `selection` : originaux de ces sortes (photo, plan, document).
    #[arg(long = "sorte", value_name = "SORTE")]
    pub kinds: Vec<String>,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    match args.command {
        MediaCommand::Add(a) => add(a, ctx, out),
        MediaCommand::List(a) => list(a, ctx, out),
        MediaCommand::Get(a) => get(a, ctx, out),
        MediaCommand::Edit(a) => edit(a, ctx, out),
        MediaCommand::Rm(a) => rm(a, ctx, out),
        MediaCommand::Policy(a) => policy(a, ctx, out),
    }
}

fn add(a: AddArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let mut files = Vec::new();
    for path in &a.files {
        let bytes =
            std::fs::read(path).with_context(|| format!("lecture de « {} »", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "fichier".into());
        files.push(NewMedia {
            name,
            bytes,
            plan: a.plan,
            credit: a.credit.clone(),
            caption: a.caption.clone(),
            alt: a.alt.clone(),
            use_gps: a.gps,
        });
    }
    let added = backend.add_media(&a.id, files)?;
    if a.json {
        return write_json(out, &added);
    }
    for x in &added {
        let m = &x.media;
        write!(
            out,
            "Ajouté : {} « {} » ({}",
            m.kind.label(),
            m.name,
            fr::size(m.bytes)
        )?;
        if let (Some(w), Some(h)) = (m.width, m.height) {
            write!(out, ", {w} × {h} px")?;
        }
        writeln!(out, ")")?;
        if let Some(t) = &m.taken_at {
            writeln!(out, "  prise le {}", fr::date(&t[..10.min(t.len())]))?;
        }
        if let Some((lat, lon)) = x.gps_offered {
            writeln!(
                out,
                "  La photo contient une position GPS ({}, {}) : elle n'est pas publiée. \
                 Pour la prendre comme lieu de la fiche : atelier edit {} --set location.lat={lat} --set location.lon={lon}",
                fr::number(lat),
                fr::number(lon),
                a.id
            )?;
        }
    }
    writeln!(
        out,
        "Les fichiers partiront vers le relais à la prochaine synchronisation (atelier sync)."
    )?;
    Ok(())
}

/// The media entries of a resource, in gallery order.
fn entries(backend: &dyn backend::Backend, id: &str) -> anyhow::Result<Vec<Media>> {
    let view = backend.show(id)?;
    let list = view
        .resource
        .get("media")
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    serde_json::from_value(list).context("médias illisibles")
}

/// The entry named by `n`: its 1-based number, or the start of its hash.
fn pick<'a>(media: &'a [Media], n: &str, id: &str) -> anyhow::Result<&'a Media> {
    let found = match n.parse::<usize>() {
        Ok(i) if (1..=media.len()).contains(&i) && n.len() < 8 => Some(&media[i - 1]),
        _ if n.len() >= 4 => media.iter().find(|m| m.hash.to_hex().starts_with(n)),
        _ => None,
    };
    found.ok_or_else(|| {
        UsageError(format!(
            "aucun média « {n} » dans cette fiche ({} en tout) : voir atelier media list {id}",
            media.len()
        ))
        .into()
    })
}

fn list(a: ListArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let media = entries(backend.as_ref(), &a.id)?;
    if a.json {
        return write_json(out, &media);
    }
    if media.is_empty() {
        writeln!(out, "Aucune photo ni document. Pour en ajouter : atelier media add {} FICHIER --credit « © … » --alt « … »", a.id)?;
        return Ok(());
    }
    let hashes: Vec<BlobHash> = media
        .iter()
        .flat_map(|m| m.blobs())
        .map(|b| b.hash)
        .collect();
    let present = backend.media_present(&hashes)?;
    let here = |h: &BlobHash| hashes.iter().zip(&present).any(|(x, p)| x == h && *p);
    for (i, m) in media.iter().enumerate() {
        write!(
            out,
            "{:>3}. {} « {} » — {}",
            i + 1,
            m.kind.label(),
            m.name,
            fr::size(m.bytes)
        )?;
        if let (Some(w), Some(h)) = (m.width, m.height) {
            write!(out, ", {w} × {h} px")?;
        }
        writeln!(out)?;
        if let Some(c) = &m.credit {
            writeln!(out, "     crédit : {c}")?;
        }
        if let Some(c) = &m.caption {
            writeln!(out, "     légende : {c}")?;
        }
        if let Some(c) = &m.alt {
            writeln!(out, "     description : {c}")?;
        }
        let missing: Vec<String> = m
            .blobs()
            .iter()
            .filter(|b| !here(&b.hash))
            .map(|b| format!("{} ({})", b.tier.label(), fr::size(b.bytes)))
            .collect();
        if missing.is_empty() {
            writeln!(out, "     reçu sur ce poste")?;
        } else {
            writeln!(out, "     pas encore reçu : {}", missing.join(", "))?;
        }
        writeln!(out, "     empreinte {}", &m.hash.to_hex()[..16])?;
    }
    Ok(())
}

fn get(a: GetArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let media = entries(backend.as_ref(), &a.id)?;
    let m = pick(&media, &a.n, &a.id)?;
    let (hash, what) = match a.size {
        Size::Original => (Some(m.hash), Tier::Original),
        Size::Affichage => (m.display.map(|r| r.hash), Tier::Display),
        Size::Vignette => (m.thumb.map(|r| r.hash), Tier::Thumb),
    };
    let hash = hash.ok_or_else(|| {
        UsageError(format!(
            "« {} » n'a pas de {} (un document n'a que son original)",
            m.name,
            what.label()
        ))
    })?;
    let Some(bytes) = backend.media_blob(&hash)? else {
        return Err(UsageError(format!(
            "{} de « {} » pas encore reçu sur ce poste : lancez atelier sync{}",
            what.label(),
            m.name,
            if what == Tier::Original {
                " (et vérifiez atelier media policy : les originaux ne sont peut-être pas demandés)"
            } else {
                ""
            }
        ))
        .into());
    };
    atelier_core::fs::write_atomic(&a.out, &bytes, Some(0o644))
        .with_context(|| format!("écriture de « {} »", a.out.display()))?;
    writeln!(
        out,
        "{} de « {} » enregistré dans « {} » ({}).",
        what.label(),
        m.name,
        a.out.display(),
        fr::size(bytes.len() as u64)
    )?;
    Ok(())
}

fn edit(a: EditArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let media = entries(backend.as_ref(), &a.id)?;
    let m = pick(&media, &a.n, &a.id)?;
    let edits: Vec<Edit> = [
        ("credit", &a.credit),
        ("caption", &a.caption),
        ("alt", &a.alt),
    ]
    .into_iter()
    .filter_map(|(field, v)| {
        v.as_ref().map(|v| Edit::SetMedia {
            hash: m.hash,
            field: field.into(),
            value: if v.trim().is_empty() {
                Value::Null
            } else {
                Value::from(v.clone())
            },
        })
    })
    .collect();
    if edits.is_empty() {
        return Err(
            UsageError("rien à modifier : donnez --credit, --caption ou --alt".into()).into(),
        );
    }
    backend.edit(&a.id, &edits)?;
    writeln!(out, "Modifié : {} « {} ».", m.kind.label(), m.name)?;
    Ok(())
}

fn rm(a: RmArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let media = entries(backend.as_ref(), &a.id)?;
    let m = pick(&media, &a.n, &a.id)?;
    backend.edit(&a.id, &[Edit::RemoveMedia(m.hash)])?;
    writeln!(
        out,
        "Retiré de la fiche : {} « {} ». Il reste dans l'historique : atelier history {}",
        m.kind.label(),
        m.name,
        a.id
    )?;
    Ok(())
}

fn policy(a: PolicyArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let Some(choice) = a.policy else {
        let p = backend.media_policy()?;
        writeln!(out, "Règle des médias : {}", p.describe())?;
        let s = backend.media_status()?;
        writeln!(
            out,
            "À recevoir : {} ({}) ; à envoyer : {} ({}).",
            fr::count(s.to_receive, "fichier"),
            fr::size(s.to_receive_bytes),
            fr::count(s.to_send, "fichier"),
            fr::size(s.to_send_bytes)
        )?;
        return Ok(());
    };
    if choice != "selection" && (!a.departements.is_empty() || !a.kinds.is_empty()) {
        return Err(
            UsageError("--departement et --sorte ne vont qu'avec « selection »".into()).into(),
        );
    }
    let p = match choice.as_str() {
        "tout" => MediaPolicy::Tout,
        "vignettes" => MediaPolicy::Vignettes,
        _ => {
            let mut departements = Vec::new();
            for d in &a.departements {
                let d = d.to_ascii_uppercase();
                if atelier_core::vocab::departement(&d).is_none() {
                    return Err(UsageError(format!(
                        "« {d} » n'est pas un code de département (ex. 07, 63, 2A, 974)"
                    ))
                    .into());
                }
                departements.push(d);
            }
            let kinds = a
                .kinds
                .iter()
                .map(|k| k.parse::<MediaKind>().map_err(UsageError))
                .collect::<Result<Vec<_>, _>>()?;
            MediaPolicy::Selection {
                departements,
                kinds,
            }
        }
    };
    backend.set_media_policy(&p)?;
    writeln!(out, "Règle des médias : {}", p.describe())?;
    Ok(())
}
