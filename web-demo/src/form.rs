//! The resource form: which fields each kind shows, how submitted pairs become a FORMAT.md
//! object (then validated by `Resource::from_json`, whose French messages land next to their
//! field), and how the form is drawn with vocabulary pickers in French.
//!
//! Input names are FORMAT.md names (`title`, `location.commune`, `designers.0.name`), so a
//! `FieldError.field` points at its input. Lists of codes are checkboxes; free lists (materials,
//! keywords) are comma-separated text.

use std::borrow::Cow;

use atelier_core::fields::{self, FieldType};
use atelier_core::resource::FieldError;
use atelier_core::vocab;
use maud::{html, Markup};
use serde_json::{Map, Value};

use crate::glossary;

/// The submitted pairs of a form, in order (a name may repeat: checkboxes).
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// The top-level fields the form shows for a kind (the table's `kinds`), `kind` itself aside:
/// the form sends it apart.
pub fn fields_for(kind: &str) -> Vec<&'static str> {
    fields::top_level()
        .filter(|f| f.name != "kind" && f.ty != FieldType::Media && f.applies_to(kind))
        .map(|f| f.name)
        .collect()
}

/// The FORMAT.md values of `fields` as submitted. A number that does not parse is kept as the
/// text typed, so validation reports it (« un nombre est attendu ») and the form shows it again.
pub fn to_json(form: &FormData, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for &field in fields {
        let ty = fields::field(field).map_or(FieldType::Text, |f| f.ty);
        out.insert(field.to_string(), value(form, field, ty));
    }
    out
}

/// The submitted value of one field or sub-field, read by its type.
fn value(form: &FormData, field: &str, ty: FieldType) -> Value {
    let text = || form.text(field);
    match ty {
        // Long texts are kept as typed, untrimmed; only the browser's CRLF line ends change.
        FieldType::LongText => form
            .get(field)
            .map(|s| Value::from(s.replace("\r\n", "\n")))
            .unwrap_or(Value::Null),
        FieldType::Codes(_) => Value::from(
            form.all(field)
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ),
        FieldType::Words => Value::from(split_list(form.get(field).unwrap_or_default())),
        FieldType::Year => text().map(|s| integer(&s)).unwrap_or(Value::Null),
        FieldType::Amount { .. } | FieldType::Coordinate => {
            text().map(|s| decimal(&s)).unwrap_or(Value::Null)
        }
        FieldType::Group => group(form, field),
        // The key a row cannot go without: a blank row (one is always offered) is left out.
        FieldType::Rows => match field {
            "designers" => rows(form, field, "name"),
            _ => rows(form, field, "url"),
        },
        _ => text().map(Value::from).unwrap_or(Value::Null),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Spaces (also non-breaking) are thousands separators, a comma is a decimal point.
fn normalise_number(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{202f}' && *c != '€')
        .map(|c| if c == ',' { '.' } else { c })
        .collect()
}

fn integer(s: &str) -> Value {
    normalise_number(s)
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(s))
}

fn decimal(s: &str) -> Value {
    let n = normalise_number(s);
    match n.parse::<f64>() {
        Ok(x) if x.is_finite() => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(s)),
        _ => Value::from(s),
    }
}

/// An object of the sub-fields the table lists for `group`, each read by its type; `null` when
/// none was filled.
fn group(form: &FormData, group: &str) -> Value {
    let mut object = Map::new();
    for f in sub_fields(group) {
        let v = value(form, f.name, f.ty);
        if !v.is_null() {
            object.insert(key(f.name).into(), v);
        }
    }
    if object.is_empty() {
        Value::Null
    } else {
        Value::Object(object)
    }
}

/// The sub-fields of a group or of a row, in table order.
fn sub_fields(group: &str) -> impl Iterator<Item = &'static fields::Field> + '_ {
    fields::FIELDS
        .iter()
        .filter(move |f| f.parent().is_some_and(|p| p.name == group))
}

