//! `atelier commenter` and `atelier discussion`: the thread of a resource or a task — comments
//! with replies, their office and author, edits and deletions kept, mentions of offices — and,
//! for a resource, where its review stands.

use std::io::Write;

use atelier_core::fr;
use atelier_core::work::thread::{Comment, NewComment};
use atelier_web::api::work::{CommentRequest, Discussion, SubjectQuery};
use serde_json::json;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// Commente une ressource, ou une tâche du plan de charge (--tache). « @caue-15 » dans le texte
/// signale le commentaire à cet office (dans son « Pour vous »).
///
/// Exemples : atelier commenter demo-063-01 "Belle fiche, @caue-15 tu relis ?"
/// atelier commenter --tache 3f2a --groupe "Massif central" "Commencé ce matin."
#[derive(clap::Args, Debug)]
pub struct CommentArgs {
    /// REF TEXTE (la ressource, puis le commentaire), ou seulement TEXTE avec --tache.
    #[arg(value_name = "REF TEXTE", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    /// Commenter cette tâche (son identifiant ou son début) plutôt qu'une ressource.
    #[arg(long = "tache", value_name = "ID")]
    pub task: Option<String>,
    /// Le groupe de la tâche, si son identifiant ne suffit pas.
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: Option<String>,
    /// Répond à ce commentaire (son identifiant ou son début, affiché par « atelier discussion »).
    #[arg(long = "reponse-a", value_name = "ID")]
    pub parent: Option<String>,
    /// Votre nom, affiché avec le commentaire.
    #[arg(long = "auteur", value_name = "NOM", default_value = "")]
    pub author: String,
    /// Affiche le résultat en JSON : {"id": …}.
    #[arg(long)]
    pub json: bool,
}

/// Affiche la discussion d'une ressource (et où en est sa relecture), ou d'une tâche (--tache).
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// La ressource (référence, identifiant ou URL) ; absente avec --tache.
    #[arg(value_name = "REF")]
    pub resource: Option<String>,
    /// La discussion de cette tâche (son identifiant ou son début).
    #[arg(long = "tache", value_name = "ID")]
    pub task: Option<String>,
    /// Le groupe de la tâche, si son identifiant ne suffit pas.
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: Option<String>,
    /// Sortie JSON : {"subject", "title", "thread", "review", "status"}.
    #[arg(long)]
    pub json: bool,
}

/// Characters of a comment id shown: enough to answer it with --reponse-a.
const SHORT_ID: usize = 8;

pub fn run_comment(args: CommentArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let (resource, text) = match (&args.task, &args.words[..]) {
        (Some(_), [text]) => (None, text.clone()),
        (None, [resource, text]) => (Some(resource.clone()), text.clone()),
        (Some(_), _) => {
            return Err(UsageError(
                "avec --tache, donnez seulement le texte du commentaire".into(),
            )
            .into())
        }
        (None, _) => {
            return Err(UsageError(
                "donnez la ressource puis le texte : atelier commenter REF \"texte\" (ou --tache ID \"texte\")"
                    .into(),
            )
            .into())
        }
    };
    let req = CommentRequest {
        subject: SubjectQuery {
            resource,
            group: args.group,
            task: args.task,
        },
        comment: NewComment {
            parent: args.parent,
            author: args.author,
            text,
        },
    };
    let backend = backend::open(&ctx.dir)?;
    let id = backend.comment(&req)?;
    if args.json {
        return write_json(out, &json!({ "id": id }));
    }
    writeln!(out, "Commentaire ajouté ({id}).")?;
    Ok(())
}

pub fn run_show(args: ShowArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.resource.is_some() == args.task.is_some() {
        return Err(UsageError(
            "nommez une ressource (atelier discussion REF) ou une tâche (--tache ID)".into(),
        )
        .into());
    }
    let backend = backend::open(&ctx.dir)?;
    let view = backend.discussion(&SubjectQuery {
        resource: args.resource,
        group: args.group,
        task: args.task,
    })?;
    if args.json {
        return write_json(out, &view);
    }
    render(out, &view, ctx.offset)
}

fn render(out: &mut dyn Write, v: &Discussion, offset: time::UtcOffset) -> anyhow::Result<()> {
    writeln!(out, "Discussion de « {} »", v.title)?;
    let when = |ms: i64| fr::date_time(ms / 1000, offset);
    let r = &v.review;
    if let Some(a) = &r.asked {
        writeln!(
            out,
            "Relecture demandée à {} par {} le {}",
            a.to.as_deref().unwrap_or("?"),
            a.office,
            when(a.at)
        )?;
    }
    if let Some(a) = &r.approved {
        writeln!(out, "Approuvée par {} le {}", a.office, when(a.at))?;
    }
    if let Some(a) = &r.returned {
        writeln!(
            out,
            "Renvoyée par {} le {} : {}",
            a.office,
            when(a.at),
            a.comment
        )?;
    }
    if let Some(a) = &r.published {
        writeln!(out, "Publiée par {} le {}", a.office, when(a.at))?;
    }
    let comments: &[Comment] = v.thread.as_ref().map_or(&[], |t| &t.comments[..]);
    if comments.is_empty() {
        writeln!(out, "Aucun commentaire.")?;
        return Ok(());
    }
    writeln!(out)?;
    // Replies under their parent, one level of indent per level of reply.
    fn walk(
        out: &mut dyn Write,
        all: &[Comment],
        parent: Option<&str>,
        depth: usize,
        when: &dyn Fn(i64) -> String,
    ) -> std::io::Result<()> {
        for c in all.iter().filter(|c| c.parent.as_deref() == parent) {
            let indent = "  ".repeat(depth);
            let id: String = c.id.chars().take(SHORT_ID).collect();
            let who = if c.author.is_empty() {
                c.office.clone()
            } else {
                format!("{} ({})", c.author, c.office)
            };
            let edited = if c.edited() { ", modifié" } else { "" };
            writeln!(
                out,
                "{indent}[{id}] {who}, {}{edited} :",
                when(c.created_at)
            )?;
            if c.deleted_at.is_some() {
                writeln!(out, "{indent}  (commentaire supprimé)")?;
            } else {
                for line in c.text.lines() {
                    writeln!(out, "{indent}  {line}")?;
                }
            }
            walk(out, all, Some(&c.id), depth + 1, when)?;
        }
        Ok(())
    }
    walk(out, comments, None, 0, &when)?;
    Ok(())
}
