//! A new document written directly in Automerge's binary format instead of being built op by op
//! in an Automerge document (what an import of thousands does).
//!
//! Automerge spends ~0.4 µs per character creating a `Text` (inserting each character into its
//! op set, then saving): most of an import's time, for documents nobody has opened yet. The
//! document those calls produce is fully determined by its operations, so this module writes
//! the same bytes itself:
//! - the operations autosurgeon would batch-create for the value, in the same order (root keys
//!   sorted, then objects breadth first, as `Automerge::init_from_hydrate`); with a single
//!   change and nothing deleted, that is also the order a saved document lists them in;
//! - their one change, encoded only for its hash (a change's hash is its identity);
//! - the saved document: that change's metadata and the operations, as columns.
//!
//! Each column is encoded with `hexane`, the crate Automerge encodes its columns with, and long
//! columns are deflated at the same level. Tests hold the change and the saved document to
//! Automerge's own bytes, byte for byte.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use automerge::{ActorId, ChangeHash, ScalarValue};
use flate2::{Compress, Compression, FlushCompress, Status};
use hexane::{Codec, EncoderApi, Leb128};
use sha2::{Digest, Sha256};

use crate::sync_guard::{CHUNK_CHANGE, CHUNK_DOCUMENT, CHUNK_MAGIC};

mod tree;
pub use tree::Tree;

/// Operation actions.
const MAKE_MAP: u64 = 0;
const SET: u64 = 1;
const MAKE_LIST: u64 = 2;
const MAKE_TEXT: u64 = 4;

/// Column specifications: column id << 4 | type (0 group, 1 actor, 2 integer, 3 delta,
/// 4 boolean, 5 string, 6 value metadata, 7 value); bit 3 marks a deflated column.
mod spec {
    // A change's and a document's operations.
    pub const OBJ_ACTOR: u32 = 1;
    pub const OBJ_CTR: u32 = 2;
    pub const KEY_ACTOR: u32 = 1 << 4 | 1;
    pub const KEY_CTR: u32 = 1 << 4 | 3;
    pub const KEY_STR: u32 = 1 << 4 | 5;
    pub const ID_ACTOR: u32 = 2 << 4 | 1;
    pub const ID_CTR: u32 = 2 << 4 | 3;
    pub const INSERT: u32 = 3 << 4 | 4;
    pub const ACTION: u32 = 4 << 4 | 2;
    pub const VALUE_META: u32 = 5 << 4 | 6;
    pub const VALUE: u32 = 5 << 4 | 7;
    pub const PRED_GROUP: u32 = 7 << 4;
    pub const SUCC_GROUP: u32 = 8 << 4;
    // A document's changes.
    pub const CHANGE_ACTOR: u32 = 1;
    pub const CHANGE_SEQ: u32 = 3;
    pub const CHANGE_MAX_OP: u32 = 1 << 4 | 3;
    pub const CHANGE_TIME: u32 = 2 << 4 | 3;
    pub const CHANGE_MESSAGE: u32 = 3 << 4 | 5;
    pub const CHANGE_DEPS_GROUP: u32 = 4 << 4;
    pub const CHANGE_EXTRA_META: u32 = 5 << 4 | 6;
    pub const DEFLATED: u32 = 1 << 3;
}

/// Columns of at least this many bytes are stored deflated, as Automerge does.
const DEFLATE_MIN_SIZE: usize = 256;

/// A value the encoder does not write (counters and unknown scalar types: no resource holds
/// them).
#[derive(Debug, thiserror::Error)]
#[error("valeur non prise en charge par l'encodage direct : {0}")]
pub struct Unsupported(String);

/// A new document, ready to store: its saved bytes and its only head.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub hash: ChangeHash,
}