/// The last part of a dotted name (`commune` for `location.commune`).
fn key(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Rows `group.N.key`; a row whose `required` key is empty is left out (the blank rows).
fn rows(form: &FormData, group: &str, required: &str) -> Value {
    let prefix = format!("{group}.");
    let mut indexes: Vec<usize> = form
        .0
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(&prefix)?.split('.').next()?.parse().ok())
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    let mut out = Vec::new();
    for i in indexes {
        if form.text(&format!("{group}.{i}.{required}")).is_none() {
            continue;
        }
        let mut row = Map::new();
        for f in sub_fields(group) {
            let k = key(f.name);
            if let Some(v) = form.text(&format!("{group}.{i}.{k}")) {
                row.insert(k.into(), Value::from(v));
            }
        }
        out.push(Value::Object(row));
    }
    Value::Array(out)
}

/// How the form is drawn.
pub struct FormView<'a> {
    pub kind: &'a str,
    /// Current values, FORMAT.md shaped (possibly with invalid text kept from a submission).
    pub values: &'a Value,
    pub errors: &'a [FieldError],
    /// Edit form: text fields are edited live (splices) and the kind may be changed.
    pub live: bool,
}

/// Every fieldset of the form for `view.kind`.
pub fn render(view: &FormView<'_>) -> Markup {
    let shown = fields_for(view.kind);
    let has = |f: &str| shown.contains(&f);
    let year_label = fields::year_label(view.kind);
    html! {
        @if !view.errors.is_empty() {
            (error_summary(view.errors))
        }
        fieldset {
            legend { "L'essentiel" }
            @if view.live {
                (select(view, "kind", false))
            } @else {
                input type="hidden" name="kind" value=(view.kind);
            }
            (text(view, "title", "text", &[("required", "required"), ("maxlength", "300")]))
            (textarea(view, "summary", 3, Some(atelier_core::resource::MAX_SUMMARY_CHARS)))
            (textarea(view, "description", 12, None))
            (select(view, "status", false))
            (office_select(view))
        }
        fieldset {
            legend { "Lieu" }
            p.help { (help_of("location")) }
            div.row {
                (text(view, "location.commune", "text", &[]))
                (departement_select(view))
            }
            div.row {
                (text(view, "location.insee", "text", &[("maxlength", "5"), ("inputmode", "numeric")]))
                (text(view, "location.lat", "text", &[("inputmode", "decimal")]))
                (text(view, "location.lon", "text", &[("inputmode", "decimal")]))
            }
        }
        @if view.kind != "acteur" {
            fieldset {
                legend { "Détails : " (glossary::kind_name(view.kind).to_lowercase()) }
                @if has("action_type") { (select(view, "action_type", true)) }
                @if has("tool_type") { (select(view, "tool_type", true)) }
                @if has("dates") {
                    div.row {
                        (text(view, "dates.start", "date", &[]))
                        (text(view, "dates.end", "date", &[]))
                    }
                }
                @if has("year") { (text_labelled(view, "year", year_label, "text", &[("inputmode", "numeric"), ("maxlength", "4")])) }
                @if has("intervention") { (select(view, "intervention", true)) }
                @if has("building_type") { (select(view, "building_type", true)) }
                @if has("client") { (text(view, "client", "text", &[])) }
                @if has("designers") { (designers(view)) }
                @if has("cost_eur_ht") {
                    div.row {
                        (text(view, "cost_eur_ht", "text", &[("inputmode", "decimal")]))
                        (text(view, "floor_area_m2", "text", &[("inputmode", "decimal")]))
                    }
                }
            }
        }
        fieldset {
            legend { "Classement" }
            p.help { "Ces cases servent à retrouver la fiche avec les filtres de la liste." }
            (checkboxes(view, "axes"))
            (checkboxes(view, "themes"))
            (checkboxes(view, "sectors"))
            (checkboxes(view, "audiences"))
            (text(view, "materials", "text", &[]))
            (text(view, "keywords", "text", &[]))
        }
        fieldset {
            legend { "Liens" }
            (links(view))
        }
        details.advanced open[view.errors.iter().any(|e| e.field == "ref")] {
            summary { (label_of("ref")) " (facultatif)" }
            (text(view, "ref", "text", &[]))
        }
    }
}

