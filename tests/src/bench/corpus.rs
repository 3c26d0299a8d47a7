//! Loading a JSON Lines corpus (FORMAT.md) as search documents, mapped exactly as a replica
//! indexes its resources (`atelier_core::search::search_doc`), without building a replica.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use atelier_core::search::SearchDoc;
use atelier_core::{jsonl, DocumentId};

/// Reads and validates every resource of `path`. Ids are derived from the line number (there
/// is no replica to assign them); without `with_labels`, the French labels of vocabulary
/// codes are left out (to measure what they bring).
pub fn load(path: &Path, with_labels: bool) -> anyhow::Result<Vec<SearchDoc>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let resources = jsonl::parse(BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = DocumentId::derived(&format!("line-{}", i + 1));
            let mut doc = atelier_core::search::search_doc(&id, r);
            if !with_labels {
                doc.labels.clear();
            }
            doc
        })
        .collect())
}