/// Encodes the document whose first and only change writes `root`, by `actor` at `time`
/// (seconds, as Automerge records it) with `message`.
pub fn encode(
    root: &BTreeMap<String, Tree>,
    actor: &ActorId,
    time: i64,
    message: &str,
) -> Result<Encoded, Unsupported> {
    let ops = Ops::of_root(root)?;
    let change = Change {
        actor: actor.to_bytes(),
        time,
        message,
    };
    let shared = ops.shared_columns();
    let hash = ops.change_hash(&change, &shared);
    let bytes = ops.document(&change, &shared, &hash, DEFLATE_MIN_SIZE);
    Ok(Encoded { bytes, hash })
}

/// The metadata of the one change.
struct Change<'a> {
    actor: &'a [u8],
    time: i64,
    message: &'a str,
}

/// Where an operation writes: a map key, or after an element of a sequence (`None`: first).
#[derive(Clone, Copy)]
enum Key<'a> {
    Prop(&'a str),
    After(Option<u64>),
}

/// A scalar written by an operation.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Uint(u64),
    Int(i64),
    F64(f64),
    Timestamp(i64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

/// One operation of the change; its id is its position + 1 (the first change starts at op 1).
struct Op<'a> {
    /// The counter of the object it writes into, `None` for the root.
    obj: Option<u64>,
    key: Key<'a>,
    insert: bool,
    action: u64,
    value: Scalar<'a>,
}

#[derive(Default)]
struct Ops<'a> {
    ops: Vec<Op<'a>>,
}

