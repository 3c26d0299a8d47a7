//! A publication numérique's document: title, subtitle, cover photo, introduction, an ordered
//! list of sections (a resource, a free text, a map of the resources a filter matches, a group
//! theme), and the snapshots of its exports (the heads of every document each was made from).
//!
//! Order that merges: sections live in a map keyed by a fresh id, each with a *position key*,
//! a string that sorts between its neighbours' (fractional indexing over base-36 digits); the
//! order is the sort by (position, id). An Automerge list was the other choice, but a list has
//! no move: moving is a delete and an insert, so two offices moving the same section at once
//! would each insert it again and the section would appear twice. With positions, a move is
//! one register written: concurrent moves of one section keep one of them (no duplicate), moves
//! of different sections both apply, two sections added at one place by two offices both stay
//! (their keys carry a suffix drawn from their ids, and the id breaks any tie), and the
//! introduction, an Automerge `Text`, merges with all of it character by character. Positions
//! that leave no room (equal keys, or keys grown past [`MAX_POSITION_CHARS`]) are spread again
//! over every section in the change that needs it.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};

use super::{
    commit, ensure_map, i64_at, keys_of, line, map_at, put_text, str_at, WorkError, MAX_NAME_CHARS,
    MAX_TEXT_CHARS, PUBLICATION_TYPE,
};
use crate::card::ListingEntry;
use crate::ids::DocumentId;
use crate::media::BlobHash;

/// Document schema of publications written by this version.
pub const SCHEMA: i64 = 1;
/// Most sections in one publication: a publication is read from start to end (a long
/// brochure has a few dozen parts); the limit keeps the editor's page and the export bounded.
pub const MAX_SECTIONS: usize = 200;
/// Longest position key before the sections are spread again: each move between two close
/// neighbours adds about a digit, and keys are kept short so documents stay small.
pub const MAX_POSITION_CHARS: usize = 24;
/// Longest map filter (a list page's query string), in characters.
pub const MAX_FILTER_CHARS: usize = 2_000;
/// Exports remembered in the document: the last one is what « Régénérer » compares with; a
/// few more say who exported lately. Older ones are removed when a new one is recorded.
pub const MAX_EXPORTS_KEPT: usize = 5;

/// The digits of position keys, in sort order.
const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A publication as read from its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub title: String,
    pub subtitle: String,
    pub introduction: String,
    pub cover: Option<Cover>,
    /// In reading order.
    pub sections: Vec<Section>,
    /// The resource of kind `publication` that lists it among the corpus.
    pub resource: Option<DocumentId>,
    /// Oldest first.
    pub exports: Vec<Export>,
    pub created_at: i64,
    pub created_by: String,
}

/// The cover: a photo of the médiathèque, named by the resource that holds it and the hash of
/// its original (its alt text and renditions are in that resource's media entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    pub resource: DocumentId,
    pub hash: BlobHash,
}

/// One section, with its id and position key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub id: String,
    pub position: String,
    #[serde(flatten)]
    pub content: SectionContent,
}

/// What a section shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SectionContent {
    /// A resource with its summary, key facts and photos.
    Resource { resource: DocumentId },
    /// A free text block (its title may be empty).
    Text { title: String, text: String },
    /// The atlas of the resources a filter matches: the list page's query string
    /// (`q=pisé&kind=realisation&departement=63`).
    Map { title: String, filter: String },
    /// The resources of a group's theme.
    Theme { group: DocumentId, theme: String },
}

impl SectionContent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resource { .. } => "resource",
            Self::Text { .. } => "text",
            Self::Map { .. } => "map",
            Self::Theme { .. } => "theme",
        }
    }

    /// The kind in French, for the editor and the CLI.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Resource { .. } => "Fiche",
            Self::Text { .. } => "Texte",
            Self::Map { .. } => "Carte",
            Self::Theme { .. } => "Thème de groupe",
        }
    }
}

/// One export: when, by whom, and the heads of every document it was made from (the
/// publication's own, as they were before this record was written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub id: String,
    pub at: i64,
    pub by: String,
    /// Document → its heads (hex change hashes, sorted).
    pub heads: BTreeMap<DocumentId, Vec<String>>,
}

/// What a new publication starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewPublication {
    pub title: String,
    #[serde(default)]
    pub subtitle: String,
    #[serde(default)]
    pub introduction: String,
}