/// The `id` of a field's input.
pub fn input_id(name: &str) -> String {
    format!("champ-{}", name.replace('.', "-"))
}

/// The errors shown next to the input `name`: its own, and for groups, those of its sub-fields.
fn errors_for<'a>(errors: &'a [FieldError], name: &str, group: bool) -> Vec<&'a FieldError> {
    errors
        .iter()
        .filter(|e| e.field == name || (group && e.field.starts_with(&format!("{name}."))))
        .collect()
}

fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        div.error-summary role="alert" tabindex="-1" #erreurs {
            h2 {
                @if errors.len() == 1 { "La fiche n'a pas été enregistrée : un champ est à corriger." }
                @else { "La fiche n'a pas été enregistrée : " (errors.len()) " champs sont à corriger." }
            }
            ul {
                @for e in errors {
                    li { a href={ "#" (input_id(group_of(&e.field))) } { (glossary::field_label(&e.field)) } " : " (capitalise(&e.message)) }
                }
            }
        }
    }
}

/// The input an error message belongs to (`designers.name` → the designers group).
fn group_of(field: &str) -> &str {
    match field.split('.').next().unwrap_or(field) {
        g @ ("designers" | "links") => g,
        _ => field,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The current value of a (possibly dotted) field, as the text an input shows.
fn value_text(values: &Value, name: &str) -> String {
    let mut v = values;
    for part in name.split('.') {
        v = match v.get(part) {
            Some(x) => x,
            None => return String::new(),
        };
    }
    display(v)
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => format!("{}", x as i64),
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn codes_of(values: &Value, name: &str) -> Vec<String> {
    values
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Label, help line and error messages around an input.
fn field_frame(view: &FormView<'_>, name: &str, label: &str, group: bool, input: Markup) -> Markup {
    let help = help_of(name);
    let errors = errors_for(view.errors, name, group);
    let id = input_id(name);
    html! {
        div.field.invalid[!errors.is_empty()] {
            label for=(id) { (label) }
            @if !help.is_empty() { p.help id={ (id) "-aide" } { (help) } }
            @for e in &errors { p.error id={ (id) "-erreur" } { (capitalise(&e.message)) } }
            (input)
        }
    }
}

fn described_by(view: &FormView<'_>, name: &str) -> String {
    let id = input_id(name);
    let mut parts = Vec::new();
    if !help_of(name).is_empty() {
        parts.push(format!("{id}-aide"));
    }
    if !errors_for(view.errors, name, false).is_empty() {
        parts.push(format!("{id}-erreur"));
    }
    parts.join(" ")
}

/// The label of an input: the table's label, with the unit of a bare amount.
fn label_of(name: &str) -> Cow<'static, str> {
    fields::field(name).map_or(Cow::Borrowed(""), |f| f.label_with_unit())
}

/// The help line under an input; empty when the label says it all.
fn help_of(name: &str) -> &'static str {
    fields::field(name).map_or("", |f| f.help)
}

/// The label of an input inside one row of a list (« Rôle », « Intitulé »).
fn row_label_of(name: &str) -> &'static str {
    fields::field(name).map_or("", |f| f.short)
}

/// The vocabulary the table gives a code field.
fn vocabulary_of(name: &str) -> &'static str {
    fields::field(name)
        .and_then(|f| f.ty.vocabulary())
        .unwrap_or_default()
}

fn text(view: &FormView<'_>, name: &str, kind: &str, attrs: &[(&str, &str)]) -> Markup {
    text_labelled(view, name, &label_of(name), kind, attrs)
}

