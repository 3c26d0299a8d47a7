//! Hydration that accepts a string field written either as a scalar or as Automerge `Text`.
//!
//! Atelier writes plain fields (`title`, `kind`, list entries…) as scalar strings and long texts
//! (`summary`, `description`) as `Text`. JavaScript Automerge 3 writes every assigned string as
//! `Text` unless told otherwise, so a resource edited by an automerge-repo client may hold either
//! form in any field. Reading accepts both; writing keeps Atelier's form.

use std::collections::BTreeMap;

use automerge::ObjId;
use autosurgeon::{Hydrate, HydrateError, Prop, ReadDoc, Text};

/// A string read from a scalar or a `Text` object.
struct Lenient(String);

impl Hydrate for Lenient {
    fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
        Ok(Self(s.to_owned()))
    }

    fn hydrate_text<D: ReadDoc>(doc: &D, obj: &ObjId) -> Result<Self, HydrateError> {
        Ok(Self(doc.text(obj)?))
    }
}

pub(super) fn string<D: ReadDoc>(
    doc: &D,
    obj: &ObjId,
    prop: Prop<'_>,
) -> Result<String, HydrateError> {
    Lenient::hydrate(doc, obj, prop).map(|l| l.0)
}

pub(super) fn opt_string<D: ReadDoc>(
    doc: &D,
    obj: &ObjId,
    prop: Prop<'_>,
) -> Result<Option<String>, HydrateError> {
    Option::<Lenient>::hydrate(doc, obj, prop).map(|o| o.map(|l| l.0))
}

pub(super) fn strings<D: ReadDoc>(
    doc: &D,
    obj: &ObjId,
    prop: Prop<'_>,
) -> Result<Vec<String>, HydrateError> {
    Vec::<Lenient>::hydrate(doc, obj, prop).map(|v| v.into_iter().map(|l| l.0).collect())
}

pub(super) fn string_map<D: ReadDoc>(
    doc: &D,
    obj: &ObjId,
    prop: Prop<'_>,
) -> Result<BTreeMap<String, String>, HydrateError> {
    BTreeMap::<String, Lenient>::hydrate(doc, obj, prop)
        .map(|m| m.into_iter().map(|(k, l)| (k, l.0)).collect())
}

/// A `Text` field, or a scalar string read as a new `Text` (the next write replaces the scalar
/// with a text object, so later edits are splices again).
pub(super) fn text<D: ReadDoc>(doc: &D, obj: &ObjId, prop: Prop<'_>) -> Result<Text, HydrateError> {
    match Text::hydrate(doc, obj, prop.clone()) {
        Ok(t) => Ok(t),
        Err(_) => string(doc, obj, prop).map(Text::with_value),
    }
}
