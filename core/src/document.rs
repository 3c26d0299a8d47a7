//! One resource = one Automerge document: the mapping (autosurgeon), edits, and change history.
//!
//! `summary` and `description` are Automerge `Text`, changed by splices, so that two offices
//! typing in the same paragraph both keep their words. Other fields are plain values (last
//! writer wins per field). Each change carries a JSON commit message naming the office and the
//! fields it touched, which `history` reads back.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ChangeHash, ReadDoc};
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile, Text};

pub mod first_change;
mod lenient;
pub mod text_memo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::media::{self, BlobHash, Media, Rendition};
use crate::resource::{self, Dates, Designer, Link, Location, Resource, ValidationErrors};
use text_memo::TextMemo;

/// The `@type` marker of a resource document, so that other documents (the catalog) and
/// foreign documents opened by an automerge-repo client are told apart.
pub const RESOURCE_TYPE: &str = "atelier.resource";
/// Schema of the resource documents. A document with a higher schema was written by a newer
/// Atelier: it is shown read-only rather than rewritten by an older one.
pub const SCHEMA: u64 = 1;

/// How text positions are counted in every document we open. autosurgeon's `Text` splices by
/// byte offset (`String::replace_range`), so documents must count UTF-8 code units too; callers
/// that speak in characters (CLI, web) convert at the edge. This is an in-memory choice only:
/// the saved bytes are the same whatever the encoding.
pub const TEXT_ENCODING: automerge::TextEncoding = automerge::TextEncoding::Utf8CodeUnit;

/// A new empty document with our text encoding.
pub fn new_doc() -> AutoCommit {
    AutoCommit::new_with_encoding(TEXT_ENCODING)
}

/// Errors reading or changing a resource document.
#[derive(Debug, Error)]
pub enum DocumentError {
    /// The document is not a resource of this schema.
    #[error("ce document n'est pas une ressource atelier lisible : {0}")]
    NotAResource(String),
    /// The requested change is not valid.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
    /// An edit names a field that cannot be edited that way.
    #[error("champ « {field} » : {message}")]
    BadEdit { field: String, message: String },
    /// Automerge or autosurgeon failed.
    #[error("automerge : {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for DocumentError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Automerge(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for DocumentError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        Self::Automerge(e.to_string())
    }
}

#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct LocationDoc {
    #[autosurgeon(hydrate = "lenient::opt_string")]
    commune: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    insee: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    departement: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct DesignerDoc {
    #[autosurgeon(hydrate = "lenient::string")]
    role: String,
    #[autosurgeon(hydrate = "lenient::string")]
    name: String,
}

#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct DatesDoc {
    #[autosurgeon(hydrate = "lenient::opt_string")]
    start: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    end: Option<String>,
}

#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct LinkDoc {
    #[autosurgeon(hydrate = "lenient::string")]
    url: String,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    label: Option<String>,
}

#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct RenditionDoc {
    #[autosurgeon(hydrate = "lenient::string")]
    hash: String,
    width: u32,
    height: u32,
    bytes: u64,
}

/// One media entry, kept under its original's hash in the document's `media` map: concurrent
/// additions are different keys, so both stay.
#[derive(Debug, Clone, Reconcile, Hydrate, PartialEq)]
struct MediaDoc {
    #[autosurgeon(hydrate = "lenient::string")]
    kind: String,
    #[autosurgeon(hydrate = "lenient::string")]
    name: String,
    #[autosurgeon(hydrate = "lenient::string")]
    mime: String,
    bytes: u64,
    width: Option<u32>,
    height: Option<u32>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    credit: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    caption: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    alt: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    taken_at: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    thumb: Option<RenditionDoc>,
    display: Option<RenditionDoc>,
    added_at: i64,
}