fn text_labelled(
    view: &FormView<'_>,
    name: &str,
    label: &str,
    kind: &str,
    attrs: &[(&str, &str)],
) -> Markup {
    let get = |k: &str| attrs.iter().find(|(a, _)| *a == k).map(|(_, v)| *v);
    let invalid = !errors_for(view.errors, name, false).is_empty();
    let input = html! {
        input id=(input_id(name)) name=(name) type=(kind) value=(value_text(view.values, name))
            required[get("required").is_some()] maxlength=[get("maxlength")] inputmode=[get("inputmode")]
            aria-invalid=[invalid.then_some("true")] aria-describedby=(described_by(view, name));
    };
    field_frame(view, name, label, false, input)
}

fn textarea(view: &FormView<'_>, name: &str, rows: u32, max: Option<usize>) -> Markup {
    let invalid = !errors_for(view.errors, name, false).is_empty();
    let input = html! {
        textarea id=(input_id(name)) name=(name) rows=(rows) maxlength=[max]
            data-live=[view.live.then_some(name)]
            aria-invalid=[invalid.then_some("true")] aria-describedby=(described_by(view, name)) {
            (value_text(view.values, name))
        }
        @if view.live {
            p.live-status data-for=(name) aria-live="polite" { "Enregistré automatiquement pendant la frappe." }
        }
    };
    field_frame(view, name, &label_of(name), false, input)
}

fn select(view: &FormView<'_>, name: &str, optional: bool) -> Markup {
    let vocabulary = vocabulary_of(name);
    let current = value_text(view.values, name);
    let input = html! {
        select id=(input_id(name)) name=(name) aria-describedby=(described_by(view, name)) {
            @if optional { option value="" selected[current.is_empty()] { "— non précisé —" } }
            @for (code, label) in vocab::codes(vocabulary) {
                option value=(code) selected[*code == current] { (label) }
            }
            @if !current.is_empty() && vocab::label(vocabulary, &current).is_none() {
                option value=(current) selected { (current) " (valeur inconnue)" }
            }
        }
    };
    field_frame(view, name, &label_of(name), false, input)
}

fn office_select(view: &FormView<'_>) -> Markup {
    let current = value_text(view.values, "office");
    let input = html! {
        select id=(input_id("office")) name="office" aria-describedby=(described_by(view, "office")) {
            @for d in vocab::departements() {
                @let id = format!("caue-{}", d.code);
                option value=(id) selected[id == current] { (glossary::office_name(&id)) " (" (d.code) ")" }
            }
        }
    };
    field_frame(view, "office", &label_of("office"), false, input)
}

fn departement_select(view: &FormView<'_>) -> Markup {
    let name = "location.departement";
    let current = value_text(view.values, name);
    let input = html! {
        select id=(input_id(name)) name=(name) aria-describedby=(described_by(view, name)) {
            option value="" selected[current.is_empty()] { "— non précisé —" }
            @for d in vocab::departements() {
                option value=(d.code) selected[d.code == current] { (d.code) " – " (d.name) }
            }
        }
    };
    field_frame(view, name, &label_of(name), false, input)
}

fn checkboxes(view: &FormView<'_>, name: &str) -> Markup {
    let vocabulary = vocabulary_of(name);
    let checked = codes_of(view.values, name);
    let errors = errors_for(view.errors, name, false);
    let help = help_of(name);
    html! {
        fieldset.choices.invalid[!errors.is_empty()] id=(input_id(name)) {
            legend { (label_of(name)) }
            @if !help.is_empty() { p.help { (help) } }
            @for e in &errors { p.error { (capitalise(&e.message)) } }
            div.options {
                @for (code, label) in vocab::codes(vocabulary) {
                    @let id = format!("{}-{}", input_id(name), code);
                    label.option for=(id) {
                        input type="checkbox" id=(id) name=(name) value=(code) checked[checked.contains(code)];
                        " " (label)
                    }
                }
            }
        }
    }
}

