//! `atelier pour-vous` and `atelier nouveautes`: what asks this office for something (reviews,
//! mentions, its tasks), and what other offices changed since its last visit, by day then office.

use std::io::Write;

use atelier_core::fr;
use atelier_core::work::news::{NewsItem, NewsKind};
use serde_json::json;

use super::write_json;
use crate::{backend, Ctx, UsageError};

/// « Pour vous » : les relectures demandées à votre office, les commentaires qui le
/// mentionnent (@caue-XX), ses tâches pas encore faites.
#[derive(clap::Args, Debug)]
pub struct ForYouArgs {
    /// Sortie JSON : {"reviews", "mentions", "tasks"}.
    #[arg(long)]
    pub json: bool,
}

/// « Quoi de neuf » : ce que les autres offices ont changé (fiches, commentaires, tâches,
/// relectures), par jour puis par office, depuis votre dernier « marquer comme lu ».
#[derive(clap::Args, Debug)]
pub struct NewsArgs {
    /// Depuis ce jour (AAAA-MM-JJ, à minuit heure locale), ou « last » : depuis le dernier
    /// « marquer comme lu » (par défaut ; les 30 derniers jours s'il n'y en a pas eu).
    #[arg(long, value_name = "AAAA-MM-JJ|last")]
    pub since: Option<String>,
    /// Marque tout comme lu après l'affichage (la prochaine fois ne montrera que la suite).
    #[arg(long = "marquer-lu")]
    pub mark_read: bool,
    /// Sortie JSON : {"since", "read_at", "items": [{"day", "office", "kind", "doc", "at",
    /// "details", "changes", "subject", "title"}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run_for_you(args: ForYouArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let view = backend.for_you()?;
    if args.json {
        return write_json(out, &view);
    }
    if view.is_empty() {
        writeln!(out, "Rien pour vous.")?;
        return Ok(());
    }
    if !view.reviews.is_empty() {
        writeln!(out, "À relire :")?;
        for r in &view.reviews {
            writeln!(
                out,
                "  « {} » ({}), demandée par {}",
                r.resource.title,
                r.resource
                    .ref_
                    .as_deref()
                    .unwrap_or(&r.resource.id.to_string()),
                r.asked.office
            )?;
        }
    }
    if !view.mentions.is_empty() {
        writeln!(out, "Vous êtes mentionné :")?;
        for m in &view.mentions {
            let who = if m.comment.author.is_empty() {
                m.comment.office.clone()
            } else {
                format!("{} ({})", m.comment.author, m.comment.office)
            };
            writeln!(
                out,
                "  « {} », {who} le {} : {}",
                m.title,
                fr::date_time(m.comment.created_at / 1000, ctx.offset),
                m.comment.text
            )?;
        }
    }
    if !view.tasks.is_empty() {
        writeln!(out, "Vos tâches :")?;
        for t in &view.tasks {
            let due = t
                .task
                .due
                .as_deref()
                .map(|d| format!(", pour le {}", fr::date(d)))
                .unwrap_or_default();
            writeln!(
                out,
                "  {} ({}, {}){due}{}",
                t.task.title,
                t.group_name,
                t.task.status.label(),
                if t.late { "  EN RETARD" } else { "" }
            )?;
        }
    }
    Ok(())
}

pub fn run_news(args: NewsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let since = match args.since.as_deref().map(str::trim) {
        None | Some("last") => None,
        Some(day) => Some(day_start(day, ctx.offset)?),
    };
    let backend = backend::open(&ctx.dir)?;
    let news = backend.news(since)?;
    let read_at = if args.mark_read {
        Some(backend.mark_news_read()?)
    } else {
        None
    };
    if args.json {
        let mut value = serde_json::to_value(&news)?;
        if let Some(at) = read_at {
            value["marked_read_at"] = json!(at);
        }
        return write_json(out, &value);
    }
    writeln!(
        out,
        "Quoi de neuf depuis le {} : {}",
        fr::date_time(news.since / 1000, ctx.offset),
        fr::count(news.items.len() as u64, "nouveauté")
    )?;
    let mut day = "";
    let mut office = "";
    for item in &news.items {
        if item.day != day {
            writeln!(out, "\n{}", fr::date(&item.day))?;
            day = &item.day;
            office = "";
        }
        if item.office != office {
            writeln!(out, "  {}", item.office)?;
            office = &item.office;
        }
        writeln!(out, "    {}", line(item))?;
    }
    if read_at.is_some() {
        writeln!(out, "\nMarqué comme lu.")?;
    }
    Ok(())
}

/// One item: what kind, about what, and the details a reader wants (fields, counts).
fn line(item: &NewsItem) -> String {
    let what = match item.kind {
        NewsKind::Edited => {
            let fields: Vec<String> = item
                .details
                .iter()
                .map(|f| atelier_core::fields::change_short_label(f))
                .collect();
            format!(" : {}", fields.join(", "))
        }
        NewsKind::Comment => format!(" : {}", fr::count(item.details.len() as u64, "commentaire")),
        NewsKind::Task => format!(" : {}", fr::count(item.details.len() as u64, "tâche")),
        NewsKind::Review => format!(" : {}", item.details.join(", ")),
        NewsKind::Created | NewsKind::Group => String::new(),
    };
    format!("{} « {} »{what}", item.kind.label(), item.title)
}

/// Midnight of `day` (`AAAA-MM-JJ`) at the local offset, in ms.
fn day_start(day: &str, offset: time::UtcOffset) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format).map_err(|_| {
        UsageError(format!(
            "--since : « {day} » n'est pas une date (attendu : 2026-12-01, ou last)"
        ))
    })?;
    Ok(date.midnight().assume_offset(offset).unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_local_midnight_or_refused_in_french() {
        let utc = time::UtcOffset::UTC;
        assert_eq!(day_start("1970-01-02", utc).unwrap(), 86_400_000);
        let plus_one = time::UtcOffset::from_hms(1, 0, 0).unwrap();
        assert_eq!(day_start("1970-01-02", plus_one).unwrap(), 82_800_000);
        let refused = day_start("hier", utc).unwrap_err();
        assert!(format!("{refused:#}").contains("n'est pas une date"));
    }
}