/// One edit of a publication, as the CLI, the web app and the local API send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicationEdit {
    /// `title`, `subtitle` or `introduction` (the introduction changed by a diff, so
    /// concurrent edits merge).
    Set {
        field: String,
        value: String,
    },
    /// Splices the introduction: at `pos` (characters), delete `delete`, insert `insert`.
    SpliceIntroduction {
        pos: usize,
        delete: usize,
        insert: String,
    },
    /// Sets or removes the cover.
    Cover(Option<Cover>),
    /// Adds a section under `id` (from `work::new_key`) at `index` (the end if `None`).
    AddSection {
        id: String,
        section: SectionContent,
        #[serde(default)]
        index: Option<usize>,
    },
    /// Replaces a section's content (its kind stays; texts change by a diff).
    SetSection {
        id: String,
        section: SectionContent,
    },
    /// Moves a section to `index` in the order (0 is the first).
    MoveSection {
        id: String,
        index: usize,
    },
    RemoveSection(String),
}

/// Writes a new publication document; `resource` is its companion resource.
pub fn create(
    doc: &mut AutoCommit,
    new: &NewPublication,
    resource: &DocumentId,
    office: &str,
    now_ms: i64,
) -> Result<(), WorkError> {
    let title = line(&new.title, "title", "Titre", true, MAX_NAME_CHARS)?;
    let subtitle = line(
        &new.subtitle,
        "subtitle",
        "Sous-titre",
        false,
        MAX_NAME_CHARS,
    )?;
    let introduction = check_text(&new.introduction, "introduction", "Introduction")?;
    doc.put(ROOT, "@type", PUBLICATION_TYPE)?;
    doc.put(ROOT, "schema", SCHEMA)?;
    doc.put(ROOT, "title", title)?;
    doc.put(ROOT, "subtitle", subtitle)?;
    put_text(doc, &ROOT, "introduction", &introduction)?;
    doc.put(ROOT, "resource", resource.url())?;
    doc.put(ROOT, "created_at", now_ms)?;
    doc.put(ROOT, "created_by", office)?;
    for key in ["sections", "exports"] {
        doc.put_object(ROOT, key, ObjType::Map)?;
    }
    commit(doc, office, vec!["publication:created".into()], now_ms);
    Ok(())
}

/// Applies edits by `office`, all or nothing; returns the note's fields.
pub fn apply(
    doc: &mut AutoCommit,
    edits: &[PublicationEdit],
    office: &str,
    now_ms: i64,
) -> Result<Vec<String>, WorkError> {
    read(doc)?;
    let mut fields = Vec::new();
    for edit in edits {
        if let Err(e) = apply_one(doc, edit, now_ms, &mut fields) {
            doc.rollback();
            return Err(e);
        }
    }
    if !fields.is_empty() {
        fields.dedup();
        commit(doc, office, fields.clone(), now_ms);
    }
    Ok(fields)
}

