//! `atelier groupe`: working groups (name, slogan, action, editorial line, members, publics,
//! themes mapped to the vocabularies, resources) created, listed, shown and edited.

use std::io::Write;

use atelier_core::fr;
use atelier_core::work::group::{GroupEdit, NewGroup, Theme};
use atelier_core::work::new_key;
use atelier_web::api::work::GroupView;
use serde_json::json;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// Groupes de travail : la ligne éditoriale commune de plusieurs offices (slogan, nom de
/// l'action, publics visés, thèmes en mots simples), leurs membres et leur plan de charge.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Crée un groupe de travail ; votre office en est membre.
    Creer(CreateArgs),
    /// Liste les groupes de travail.
    Liste(JsonArg),
    /// Montre un groupe : ligne éditoriale, thèmes et leurs ressources, membres, avancement.
    Voir(ShowArgs),
    /// Modifie un groupe (réservé aux offices membres) ; tout ou rien.
    Modifier(EditArgs),
    /// Ajoute un thème au groupe : un libellé en mots simples, une phrase d'explication, et les
    /// valeurs des vocabulaires qu'il rassemble.
    Theme(ThemeArgs),
}

#[derive(clap::Args, Debug)]
pub struct JsonArg {
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Nom du groupe (ex. « Massif central »).
    #[arg(value_name = "NOM")]
    pub name: String,
    /// Slogan du groupe.
    #[arg(long)]
    pub slogan: Option<String>,
    /// Nom de l'action menée ensemble.
    #[arg(long)]
    pub action: Option<String>,
    /// Ligne éditoriale : ce que le groupe veut montrer, à qui, sur quel ton.
    #[arg(long)]
    pub ligne: Option<String>,
    /// Autre office membre (caue-XX). Répétable.
    #[arg(long = "membre", value_name = "caue-XX")]
    pub members: Vec<String>,
    /// Public visé (code du vocabulaire « publics », ou les mots du groupe). Répétable.
    #[arg(long = "public", value_name = "PUBLIC")]
    pub publics: Vec<String>,
    /// Publier sans l'approbation d'un autre office (par défaut, une fiche du groupe doit être
    /// approuvée par un autre office avant publication).
    #[arg(long)]
    pub sans_approbation: bool,
    /// Affiche le résultat en JSON : {"id": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Le groupe : son nom (ou son début), son identifiant ou son URL.
    #[arg(value_name = "NOM")]
    pub group: String,
    /// Sortie JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// Le groupe : son nom (ou son début), son identifiant ou son URL.
    #[arg(value_name = "NOM")]
    pub group: String,
    /// Nouveau nom.
    #[arg(long = "nom")]
    pub name: Option<String>,
    #[arg(long)]
    pub slogan: Option<String>,
    /// Nom de l'action.
    #[arg(long)]
    pub action: Option<String>,
    /// Ligne éditoriale (remplace le texte ; les modifications simultanées se fusionnent).
    #[arg(long)]
    pub ligne: Option<String>,
    /// Office à ajouter aux membres (caue-XX). Répétable.
    #[arg(long = "ajouter-membre", value_name = "caue-XX")]
    pub add_members: Vec<String>,
    /// Office à retirer des membres. Répétable.
    #[arg(long = "retirer-membre", value_name = "caue-XX")]
    pub remove_members: Vec<String>,
    /// Public visé à ajouter. Répétable.
    #[arg(long = "ajouter-public", value_name = "PUBLIC")]
    pub add_publics: Vec<String>,
    /// Public visé à retirer. Répétable.
    #[arg(long = "retirer-public", value_name = "PUBLIC")]
    pub remove_publics: Vec<String>,
    /// Ressource à ajouter au groupe (celles des offices membres en font déjà partie). Répétable.
    #[arg(long = "ajouter-ressource", value_name = "REF")]
    pub add_resources: Vec<String>,
    /// Ressource à retirer du groupe. Répétable.
    #[arg(long = "retirer-ressource", value_name = "REF")]
    pub remove_resources: Vec<String>,
    /// Thème à retirer : son identifiant (affiché par « groupe theme », et dans « groupe voir
    /// --json »). Répétable.
    #[arg(long = "retirer-theme", value_name = "THEME")]
    pub remove_themes: Vec<String>,
    /// Publier demande l'approbation d'un autre office : oui ou non.
    #[arg(long, value_name = "oui|non", value_parser = ["oui", "non"])]
    pub approbation: Option<String>,
    /// Affiche le résultat en JSON : {"id": …, "fields": […]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ThemeArgs {
    /// Le groupe : son nom (ou son début), son identifiant ou son URL.
    #[arg(value_name = "NOM")]
    pub group: String,
    /// Le thème en mots simples (ex. « Construire avec la terre »).
    #[arg(long = "libelle")]
    pub label: String,
    /// Une phrase qui dit ce que le thème rassemble.
    #[arg(long = "explication")]
    pub explanation: String,
    /// Valeur d'un vocabulaire rassemblée sous ce thème : axes:…, themes:… ou sectors:…
    /// (ex. sectors:terre). Répétable.
    #[arg(long = "valeur", value_name = "VOCABULAIRE:CODE", required = true)]
    pub values: Vec<String>,
    /// Affiche le résultat en JSON : {"id": …, "theme": …}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    match args.command {
        Sub::Creer(a) => {
            let new = NewGroup {
                name: a.name,
                slogan: a.slogan.unwrap_or_default(),
                action: a.action.unwrap_or_default(),
                line: a.ligne.unwrap_or_default(),
                members: a.members,
                publics: a.publics,
                approval_required: !a.sans_approbation,
            };
            let id = backend.create_group(&new)?;
            if a.json {
                return write_json(out, &json!({ "id": id.url() }));
            }
            writeln!(out, "Groupe « {} » créé : {}", new.name.trim(), id.url())?;
        }
        Sub::Liste(a) => {
            let groups = backend.groups()?;
            if a.json {
                return write_json(out, &groups);
            }
            if groups.is_empty() {
                writeln!(
                    out,
                    "Aucun groupe de travail. Créez-en un : atelier groupe creer NOM --membre caue-XX"
                )?;
            }
            for g in groups {
                writeln!(out, "{}  ({})", g.name, g.members.join(", "))?;
            }
        }
        Sub::Voir(a) => {
            let view = backend.group(&a.group)?;
            if a.json {
                return write_json(out, &view);
            }
            show(out, &view)?;
        }
        Sub::Modifier(a) => {
            let json = a.json;
            let group = a.group.clone();
            let edits = edits(a)?;
            let (id, fields) = backend.edit_group(&group, &edits)?;
            if json {
                return write_json(out, &json!({ "id": id.url(), "fields": fields }));
            }
            if fields.is_empty() {
                writeln!(out, "Rien n'a changé.")?;
            } else {
                writeln!(out, "Groupe modifié : {}", fields.join(", "))?;
            }
        }
        Sub::Theme(a) => {
            let theme = Theme {
                id: new_key(&mut rand::thread_rng()),
                label: a.label,
                explanation: a.explanation,
                values: a.values,
                created_at: crate::now_ms(),
            };
            backend.edit_group(&a.group, &[GroupEdit::PutTheme(theme.clone())])?;
            if a.json {
                return write_json(out, &json!({ "id": theme.id, "theme": theme }));
            }
            writeln!(
                out,
                "Thème « {} » ajouté ({})",
                theme.label.trim(),
                theme.id
            )?;
        }
    }
    Ok(())
}