/// The document shape. Field names are FORMAT.md's, so a JavaScript client reads them as is.
#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ResourceDoc {
    #[autosurgeon(rename = "@type", hydrate = "lenient::string")]
    doc_type: String,
    schema: u64,
    #[autosurgeon(rename = "ref", hydrate = "lenient::opt_string")]
    ref_: Option<String>,
    #[autosurgeon(hydrate = "lenient::string")]
    kind: String,
    #[autosurgeon(hydrate = "lenient::string")]
    title: String,
    #[autosurgeon(hydrate = "lenient::text")]
    summary: Text,
    #[autosurgeon(hydrate = "lenient::text")]
    description: Text,
    #[autosurgeon(hydrate = "lenient::string")]
    office: String,
    #[autosurgeon(hydrate = "lenient::string")]
    status: String,
    #[autosurgeon(hydrate = "lenient::strings")]
    axes: Vec<String>,
    #[autosurgeon(hydrate = "lenient::strings")]
    themes: Vec<String>,
    #[autosurgeon(hydrate = "lenient::strings")]
    sectors: Vec<String>,
    #[autosurgeon(hydrate = "lenient::strings")]
    materials: Vec<String>,
    #[autosurgeon(hydrate = "lenient::strings")]
    audiences: Vec<String>,
    #[autosurgeon(hydrate = "lenient::strings")]
    keywords: Vec<String>,
    location: Option<LocationDoc>,
    year: Option<i64>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    client: Option<String>,
    designers: Vec<DesignerDoc>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    intervention: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    building_type: Option<String>,
    cost_eur_ht: Option<f64>,
    floor_area_m2: Option<f64>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    tool_type: Option<String>,
    #[autosurgeon(hydrate = "lenient::opt_string")]
    action_type: Option<String>,
    dates: Option<DatesDoc>,
    links: Vec<LinkDoc>,
    /// Photos, plans and documents by original hash (absent from documents written before
    /// the médiathèque).
    #[autosurgeon(missing = "BTreeMap::new")]
    media: BTreeMap<String, MediaDoc>,
    /// Unknown FORMAT fields, each as its JSON text, so any JSON value survives.
    #[autosurgeon(hydrate = "lenient::string_map")]
    extra: BTreeMap<String, String>,
    /// Milliseconds since the epoch at creation.
    created_at: i64,
    /// Deletion is a tombstone that syncs like any other change.
    deleted: bool,
}

/// A resource as its document holds it, with the document's own metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub resource: Resource,
    pub created_at: i64,
    pub deleted: bool,
}

/// One edit asked by a user. In JSON (the web app's and local API's wire form):
/// `{"set":{"field":"title","value":"…"}}`, `{"splice":{"field":"description","pos":3,"delete":0,"insert":"…"}}`,
/// `{"append":{"field":"description","text":"…"}}`, `{"set_deleted":true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edit {
    /// Set a field (dotted for nested: `location.commune`) to a JSON value; `null` clears it.
    Set { field: String, value: Value },
    /// Splice a text field: at `pos` (in characters), delete `delete` characters, insert `insert`.
    Splice {
        field: String,
        pos: usize,
        delete: usize,
        insert: String,
    },
    /// Append to a text field.
    Append { field: String, text: String },
    /// Mark deleted (a tombstone) or restore.
    SetDeleted(bool),
    /// Add a photo, plan or document whose blobs are already in the replica's media store
    /// (an entry with the same hash is replaced).
    AddMedia(Box<Media>),
    /// Remove a media entry (its blobs stay, and history keeps the entry).
    RemoveMedia(BlobHash),
    /// Change one field of a media entry (`credit`, `caption`, `alt`, `kind`, `taken_at`,
    /// `lat`, `lon`, `name`); `null` clears it.
    SetMedia {
        hash: BlobHash,
        field: String,
        value: Value,
    },
}

/// The media fields `Edit::SetMedia` may change (the others describe the file itself).
pub const EDITABLE_MEDIA_FIELDS: &[&str] = &[
    "credit", "caption", "alt", "kind", "taken_at", "lat", "lon", "name",
];

/// The commit message every Atelier change carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChangeNote {
    pub office: String,
    pub fields: Vec<String>,
}

/// The office a change's commit message records, if it carries an Atelier [`ChangeNote`]
/// (changes made by foreign clients, such as a browser's automerge-repo, record none).
/// Only the `office` key is read, so a message that names an office without the rest of a note
/// still counts as naming it.
pub fn recorded_office(message: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct Recorded {
        office: String,
    }
    let recorded: Recorded = serde_json::from_str(message?).ok()?;
    Some(recorded.office)
}

