//! Readable French output: a resource with its vocabulary labels, the listing table, a history.

use std::io::{self, Write};

use atelier_core::fields::{self, Field};
use atelier_core::replica::ListingEntry;
use atelier_core::vocab::{self, *};
use atelier_core::{fr, OfficeId, Resource};

use crate::backend::{Change, ResourceView};

/// Width of the label column of `show`.
const LABEL_WIDTH: usize = 18;
/// Titles longer than this are cut in the listing table, so that rows stay on one line.
const TITLE_WIDTH: usize = 70;

/// `show`: the resource with French labels, its texts, then any field FORMAT.md does not define.
pub fn resource(
    out: &mut dyn Write,
    view: &ResourceView,
    offset: time::UtcOffset,
) -> io::Result<()> {
    let r = match Resource::from_json(&view.resource) {
        Ok(r) => r,
        // A resource written by a newer Atelier may not validate here: show it as it is.
        Err(_) => return writeln!(out, "{}", pretty(&view.resource)),
    };
    writeln!(out, "{}", r.title)?;
    match &r.ref_ {
        Some(reference) => writeln!(out, "{}  ·  réf. {reference}", view.id)?,
        None => writeln!(out, "{}", view.id)?,
    }
    if view.deleted {
        writeln!(
            out,
            "SUPPRIMÉE : visible dans l'historique (atelier history {})",
            view.id
        )?;
    }
    writeln!(out)?;
    let mut line = |label: &str, value: String| -> io::Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        writeln!(out, "  {}{value}", pad(label, LABEL_WIDTH))
    };
    line(short("kind"), label(KINDS, &r.kind))?;
    line(short("office"), office(&r.office))?;
    line(short("status"), label(STATUSES, &r.status))?;
    line(short("axes"), labels(AXES, &r.axes))?;
    line(short("themes"), labels(THEMES, &r.themes))?;
    line(short("sectors"), labels(SECTORS, &r.sectors))?;
    line(short("materials"), r.materials.join(", "))?;
    line(short("audiences"), labels(AUDIENCES, &r.audiences))?;
    line(short("keywords"), r.keywords.join(", "))?;
    line(short("location"), location(&r))?;
    line(
        short("year"),
        r.year.map(|y| y.to_string()).unwrap_or_default(),
    )?;
    line(short("client"), r.client.clone().unwrap_or_default())?;
    let designers: Vec<String> = r
        .designers
        .iter()
        .map(|d| format!("{} ({})", d.name, label(DESIGNER_ROLES, &d.role)))
        .collect();
    line(short("designers"), designers.join(" ; "))?;
    line(
        short("intervention"),
        opt_label(INTERVENTIONS, &r.intervention),
    )?;
    line(
        short("building_type"),
        opt_label(BUILDING_TYPES, &r.building_type),
    )?;
    for (name, amount) in [
        ("cost_eur_ht", r.cost_eur_ht),
        ("floor_area_m2", r.floor_area_m2),
    ] {
        let f = table_field(name);
        line(f.short, amount.map(|x| f.amount(x)).unwrap_or_default())?;
    }
    line(short("tool_type"), opt_label(TOOL_TYPES, &r.tool_type))?;
    line(
        short("action_type"),
        opt_label(ACTION_TYPES, &r.action_type),
    )?;
    let dates = r.dates.clone().unwrap_or_default();
    line(
        short("dates"),
        fr::date_range(dates.start.as_deref(), dates.end.as_deref()),
    )?;
    let links: Vec<String> = r
        .links
        .iter()
        .map(|l| match &l.label {
            Some(label) => format!("{label} — {}", l.url),
            None => l.url.clone(),
        })
        .collect();
    line(
        short("links"),
        links.join(&format!("\n  {}", " ".repeat(LABEL_WIDTH))),
    )?;
    line("Créée le", fr::date_time(view.created_at / 1000, offset))?;
    for (heading, text) in [
        (short("summary"), &r.summary),
        (short("description"), &r.description),
    ] {
        if !text.is_empty() {
            writeln!(out, "\n{heading}")?;
            for l in text.lines() {
                writeln!(out, "  {l}")?;
            }
        }
    }
    if !r.extra.is_empty() {
        writeln!(out, "\nAutres champs")?;
        for (k, v) in &r.extra {
            writeln!(out, "  {}{v}", pad(k, LABEL_WIDTH))?;
        }
    }
    Ok(())
}