/// The edits the flags of `groupe modifier` ask for, in the order of the help.
fn edits(a: EditArgs) -> Result<Vec<GroupEdit>, UsageError> {
    let mut edits = Vec::new();
    for (field, value) in [
        ("name", a.name),
        ("slogan", a.slogan),
        ("action", a.action),
        ("line", a.ligne),
    ] {
        if let Some(value) = value {
            edits.push(GroupEdit::Set {
                field: field.into(),
                value,
            });
        }
    }
    edits.extend(a.add_members.into_iter().map(GroupEdit::AddMember));
    edits.extend(a.remove_members.into_iter().map(GroupEdit::RemoveMember));
    edits.extend(a.add_publics.into_iter().map(GroupEdit::AddPublic));
    edits.extend(a.remove_publics.into_iter().map(GroupEdit::RemovePublic));
    for r in a.add_resources {
        edits.push(GroupEdit::AddResource(resource_id(&r)?));
    }
    for r in a.remove_resources {
        edits.push(GroupEdit::RemoveResource(resource_id(&r)?));
    }
    edits.extend(a.remove_themes.into_iter().map(GroupEdit::RemoveTheme));
    if let Some(yes) = a.approbation {
        edits.push(GroupEdit::ApprovalRequired(yes == "oui"));
    }
    if edits.is_empty() {
        return Err(UsageError(
            "rien à modifier : indiquez --nom, --slogan, --ligne, --ajouter-membre, --ajouter-ressource…"
                .into(),
        ));
    }
    Ok(edits)
}