impl<'a> Ops<'a> {
    /// The operations `Automerge::init_from_hydrate(root)` makes, in its order.
    fn of_root(root: &'a BTreeMap<String, Tree>) -> Result<Self, Unsupported> {
        let mut ops = Ops::default();
        let mut queue: VecDeque<(u64, &'a Tree)> = VecDeque::new();
        ops.map(None, root, &mut queue)?;
        while let Some((obj, value)) = queue.pop_front() {
            match value {
                Tree::Map(map) => ops.map(Some(obj), map, &mut queue)?,
                Tree::List(list) => {
                    let mut after = None;
                    for item in list {
                        after = Some(ops.value(
                            Some(obj),
                            Key::After(after),
                            true,
                            item,
                            &mut queue,
                        )?);
                    }
                }
                Tree::Text(text) => ops.text(obj, text),
                Tree::Scalar(_) => {}
            }
        }
        Ok(ops)
    }

    fn map(
        &mut self,
        obj: Option<u64>,
        map: &'a BTreeMap<String, Tree>,
        queue: &mut VecDeque<(u64, &'a Tree)>,
    ) -> Result<(), Unsupported> {
        for (key, value) in map {
            self.value(obj, Key::Prop(key), false, value, queue)?;
        }
        Ok(())
    }

    /// Writes `value` at `key` of `obj`; an object is queued to be filled later.
    fn value(
        &mut self,
        obj: Option<u64>,
        key: Key<'a>,
        insert: bool,
        value: &'a Tree,
        queue: &mut VecDeque<(u64, &'a Tree)>,
    ) -> Result<u64, Unsupported> {
        let (action, scalar) = match value {
            Tree::Map(_) => (MAKE_MAP, Scalar::Null),
            Tree::List(_) => (MAKE_LIST, Scalar::Null),
            Tree::Text(_) => (MAKE_TEXT, Scalar::Null),
            Tree::Scalar(s) => (SET, scalar(s)?),
        };
        let id = self.push(obj, key, insert, action, scalar);
        if action != SET {
            queue.push_back((id, value));
        }
        Ok(id)
    }

    /// One insertion per character, each after the previous one, as `splice_text` does with
    /// the `Utf8CodeUnit` and code point encodings.
    fn text(&mut self, obj: u64, text: &'a str) {
        self.ops.reserve(text.len());
        let mut after = None;
        for (at, c) in text.char_indices() {
            let char = Scalar::Str(&text[at..at + c.len_utf8()]);
            after = Some(self.push(Some(obj), Key::After(after), true, SET, char));
        }
    }

    fn push(
        &mut self,
        obj: Option<u64>,
        key: Key<'a>,
        insert: bool,
        action: u64,
        value: Scalar<'a>,
    ) -> u64 {
        self.ops.push(Op {
            obj,
            key,
            insert,
            action,
            value,
        });
        self.ops.len() as u64
    }

    /// The change's hash: Automerge's `build_change` (for a change with no dependencies, no
    /// predecessors and one actor), hashed.
    fn change_hash(&self, change: &Change<'_>, shared: &Columns<'_>) -> ChangeHash {
        let mut columns = shared.borrowed();
        columns.add(spec::PRED_GROUP, |out| {
            hexane::Encoder::<u32>::encode_to(out, self.ops.iter().map(|_| 0u32))
        });
        let mut body = Vec::with_capacity(columns.len() + change.message.len() + 64);
        uleb(&mut body, 0); // dependencies
        bytes(&mut body, change.actor);
        uleb(&mut body, 1); // seq
        uleb(&mut body, 1); // start op
        sleb(&mut body, change.time);
        bytes(&mut body, change.message.as_bytes());
        uleb(&mut body, 0); // other actors
        let mut data = Vec::with_capacity(columns.len());
        columns.write(&mut body, &mut data, usize::MAX);
        body.extend_from_slice(&data);
        ChangeHash(hash(CHUNK_CHANGE, &body))
    }

    /// The saved document holding the change `head` (Automerge's `Document::new`), its columns
    /// of at least `deflate_from` bytes deflated.
    fn document(
        &self,
        change: &Change<'_>,
        shared: &Columns<'_>,
        head: &ChangeHash,
        deflate_from: usize,
    ) -> Vec<u8> {
        let ops = &self.ops;
        let mut changes = Columns::default();
        changes.add(spec::CHANGE_ACTOR, |out| {
            hexane::Encoder::<u64>::encode_to(out, [0u64])
        });
        changes.add(spec::CHANGE_SEQ, |out| {
            hexane::DeltaEncoder::<i64>::encode_to(out, [1i64])
        });
        changes.add(spec::CHANGE_MAX_OP, |out| {
            hexane::DeltaEncoder::<i64>::encode_to(out, [ops.len() as i64])
        });
        changes.add(spec::CHANGE_TIME, |out| {
            hexane::DeltaEncoder::<i64>::encode_to(out, [change.time])
        });
        changes.add(spec::CHANGE_MESSAGE, |out| {
            hexane::Encoder::<Option<String>>::encode_to_unless(out, [Some(change.message)], None)
        });
        changes.add(spec::CHANGE_DEPS_GROUP, |out| {
            hexane::Encoder::<u64>::encode_to(out, [0u64])
        });
        // No extra bytes: a value of type bytes, of length 0.
        changes.add(spec::CHANGE_EXTRA_META, |out| {
            hexane::Encoder::<u64>::encode_to(out, [7u64])
        });

        let mut columns = shared.borrowed();
        columns.add(spec::ID_ACTOR, |out| {
            hexane::Encoder::<u64>::encode_to(out, ops.iter().map(|_| 0u64))
        });
        columns.add(spec::ID_CTR, |out| {
            hexane::DeltaEncoder::<i64>::encode_to(out, 1..=ops.len() as i64)
        });
        columns.add(spec::SUCC_GROUP, |out| {
            hexane::Encoder::<u32>::encode_to(out, ops.iter().map(|_| 0u32))
        });
        columns.sort();

        let mut body = Vec::with_capacity(changes.len() + columns.len() + 128);
        uleb(&mut body, 1); // actors
        bytes(&mut body, change.actor);
        uleb(&mut body, 1); // heads
        body.extend_from_slice(&head.0);
        let mut data = Vec::with_capacity(changes.len() + columns.len());
        changes.write(&mut body, &mut data, deflate_from);
        columns.write(&mut body, &mut data, deflate_from);
        body.extend_from_slice(&data);
        uleb(&mut body, 0); // the head's index among the changes
        let checksum = hash(CHUNK_DOCUMENT, &body);
        let mut chunk = Vec::with_capacity(CHUNK_MAGIC.len() + 4 + 6 + body.len());
        chunk.extend_from_slice(&CHUNK_MAGIC);
        chunk.extend_from_slice(&checksum[..4]);
        chunk.push(CHUNK_DOCUMENT);
        uleb(&mut chunk, body.len() as u64);
        chunk.extend_from_slice(&body);
        chunk
    }

    /// The operation columns a change and a document share (sorted by specification).
    fn shared_columns(&self) -> Columns<'static> {
        let ops = &self.ops;
        let mut columns = Columns::default();
        columns.add(spec::OBJ_ACTOR, |out| {
            let actors = ops.iter().map(|o| o.obj.map(|_| 0u64));
            hexane::Encoder::<Option<u64>>::encode_to_unless(out, actors, None)
        });
        columns.add(spec::OBJ_CTR, |out| {
            hexane::Encoder::<Option<u64>>::encode_to_unless(out, ops.iter().map(|o| o.obj), None)
        });
        columns.add(spec::KEY_ACTOR, |out| {
            let actors = ops.iter().map(|o| match o.key {
                Key::After(Some(_)) => Some(0u64),
                _ => None,
            });
            hexane::Encoder::<Option<u64>>::encode_to_unless(out, actors, None)
        });
        columns.add(spec::KEY_CTR, |out| {
            let counters = ops.iter().map(|o| match o.key {
                Key::After(after) => Some(after.unwrap_or(0) as i64),
                Key::Prop(_) => None,
            });
            hexane::DeltaEncoder::<Option<i64>>::encode_to_unless(out, counters, None)
        });
        columns.add(spec::KEY_STR, |out| {
            let props = ops.iter().map(|o| match o.key {
                Key::Prop(s) => Some(s),
                Key::After(_) => None,
            });
            hexane::Encoder::<Option<String>>::encode_to_unless(out, props, None)
        });
        columns.add(spec::INSERT, |out| {
            hexane::Encoder::<bool>::encode_to(out, ops.iter().map(|o| o.insert))
        });
        columns.add(spec::ACTION, |out| {
            hexane::Encoder::<u64>::encode_to(out, ops.iter().map(|o| o.action))
        });
        columns.add(spec::VALUE_META, |out| {
            hexane::Encoder::<u64>::encode_to(out, ops.iter().map(|o| meta(&o.value)))
        });
        columns.add(spec::VALUE, |out| {
            let start = out.len();
            for op in ops {
                raw(&op.value, out);
            }
            start..out.len()
        });
        columns
    }
}

/// Encoded columns, by specification.
#[derive(Default)]
struct Columns<'a>(Vec<(u32, Cow<'a, [u8]>)>);