/// One entry of a resource's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    pub hash: String,
    /// Seconds since the epoch, as recorded by the author's clock.
    pub time: i64,
    /// The office that made the change, or `None` for a change made by a foreign client.
    pub office: Option<String>,
    pub fields: Vec<String>,
}

/// Writes a new resource into an empty document.
pub fn create(
    doc: &mut AutoCommit,
    r: &Resource,
    office: &str,
    now_ms: i64,
) -> Result<(), DocumentError> {
    let d = to_doc(r, now_ms, false, None);
    reconcile(doc, &d)?;
    commit(doc, office, vec![CREATED_NOTE.into()], now_ms);
    Ok(())
}

/// The saved document [`create`] then `save` would make, by `actor`, written directly rather
/// than built in Automerge (`first_change`: an import's new documents), with the resource as
/// that document reads back.
pub fn create_encoded(
    r: &Resource,
    office: &str,
    now_ms: i64,
    actor: &automerge::ActorId,
) -> Result<(first_change::Encoded, Stored), DocumentError> {
    let d = to_doc(r, now_ms, false, None);
    let root = match first_change::Tree::of(&d) {
        Ok(Some(first_change::Tree::Map(root))) => root,
        _ => return Err(DocumentError::Automerge("valeur initiale illisible".into())),
    };
    let message = note(office, vec![CREATED_NOTE.into()]);
    let encoded = first_change::encode(&root, actor, now_ms / 1000, &message)
        .map_err(|e| DocumentError::Automerge(e.to_string()))?;
    Ok((encoded, from_doc(&d)))
}

/// Replaces the resource's fields with `r` (an import of the same `ref`): text fields are
/// diffed into splices, unchanged fields write nothing.
pub fn replace(
    doc: &mut AutoCommit,
    r: &Resource,
    office: &str,
    now_ms: i64,
) -> Result<Vec<String>, DocumentError> {
    let old: ResourceDoc = hydrate_doc(doc)?;
    let new = to_doc(r, old.created_at, old.deleted, Some(&old));
    let fields = changed_fields(&from_doc(&old).resource, r);
    if fields.is_empty() {
        return Ok(fields);
    }
    reconcile(doc, &new)?;
    commit(doc, office, fields.clone(), now_ms);
    Ok(fields)
}

/// Applies user edits, validating the result as a whole before writing anything.
pub fn apply_edits(
    doc: &mut AutoCommit,
    edits: &[Edit],
    office: &str,
    now_ms: i64,
) -> Result<Vec<String>, DocumentError> {
    let mut d: ResourceDoc = hydrate_doc(doc)?;
    let mut json = from_doc(&d).resource.to_json();
    let mut fields = Vec::new();
    for e in edits {
        match e {
            Edit::Set { field, value } => {
                if is_text(field) {
                    let s = value.as_str().unwrap_or_default();
                    text_of(&mut d, field).update(s);
                    json[field.as_str()] = Value::from(s);
                } else {
                    set_json(&mut json, field, value.clone())?;
                }
                fields.push(field.clone());
            }
            Edit::Splice {
                field,
                pos,
                delete,
                insert,
            } => {
                let t = text_field(&mut d, field)?;
                let (start, end) = char_range(t.as_str(), *pos, *delete, field)?;
                t.splice(start, (end - start) as isize, insert);
                json[field.as_str()] = Value::from(t.as_str().to_string());
                fields.push(field.clone());
            }
            Edit::Append { field, text } => {
                let t = text_field(&mut d, field)?;
                let end = t.as_str().len();
                t.splice(end, 0, text);
                json[field.as_str()] = Value::from(t.as_str().to_string());
                fields.push(field.clone());
            }
            Edit::AddMedia(m) => {
                let list = media_list(&mut json);
                list.retain(|x| x["hash"] != m.hash.to_hex());
                list.push(m.to_json());
                fields.push("media".into());
            }
            Edit::RemoveMedia(hash) => {
                let list = media_list(&mut json);
                let before = list.len();
                list.retain(|x| x["hash"] != hash.to_hex());
                if list.len() == before {
                    return Err(no_such_media(hash));
                }
                fields.push("media".into());
            }
            Edit::SetMedia { hash, field, value } => {
                if !EDITABLE_MEDIA_FIELDS.contains(&field.as_str()) {
                    return Err(DocumentError::BadEdit {
                        field: format!("media.{field}"),
                        message: format!(
                            "champ non modifiable ; champs possibles : {}",
                            EDITABLE_MEDIA_FIELDS.join(", ")
                        ),
                    });
                }
                let entry = media_list(&mut json)
                    .iter_mut()
                    .find(|x| x["hash"] == hash.to_hex())
                    .ok_or_else(|| no_such_media(hash))?;
                entry[field.as_str()] = value.clone();
                fields.push("media".into());
            }
            Edit::SetDeleted(deleted) => {
                d.deleted = *deleted;
                fields.push(
                    if *deleted {
                        "(suppression)"
                    } else {
                        "(restauration)"
                    }
                    .into(),
                );
            }
        }
    }
    // Two offices appending to the summary at once can merge into one over its limit; that
    // must not block edits of other fields, so its limit applies only when it is edited.
    let summary_edited = fields.iter().any(|f| f == "summary");
    let merged_summary = if summary_edited {
        None
    } else {
        json.get_mut("summary").map(Value::take)
    };
    let mut r = Resource::from_json(&json)?;
    if let Some(summary) = merged_summary {
        r.summary = summary.as_str().unwrap_or_default().to_string();
    }
    let next = to_doc(&r, d.created_at, d.deleted, Some(&d));
    reconcile(doc, &next)?;
    fields.dedup();
    commit(doc, office, fields.clone(), now_ms);
    Ok(fields)
}

