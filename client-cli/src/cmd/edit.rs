//! `atelier edit`: sets fields and appends to texts, as one change.

use std::io::Write;

use atelier_core::document::Edit;
use atelier_core::fields::{self, FieldType};
use serde_json::{json, Value};

use super::{write_json, ResourceArg};
use crate::{backend, Ctx, UsageError};

/// Modifie une ressource. Toutes les modifications d'une commande forment un seul changement de
/// l'historique ; rien n'est écrit si l'une d'elles est invalide.
///
/// Exemples : --set title="Maison en pisé" --set themes=habitat,patrimoine
/// --set location.commune=Thiers --set year=2021 --set client=null
/// --append-text description "Visite le 12 mai."
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub resource: ResourceArg,
    /// Donne une valeur à un champ (nom du format d'échange, « location.commune » pour un
    /// sous-champ). La valeur est lue en JSON si c'en est (nombre, liste, objet, true, false,
    /// null), sinon comme un texte ; les listes acceptent aussi « a,b,c ». Répétable.
    #[arg(long = "set", value_name = "CHAMP=VALEUR")]
    pub set: Vec<String>,
    /// Ajoute un texte à la fin de « summary » ou « description ». Répétable.
    #[arg(long = "append-text", num_args = 2, value_names = ["CHAMP", "TEXTE"])]
    pub append_text: Vec<String>,
    /// Rétablit une ressource supprimée.
    #[arg(long)]
    pub restore: bool,
    /// Affiche le résultat en JSON : {"id": …, "fields": […]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let edits = edits(&args)?;
    let backend = backend::open(&ctx.dir)?;
    let fields = backend.edit(&args.resource.id, &edits)?;
    if args.json {
        return write_json(out, &json!({ "id": args.resource.id, "fields": fields }));
    }
    // The core names whole-resource changes in parentheses: "(restauration)".
    let fields: Vec<&str> = fields.iter().map(|f| f.trim_matches(['(', ')'])).collect();
    writeln!(out, "Modifié : {}", fields.join(", "))?;
    Ok(())
}

/// The edits the flags ask for: sets first, then appends, then the restoration.
pub fn edits(args: &Args) -> Result<Vec<Edit>, UsageError> {
    let mut edits = Vec::new();
    for s in &args.set {
        let (field, raw) = s.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "« --set {s} » : la forme attendue est CHAMP=VALEUR"
            ))
        })?;
        let field = field.trim();
        if field.is_empty() {
            return Err(UsageError(format!("« --set {s} » : nom de champ manquant")));
        }
        edits.push(Edit::Set {
            field: field.into(),
            value: parse_value(field, raw),
        });
    }
    for pair in args.append_text.chunks(2) {
        if let [field, text] = pair {
            edits.push(Edit::Append {
                field: field.clone(),
                text: text.clone(),
            });
        }
    }
    if args.restore {
        edits.push(Edit::SetDeleted(false));
    }
    if edits.is_empty() {
        return Err(UsageError(
            "rien à modifier : indiquez --set, --append-text ou --restore".into(),
        ));
    }
    Ok(edits)
}

/// Reads the value of `--set field=value` (see the help of `--set`) by the field's type:
/// what follows `=` in a text field is kept as typed (`--set location.insee=63113` stays the
/// string "63113"), except `null`, which clears the field; a list field reads a value that is
/// not a JSON array as a comma-separated list; any other value is JSON when it parses.
pub fn parse_value(field: &str, raw: &str) -> Value {
    let json: Option<Value> = serde_json::from_str(raw).ok();
    let ty = fields::field(field)
        // A key of one row of a list (`links.url`) is not set on its own: no type applies.
        .filter(|f| !f.parent().is_some_and(|p| p.ty == FieldType::Rows))
        .map(|f| f.ty);
    if ty.is_some_and(FieldType::is_textual) {
        return match json {
            Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => Value::String(s),
            _ => Value::String(raw.to_string()),
        };
    }
    if ty.is_some_and(FieldType::is_list) {
        return match json {
            Some(v @ (Value::Array(_) | Value::Null)) => v,
            _ => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect(),
            ),
        };
    }
    match json {
        Some(v) if !v.is_string() => v,
        _ => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_when_they_parse_and_text_fields_stay_text() {
        assert_eq!(parse_value("year", "2021"), json!(2021));
        assert_eq!(parse_value("location.lat", "45.5"), json!(45.5));
        assert_eq!(parse_value("themes", r#"["habitat"]"#), json!(["habitat"]));
        assert_eq!(
            parse_value("themes", "habitat, patrimoine"),
            json!(["habitat", "patrimoine"])
        );
        assert_eq!(parse_value("location.insee", "63113"), json!("63113"));
        assert_eq!(parse_value("location.departement", "63"), json!("63"));
        assert_eq!(parse_value("title", "1984"), json!("1984"));
        assert_eq!(parse_value("title", "Maison « Œ »"), json!("Maison « Œ »"));
        assert_eq!(parse_value("client", "null"), Value::Null);
        assert_eq!(
            parse_value("location", r#"{"commune":"Riom"}"#),
            json!({"commune":"Riom"})
        );
        assert_eq!(parse_value("cost_eur_ht", "beaucoup"), json!("beaucoup"));
    }

    #[test]
    fn the_field_table_decides_which_values_stay_text() {
        // The fields `edit` kept as typed before the table drove it.
        for field in [
            "ref",
            "kind",
            "title",
            "summary",
            "description",
            "office",
            "status",
            "client",
            "intervention",
            "building_type",
            "tool_type",
            "action_type",
            "location.commune",
            "location.insee",
            "location.departement",
            "dates.start",
            "dates.end",
        ] {
            assert_eq!(parse_value(field, "12"), json!("12"), "{field}");
        }
        for field in [
            "axes",
            "themes",
            "sectors",
            "materials",
            "audiences",
            "keywords",
        ] {
            assert_eq!(parse_value(field, "a,b"), json!(["a", "b"]), "{field}");
        }
        for field in [
            "year",
            "location.lat",
            "links.url",
            "designers.name",
            "photo_credit",
        ] {
            assert_eq!(parse_value(field, "12"), json!(12), "{field}");
        }
    }
}
