//! A media folder beside a JSON Lines file: the blobs its resources refer to, one file per
//! blob named by its hash plus an extension (`<hash>.jpg`) so that people can browse it.
//! `atelier export --media DIR` writes one; `atelier import` reads it, checking every file
//! against its name before anything is imported.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atelier_core::media::rendition::sniff;
use atelier_core::media::{BlobHash, BlobRef};
use atelier_core::Resource;

use crate::backend::Backend;
use crate::UsageError;

/// The folder `atelier import` looks for when none is given: `corpus.media` beside
/// `corpus.jsonl`.
pub fn default_for(jsonl: &Path) -> PathBuf {
    jsonl.with_extension("media")
}

/// The file name of a blob in a media folder.
fn file_name(hash: &BlobHash, bytes: &[u8]) -> String {
    let ext = match sniff(bytes) {
        Some("image/jpeg") => ".jpg",
        Some("image/png") => ".png",
        Some("image/webp") => ".webp",
        Some("application/pdf") => ".pdf",
        _ => "",
    };
    format!("{hash}{ext}")
}

/// What an export of blobs did.
#[derive(Debug, Default)]
pub struct Exported {
    pub written: usize,
    pub bytes: u64,
    /// Referenced blobs this device does not have (not received yet, per its media policy).
    pub missing: usize,
}

/// Writes every blob of `blobs` this device has into `dir` (created if needed); a file already
/// there with the right name is kept (blobs never change).
pub fn export(backend: &dyn Backend, dir: &Path, blobs: &[BlobRef]) -> anyhow::Result<Exported> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("création du dossier « {} »", dir.display()))?;
    let existing = scan(dir)?;
    let mut done = Exported::default();
    let mut seen = std::collections::HashSet::new();
    for b in blobs {
        if !seen.insert(b.hash) || existing.contains_key(&b.hash) {
            continue;
        }
        match backend.media_blob(&b.hash)? {
            Some(bytes) => {
                let path = dir.join(file_name(&b.hash, &bytes));
                atelier_core::fs::write_atomic(&path, &bytes, Some(0o644))
                    .with_context(|| format!("écriture de « {} »", path.display()))?;
                done.written += 1;
                done.bytes += bytes.len() as u64;
            }
            None => done.missing += 1,
        }
    }
    Ok(done)
}

/// The blobs of a media folder, by hash (files whose name does not start with a hash are
/// ignored: a README, a `.DS_Store`).
pub fn scan(dir: &Path) -> anyhow::Result<HashMap<BlobHash, PathBuf>> {
    let mut out = HashMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("lecture du dossier « {} »", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("lecture du dossier « {} »", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(hash) = name.get(..64).and_then(|h| h.parse::<BlobHash>().ok()) {
            out.insert(hash, e.path());
        }
    }
    Ok(out)
}

/// The blobs the resources refer to, each once.
pub fn referenced(resources: &[Resource]) -> Vec<BlobRef> {
    let mut seen = std::collections::HashSet::new();
    resources
        .iter()
        .flat_map(|r| r.media.iter().flat_map(|m| m.blobs()))
        .filter(|b| seen.insert(b.hash))
        .collect()
}

/// The referenced blobs found in `dir`, each checked against its name (streamed: memory stays
/// small), and how many are absent. One file that does not match refuses the whole import.
pub fn check(dir: &Path, wanted: &[BlobRef]) -> anyhow::Result<(Vec<(BlobHash, PathBuf)>, usize)> {
    let files = scan(dir)?;
    let mut found = Vec::new();
    let mut missing = 0;
    for b in wanted {
        let Some(path) = files.get(&b.hash) else {
            missing += 1;
            continue;
        };
        let mut hasher = blake3::Hasher::new();
        let mut f =
            File::open(path).with_context(|| format!("lecture de « {} »", path.display()))?;
        std::io::copy(&mut f, &mut hasher)
            .with_context(|| format!("lecture de « {} »", path.display()))?;
        if BlobHash::from(hasher.finalize()) != b.hash {
            return Err(UsageError(format!(
                "« {} » n'a pas le contenu que son nom annonce (fichier abîmé ou modifié) : rien n'a été importé",
                path.display()
            ))
            .into());
        }
        found.push((b.hash, path.clone()));
    }
    Ok((found, missing))
}

/// Stores the checked blobs on this device (queued for the relay).
pub fn import(backend: &dyn Backend, found: &[(BlobHash, PathBuf)]) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for (hash, path) in found {
        let data =
            std::fs::read(path).with_context(|| format!("lecture de « {} »", path.display()))?;
        bytes += data.len() as u64;
        backend
            .import_blob(hash, data)
            .with_context(|| format!("import de « {} »", path.display()))?;
    }
    Ok(bytes)
}