/// A resource named by its URL or id, or by its ref (the id a ref gives is fixed).
fn resource_id(text: &str) -> Result<atelier_core::DocumentId, UsageError> {
    let text = text.trim();
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    if text.is_empty() {
        return Err(UsageError("--ajouter-ressource : référence vide".into()));
    }
    Ok(atelier_core::replica::ref_id(text))
}

fn show(out: &mut dyn Write, v: &GroupView) -> anyhow::Result<()> {
    let g = &v.group;
    writeln!(out, "Groupe de travail « {} » — {}", g.name, v.id.url())?;
    if !g.slogan.is_empty() {
        writeln!(out, "Slogan : {}", g.slogan)?;
    }
    if !g.action.is_empty() {
        writeln!(out, "Action : {}", g.action)?;
    }
    writeln!(out, "Membres : {}", g.members.join(", "))?;
    if !g.publics.is_empty() {
        let publics: Vec<&str> = g
            .publics
            .iter()
            .map(|p| atelier_core::vocab::label_or_code(atelier_core::vocab::AUDIENCES, p))
            .collect();
        writeln!(out, "Publics visés : {}", publics.join(", "))?;
    }
    writeln!(
        out,
        "Publication : {}",
        if g.approval_required {
            "après l'approbation d'un autre office"
        } else {
            "libre"
        }
    )?;
    if !g.line.is_empty() {
        writeln!(out, "\nLigne éditoriale :")?;
        for line in g.line.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    writeln!(
        out,
        "\nThèmes ({} du groupe en tout) :",
        fr::count(v.resource_count as u64, "ressource")
    )?;
    if v.themes.is_empty() {
        writeln!(
            out,
            "  aucun : atelier groupe theme \"{}\" --libelle … --valeur sectors:…",
            g.name
        )?;
    }
    for t in &v.themes {
        let values: Vec<String> = t
            .theme
            .values
            .iter()
            .map(|v| match v.split_once(':') {
                Some((voc, code)) => atelier_core::vocab::label_or_code(voc, code).to_string(),
                None => v.clone(),
            })
            .collect();
        writeln!(
            out,
            "  {} — {} ({})",
            t.theme.label,
            fr::count(t.resource_count as u64, "ressource"),
            values.join(", ")
        )?;
        if !t.theme.explanation.is_empty() {
            writeln!(out, "      {}", t.theme.explanation)?;
        }
    }
    writeln!(
        out,
        "\nPlan de charge : {} % fait, {}",
        v.progress,
        fr::count(g.tasks.len() as u64, "tâche")
    )?;
    for s in &v.shares {
        let who = s.office.as_deref().unwrap_or("sans office");
        let late = if s.late > 0 {
            format!(", {} en retard", s.late)
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {who:<12} {} faite{} sur {}{late}",
            s.done,
            fr::plural_s(s.done as u64),
            s.tasks
        )?;
    }
    Ok(())
}