/// The `media` array of a FORMAT.md JSON object, created empty if absent.
fn media_list(json: &mut Value) -> &mut Vec<Value> {
    let slot = &mut json["media"];
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(list) => list,
        _ => unreachable!("just made an array"),
    }
}

fn no_such_media(hash: &BlobHash) -> DocumentError {
    DocumentError::BadEdit {
        field: "media".into(),
        message: format!("aucun média {hash} dans cette fiche"),
    }
}

/// Reads the resource out of its document.
pub fn read(doc: &AutoCommit) -> Result<Stored, DocumentError> {
    Ok(from_doc(&hydrate_doc(doc)?))
}

/// [`read`], taking the texts from `memo` where it has them and leaving there those it reads.
pub fn read_memoized(doc: &AutoCommit, memo: &mut TextMemo) -> Result<Stored, DocumentError> {
    let via = text_memo::Memoized {
        doc,
        memo: std::cell::RefCell::new(memo),
    };
    Ok(from_doc(&hydrate_doc_via(doc, &via)?))
}

/// Reads the resource as it was at `heads` (an earlier version).
pub fn read_at(doc: &mut AutoCommit, heads: &[ChangeHash]) -> Result<Stored, DocumentError> {
    let old = doc.fork_at(heads)?;
    read(&old)
}

/// Whether this document is a resource document (rather than a catalog shard or foreign doc).
pub fn is_resource(doc: &AutoCommit) -> bool {
    match doc.get(automerge::ROOT, "@type") {
        Ok(Some((automerge::Value::Scalar(s), _))) => s.as_str() == Some(RESOURCE_TYPE),
        // Written by a JavaScript client as text (see `lenient`).
        Ok(Some((automerge::Value::Object(automerge::ObjType::Text), obj))) => {
            doc.text(&obj).is_ok_and(|t| t == RESOURCE_TYPE)
        }
        _ => false,
    }
}

/// Every change of the document, oldest first, with the office and fields it names.
pub fn history(doc: &mut AutoCommit) -> Vec<HistoryEntry> {
    // Metadata only: building whole changes would encode every operation of the document.
    doc.get_changes_meta(&[])
        .iter()
        .map(|c| {
            let note: Option<ChangeNote> = c
                .message
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok());
            HistoryEntry {
                hash: c.hash.to_string(),
                time: c.timestamp,
                office: note.as_ref().map(|n| n.office.clone()),
                fields: note.map(|n| n.fields).unwrap_or_default(),
            }
        })
        .collect()
}

