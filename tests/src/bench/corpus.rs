//! Loading a JSON Lines corpus (FORMAT.md) straight into search documents.
//!
//! A stopgap for the benchmarks: the replica's import will build `SearchDoc`s from resource
//! documents; until then this maps each line directly, leniently (a missing optional field
//! is empty).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context};
use atelier_core::search::SearchDoc;
use atelier_core::vocab;
use serde_json::Value;

/// Reads every non-blank line of `path` as a search document.
pub fn load(path: &Path, with_labels: bool) -> anyhow::Result<Vec<SearchDoc>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut docs = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        let doc = search_doc(&value, i + 1, with_labels)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        docs.push(doc);
    }
    Ok(docs)
}

/// Maps one resource (FORMAT.md) to a search document. The id is `line-N` (there is no
/// replica to assign document ids); `labels` holds the French labels of the vocabulary codes
/// when `with_labels` is set.
pub fn search_doc(v: &Value, line: usize, with_labels: bool) -> anyhow::Result<SearchDoc> {
    let s = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let list = |key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (Some(kind), Some(title), Some(office)) = (s("kind"), s("title"), s("office")) else {
        bail!("kind, title and office are required");
    };
    let location = v.get("location");
    let loc_s = |key: &str| {
        location
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let loc_f = |key: &str| location.and_then(|l| l.get(key)).and_then(Value::as_f64);
    let departement = loc_s("departement");
    let region = departement
        .as_deref()
        .and_then(vocab::departement)
        .map(|d| d.region.clone());
    let designers = v
        .get("designers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|d| d.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut doc = SearchDoc {
        id: format!("line-{line}"),
        ref_: s("ref"),
        kind,
        office,
        title,
        summary: s("summary").unwrap_or_default(),
        description: s("description").unwrap_or_default(),
        materials: list("materials"),
        keywords: list("keywords"),
        commune: loc_s("commune"),
        departement,
        region,
        axes: list("axes"),
        themes: list("themes"),
        sectors: list("sectors"),
        audiences: list("audiences"),
        status: s("status").unwrap_or_else(|| "brouillon".to_string()),
        year: v.get("year").and_then(Value::as_i64),
        lat: loc_f("lat"),
        lon: loc_f("lon"),
        client: s("client"),
        designers,
        labels: Vec::new(),
    };
    if with_labels {
        doc.labels = labels(v, &doc);
    }
    Ok(doc)
}

/// French labels of the vocabulary codes of a resource.
fn labels(v: &Value, doc: &SearchDoc) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |vocabulary: &str, code: &str| {
        if let Some(l) = vocab::label(vocabulary, code) {
            out.push(l.to_string());
        }
    };
    push(vocab::KINDS, &doc.kind);
    for (vocabulary, codes) in [
        (vocab::AXES, &doc.axes),
        (vocab::THEMES, &doc.themes),
        (vocab::SECTORS, &doc.sectors),
        (vocab::AUDIENCES, &doc.audiences),
    ] {
        for code in codes {
            push(vocabulary, code);
        }
    }
    for (vocabulary, key) in [
        (vocab::INTERVENTIONS, "intervention"),
        (vocab::BUILDING_TYPES, "building_type"),
        (vocab::TOOL_TYPES, "tool_type"),
        (vocab::ACTION_TYPES, "action_type"),
    ] {
        if let Some(code) = v.get(key).and_then(Value::as_str) {
            push(vocabulary, code);
        }
    }
    out
}