/// `list`: one row per resource, then the count.
pub fn table(out: &mut dyn Write, entries: &[ListingEntry]) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "Aucune ressource.");
    }
    // The listing comes sorted by lowercase title, which puts « École » after « Zinc »:
    // sort again the way a French reader expects.
    let mut sorted: Vec<&ListingEntry> = entries.iter().collect();
    sorted.sort_by_cached_key(|e| fr::sort_key(&e.title));
    let rows: Vec<[String; 6]> = sorted
        .into_iter()
        .map(|e| {
            let mut title = cut(&e.title, TITLE_WIDTH);
            if e.deleted {
                title.push_str(" (supprimée)");
            }
            [
                e.ref_.clone().unwrap_or_else(|| e.id.to_base58()),
                short_label(KINDS, &e.kind),
                e.office.clone(),
                e.departement.clone().unwrap_or_default(),
                label(STATUSES, &e.status),
                title,
            ]
        })
        .collect();
    let header = ["RÉF. / ID", "TYPE", "OFFICE", "DÉP.", "STATUT", "TITRE"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == row.len() {
                    c.clone()
                } else {
                    pad(c, w)
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    let n = entries.len();
    writeln!(out, "\n{n} ressource{}", fr::plural_s(n as u64))
}

/// `history`: one line per change, oldest first.
pub fn history(
    out: &mut dyn Write,
    view: &ResourceView,
    changes: &[Change],
    offset: time::UtcOffset,
) -> io::Result<()> {
    let title = view
        .resource
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or("?");
    let n = changes.len();
    writeln!(
        out,
        "Historique de « {title} » — {} ({n} modification{})",
        view.id,
        fr::plural_s(n as u64)
    )?;
    let offices: Vec<String> = changes
        .iter()
        .map(|c| c.office.clone().unwrap_or_else(|| "client externe".into()))
        .collect();
    let width = offices.iter().map(|o| o.chars().count()).max().unwrap_or(0);
    // Changes come in causal order, where concurrent changes of two offices may be listed
    // late-first; readers expect the clock's order (stable, so causal order breaks ties).
    let mut rows: Vec<(&Change, &String)> = changes.iter().zip(&offices).collect();
    rows.sort_by_key(|(c, _)| c.time);
    for (c, office) in rows {
        let fields: Vec<String> = c
            .fields
            .iter()
            .map(|f| fields::change_short_label(f))
            .collect();
        writeln!(
            out,
            "  {}  {}  {}",
            fr::date_time(c.time, offset),
            pad(office, width),
            fields.join(", ")
        )?;
    }
    if view.deleted {
        writeln!(
            out,
            "La ressource est supprimée ; « atelier edit {} --restore » la rétablit.",
            view.id
        )?;
    }
    Ok(())
}

/// The short label of a field of the table (the CLI's label column).
fn short(name: &str) -> &'static str {
    table_field(name).short
}

fn table_field(name: &str) -> &'static Field {
    fields::field(name).unwrap_or_else(|| unreachable!("{name} is in the field table"))
}

/// The French label of a code, or the code itself if the vocabulary does not know it.
pub fn label(vocabulary: &str, code: &str) -> String {
    vocab::label_or_code(vocabulary, code).to_string()
}

/// A label without its parenthesised detail (`Réalisation (observatoire)` → `Réalisation`).
pub fn short_label(vocabulary: &str, code: &str) -> String {
    let l = label(vocabulary, code);
    l.split(" (").next().unwrap_or(&l).to_string()
}

fn labels(vocabulary: &str, codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| label(vocabulary, c))
        .collect::<Vec<_>>()
        .join(" ; ")
}

fn opt_label(vocabulary: &str, code: &Option<String>) -> String {
    code.as_deref()
        .map(|c| label(vocabulary, c))
        .unwrap_or_default()
}

/// « caue-63 (Puy-de-Dôme) »: the id staff type, and the département it stands for.
fn office(office: &str) -> String {
    match office
        .parse::<OfficeId>()
        .ok()
        .and_then(|o| vocab::departement(o.departement()))
    {
        Some(d) => format!("{office} ({})", d.name),
        None => office.to_string(),
    }
}

fn location(r: &Resource) -> String {
    let Some(l) = &r.location else {
        return String::new();
    };
    let mut parts = Vec::new();
    let dep = l.departement.as_deref().map(fr::departement_name);
    match (&l.commune, dep) {
        (Some(c), Some(d)) => parts.push(format!("{c}, {d}")),
        (Some(c), None) => parts.push(c.clone()),
        (None, Some(d)) => parts.push(d),
        (None, None) => {}
    }
    if let Some(insee) = &l.insee {
        parts.push(format!("INSEE {insee}"));
    }
    if let (Some(lat), Some(lon)) = (l.lat, l.lon) {
        parts.push(format!("{lat}, {lon}"));
    }
    parts.join(" — ")
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_french() {
        // Numbers, dates and history field names: `atelier_core::fr` and `fields` tests.
        assert_eq!(short_label(KINDS, "realisation"), "Réalisation");
        assert_eq!(label(STATUSES, "a_relire"), "À relire");
        assert_eq!(office("caue-63"), "caue-63 (Puy-de-Dôme)");
        assert_eq!(office("caue-99"), "caue-99");
    }

    #[test]
    fn long_titles_are_cut_on_characters() {
        assert_eq!(cut("Œuvre", 10), "Œuvre");
        assert_eq!(cut("Écoles élémentaires", 5), "Écol…");
    }
}