/// What a creation's [`ChangeNote`] lists as its fields.
const CREATED_NOTE: &str = "(création)";

/// A change's commit message.
fn note(office: &str, fields: Vec<String>) -> String {
    let note = ChangeNote {
        office: office.to_string(),
        fields,
    };
    serde_json::to_string(&note).unwrap_or_default()
}

fn commit(doc: &mut AutoCommit, office: &str, fields: Vec<String>, now_ms: i64) {
    let message = note(office, fields);
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(message)
            .with_time(now_ms / 1000),
    );
}

fn hydrate_doc(doc: &AutoCommit) -> Result<ResourceDoc, DocumentError> {
    hydrate_doc_via(doc, doc)
}

/// The resource of `doc`, read through `via` (the document itself, or a view of it).
fn hydrate_doc_via<D: autosurgeon::ReadDoc>(
    doc: &AutoCommit,
    via: &D,
) -> Result<ResourceDoc, DocumentError> {
    if !is_resource(doc) {
        return Err(DocumentError::NotAResource("pas de marqueur @type".into()));
    }
    let d: ResourceDoc = hydrate(via).map_err(|e| DocumentError::NotAResource(e.to_string()))?;
    if d.schema > SCHEMA {
        return Err(DocumentError::NotAResource(format!(
            "schéma {} plus récent que celui de cette version ({SCHEMA})",
            d.schema
        )));
    }
    Ok(d)
}

fn is_text(field: &str) -> bool {
    field == "summary" || field == "description"
}

fn text_of<'a>(d: &'a mut ResourceDoc, field: &str) -> &'a mut Text {
    if field == "summary" {
        &mut d.summary
    } else {
        &mut d.description
    }
}

fn text_field<'a>(d: &'a mut ResourceDoc, field: &str) -> Result<&'a mut Text, DocumentError> {
    if !is_text(field) {
        return Err(DocumentError::BadEdit {
            field: field.into(),
            message: "seuls « summary » et « description » sont des textes longs".into(),
        });
    }
    Ok(text_of(d, field))
}

/// Converts a character range to byte offsets, refusing one that runs past the end.
fn char_range(
    s: &str,
    pos: usize,
    delete: usize,
    field: &str,
) -> Result<(usize, usize), DocumentError> {
    let byte_at = |n: usize| -> Option<usize> {
        if n == s.chars().count() {
            Some(s.len())
        } else {
            s.char_indices().nth(n).map(|(b, _)| b)
        }
    };
    match (byte_at(pos), byte_at(pos + delete)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(DocumentError::BadEdit {
            field: field.into(),
            message: format!(
                "position {pos}+{delete} hors du texte ({} caractères)",
                s.chars().count()
            ),
        }),
    }
}

/// Sets `field` (possibly dotted) in a FORMAT.md JSON object.
fn set_json(json: &mut Value, field: &str, value: Value) -> Result<(), DocumentError> {
    let bad = |m: &str| DocumentError::BadEdit {
        field: field.into(),
        message: m.into(),
    };
    let mut parts = field.split('.');
    let top = parts.next().unwrap_or_default();
    if !resource::KNOWN_FIELDS.contains(&top) {
        return Err(bad(&format!(
            "champ inconnu ; champs possibles : {}",
            resource::KNOWN_FIELDS.join(", ")
        )));
    }
    let obj = json
        .as_object_mut()
        .ok_or_else(|| bad("document illisible"))?;
    match parts.next() {
        None => {
            obj.insert(top.into(), value);
        }
        Some(sub) if top == "location" || top == "dates" => {
            let inner = obj
                .entry(top)
                .or_insert_with(|| Value::Object(Default::default()));
            if !inner.is_object() {
                *inner = Value::Object(Default::default());
            }
            inner[sub] = value;
        }
        Some(_) => return Err(bad("seuls location.* et dates.* ont des sous-champs")),
    }
    Ok(())
}