impl Columns<'_> {
    /// Adds the column `encode` writes, unless it writes nothing.
    fn add(&mut self, spec: u32, encode: impl FnOnce(&mut Vec<u8>) -> Range<usize>) {
        let mut data = Vec::new();
        encode(&mut data);
        if !data.is_empty() {
            self.0.push((spec, Cow::Owned(data)));
        }
    }

    /// These columns, borrowed, to add more to.
    fn borrowed(&self) -> Columns<'_> {
        Columns(
            self.0
                .iter()
                .map(|(spec, data)| (*spec, Cow::Borrowed(&**data)))
                .collect(),
        )
    }

    fn sort(&mut self) {
        self.0.sort_by_key(|(spec, _)| *spec);
    }

    /// Bytes of data.
    fn len(&self) -> usize {
        self.0.iter().map(|(_, data)| data.len()).sum()
    }

    /// Writes the columns' count, specifications and lengths to `meta` and their data to
    /// `data`, deflating those of at least `deflate_from` bytes.
    fn write(&self, meta: &mut Vec<u8>, data: &mut Vec<u8>, deflate_from: usize) {
        uleb(meta, self.0.len() as u64);
        for (spec, column) in &self.0 {
            let deflated = (column.len() >= deflate_from)
                .then(|| deflated(column))
                .flatten();
            let (spec, column) = match &deflated {
                Some(deflated) => (spec | spec::DEFLATED, &deflated[..]),
                None => (*spec, &column[..]),
            };
            uleb(meta, u64::from(spec));
            uleb(meta, column.len() as u64);
            data.extend_from_slice(column);
        }
    }
}

