//! `doc-cost`: what one resource document costs Automerge to load and to read, with the long
//! text fields as collaborative `Text` (Atelier's mapping) and as plain scalar strings.
//!
//! A fresh pull has to load and read every received document, so this per-document cost, times
//! the corpus size, is the floor under the sync benchmark's fresh pull.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use atelier_core::resource::Resource;
use atelier_core::{document, jsonl, sync_guard};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{hydrate, AutoCommit, ReadDoc};
use serde_json::json;

/// The fields Atelier keeps as Automerge `Text`, so concurrent edits of one text merge.
const TEXT_FIELDS: [&str; 2] = ["summary", "description"];

/// Maps every resource of a corpus to its Automerge document, saves it, then times loading the
/// saved bytes back (`sync_guard::load_document`, as a received document is) and reading the
/// resource out of the loaded document (`document::read`, as the catalog does), on one thread.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Corpus in the JSON Lines interchange format (FORMAT.md).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Print the measures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One mapping's measures.
#[derive(Debug, serde::Serialize)]
struct Cost {
    mapping: &'static str,
    docs: usize,
    saved_bytes: usize,
    #[serde(serialize_with = "seconds")]
    load: Duration,
    #[serde(serialize_with = "seconds")]
    read: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<std::process::ExitCode> {
    let file = std::fs::File::open(&args.corpus)
        .with_context(|| format!("reading {}", args.corpus.display()))?;
    let resources = jsonl::parse(std::io::BufReader::new(file))?;
    let docs = resources
        .iter()
        .map(atelier_doc)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = measure("Text (Atelier)", docs.iter().map(|d| d.clone().save()))?;
    let scalar = measure(
        "scalar strings",
        docs.iter()
            .map(|d| with_scalar_strings(d.clone()).map(|mut d| d.save()))
            .collect::<anyhow::Result<Vec<_>>>()?,
    )?;
    if args.json {
        println!("{}", json!({ "costs": [text, scalar] }));
    } else {
        print_table(&[text, scalar]);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A resource's document as an office creates it.
fn atelier_doc(r: &Resource) -> anyhow::Result<AutoCommit> {
    let mut doc = AutoCommit::new();
    document::create(&mut doc, r, "caue-63", 1_750_000_000_000)?;
    Ok(doc)
}

/// The same content, created in one change, with the text fields as scalar strings.
fn with_scalar_strings(mut doc: AutoCommit) -> anyhow::Result<AutoCommit> {
    let hydrate::Value::Map(mut root) = doc.hydrate(automerge::ROOT, None)? else {
        anyhow::bail!("a resource document's root is a map");
    };
    for field in TEXT_FIELDS {
        if let Some(value) = root.get_mut(field) {
            if let hydrate::Value::Text(t) = value {
                *value = hydrate::Value::scalar(t.to_string());
            }
        }
    }
    let change = doc
        .document()
        .get_changes(&[])
        .into_iter()
        .next()
        .context("no change")?;
    let mut out = AutoCommit::new();
    out.init_root_from_hydrate(&root)?;
    let options = CommitOptions::default().with_message(change.message().unwrap_or_default());
    out.commit_with(options.with_time(change.timestamp()));
    Ok(out)
}

/// Loads and reads every saved document once.
fn measure(
    mapping: &'static str,
    saved: impl IntoIterator<Item = Vec<u8>>,
) -> anyhow::Result<Cost> {
    let saved: Vec<Vec<u8>> = saved.into_iter().collect();
    let t = Instant::now();
    let loaded = saved
        .iter()
        .map(|bytes| sync_guard::load_document(bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let load = t.elapsed();
    let t = Instant::now();
    for doc in &loaded {
        let stored = document::read(doc)?;
        anyhow::ensure!(
            !stored.resource.title.is_empty(),
            "a resource without title"
        );
    }
    let read = t.elapsed();
    Ok(Cost {
        mapping,
        docs: saved.len(),
        saved_bytes: saved.iter().map(Vec::len).sum(),
        load,
        read,
    })
}

fn print_table(costs: &[Cost]) {
    println!("Per resource document, one thread.");
    println!();
    println!("| summary, description | saved bytes/doc | load µs/doc | read µs/doc | load + read, whole corpus |");
    println!("|----------------------|-----------------|-------------|-------------|---------------------------|");
    for c in costs {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / c.docs as f64;
        println!(
            "| {:<20} | {:>15.0} | {:>11.0} | {:>11.0} | {:>17.2} s ({} docs) |",
            c.mapping,
            c.saved_bytes as f64 / c.docs as f64,
            per(c.load),
            per(c.read),
            (c.load + c.read).as_secs_f64(),
            c.docs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ObjType;

    #[test]
    fn the_scalar_variant_holds_the_same_resource_without_text_objects() {
        let r = Resource::from_json(&json!({"kind":"realisation","title":"École en pisé",
            "office":"caue-63","summary":"Terre crue.","description":"Une école en terre crue."}))
        .unwrap();
        let text = atelier_doc(&r).unwrap();
        let scalar = with_scalar_strings(text.clone()).unwrap();
        assert_eq!(document::read(&scalar).unwrap().resource, r);
        for field in TEXT_FIELDS {
            let (value, _) = text.get(automerge::ROOT, field).unwrap().unwrap();
            assert_eq!(
                value.to_objtype(),
                Some(ObjType::Text),
                "{field} in Atelier's mapping"
            );
            let (value, _) = scalar.get(automerge::ROOT, field).unwrap().unwrap();
            assert!(value.is_str(), "{field} in the scalar variant");
        }
        let cost = measure("Text", [text.clone().save()]).unwrap();
        assert_eq!(
            (cost.docs, cost.saved_bytes),
            (1, text.clone().save().len())
        );
    }
}