fn apply_one(
    doc: &mut AutoCommit,
    edit: &PublicationEdit,
    now_ms: i64,
    fields: &mut Vec<String>,
) -> Result<(), WorkError> {
    match edit {
        PublicationEdit::Set { field, value } => {
            match field.as_str() {
                "title" => doc.put(
                    ROOT,
                    "title",
                    line(value, "title", "Titre", true, MAX_NAME_CHARS)?,
                )?,
                "subtitle" => doc.put(
                    ROOT,
                    "subtitle",
                    line(value, "subtitle", "Sous-titre", false, MAX_NAME_CHARS)?,
                )?,
                "introduction" => put_text(
                    doc,
                    &ROOT,
                    "introduction",
                    &check_text(value, "introduction", "Introduction")?,
                )?,
                other => {
                    return Err(WorkError::invalid(
                        "field",
                        "Champ",
                        format!("« {other} » n'est pas un champ de la publication"),
                    ))
                }
            }
            fields.push(format!("publication:{field}"));
        }
        PublicationEdit::SpliceIntroduction {
            pos,
            delete,
            insert,
        } => {
            let current = str_at(doc, &ROOT, "introduction").unwrap_or_default();
            let len = current.chars().count();
            if pos.saturating_add(*delete) > len {
                return Err(WorkError::invalid(
                    "introduction",
                    "Introduction",
                    format!("modification hors du texte ({len} caractères)"),
                ));
            }
            check_text(
                &format!("{current}{insert}"),
                "introduction",
                "Introduction",
            )?;
            let text = match doc.get(ROOT, "introduction")? {
                Some((automerge::Value::Object(ObjType::Text), text)) => text,
                _ => {
                    let text = doc.put_object(ROOT, "introduction", ObjType::Text)?;
                    doc.splice_text(&text, 0, 0, &current)?;
                    text
                }
            };
            doc.splice_text(&text, *pos, *delete as isize, insert)?;
            fields.push("publication:introduction".into());
        }
        PublicationEdit::Cover(cover) => {
            match cover {
                Some(c) => {
                    let m = doc.put_object(ROOT, "cover", ObjType::Map)?;
                    doc.put(&m, "resource", c.resource.url())?;
                    doc.put(&m, "hash", c.hash.to_hex())?;
                }
                None => doc.delete(ROOT, "cover")?,
            }
            fields.push("publication:cover".into());
        }
        PublicationEdit::AddSection { id, section, index } => {
            check_key(id)?;
            let order = order(doc);
            if order.iter().any(|(_, s)| s == id) {
                return Err(WorkError::invalid(
                    "section",
                    "Section",
                    format!("la section « {id} » existe déjà"),
                ));
            }
            if order.len() >= MAX_SECTIONS {
                return Err(WorkError::invalid(
                    "section",
                    "Section",
                    format!("une publication a au plus {MAX_SECTIONS} sections"),
                ));
            }
            let sections = ensure_map(doc, &ROOT, "sections")?;
            let s = doc.put_object(&sections, id.as_str(), ObjType::Map)?;
            doc.put(&s, "kind", section.kind())?;
            doc.put(&s, "created_at", now_ms)?;
            write_content(doc, &s, section)?;
            place(doc, id, index.unwrap_or(order.len()))?;
            fields.push(format!("section:{id}:created"));
        }
        PublicationEdit::SetSection { id, section } => {
            let s = section_obj(doc, id)?;
            let kind = str_at(doc, &s, "kind").unwrap_or_default();
            if kind != section.kind() {
                return Err(WorkError::invalid(
                    "section",
                    "Section",
                    "une section garde son genre : retirez-la et ajoutez-en une autre",
                ));
            }
            write_content(doc, &s, section)?;
            fields.push(format!("section:{id}"));
        }
        PublicationEdit::MoveSection { id, index } => {
            section_obj(doc, id)?;
            place(doc, id, *index)?;
            fields.push("publication:order".into());
        }
        PublicationEdit::RemoveSection(id) => {
            section_obj(doc, id)?;
            let sections = ensure_map(doc, &ROOT, "sections")?;
            doc.delete(&sections, id.as_str())?;
            fields.push(format!("section:{id}:removed"));
        }
    }
    Ok(())
}

/// Records an export made from the documents at `export.heads`; keeps the newest
/// [`MAX_EXPORTS_KEPT`].
pub fn record_export(
    doc: &mut AutoCommit,
    export: &Export,
    office: &str,
    now_ms: i64,
) -> Result<(), WorkError> {
    check_key(&export.id)?;
    let before = read(doc)?;
    let exports = ensure_map(doc, &ROOT, "exports")?;
    let e = doc.put_object(&exports, export.id.as_str(), ObjType::Map)?;
    doc.put(&e, "at", export.at)?;
    doc.put(&e, "by", export.by.as_str())?;
    let heads = doc.put_object(&e, "heads", ObjType::Map)?;
    for (id, hs) in &export.heads {
        doc.put(&heads, id.url(), hs.join(","))?;
    }
    let drop = (before.exports.len() + 1).saturating_sub(MAX_EXPORTS_KEPT);
    for old in before.exports.iter().take(drop) {
        doc.delete(&exports, old.id.as_str())?;
    }
    commit(doc, office, vec![format!("export:{}", export.id)], now_ms);
    Ok(())
}