/// A value's metadata: its length in bytes << 4 | its type code.
fn meta(value: &Scalar<'_>) -> u64 {
    let typed = |len: usize, code: u64| ((len as u64) << 4) | code;
    match value {
        Scalar::Null => 0,
        Scalar::Bool(false) => 1,
        Scalar::Bool(true) => 2,
        Scalar::Uint(u) => typed(hexane::ulebsize(*u) as usize, 3),
        Scalar::Int(i) => typed(hexane::lebsize(*i) as usize, 4),
        Scalar::F64(_) => typed(8, 5),
        Scalar::Str(s) => typed(s.len(), 6),
        Scalar::Bytes(b) => typed(b.len(), 7),
        Scalar::Timestamp(t) => typed(hexane::lebsize(*t) as usize, 9),
    }
}

/// A value's bytes.
fn raw(value: &Scalar<'_>, out: &mut Vec<u8>) {
    match value {
        Scalar::Null | Scalar::Bool(_) => {}
        Scalar::Uint(u) => uleb(out, *u),
        Scalar::Int(i) | Scalar::Timestamp(i) => sleb(out, *i),
        Scalar::F64(f) => out.extend_from_slice(&f.to_le_bytes()),
        Scalar::Str(s) => out.extend_from_slice(s.as_bytes()),
        Scalar::Bytes(b) => out.extend_from_slice(b),
    }
}

fn scalar(value: &ScalarValue) -> Result<Scalar<'_>, Unsupported> {
    Ok(match value {
        ScalarValue::Null => Scalar::Null,
        ScalarValue::Boolean(b) => Scalar::Bool(*b),
        ScalarValue::Uint(u) => Scalar::Uint(*u),
        ScalarValue::Int(i) => Scalar::Int(*i),
        ScalarValue::F64(f) => Scalar::F64(*f),
        ScalarValue::Timestamp(t) => Scalar::Timestamp(*t),
        ScalarValue::Str(s) => Scalar::Str(s.as_str()),
        ScalarValue::Bytes(b) => Scalar::Bytes(b),
        other => return Err(Unsupported(format!("{other:?}"))),
    })
}

/// `data` deflated as Automerge deflates a column. Each thread keeps its compressor: setting
/// one up (its window and tables) costs more than deflating a resource.
fn deflated(data: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    }
    DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        // Room for incompressible data: deflate adds a few bytes per stored block.
        let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
        match deflate.compress_vec(data, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => Some(out),
            _ => None,
        }
    })
}

/// The SHA-256 of a chunk of `kind` holding `body`: a change's hash, or (its first 4 bytes)
/// any chunk's checksum.
fn hash(kind: u8, body: &[u8]) -> [u8; 32] {
    let mut head = vec![kind];
    uleb(&mut head, body.len() as u64);
    Sha256::new()
        .chain_update(&head)
        .chain_update(body)
        .finalize()
        .into()
}

/// Length-prefixed bytes.
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    uleb(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Unsigned and signed LEB128, with Automerge's codec.
fn uleb(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&Leb128::encode_unsigned(v));
}

