//! `atelier taches` and `atelier tache`: a group's plan de charge — the tasks shared out between
//! offices, per office and per month, each office's share, what is late — and its edits.

use std::io::Write;

use atelier_core::fr;
use atelier_core::work::group::{GroupEdit, NewTask, TaskChange, TaskStatus};
use atelier_core::work::new_key;
use atelier_web::api::work::{GroupPlan, TaskView};
use serde_json::json;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// Le plan de charge : les tâches des groupes de travail par office et par mois, la part de
/// chaque office, et ce qui est en retard.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Seulement ce groupe (son nom, ou son début).
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: Option<String>,
    /// Seulement les tâches de cet office (caue-XX).
    #[arg(long, value_name = "caue-XX")]
    pub office: Option<String>,
    /// Sortie JSON : [{"group", "name", "shares", "tasks", "today"}].
    #[arg(long)]
    pub json: bool,
}

/// Ajoute, modifie ou termine une tâche du plan de charge.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Ajoute une tâche au plan de charge d'un groupe ; affiche son identifiant.
    Add(AddArgs),
    /// Modifie une tâche (les modifications simultanées de deux offices se fusionnent).
    Set(SetArgs),
    /// Marque une tâche comme faite.
    Done(DoneArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Le groupe (son nom, ou son début).
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: String,
    /// Ce qu'il y a à faire.
    #[arg(long = "titre")]
    pub title: String,
    /// L'office qui s'en charge : un membre du groupe (caue-XX).
    #[arg(long, value_name = "caue-XX")]
    pub office: Option<String>,
    /// La personne qui s'en charge (facultatif).
    #[arg(long = "personne", value_name = "NOM")]
    pub person: Option<String>,
    /// Échéance : AAAA-MM-JJ (ou JJ/MM/AAAA).
    #[arg(long = "echeance", value_name = "AAAA-MM-JJ")]
    pub due: Option<String>,
    /// Ressource liée (référence, identifiant ou URL). Répétable.
    #[arg(long = "ressource", value_name = "REF")]
    pub resources: Vec<String>,
    /// Affiche le résultat en JSON : {"id": …, "group": …}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// La tâche : son identifiant (ou son début, affiché par « atelier taches »).
    #[arg(value_name = "ID")]
    pub task: String,
    /// Le groupe de la tâche, si son identifiant ne suffit pas.
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: Option<String>,
    #[arg(long = "titre")]
    pub title: Option<String>,
    /// L'office qui s'en charge (un membre du groupe) ; "" pour personne.
    #[arg(long, value_name = "caue-XX")]
    pub office: Option<String>,
    #[arg(long = "personne", value_name = "NOM")]
    pub person: Option<String>,
    /// Échéance : AAAA-MM-JJ (ou JJ/MM/AAAA) ; "" pour aucune.
    #[arg(long = "echeance", value_name = "AAAA-MM-JJ")]
    pub due: Option<String>,
    /// État : a_faire, en_cours, a_relire ou fait.
    #[arg(long = "statut", value_name = "ETAT")]
    pub status: Option<String>,
    /// Ressource à lier. Répétable.
    #[arg(long = "ressource", value_name = "REF")]
    pub link: Vec<String>,
    /// Ressource à délier. Répétable.
    #[arg(long = "retirer-ressource", value_name = "REF")]
    pub unlink: Vec<String>,
    /// Affiche le résultat en JSON : {"id": …, "fields": […]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DoneArgs {
    /// La tâche : son identifiant (ou son début).
    #[arg(value_name = "ID")]
    pub task: String,
    /// Le groupe de la tâche, si son identifiant ne suffit pas.
    #[arg(long = "groupe", value_name = "NOM")]
    pub group: Option<String>,
}

/// Characters of a task id shown in tables: enough to tell a group's tasks apart.
const SHORT_ID: usize = 8;