/// Reads a publication document.
pub fn read(doc: &AutoCommit) -> Result<Publication, WorkError> {
    if str_at(doc, &ROOT, "@type").as_deref() != Some(PUBLICATION_TYPE) {
        return Err(WorkError::Malformed("ce n'est pas une publication".into()));
    }
    let schema = i64_at(doc, &ROOT, "schema").unwrap_or(SCHEMA);
    if schema > SCHEMA {
        return Err(WorkError::Malformed(format!(
            "publication au schéma {schema}, plus récent que celui de cette version ({SCHEMA})"
        )));
    }
    let mut sections = Vec::new();
    if let Some(map) = map_at(doc, &ROOT, "sections") {
        for (position, id) in order(doc) {
            let Some(s) = map_at(doc, &map, &id) else {
                continue;
            };
            if let Some(content) = read_content(doc, &s) {
                sections.push(Section {
                    id,
                    position,
                    content,
                });
            }
        }
    }
    let cover = map_at(doc, &ROOT, "cover").and_then(|c| {
        Some(Cover {
            resource: str_at(doc, &c, "resource")?.parse().ok()?,
            hash: str_at(doc, &c, "hash")?.parse().ok()?,
        })
    });
    let mut exports = Vec::new();
    if let Some(map) = map_at(doc, &ROOT, "exports") {
        for id in doc.keys(&map).collect::<Vec<_>>() {
            let Some(e) = map_at(doc, &map, &id) else {
                continue;
            };
            let mut heads = BTreeMap::new();
            if let Some(h) = map_at(doc, &e, "heads") {
                for url in doc.keys(&h).collect::<Vec<_>>() {
                    if let (Ok(doc_id), Some(list)) = (url.parse(), str_at(doc, &h, &url)) {
                        let list: Vec<String> = list
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect();
                        heads.insert(doc_id, list);
                    }
                }
            }
            exports.push(Export {
                at: i64_at(doc, &e, "at").unwrap_or(0),
                by: str_at(doc, &e, "by").unwrap_or_default(),
                heads,
                id,
            });
        }
    }
    exports.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(Publication {
        title: str_at(doc, &ROOT, "title").unwrap_or_default(),
        subtitle: str_at(doc, &ROOT, "subtitle").unwrap_or_default(),
        introduction: str_at(doc, &ROOT, "introduction").unwrap_or_default(),
        cover,
        sections,
        resource: str_at(doc, &ROOT, "resource").and_then(|u| u.parse().ok()),
        exports,
        created_at: i64_at(doc, &ROOT, "created_at").unwrap_or(0),
        created_by: str_at(doc, &ROOT, "created_by").unwrap_or_default(),
    })
}

impl Publication {
    pub fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }

    /// The newest export, if any.
    pub fn last_export(&self) -> Option<&Export> {
        self.exports.last()
    }
}

/// A map section's filter: the list page's query string, read the way the list page reads it
/// (`q` the words, every other known key a facet; values of one facet are alternatives, facets
/// add up). Words match as a plain filter over the title, summary, commune and ref, accents and
/// case ignored, every word required: a publication must not depend on the search index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapFilter {
    pub words: Vec<String>,
    /// Facet → accepted codes.
    pub facets: BTreeMap<String, Vec<String>>,
}

/// The facets a filter may name: the list page's.
pub const FILTER_FACETS: [&str; 7] = [
    "kind",
    "status",
    "office",
    "departement",
    "axe",
    "theme",
    "sector",
];

