//! Readable French output: a resource with its vocabulary labels, the listing table, a history.

use std::io::{self, Write};

use atelier_core::replica::ListingEntry;
use atelier_core::vocab::{self, *};
use atelier_core::Resource;

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
    line("Type", label(KINDS, &r.kind))?;
    line("Office", office(&r.office))?;
    line("Statut", label(STATUSES, &r.status))?;
    line("Axes", labels(AXES, &r.axes))?;
    line("Thèmes", labels(THEMES, &r.themes))?;
    line("Filières", labels(SECTORS, &r.sectors))?;
    line("Matériaux", r.materials.join(", "))?;
    line("Publics", labels(AUDIENCES, &r.audiences))?;
    line("Mots-clés", r.keywords.join(", "))?;
    line("Lieu", location(&r))?;
    line("Année", r.year.map(|y| y.to_string()).unwrap_or_default())?;
    line("Maître d'ouvrage", r.client.clone().unwrap_or_default())?;
    let designers: Vec<String> = r
        .designers
        .iter()
        .map(|d| format!("{} ({})", d.name, label(DESIGNER_ROLES, &d.role)))
        .collect();
    line("Maîtrise d'œuvre", designers.join(" ; "))?;
    line("Intervention", opt_label(INTERVENTIONS, &r.intervention))?;
    line("Programme", opt_label(BUILDING_TYPES, &r.building_type))?;
    line(
        "Coût",
        r.cost_eur_ht
            .map(|c| format!("{} € HT", thousands(c)))
            .unwrap_or_default(),
    )?;
    line(
        "Surface",
        r.floor_area_m2
            .map(|s| format!("{} m²", thousands(s)))
            .unwrap_or_default(),
    )?;
    line("Type d'outil", opt_label(TOOL_TYPES, &r.tool_type))?;
    line("Type d'action", opt_label(ACTION_TYPES, &r.action_type))?;
    line("Dates", dates(&r))?;
    let links: Vec<String> = r
        .links
        .iter()
        .map(|l| match &l.label {
            Some(label) => format!("{label} — {}", l.url),
            None => l.url.clone(),
        })
        .collect();
    line(
        "Liens",
        links.join(&format!("\n  {}", " ".repeat(LABEL_WIDTH))),
    )?;
    line("Créée le", local_time(view.created_at / 1000, offset))?;
    for (heading, text) in [("Résumé", &r.summary), ("Description", &r.description)] {
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
    sorted.sort_by_cached_key(|e| fold(&e.title));
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
    writeln!(out, "\n{n} ressource{}", if n > 1 { "s" } else { "" })
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
        if n > 1 { "s" } else { "" }
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
        let fields: Vec<String> = c.fields.iter().map(|f| field_label(f)).collect();
        writeln!(
            out,
            "  {}  {}  {}",
            local_time(c.time, offset),
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

/// A field name as office staff say it (`title` → `titre`, `location.commune` → `lieu (commune)`).
pub fn field_label(field: &str) -> String {
    let (top, sub) = match field.split_once('.') {
        Some((t, s)) => (t, Some(s)),
        None => (field, None),
    };
    let name = match top {
        "(création)" => "création",
        "(suppression)" => "suppression",
        "(restauration)" => "restauration",
        "ref" => "référence",
        "kind" => "type",
        "title" => "titre",
        "summary" => "résumé",
        "status" => "statut",
        "themes" => "thèmes",
        "sectors" => "filières",
        "materials" => "matériaux",
        "audiences" => "publics",
        "keywords" => "mots-clés",
        "location" => "lieu",
        "year" => "année",
        "client" => "maître d'ouvrage",
        "designers" => "maîtrise d'œuvre",
        "building_type" => "programme",
        "cost_eur_ht" => "coût",
        "floor_area_m2" => "surface",
        "tool_type" => "type d'outil",
        "action_type" => "type d'action",
        "links" => "liens",
        other => other,
    };
    match sub {
        Some(sub) => format!("{name} ({sub})"),
        None => name.to_string(),
    }
}

/// Seconds since the epoch as local `JJ/MM/AAAA HH:MM`.
pub fn local_time(secs: i64, offset: time::UtcOffset) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The French label of a code, or the code itself if the vocabulary does not know it.
pub fn label(vocabulary: &str, code: &str) -> String {
    vocab::label(vocabulary, code).unwrap_or(code).to_string()
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

fn office(office: &str) -> String {
    let code = office.strip_prefix("caue-").unwrap_or_default();
    match vocab::departement(code) {
        Some(d) => format!("{office} ({})", d.name),
        None => office.to_string(),
    }
}

fn location(r: &Resource) -> String {
    let Some(l) = &r.location else {
        return String::new();
    };
    let mut parts = Vec::new();
    let dep = l
        .departement
        .as_deref()
        .map(|code| match vocab::departement(code) {
            Some(d) => format!("{} ({code})", d.name),
            None => code.to_string(),
        });
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

fn dates(r: &Resource) -> String {
    let Some(d) = &r.dates else {
        return String::new();
    };
    let day = |s: &str| {
        let p: Vec<&str> = s.split('-').collect();
        match p.as_slice() {
            [y, m, d] => format!("{d}/{m}/{y}"),
            _ => s.to_string(),
        }
    };
    match (&d.start, &d.end) {
        (Some(s), Some(e)) if s == e => format!("le {}", day(s)),
        (Some(s), Some(e)) => format!("du {} au {}", day(s), day(e)),
        (Some(s), None) => format!("à partir du {}", day(s)),
        (None, Some(e)) => format!("jusqu'au {}", day(e)),
        (None, None) => String::new(),
    }
}

/// `2600000` → `2 600 000`; decimals kept with a comma, as written in French.
fn thousands(x: f64) -> String {
    let whole = x.trunc() as i64;
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    if whole < 0 {
        grouped.insert(0, '-');
    }
    let frac = x.fract().abs();
    if frac > 0.0 {
        let f = format!("{frac:.2}");
        grouped.push(',');
        grouped.push_str(f.trim_start_matches("0.").trim_end_matches('0'));
    }
    grouped
}

/// A sort key that ignores case, accents and ligatures (`Œuvre` sorts as `oeuvre`).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'â' | 'ä' | 'á' => out.push('a'),
            'ç' => out.push('c'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'î' | 'ï' | 'í' => out.push('i'),
            'ô' | 'ö' | 'ó' => out.push('o'),
            'ù' | 'û' | 'ü' | 'ú' => out.push('u'),
            'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            '«' | '»' | '"' | '\'' | '’' => {}
            c => out.push(c),
        }
    }
    out.trim().to_string()
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
    fn numbers_and_labels_read_as_french() {
        assert_eq!(thousands(2_600_000.0), "2 600 000");
        assert_eq!(thousands(450.5), "450,5");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(short_label(KINDS, "realisation"), "Réalisation");
        assert_eq!(label(STATUSES, "a_relire"), "À relire");
        assert_eq!(field_label("location.commune"), "lieu (commune)");
        assert_eq!(field_label("(création)"), "création");
        assert_eq!(local_time(0, time::UtcOffset::UTC), "01/01/1970 00:00");
    }

    #[test]
    fn long_titles_are_cut_on_characters() {
        assert_eq!(cut("Œuvre", 10), "Œuvre");
        assert_eq!(cut("Écoles élémentaires", 5), "Écol…");
    }

    #[test]
    fn french_titles_sort_by_their_letters() {
        let mut titles = ["Zinc", "Œuvre", "École", "« Balade »", "ossature"];
        titles.sort_by_key(|t| fold(t));
        assert_eq!(titles, ["« Balade »", "École", "Œuvre", "ossature", "Zinc"]);
    }
}