fn sleb(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&Leb128::encode_signed(v));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use automerge::Automerge;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::card::Card;
    use crate::document::{self, new_doc};
    use crate::ids::{DocumentId, HeadsHash};
    use crate::media::Media;
    use crate::resource::{Dates, Designer, Link, Location, Resource};

    const OFFICE: &str = "caue-63";
    const NOW_MS: i64 = 1_750_000_123_456;

    fn actor() -> ActorId {
        ActorId::from(&[7u8; 16][..])
    }

    /// A resource with every field set, texts in French with accents, apostrophes and an emoji.
    fn rich() -> Resource {
        let media: Media = serde_json::from_value(json!({
            "hash": "ab".repeat(32), "kind": "photo", "name": "façade.jpg", "mime": "image/jpeg",
            "bytes": 123_456, "width": 4000, "height": 3000, "credit": "© J. Martin / CAUE 63",
            "alt": "La façade sud", "lat": 45.77, "lon": 3.08,
            "thumb": {"hash": "cd".repeat(32), "width": 320, "height": 240, "bytes": 9_000},
            "added_at": 1_700_000_000_000_i64
        }))
        .unwrap();
        Resource {
            ref_: Some("obs-63-001".into()),
            kind: "realisation".into(),
            title: "École en pisé de Thiers".into(),
            summary: "Une école rénovée en terre crue 🏫.".into(),
            description: "L'école, bâtie en pisé au XIXᵉ siècle, a été rénovée avec des \
                          enduits chaux-chanvre.\n\nDeuxième paragraphe : « isolation »."
                .into(),
            office: OFFICE.into(),
            status: "publie".into(),
            axes: vec!["architecture".into()],
            themes: vec!["renovation".into(), "patrimoine".into()],
            sectors: vec!["enseignement".into()],
            materials: vec!["terre".into(), "chanvre".into(), "chaux".into()],
            audiences: vec!["elus".into()],
            keywords: vec!["pisé".into(), "école".into()],
            location: Some(Location {
                commune: Some("Thiers".into()),
                insee: Some("63430".into()),
                departement: Some("63".into()),
                lat: Some(45.856),
                lon: Some(3.547),
            }),
            year: Some(2021),
            client: Some("Commune de Thiers".into()),
            designers: vec![
                Designer {
                    role: "architecte".into(),
                    name: "Atelier Terre".into(),
                },
                Designer {
                    role: String::new(),
                    name: "BET Chaux".into(),
                },
            ],
            intervention: Some("rehabilitation".into()),
            building_type: Some("ecole".into()),
            cost_eur_ht: Some(1_250_000.5),
            floor_area_m2: Some(840.0),
            tool_type: None,
            action_type: None,
            dates: Some(Dates {
                start: Some("2019-09-01".into()),
                end: None,
            }),
            links: vec![Link {
                url: "https://example.org/ecole".into(),
                label: Some("Fiche".into()),
            }],
            media: vec![media],
            extra: BTreeMap::from([
                ("labels".to_string(), json!(["Prix 2020"])),
                ("note".to_string(), json!({"a": 1, "b": [true, null]})),
            ]),
        }
    }

    /// The document `document::create` makes of `r`, by [`actor`].
    fn created(r: &Resource) -> automerge::AutoCommit {
        let mut doc = new_doc().with_actor(actor());
        document::create(&mut doc, r, OFFICE, NOW_MS).unwrap();
        doc
    }

    /// Asserts that the encoded change and document are, byte for byte, those Automerge makes,
    /// and that the stored bytes load as that document.
    fn assert_same_document(r: &Resource) {
        let mut expected = created(r);
        let expected_change = expected.get_last_local_change().unwrap();
        let (encoded, stored) = document::create_encoded(r, OFFICE, NOW_MS, &actor()).unwrap();
        assert_eq!(encoded.hash, expected_change.hash());

        let d = document::to_doc(r, NOW_MS, false, None);
        let Some(Tree::Map(root)) = Tree::of(&d).unwrap() else {
            panic!("a resource is a map");
        };
        let ops = Ops::of_root(&root).unwrap();
        let message = document::note(OFFICE, vec![document::CREATED_NOTE.into()]);
        let actor = actor();
        let change = Change {
            actor: actor.to_bytes(),
            time: NOW_MS / 1000,
            message: &message,
        };
        let shared = ops.shared_columns();
        let uncompressed = ops.document(&change, &shared, &encoded.hash, usize::MAX);
        assert_eq!(uncompressed, expected.save_nocompress());

        let loaded = Automerge::load(&encoded.bytes).unwrap();
        assert_eq!(loaded.get_heads(), vec![expected_change.hash()]);
        assert_eq!(
            loaded.get_changes(&[])[0].raw_bytes(),
            expected_change.raw_bytes()
        );
        assert_eq!(loaded.save_nocompress(), expected.save_nocompress());
        assert_eq!(
            encoded.bytes,
            expected.save(),
            "deflated as Automerge deflates"
        );
        let mut doc = new_doc();
        doc.load_incremental(&encoded.bytes).unwrap();
        assert_eq!(document::read(&doc).unwrap(), stored);
    }

    #[test]
    fn the_encoded_document_is_the_one_automerge_makes() {
        assert_same_document(&rich());
        let minimal = Resource {
            kind: "outil".into(),
            title: "Guide".into(),
            office: OFFICE.into(),
            ..Resource::default()
        };
        assert_same_document(&minimal);
    }

    #[test]
    fn long_columns_are_stored_deflated() {
        let r = rich();
        let (encoded, _) = document::create_encoded(&r, OFFICE, NOW_MS, &actor()).unwrap();
        let uncompressed = created(&r).save_nocompress();
        assert!(
            encoded.bytes.len() < uncompressed.len(),
            "{} bytes stored, {} uncompressed",
            encoded.bytes.len(),
            uncompressed.len()
        );
        let long = "une maison en pierre ".repeat(20);
        let columns = Columns(vec![
            (spec::KEY_STR, Cow::Borrowed(&b"court"[..])),
            (spec::VALUE, Cow::Borrowed(long.as_bytes())),
        ]);
        let (mut meta, mut data) = (Vec::new(), Vec::new());
        columns.write(&mut meta, &mut data, DEFLATE_MIN_SIZE);
        let mut expected_meta = vec![2];
        uleb(&mut expected_meta, u64::from(spec::KEY_STR));
        uleb(&mut expected_meta, 5);
        uleb(&mut expected_meta, u64::from(spec::VALUE | spec::DEFLATED));
        assert_eq!(
            &meta[..expected_meta.len()],
            expected_meta,
            "only the long one deflated"
        );
        assert_eq!(&data[..5], b"court");
        assert!(data.len() < 5 + long.len());
    }

    #[test]
    fn the_card_of_a_created_document_is_the_card_derived_from_it() {
        let id = DocumentId::derived("first-change/card");
        for r in [
            rich(),
            Resource {
                title: "Court".into(),
                ..rich()
            },
        ] {
            let (encoded, stored) = document::create_encoded(&r, OFFICE, NOW_MS, &actor()).unwrap();
            let heads = HeadsHash::of(&[encoded.hash]);
            let mut doc = new_doc();
            doc.load_incremental(&encoded.bytes).unwrap();
            assert_eq!(
                Card::of_created(&id, &stored, OFFICE, NOW_MS / 1000, heads),
                Card::of(&id, &mut doc, heads)
            );
        }
    }

    #[test]
    fn values_no_resource_holds_are_refused_not_guessed() {
        let counter = Tree::Scalar(ScalarValue::counter(1));
        let root = BTreeMap::from([("n".to_string(), counter)]);
        assert!(encode(&root, &actor(), 0, "").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any texts (combining marks, emoji, controls, empty), lists and numbers.
        #[test]
        fn any_resource_is_encoded_as_automerge_makes_it(
            title in "\\PC{0,40}",
            summary in any::<String>(),
            description in "(\\PC|\n){0,600}",
            keywords in proptest::collection::vec("\\PC{0,12}", 0..5),
            year in proptest::option::of(any::<i64>()),
            cost in proptest::option::of(any::<f64>().prop_filter("not NaN", |f| !f.is_nan())),
            client in proptest::option::of("\\PC{0,20}"),
        ) {
            let r = Resource {
                title, summary, description, keywords, year, client,
                cost_eur_ht: cost,
                ..rich()
            };
            assert_same_document(&r);
        }
    }
}