pub fn run_list(args: ListArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let plans = backend.plans(args.group.as_deref(), args.office.as_deref())?;
    if args.json {
        return write_json(out, &plans);
    }
    if plans.is_empty() {
        writeln!(
            out,
            "Aucun groupe de travail : atelier groupe creer NOM --membre caue-XX"
        )?;
    }
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        render(out, plan)?;
    }
    Ok(())
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    match args.command {
        Sub::Add(a) => {
            let mut resources = Vec::new();
            for r in &a.resources {
                resources.push(backend.show(r)?.id);
            }
            let id = new_key(&mut rand::thread_rng());
            let task = NewTask {
                title: a.title,
                office: a.office,
                person: a.person.unwrap_or_default(),
                due: a.due,
                status: None,
                resources,
            };
            let (group, _) = backend.edit_group(
                &a.group,
                &[GroupEdit::AddTask {
                    id: id.clone(),
                    task,
                }],
            )?;
            if a.json {
                return write_json(out, &json!({ "id": id, "group": group.url() }));
            }
            writeln!(out, "{id}")?;
        }
        Sub::Set(a) => {
            let found = backend.task(a.group.as_deref(), &a.task)?;
            let mut changes = Vec::new();
            if let Some(t) = a.title {
                changes.push(TaskChange::Title(t));
            }
            if let Some(o) = a.office {
                changes.push(TaskChange::Office(o));
            }
            if let Some(p) = a.person {
                changes.push(TaskChange::Person(p));
            }
            if let Some(d) = a.due {
                changes.push(TaskChange::Due(d));
            }
            if let Some(s) = a.status {
                changes.push(TaskChange::Status(TaskStatus::parse(&s)?));
            }
            for r in &a.link {
                changes.push(TaskChange::Link(backend.show(r)?.id));
            }
            for r in &a.unlink {
                changes.push(TaskChange::Unlink(backend.show(r)?.id));
            }
            if changes.is_empty() {
                return Err(UsageError(
                    "rien à modifier : indiquez --titre, --office, --personne, --echeance ou --statut"
                        .into(),
                )
                .into());
            }
            let edits: Vec<GroupEdit> = changes
                .into_iter()
                .map(|change| GroupEdit::SetTask {
                    id: found.task.id.clone(),
                    change,
                })
                .collect();
            let (_, fields) = backend.edit_group(&found.group.to_string(), &edits)?;
            if a.json {
                return write_json(out, &json!({ "id": found.task.id, "fields": fields }));
            }
            writeln!(out, "Tâche « {} » modifiée.", found.task.title)?;
        }
        Sub::Done(a) => {
            let found = backend.task(a.group.as_deref(), &a.task)?;
            backend.edit_group(
                &found.group.to_string(),
                &[GroupEdit::SetTask {
                    id: found.task.id.clone(),
                    change: TaskChange::Status(TaskStatus::Fait),
                }],
            )?;
            writeln!(out, "Tâche « {} » faite.", found.task.title)?;
        }
    }
    Ok(())
}

/// One group's plan: the shares, then the tasks month by month.
fn render(out: &mut dyn Write, plan: &GroupPlan) -> anyhow::Result<()> {
    let done = plan
        .tasks
        .iter()
        .filter(|t| t.task.status == TaskStatus::Fait)
        .count();
    writeln!(
        out,
        "Plan de charge de « {} » — {}, {} faite{}",
        plan.name,
        fr::count(plan.tasks.len() as u64, "tâche"),
        done,
        fr::plural_s(done as u64)
    )?;
    let total = plan.tasks.len().max(1);
    writeln!(out, "Part de chaque office :")?;
    for s in &plan.shares {
        let who = s.office.as_deref().unwrap_or("sans office");
        let late = if s.late > 0 {
            format!(", {} en retard", s.late)
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {who:<12} {:>3} %  {} sur {} faite{}{late}",
            s.tasks * 100 / total,
            s.done,
            s.tasks,
            fr::plural_s(s.done as u64)
        )?;
    }
    let mut month: Option<Option<String>> = None;
    let mut tasks: Vec<&TaskView> = plan.tasks.iter().collect();
    tasks.sort_by(|a, b| {
        let key = |t: &TaskView| {
            (
                t.task.due.is_none(),
                t.task.due.clone(),
                t.task.office.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    for t in tasks {
        let this = t.task.due.as_ref().map(|d| d[..7.min(d.len())].to_string());
        if month.as_ref() != Some(&this) {
            writeln!(
                out,
                "\n{}",
                match &this {
                    Some(m) => month_label(m),
                    None => "Sans échéance".to_string(),
                }
            )?;
            month = Some(this);
        }
        let id: String = t.task.id.chars().take(SHORT_ID).collect();
        let who = match (&t.task.office, t.task.person.is_empty()) {
            (Some(o), true) => o.clone(),
            (Some(o), false) => format!("{o} ({})", t.task.person),
            (None, _) => "—".to_string(),
        };
        let due = t.task.due.as_deref().map(fr::date).unwrap_or_default();
        writeln!(
            out,
            "  {id}  {:<9} {:<24} {:<10} {}{}",
            t.task.status.label(),
            who,
            due,
            t.task.title,
            if t.late { "  EN RETARD" } else { "" }
        )?;
    }
    Ok(())
}

/// « mars 2027 » from « 2027-03 ».
fn month_label(month: &str) -> String {
    atelier_core::fr::month(month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_named_in_french() {
        assert_eq!(month_label("2027-03"), "mars 2027");
        assert_eq!(month_label("2027-12"), "décembre 2027");
        assert_eq!(month_label("2027-13"), "2027-13");
    }
}
