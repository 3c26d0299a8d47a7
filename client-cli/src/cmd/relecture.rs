//! `atelier relecture` and `atelier publier`: review across offices — a resource goes
//! « à relire » (asking a given office), that office approves it (published) or sends it back
//! with a comment; publishing to a group asks for one approval from another office.

use std::io::Write;

use atelier_core::fr;
use atelier_web::api::work::{ReviewAction, ReviewRequest};
use serde_json::json;

use super::{write_json, ResourceArg};
use crate::{backend, Ctx};

/// Relecture entre offices : demander, approuver, renvoyer, et la liste « À relire ».
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Demande à un autre office de relire une ressource (elle passe « à relire »).
    Demander(AskArgs),
    /// Approuve une ressource que votre office devait relire : elle est publiée.
    Approuver(StepArgs),
    /// Renvoie une ressource à son auteur, avec ce qui est à reprendre (elle redevient brouillon).
    Renvoyer(StepArgs),
    /// « À relire » : les ressources qui attendent la relecture de votre office.
    Liste(ListArgs),
}

#[derive(clap::Args, Debug)]
pub struct AskArgs {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// L'office à qui la relecture est demandée (caue-XX).
    #[arg(long = "a", value_name = "caue-XX")]
    pub to: String,
    /// Un mot pour le relecteur.
    #[arg(long = "commentaire", default_value = "")]
    pub comment: String,
    /// Votre nom (affiché avec la demande).
    #[arg(long = "auteur", value_name = "NOM", default_value = "")]
    pub author: String,
    /// Affiche le résultat en JSON : {"id": …, "status": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Le commentaire du relecteur (obligatoire pour renvoyer).
    #[arg(long = "commentaire", default_value = "")]
    pub comment: String,
    /// Votre nom (affiché avec la relecture).
    #[arg(long = "auteur", value_name = "NOM", default_value = "")]
    pub author: String,
    /// Affiche le résultat en JSON : {"id": …, "status": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Sortie JSON : [{"resource", "asked"}].
    #[arg(long)]
    pub json: bool,
}

/// Publie une ressource : directement, ou, si l'un de ses groupes le demande, après
/// l'approbation d'un autre office.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Votre nom.
    #[arg(long = "auteur", value_name = "NOM", default_value = "")]
    pub author: String,
    /// Affiche le résultat en JSON : {"id": …, "status": …}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let (id, req, json, done) = match args.command {
        Sub::Liste(a) => {
            let list = backend.to_review()?;
            if a.json {
                return write_json(out, &list);
            }
            if list.is_empty() {
                writeln!(out, "Rien à relire.")?;
            }
            for r in list {
                let who = if r.asked.author.is_empty() {
                    r.asked.office.clone()
                } else {
                    format!("{} ({})", r.asked.office, r.asked.author)
                };
                writeln!(
                    out,
                    "{}  « {} »  demandée par {who} le {}",
                    r.resource
                        .ref_
                        .as_deref()
                        .unwrap_or(&r.resource.id.to_string()),
                    r.resource.title,
                    fr::date_time(r.asked.at / 1000, ctx.offset)
                )?;
                if !r.asked.comment.is_empty() {
                    writeln!(out, "    {}", r.asked.comment)?;
                }
            }
            return Ok(());
        }
        Sub::Demander(a) => (
            a.resource.id,
            ReviewRequest {
                action: ReviewAction::Demande,
                to: Some(a.to.clone()),
                author: a.author,
                comment: a.comment,
            },
            a.json,
            format!("Relecture demandée à {}.", a.to.trim()),
        ),
        Sub::Approuver(a) => (
            a.resource.id,
            ReviewRequest {
                action: ReviewAction::Approbation,
                to: None,
                author: a.author,
                comment: a.comment,
            },
            a.json,
            "Approuvée et publiée.".to_string(),
        ),
        Sub::Renvoyer(a) => (
            a.resource.id,
            ReviewRequest {
                action: ReviewAction::Renvoi,
                to: None,
                author: a.author,
                comment: a.comment,
            },
            a.json,
            "Renvoyée à son auteur.".to_string(),
        ),
    };
    let status = backend.review(&id, &req)?;
    if json {
        return write_json(out, &json!({ "id": id, "status": status }));
    }
    writeln!(out, "{done}")?;
    Ok(())
}

pub fn run_publish(args: PublishArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let req = ReviewRequest {
        action: ReviewAction::Publication,
        to: None,
        author: args.author,
        comment: String::new(),
    };
    let status = backend.review(&args.resource.id, &req)?;
    if args.json {
        return write_json(out, &json!({ "id": args.resource.id, "status": status }));
    }
    writeln!(out, "Publiée.")?;
    Ok(())
}