fn to_doc(r: &Resource, created_at: i64, deleted: bool, old: Option<&ResourceDoc>) -> ResourceDoc {
    let text = |old: Option<&Text>, new: &str| match old {
        Some(t) => {
            let mut t = t.clone();
            if t.as_str() != new {
                t.update(new);
            }
            t
        }
        None => Text::with_value(new),
    };
    ResourceDoc {
        doc_type: RESOURCE_TYPE.into(),
        schema: SCHEMA,
        ref_: r.ref_.clone(),
        kind: r.kind.clone(),
        title: r.title.clone(),
        summary: text(old.map(|o| &o.summary), &r.summary),
        description: text(old.map(|o| &o.description), &r.description),
        office: r.office.clone(),
        status: r.status.clone(),
        axes: r.axes.clone(),
        themes: r.themes.clone(),
        sectors: r.sectors.clone(),
        materials: r.materials.clone(),
        audiences: r.audiences.clone(),
        keywords: r.keywords.clone(),
        location: r.location.as_ref().map(|l| LocationDoc {
            commune: l.commune.clone(),
            insee: l.insee.clone(),
            departement: l.departement.clone(),
            lat: l.lat,
            lon: l.lon,
        }),
        year: r.year,
        client: r.client.clone(),
        designers: r
            .designers
            .iter()
            .map(|d| DesignerDoc {
                role: d.role.clone(),
                name: d.name.clone(),
            })
            .collect(),
        intervention: r.intervention.clone(),
        building_type: r.building_type.clone(),
        cost_eur_ht: r.cost_eur_ht,
        floor_area_m2: r.floor_area_m2,
        tool_type: r.tool_type.clone(),
        action_type: r.action_type.clone(),
        dates: r.dates.as_ref().map(|d| DatesDoc {
            start: d.start.clone(),
            end: d.end.clone(),
        }),
        links: r
            .links
            .iter()
            .map(|l| LinkDoc {
                url: l.url.clone(),
                label: l.label.clone(),
            })
            .collect(),
        media: r
            .media
            .iter()
            .map(|m| (m.hash.to_hex(), media_doc(m)))
            .collect(),
        extra: r
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        created_at,
        deleted,
    }
}

fn from_doc(d: &ResourceDoc) -> Stored {
    let resource = Resource {
        ref_: d.ref_.clone(),
        kind: d.kind.clone(),
        title: d.title.clone(),
        summary: d.summary.as_str().to_string(),
        description: d.description.as_str().to_string(),
        office: d.office.clone(),
        status: d.status.clone(),
        axes: d.axes.clone(),
        themes: d.themes.clone(),
        sectors: d.sectors.clone(),
        materials: d.materials.clone(),
        audiences: d.audiences.clone(),
        keywords: d.keywords.clone(),
        location: d.location.as_ref().map(|l| Location {
            commune: l.commune.clone(),
            insee: l.insee.clone(),
            departement: l.departement.clone(),
            lat: l.lat,
            lon: l.lon,
        }),
        year: d.year,
        client: d.client.clone(),
        designers: d
            .designers
            .iter()
            .map(|x| Designer {
                role: x.role.clone(),
                name: x.name.clone(),
            })
            .collect(),
        intervention: d.intervention.clone(),
        building_type: d.building_type.clone(),
        cost_eur_ht: d.cost_eur_ht,
        floor_area_m2: d.floor_area_m2,
        tool_type: d.tool_type.clone(),
        action_type: d.action_type.clone(),
        dates: d.dates.as_ref().map(|x| Dates {
            start: x.start.clone(),
            end: x.end.clone(),
        }),
        links: d
            .links
            .iter()
            .map(|l| Link {
                url: l.url.clone(),
                label: l.label.clone(),
            })
            .collect(),
        media: media_of(&d.media),
        extra: d
            .extra
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::from_str(v).unwrap_or(Value::String(v.clone())),
                )
            })
            .collect(),
    };
    Stored {
        resource,
        created_at: d.created_at,
        deleted: d.deleted,
    }
}