fn designers(view: &FormView<'_>) -> Markup {
    let current = view
        .values
        .get("designers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows = current.len() + if current.is_empty() { 2 } else { 1 };
    let errors = errors_for(view.errors, "designers", true);
    html! {
        fieldset.rows.invalid[!errors.is_empty()] id=(input_id("designers")) {
            legend { (label_of("designers")) }
            p.help { (help_of("designers")) " Laissez le nom vide pour ne pas ajouter de ligne." }
            @for e in &errors { p.error { (capitalise(&e.message)) } }
            @for i in 0..rows {
                @let row = current.get(i).cloned().unwrap_or(Value::Null);
                @let role = row.get("role").and_then(Value::as_str).unwrap_or("architecte");
                div.row.repeat {
                    div.field {
                        label for={ "champ-designers-" (i) "-role" } { (row_label_of("designers.role")) }
                        select id={ "champ-designers-" (i) "-role" } name={ "designers." (i) ".role" } {
                            @for (code, label) in vocab::codes(vocabulary_of("designers.role")) {
                                option value=(code) selected[code == role] { (label) }
                            }
                        }
                    }
                    div.field.grow {
                        label for={ "champ-designers-" (i) "-name" } { (row_label_of("designers.name")) }
                        input type="text" id={ "champ-designers-" (i) "-name" } name={ "designers." (i) ".name" }
                            value=(row.get("name").and_then(Value::as_str).unwrap_or_default());
                    }
                }
            }
        }
    }
}

fn links(view: &FormView<'_>) -> Markup {
    let current = view
        .values
        .get("links")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows = current.len() + 1;
    let errors = errors_for(view.errors, "links", true);
    html! {
        div.rows.invalid[!errors.is_empty()] id=(input_id("links")) {
            p.help { (help_of("links")) }
            @for e in &errors { p.error { (capitalise(&e.message)) } }
            @for i in 0..rows {
                @let row = current.get(i).cloned().unwrap_or(Value::Null);
                div.row.repeat {
                    div.field.grow {
                        label for={ "champ-links-" (i) "-url" } { (row_label_of("links.url")) }
                        input type="url" id={ "champ-links-" (i) "-url" } name={ "links." (i) ".url" }
                            value=(row.get("url").and_then(Value::as_str).unwrap_or_default());
                    }
                    div.field.grow {
                        label for={ "champ-links-" (i) "-label" } { (row_label_of("links.label")) }
                        input type="text" id={ "champ-links-" (i) "-label" } name={ "links." (i) ".label" }
                            value=(row.get("label").and_then(Value::as_str).unwrap_or_default());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::Resource;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn submitted_pairs_become_a_valid_resource() {
        let f = form(&[
            ("kind", "realisation"),
            ("title", " École en pisé "),
            ("office", "caue-63"),
            ("status", "brouillon"),
            ("themes", "habitat"),
            ("themes", "patrimoine"),
            ("materials", "pisé, lauze ,"),
            ("year", "2016"),
            ("cost_eur_ht", "2 600 000"),
            ("location.commune", "Thiers"),
            ("location.departement", "63"),
            ("location.lat", "45,85"),
            ("designers.0.role", "architecte"),
            ("designers.0.name", "Atelier X"),
            ("designers.1.role", "architecte"),
            ("designers.1.name", ""),
            ("links.0.url", ""),
        ]);
        let mut obj = to_json(&f, &fields_for("realisation"));
        obj.insert("kind".into(), "realisation".into());
        let r = Resource::from_json(&Value::Object(obj)).unwrap();
        assert_eq!(r.title, "École en pisé");
        assert_eq!(r.themes, ["habitat", "patrimoine"]);
        assert_eq!(r.materials, ["pisé", "lauze"]);
        assert_eq!(r.cost_eur_ht, Some(2_600_000.0));
        assert_eq!(r.location.unwrap().lat, Some(45.85));
        assert_eq!(r.designers.len(), 1);
        assert!(r.links.is_empty());
    }

    #[test]
    fn bad_numbers_are_kept_for_validation_and_display() {
        let f = form(&[("year", "deux mille")]);
        let obj = to_json(&f, &["year"]);
        assert_eq!(obj["year"], Value::from("deux mille"));
        let v = Value::Object(obj);
        assert_eq!(value_text(&v, "year"), "deux mille");
    }
}