impl MapFilter {
    /// Parses a query string (a leading `?` or a whole `/?…` address is accepted).
    pub fn parse(query: &str) -> Result<Self, WorkError> {
        let query = query.trim();
        let chars = query.chars().count();
        if chars > MAX_FILTER_CHARS {
            return Err(WorkError::invalid(
                "filter",
                "Filtre",
                format!("{chars} caractères, au plus {MAX_FILTER_CHARS}"),
            ));
        }
        let query = query.split_once('?').map_or(query, |(_, q)| q);
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k), decode(v));
            if v.trim().is_empty() {
                continue;
            }
            match k.as_str() {
                "q" => out
                    .words
                    .extend(crate::fr::fold(&v).split_whitespace().map(str::to_string)),
                "page" => {}
                f if FILTER_FACETS.contains(&f) => {
                    out.facets.entry(k).or_default().push(v.trim().to_string())
                }
                other => {
                    return Err(WorkError::invalid(
                        "filter",
                        "Filtre",
                        format!(
                            "« {other} » n'est pas un filtre de la liste (q, {})",
                            FILTER_FACETS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Whether a live resource passes the filter. Publications themselves are left out unless
    /// the filter asks for their kind: a map of the corpus shows what offices did, not the
    /// documents that show it.
    pub fn matches(&self, e: &ListingEntry) -> bool {
        let asks_publications = self
            .facets
            .get("kind")
            .is_some_and(|k| k.iter().any(|x| x == "publication"));
        if e.deleted || (e.kind == "publication" && !asks_publications) {
            return false;
        }
        let facets_ok = self.facets.iter().all(|(facet, wanted)| {
            let have: Vec<&str> = match facet.as_str() {
                "kind" => vec![e.kind.as_str()],
                "status" => vec![e.status.as_str()],
                "office" => vec![e.office.as_str()],
                "departement" => e.departement.as_deref().into_iter().collect(),
                "axe" => e.axes.iter().map(String::as_str).collect(),
                "theme" => e.themes.iter().map(String::as_str).collect(),
                "sector" => e.sectors.iter().map(String::as_str).collect(),
                _ => vec![],
            };
            wanted.iter().any(|w| have.contains(&w.as_str()))
        });
        if !facets_ok {
            return false;
        }
        if self.words.is_empty() {
            return true;
        }
        let haystack = crate::fr::fold(&format!(
            "{} {} {} {}",
            e.title,
            e.summary,
            e.commune.as_deref().unwrap_or_default(),
            e.ref_.as_deref().unwrap_or_default()
        ));
        self.words.iter().all(|w| haystack.contains(w.as_str()))
    }
}

/// Percent-decoding of a query string component (`+` is a space); bad escapes stay as typed.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// Sections and their order.

/// (position, id) of every section, in order.
fn order(doc: &AutoCommit) -> Vec<(String, String)> {
    let Some(map) = map_at(doc, &ROOT, "sections") else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = keys_of(doc, &ROOT, "sections")
        .into_iter()
        .filter_map(|id| {
            let s = map_at(doc, &map, &id)?;
            Some((str_at(doc, &s, "position").unwrap_or_default(), id))
        })
        .collect();
    out.sort();
    out
}

fn section_obj(doc: &AutoCommit, id: &str) -> Result<automerge::ObjId, WorkError> {
    map_at(doc, &ROOT, "sections")
        .and_then(|m| map_at(doc, &m, id))
        .ok_or_else(|| WorkError::NotFound(format!("section « {id} »")))
}

/// Gives section `id` a position key that puts it at `index` among the others; spreads every
/// key again when its neighbours leave no room.
fn place(doc: &mut AutoCommit, id: &str, index: usize) -> Result<(), WorkError> {
    let mut others: Vec<(String, String)> =
        order(doc).into_iter().filter(|(_, s)| s != id).collect();
    let index = index.min(others.len());
    let lo = index
        .checked_sub(1)
        .map(|i| others[i].0.as_str())
        .unwrap_or("");
    let hi = others.get(index).map(|(p, _)| p.as_str());
    let sections = ensure_map(doc, &ROOT, "sections")?;
    match between(lo, hi).map(|k| with_suffix(k, id)) {
        Some(key) if key.len() <= MAX_POSITION_CHARS => {
            let s = section_obj(doc, id)?;
            doc.put(&s, "position", key)?;
        }
        _ => {
            others.insert(index, (String::new(), id.to_string()));
            let n = others.len();
            for (i, (_, sid)) in others.iter().enumerate() {
                let key = spread(i, n);
                if let Some(s) = map_at(doc, &sections, sid) {
                    doc.put(&s, "position", key)?;
                }
            }
        }
    }
    Ok(())
}

fn digit(c: u8) -> Option<usize> {
    DIGITS.iter().position(|d| *d == c)
}

/// A key that sorts strictly after `lo` and before `hi` (`None`: no upper bound), without a
/// trailing `0` (so there is always room below it); `None` when there is no such key
/// (`lo >= hi`, or a key written by someone else with other characters).
pub fn between(lo: &str, hi: Option<&str>) -> Option<String> {
    let lo: Vec<usize> = lo.bytes().map(digit).collect::<Option<_>>()?;
    let mut hi: Option<Vec<usize>> = match hi {
        Some(h) => Some(h.bytes().map(digit).collect::<Option<_>>()?),
        None => None,
    };
    if let Some(h) = &hi {
        if lo >= *h || h.iter().all(|d| *d == 0) {
            return None;
        }
    }
    let mut out = Vec::new();
    for i in 0.. {
        let l = lo.get(i).copied().unwrap_or(0);
        let h = match &hi {
            Some(h) => h.get(i).copied().unwrap_or(0),
            None => DIGITS.len(),
        };
        if h > l + 1 {
            out.push((l + h) / 2);
            break;
        }
        out.push(l);
        if h == l + 1 {
            hi = None;
        }
        if i > MAX_POSITION_CHARS * 2 {
            return None;
        }
    }
    Some(out.into_iter().map(|d| DIGITS[d] as char).collect())
}

/// Two more digits drawn from the section's id: two offices placing sections in the same gap
/// at once get different keys. A key between `lo` and `hi` is no prefix of `hi`, so the
/// longer key stays between them.
fn with_suffix(mut key: String, id: &str) -> String {
    let h = blake3::hash(id.as_bytes());
    let b = h.as_bytes();
    key.push(DIGITS[b[0] as usize % 36] as char);
    key.push(DIGITS[1 + b[1] as usize % 35] as char);
    key
}

/// The `i`th of `n` evenly spread keys (`n` ≤ [`MAX_SECTIONS`] + 1, under 36² = 1,296).
fn spread(i: usize, n: usize) -> String {
    let v = (i + 1) * 1296 / (n + 1);
    let mut key = format!("{}{}", DIGITS[v / 36] as char, DIGITS[v % 36] as char);
    if key.ends_with('0') {
        key.push('i');
    }
    key
}

fn write_content(
    doc: &mut AutoCommit,
    s: &automerge::ObjId,
    section: &SectionContent,
) -> Result<(), WorkError> {
    match section {
        SectionContent::Resource { resource } => doc.put(s, "resource", resource.url())?,
        SectionContent::Text { title, text } => {
            let title = line(
                title,
                "section_title",
                "Titre de la section",
                false,
                MAX_NAME_CHARS,
            )?;
            let text = check_text(text, "section_text", "Texte")?;
            doc.put(s, "title", title)?;
            put_text(doc, s, "text", &text)?;
        }
        SectionContent::Map { title, filter } => {
            let title = line(
                title,
                "section_title",
                "Titre de la section",
                false,
                MAX_NAME_CHARS,
            )?;
            MapFilter::parse(filter)?;
            doc.put(s, "title", title)?;
            doc.put(s, "filter", filter.trim())?;
        }
        SectionContent::Theme { group, theme } => {
            let theme = line(theme, "theme", "Thème", true, MAX_NAME_CHARS)?;
            doc.put(s, "group", group.url())?;
            doc.put(s, "theme", theme)?;
        }
    }
    Ok(())
}

fn read_content(doc: &AutoCommit, s: &automerge::ObjId) -> Option<SectionContent> {
    let id = |key: &str| str_at(doc, s, key).and_then(|u| u.parse::<DocumentId>().ok());
    let text = |key: &str| str_at(doc, s, key).unwrap_or_default();
    Some(match str_at(doc, s, "kind")?.as_str() {
        "resource" => SectionContent::Resource {
            resource: id("resource")?,
        },
        "text" => SectionContent::Text {
            title: text("title"),
            text: text("text"),
        },
        "map" => SectionContent::Map {
            title: text("title"),
            filter: text("filter"),
        },
        "theme" => SectionContent::Theme {
            group: id("group")?,
            theme: text("theme"),
        },
        _ => return None,
    })
}

fn check_key(id: &str) -> Result<(), WorkError> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(WorkError::invalid(
            "section",
            "Section",
            format!("« {id} » n'est pas un identifiant de section"),
        ));
    }
    Ok(())
}

fn check_text(value: &str, field: &'static str, label: &'static str) -> Result<String, WorkError> {
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(WorkError::invalid(
            field,
            label,
            format!("{chars} caractères, au plus {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn publication() -> AutoCommit {
        let mut doc = AutoCommit::new();
        let new = NewPublication {
            title: "Bâtir en terre".into(),
            subtitle: "Le Massif central".into(),
            introduction: String::new(),
        };
        create(&mut doc, &new, &DocumentId::derived("r"), "caue-63", NOW).unwrap();
        doc
    }

    fn text(title: &str) -> SectionContent {
        SectionContent::Text {
            title: title.into(),
            text: format!("Texte de {title}."),
        }
    }

    fn add(doc: &mut AutoCommit, id: &str, index: Option<usize>, office: &str) {
        let edit = PublicationEdit::AddSection {
            id: id.into(),
            section: text(id),
            index,
        };
        apply(doc, &[edit], office, NOW).unwrap();
    }

    fn ids(doc: &AutoCommit) -> Vec<String> {
        read(doc)
            .unwrap()
            .sections
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    #[test]
    fn keys_between_sort_between() {
        for (lo, hi) in [
            ("", None),
            ("a", Some("b")),
            ("a", Some("a1")),
            ("z", None),
            ("zz", None),
            ("", Some("01")),
            ("a5", Some("a6")),
        ] {
            let k = between(lo, hi).unwrap();
            assert!(k.as_str() > lo, "{k} > {lo}");
            if let Some(hi) = hi {
                assert!(k.as_str() < hi, "{k} < {hi}");
            }
            assert!(!k.ends_with('0'));
        }
        assert_eq!(between("b", Some("a")), None);
        assert_eq!(between("a", Some("a")), None);
    }

    #[test]
    fn sections_move_and_many_moves_in_one_gap_stay_ordered() {
        let mut doc = publication();
        for id in ["a", "b", "c"] {
            add(&mut doc, id, None, "caue-63");
        }
        assert_eq!(ids(&doc), ["a", "b", "c"]);
        // Moving c between a and b again and again fills one gap until keys are spread again.
        for i in 0..60 {
            let id = if i % 2 == 0 { "c" } else { "b" };
            let edit = PublicationEdit::MoveSection {
                id: id.into(),
                index: 1,
            };
            apply(&mut doc, &[edit], "caue-63", NOW).unwrap();
            assert_eq!(ids(&doc)[1], id);
            assert!(read(&doc)
                .unwrap()
                .sections
                .iter()
                .all(|s| s.position.len() <= MAX_POSITION_CHARS));
        }
        let edit = PublicationEdit::MoveSection {
            id: "a".into(),
            index: 9,
        };
        apply(&mut doc, &[edit], "caue-63", NOW).unwrap();
        assert_eq!(ids(&doc).last().map(String::as_str), Some("a"));
    }

    #[test]
    fn reordering_while_another_office_writes_the_introduction_merges() {
        let mut a = publication();
        for id in ["s1", "s2", "s3"] {
            add(&mut a, id, None, "caue-63");
        }
        let mut b = a.fork().with_actor(automerge::ActorId::random());
        // Office A moves s3 first and adds s4 at the end; office B writes the introduction and
        // adds s5 at the end too, and moves s1 last.
        let mv = |id: &str, index| PublicationEdit::MoveSection {
            id: id.into(),
            index,
        };
        apply(&mut a, &[mv("s3", 0)], "caue-63", NOW).unwrap();
        add(&mut a, "s4", None, "caue-63");
        let intro = PublicationEdit::Set {
            field: "introduction".into(),
            value: "Une terre, des savoir-faire.".into(),
        };
        apply(&mut b, &[intro], "caue-15", NOW).unwrap();
        add(&mut b, "s5", None, "caue-15");
        apply(&mut b, &[mv("s1", 9)], "caue-15", NOW).unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let (pa, pb) = (read(&a).unwrap(), read(&b).unwrap());
        assert_eq!(pa, pb, "both offices see the same publication");
        assert_eq!(pa.introduction, "Une terre, des savoir-faire.");
        let order: Vec<&str> = pa.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order.len(), 5, "no section lost or doubled: {order:?}");
        assert_eq!(order[0], "s3", "A's move kept");
        assert_eq!(order[1], "s2");
        // s1, s4, s5 all went to the end concurrently: all there, in one agreed order.
        let mut tail = order[2..].to_vec();
        tail.sort();
        assert_eq!(tail, ["s1", "s4", "s5"]);
    }

    #[test]
    fn concurrent_moves_of_one_section_keep_it_once() {
        let mut a = publication();
        for id in ["s1", "s2", "s3", "s4"] {
            add(&mut a, id, None, "caue-63");
        }
        let mut b = a.fork().with_actor(automerge::ActorId::random());
        let mv = |index| PublicationEdit::MoveSection {
            id: "s1".into(),
            index,
        };
        apply(&mut a, &[mv(2)], "caue-63", NOW).unwrap();
        apply(&mut b, &[mv(3)], "caue-15", NOW).unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(ids(&a).iter().filter(|s| *s == "s1").count(), 1);
        assert_eq!(ids(&a).len(), 4);
    }

    #[test]
    fn bad_edits_are_refused_with_nothing_saved() {
        let mut doc = publication();
        add(&mut doc, "s1", None, "caue-63");
        let heads = doc.get_heads();
        let bad = [
            PublicationEdit::Set {
                field: "title".into(),
                value: " ".into(),
            },
            PublicationEdit::MoveSection {
                id: "nope".into(),
                index: 0,
            },
            PublicationEdit::AddSection {
                id: "s2".into(),
                section: SectionContent::Map {
                    title: String::new(),
                    filter: "kind=realisation&couleur=bleu".into(),
                },
                index: None,
            },
            PublicationEdit::SetSection {
                id: "s1".into(),
                section: SectionContent::Map {
                    title: String::new(),
                    filter: String::new(),
                },
            },
        ];
        for edit in bad {
            let ok = PublicationEdit::Set {
                field: "subtitle".into(),
                value: "Changé".into(),
            };
            assert!(
                apply(&mut doc, &[ok, edit.clone()], "caue-63", NOW).is_err(),
                "{edit:?}"
            );
        }
        assert_eq!(doc.get_heads(), heads, "nothing was committed");
    }

    #[test]
    fn map_filters_read_like_the_list_page() {
        let f = MapFilter::parse(
            "/?q=Pis%C3%A9+%C3%A9cole&kind=realisation&departement=63&departement=26",
        )
        .unwrap();
        assert_eq!(f.words, ["pise", "ecole"]);
        assert_eq!(f.facets["departement"], ["63", "26"]);
        let entry = ListingEntry {
            id: DocumentId::derived("x"),
            ref_: None,
            kind: "realisation".into(),
            office: "caue-26".into(),
            title: "École en pisé".into(),
            summary: String::new(),
            status: "publie".into(),
            commune: None,
            departement: Some("26".into()),
            axes: vec![],
            themes: vec![],
            sectors: vec![],
            year: None,
            created_at: 0,
            updated_at: 0,
            deleted: false,
            cover: None,
            media: vec![],
            changed_by: vec![],
        };
        assert!(f.matches(&entry));
        assert!(!MapFilter::parse("kind=outil").unwrap().matches(&entry));
        let publication = ListingEntry {
            kind: "publication".into(),
            ..entry.clone()
        };
        assert!(!MapFilter::parse("").unwrap().matches(&publication));
        assert!(MapFilter::parse("kind=publication")
            .unwrap()
            .matches(&publication));
        assert!(MapFilter::parse("couleur=bleu").is_err());
    }

    /// One office's step in the property test: add a section at a place, move one, remove
    /// one, or write the introduction.
    #[derive(Debug, Clone)]
    enum Op {
        Add(usize),
        Move(usize, usize),
        Remove(usize),
        Intro(String),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..8).prop_map(Op::Add),
            (0usize..8, 0usize..8).prop_map(|(a, b)| Op::Move(a, b)),
            (0usize..8).prop_map(Op::Remove),
            "[a-zé ]{0,12}".prop_map(Op::Intro),
        ]
    }

    fn play(doc: &mut AutoCommit, ops: &[Op], office: &str, counter: &mut usize) {
        for op in ops {
            let current = ids(doc);
            let pick = |i: usize| current.get(i % current.len().max(1)).cloned();
            let edit = match op {
                Op::Add(at) => {
                    *counter += 1;
                    PublicationEdit::AddSection {
                        id: format!("{}{counter}", &office[5..]),
                        section: text("x"),
                        index: Some(*at),
                    }
                }
                Op::Move(which, to) => match pick(*which) {
                    Some(id) => PublicationEdit::MoveSection { id, index: *to },
                    None => continue,
                },
                Op::Remove(which) => match pick(*which) {
                    Some(id) => PublicationEdit::RemoveSection(id),
                    None => continue,
                },
                Op::Intro(t) => PublicationEdit::Set {
                    field: "introduction".into(),
                    value: t.clone(),
                },
            };
            apply(doc, &[edit], office, NOW).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever two offices do to one publication offline, once merged both read the same
        /// sections, each once: every section added and not removed is there.
        #[test]
        fn any_concurrent_edits_converge_without_duplicates(
            shared in proptest::collection::vec(op(), 0..6),
            a_ops in proptest::collection::vec(op(), 0..12),
            b_ops in proptest::collection::vec(op(), 0..12),
        ) {
            let mut a = publication();
            let mut n = 0;
            play(&mut a, &shared, "caue-63", &mut n);
            let mut b = a.fork().with_actor(automerge::ActorId::random());
            let (mut na, mut nb) = (100, 200);
            play(&mut a, &a_ops, "caue-63", &mut na);
            play(&mut b, &b_ops, "caue-15", &mut nb);
            let (before_a, before_b) = (ids(&a), ids(&b));
            a.merge(&mut b).unwrap();
            b.merge(&mut a).unwrap();
            let (pa, pb) = (read(&a).unwrap(), read(&b).unwrap());
            proptest::prop_assert_eq!(&pa, &pb);
            let merged = ids(&a);
            let mut unique = merged.clone();
            unique.sort();
            unique.dedup();
            proptest::prop_assert_eq!(unique.len(), merged.len(), "a section twice: {:?}", merged);
            // A section one office added after the fork and still holds is kept.
            for id in before_a.iter().chain(&before_b) {
                let added_after_fork = id.starts_with("63") && id[2..].parse::<usize>().unwrap_or(0) > 100
                    || id.starts_with("15");
                if added_after_fork {
                    proptest::prop_assert!(merged.contains(id), "{} lost: {:?}", id, merged);
                }
            }
        }
    }

    #[test]
    fn exports_keep_the_newest_few() {
        let mut doc = publication();
        for i in 0..(MAX_EXPORTS_KEPT as i64 + 2) {
            let export = Export {
                id: format!("e{i}"),
                at: NOW + i,
                by: "caue-63".into(),
                heads: BTreeMap::from([(DocumentId::derived("r"), vec!["ab".into()])]),
            };
            record_export(&mut doc, &export, "caue-63", NOW + i).unwrap();
        }
        let p = read(&doc).unwrap();
        assert_eq!(p.exports.len(), MAX_EXPORTS_KEPT);
        assert_eq!(
            p.last_export().unwrap().id,
            format!("e{}", MAX_EXPORTS_KEPT + 1)
        );
        assert_eq!(p.last_export().unwrap().heads.len(), 1);
    }
}