/// Names of the top-level fields that differ between two resources.
pub fn changed_fields(a: &Resource, b: &Resource) -> Vec<String> {
    let (ja, jb) = (a.to_json(), b.to_json());
    let (Some(oa), Some(ob)) = (ja.as_object(), jb.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = oa.keys().chain(ob.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| oa.get(*k) != ob.get(*k))
        .cloned()
        .collect()
}

fn media_doc(m: &Media) -> MediaDoc {
    let rendition = |r: &Option<Rendition>| {
        r.map(|r| RenditionDoc {
            hash: r.hash.to_hex(),
            width: r.width,
            height: r.height,
            bytes: r.bytes,
        })
    };
    MediaDoc {
        kind: m.kind.as_str().into(),
        name: m.name.clone(),
        mime: m.mime.clone(),
        bytes: m.bytes,
        width: m.width,
        height: m.height,
        credit: m.credit.clone(),
        caption: m.caption.clone(),
        alt: m.alt.clone(),
        taken_at: m.taken_at.clone(),
        lat: m.lat,
        lon: m.lon,
        thumb: rendition(&m.thumb),
        display: rendition(&m.display),
        added_at: m.added_at,
    }
}

/// The media entries of a document in gallery order; an entry a foreign client wrote with an
/// unreadable hash or kind is left out rather than failing the whole resource.
fn media_of(map: &BTreeMap<String, MediaDoc>) -> Vec<Media> {
    let rendition = |r: &Option<RenditionDoc>| {
        r.as_ref().and_then(|r| {
            Some(Rendition {
                hash: r.hash.parse().ok()?,
                width: r.width,
                height: r.height,
                bytes: r.bytes,
            })
        })
    };
    let mut out: Vec<Media> = map
        .iter()
        .filter_map(|(hash, m)| {
            Some(Media {
                hash: hash.parse().ok()?,
                kind: m.kind.parse().ok()?,
                name: m.name.clone(),
                mime: m.mime.clone(),
                bytes: m.bytes,
                width: m.width,
                height: m.height,
                credit: m.credit.clone(),
                caption: m.caption.clone(),
                alt: m.alt.clone(),
                taken_at: m.taken_at.clone(),
                lat: m.lat,
                lon: m.lon,
                thumb: rendition(&m.thumb),
                display: rendition(&m.display),
                added_at: m.added_at,
            })
        })
        .collect();
    media::sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Resource {
        Resource::from_json(&json!({"kind":"realisation","title":"École en pisé","office":"caue-63","description":"Une école en terre crue.","labels":["Prix 2020"]})).unwrap()
    }

    #[test]
    fn create_then_read_gives_the_resource_back() {
        let mut doc = new_doc();
        create(&mut doc, &sample(), "caue-63", 1_700_000_000_000).unwrap();
        let s = read(&doc).unwrap();
        assert_eq!(s.resource, sample());
        assert!(!s.deleted);
        let h = history(&mut doc);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].office.as_deref(), Some("caue-63"));
        assert_eq!(h[0].time, 1_700_000_000);
    }

    #[test]
    fn concurrent_typing_in_one_description_keeps_both_texts() {
        let mut a = new_doc();
        create(&mut a, &sample(), "caue-63", 0).unwrap();
        let mut b = a.fork();
        apply_edits(
            &mut a,
            &[Edit::Splice {
                field: "description".into(),
                pos: 4,
                delete: 0,
                insert: "belle ".into(),
            }],
            "caue-63",
            1,
        )
        .unwrap();
        apply_edits(
            &mut b,
            &[Edit::Append {
                field: "description".into(),
                text: " Visite en mai.".into(),
            }],
            "caue-15",
            2,
        )
        .unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let (ra, rb) = (read(&a).unwrap().resource, read(&b).unwrap().resource);
        assert_eq!(ra, rb);
        assert_eq!(
            ra.description,
            "Une belle école en terre crue. Visite en mai."
        );
    }

    #[test]
    fn invalid_edits_write_nothing_and_name_the_field() {
        let mut doc = new_doc();
        create(&mut doc, &sample(), "caue-63", 0).unwrap();
        let heads = doc.get_heads();
        let err = apply_edits(
            &mut doc,
            &[Edit::Set {
                field: "kind".into(),
                value: json!("maison"),
            }],
            "caue-63",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
        let err = apply_edits(
            &mut doc,
            &[Edit::Set {
                field: "colour".into(),
                value: json!("red"),
            }],
            "caue-63",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = apply_edits(
            &mut doc,
            &[Edit::Splice {
                field: "description".into(),
                pos: 999,
                delete: 0,
                insert: "x".into(),
            }],
            "caue-63",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("hors du texte"), "{err}");
        assert_eq!(doc.get_heads(), heads);
    }

    #[test]
    fn set_nested_fields_and_read_earlier_versions() {
        let mut doc = new_doc();
        create(&mut doc, &sample(), "caue-63", 0).unwrap();
        let v1 = doc.get_heads();
        apply_edits(
            &mut doc,
            &[
                Edit::Set {
                    field: "location.departement".into(),
                    value: json!("63"),
                },
                Edit::Set {
                    field: "title".into(),
                    value: json!("École"),
                },
            ],
            "caue-63",
            1,
        )
        .unwrap();
        let now = read(&doc).unwrap().resource;
        assert_eq!(now.departement(), Some("63"));
        assert_eq!(
            read_at(&mut doc, &v1).unwrap().resource.title,
            "École en pisé"
        );
        let h = history(&mut doc);
        assert_eq!(
            h[1].fields,
            vec!["location.departement".to_string(), "title".to_string()]
        );
    }

    #[test]
    fn fields_written_as_text_or_scalar_by_other_clients_are_read_and_edited() {
        use automerge::transaction::Transactable;
        use automerge::{ObjType, ROOT};
        let mut doc = new_doc();
        create(&mut doc, &sample(), "caue-63", 0).unwrap();
        // What JavaScript Automerge 3 does with `d.title = "…"`, `d.keywords.push("…")`, and
        // with an `ImmutableString` description.
        let title = doc.put_object(ROOT, "title", ObjType::Text).unwrap();
        doc.splice_text(&title, 0, 0, "École en terre").unwrap();
        let keywords = doc.put_object(ROOT, "keywords", ObjType::List).unwrap();
        let word = doc.insert_object(&keywords, 0, ObjType::Text).unwrap();
        doc.splice_text(&word, 0, 0, "pisé").unwrap();
        doc.put(ROOT, "description", "Texte brut.").unwrap();
        doc.commit();
        assert!(is_resource(&doc));
        let r = read(&doc).unwrap().resource;
        assert_eq!(r.title, "École en terre");
        assert_eq!(r.keywords, vec!["pisé".to_string()]);
        assert_eq!(r.description, "Texte brut.");
        apply_edits(
            &mut doc,
            &[Edit::Append {
                field: "description".into(),
                text: " Suite.".into(),
            }],
            "caue-63",
            1,
        )
        .unwrap();
        let r = read(&doc).unwrap().resource;
        assert_eq!(r.description, "Texte brut. Suite.");
        assert_eq!(r.title, "École en terre");
    }

    #[test]
    fn a_merged_summary_over_its_limit_does_not_block_other_edits() {
        let mut a = new_doc();
        create(&mut a, &sample(), "caue-63", 0).unwrap();
        let mut b = a.fork();
        let half = "é".repeat(200);
        for (doc, office) in [(&mut a, "caue-63"), (&mut b, "caue-15")] {
            let edit = Edit::Append {
                field: "summary".into(),
                text: half.clone(),
            };
            apply_edits(doc, &[edit], office, 1).unwrap();
        }
        a.merge(&mut b).unwrap();
        assert_eq!(read(&a).unwrap().resource.summary.chars().count(), 400);
        let title = Edit::Set {
            field: "title".into(),
            value: json!("École en pisé (extension)"),
        };
        apply_edits(&mut a, &[title], "caue-63", 2).unwrap();
        let r = read(&a).unwrap().resource;
        assert_eq!(r.title, "École en pisé (extension)");
        assert_eq!(
            r.summary.chars().count(),
            400,
            "the merged summary is kept as it is"
        );
        // Editing the summary itself still applies its limit.
        let longer = Edit::Append {
            field: "summary".into(),
            text: "!".into(),
        };
        let err = apply_edits(&mut a, &[longer], "caue-63", 3).unwrap_err();
        assert!(err.to_string().contains("summary"), "{err}");
    }
}
