//! The office replica: concurrent edits that converge, all-or-nothing and idempotent imports,
//! round trips that keep unknown fields, and durable storage with a single owner.
//!
//! Replicas exchange documents as the sync will, but without a network: the saved bytes of one
//! replica's document are loaded into the other's through `DocStore::update`, so the listing
//! index follows merges exactly as it follows local edits.

use std::collections::BTreeMap;

use atelier_core::document::Edit;
use atelier_core::jsonl::{self, ImportError};
use atelier_core::replica::{ref_id, ListFilter, Replica, ReplicaError};
use atelier_core::store::StoreError;
use atelier_core::{DocumentId, Resource};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::harness::{set, FIXTURE};

/// Brings `to`'s copy of `id` up to date with `from`'s.
fn exchange(from: &Replica, to: &Replica, id: &DocumentId) {
    let Some(bytes) = from.store().saved(id).unwrap() else {
        return;
    };
    to.store()
        .update(id, |doc, _| {
            doc.load_incremental(&bytes)
                .map(|_| ())
                .map_err(StoreError::from)
        })
        .unwrap();
}

fn resource(v: Value) -> Resource {
    Resource::from_json(&v).unwrap()
}

fn heads(r: &Replica, id: &DocumentId) -> Vec<automerge::ChangeHash> {
    let mut h = r.store().load(id).unwrap().unwrap().get_heads();
    h.sort();
    h
}

#[test]
fn two_offices_editing_one_resource_converge_with_both_texts() {
    let a = Replica::in_memory("caue-63".parse().unwrap());
    let b = Replica::in_memory("caue-15".parse().unwrap());
    let mut rng = StdRng::seed_from_u64(1);
    let id = a
        .create(
            &resource(
                json!({"ref":"conv-1","kind":"realisation","title":"Buron réhabilité",
                "office":"caue-63","description":"Un buron en pierre et lauze."}),
            ),
            &mut rng,
            1_000,
        )
        .unwrap();
    exchange(&a, &b, &id);
    assert_eq!(b.get(&id).unwrap().resource, a.get(&id).unwrap().resource);

    // Offline on both sides: different fields, and both typing into the same description.
    a.edit(
        &id,
        &[
            set("title", json!("Buron réhabilité à Salers")),
            set("year", json!(2021)),
        ],
        2_000,
    )
    .unwrap();
    a.edit(
        &id,
        &[Edit::Splice {
            field: "description".into(),
            pos: 3,
            delete: 0,
            insert: "ancien ".into(),
        }],
        2_500,
    )
    .unwrap();
    b.edit(
        &id,
        &[
            set("status", json!("a_relire")),
            set("themes", json!(["patrimoine"])),
        ],
        3_000,
    )
    .unwrap();
    b.edit(
        &id,
        &[Edit::Append {
            field: "description".into(),
            text: " Chantier d'insertion, 2021.".into(),
        }],
        3_500,
    )
    .unwrap();

    exchange(&a, &b, &id);
    exchange(&b, &a, &id);

    let (ra, rb) = (a.get(&id).unwrap().resource, b.get(&id).unwrap().resource);
    assert_eq!(ra, rb);
    assert_eq!(heads(&a, &id), heads(&b, &id));
    assert_eq!(ra.title, "Buron réhabilité à Salers");
    assert_eq!(ra.year, Some(2021));
    assert_eq!(ra.status, "a_relire");
    assert_eq!(ra.themes, ["patrimoine"]);
    assert_eq!(
        ra.description,
        "Un ancien buron en pierre et lauze. Chantier d'insertion, 2021."
    );
    // The listing index followed the merge on both sides.
    for r in [&a, &b] {
        let listed = r.list(&ListFilter::default()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].title, "Buron réhabilité à Salers");
        assert_eq!(listed[0].status, "a_relire");
    }
    let offices: Vec<Option<String>> = a
        .history(&id)
        .unwrap()
        .into_iter()
        .map(|h| h.office)
        .collect();
    assert!(offices.contains(&Some("caue-15".into())) && offices.contains(&Some("caue-63".into())));
}

#[test]
fn two_offices_changing_one_field_agree_on_a_single_value() {
    let a = Replica::in_memory("caue-63".parse().unwrap());
    let b = Replica::in_memory("caue-87".parse().unwrap());
    let id = a
        .create(
            &resource(json!({"ref":"conv-2","kind":"outil","title":"Guide","office":"caue-63"})),
            &mut StdRng::seed_from_u64(2),
            0,
        )
        .unwrap();
    exchange(&a, &b, &id);
    a.edit(&id, &[set("title", json!("Guide du pisé"))], 1)
        .unwrap();
    b.edit(&id, &[set("title", json!("Guide de la lauze"))], 1)
        .unwrap();
    exchange(&a, &b, &id);
    exchange(&b, &a, &id);
    let title = a.get(&id).unwrap().resource.title;
    assert_eq!(title, b.get(&id).unwrap().resource.title);
    assert!(["Guide du pisé", "Guide de la lauze"].contains(&title.as_str()));
}

/// One step of the convergence property.
#[derive(Debug, Clone)]
enum Op {
    Set {
        replica: usize,
        doc: usize,
        field: usize,
        value: usize,
    },
    Splice {
        replica: usize,
        doc: usize,
        at: f64,
        delete: usize,
        insert: usize,
    },
    Append {
        replica: usize,
        doc: usize,
        insert: usize,
    },
    Merge {
        from: usize,
        to: usize,
        doc: usize,
    },
}

const REPLICAS: usize = 3;
const DOCS: usize = 3;
const OFFICES: [&str; REPLICAS] = ["caue-63", "caue-15", "caue-07"];
const INSERTS: [&str; 6] = [
    "pisé",
    " lauze ",
    "œuvre",
    "ç",
    "Maître d'œuvre : « X ».",
    "\n\n",
];

/// Fields set by the property, each with values that are valid for it.
fn set_value(field: usize, value: usize) -> (&'static str, Value) {
    match field {
        0 => (
            "title",
            json!(["École", "Halle", "Maison de santé", "Préau"][value % 4]),
        ),
        1 => (
            "status",
            json!(["brouillon", "a_relire", "publie", "archive"][value % 4]),
        ),
        2 => (
            "themes",
            json!([["habitat"], ["patrimoine", "paysage"], [], ["mobilite"]])[value % 4].clone(),
        ),
        3 => ("year", json!(1990 + value as i64)),
        4 => (
            "location.commune",
            json!(["Thiers", "Aurillac", "Rodez", "Mâcon"][value % 4]),
        ),
        _ => (
            "materials",
            json!([["pisé"], ["lauze", "chanvre"], [], ["ossature bois"]])[value % 4].clone(),
        ),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    let d = 0..DOCS;
    prop_oneof![
        3 => (r.clone(), d.clone(), 0..6usize, 0..8usize)
            .prop_map(|(replica, doc, field, value)| Op::Set { replica, doc, field, value }),
        3 => (r.clone(), d.clone(), 0.0..1.0f64, 0..4usize, 0..INSERTS.len())
            .prop_map(|(replica, doc, at, delete, insert)| Op::Splice { replica, doc, at, delete, insert }),
        2 => (r.clone(), d.clone(), 0..INSERTS.len())
            .prop_map(|(replica, doc, insert)| Op::Append { replica, doc, insert }),
        3 => (r.clone(), r, d).prop_map(|(from, to, doc)| Op::Merge { from, to, doc }),
    ]
}

fn apply(replicas: &[Replica], ids: &[DocumentId], op: &Op, now: i64) {
    match *op {
        Op::Set {
            replica,
            doc,
            field,
            value,
        } => {
            let (field, value) = set_value(field, value);
            replicas[replica]
                .edit(&ids[doc], &[set(field, value)], now)
                .unwrap();
        }
        Op::Splice {
            replica,
            doc,
            at,
            delete,
            insert,
        } => {
            let r = &replicas[replica];
            let len = r
                .get(&ids[doc])
                .unwrap()
                .resource
                .description
                .chars()
                .count();
            let pos = ((len as f64) * at) as usize;
            let delete = delete.min(len - pos);
            let edit = Edit::Splice {
                field: "description".into(),
                pos,
                delete,
                insert: INSERTS[insert].into(),
            };
            r.edit(&ids[doc], &[edit], now).unwrap();
        }
        Op::Append {
            replica,
            doc,
            insert,
        } => {
            let edit = Edit::Append {
                field: "description".into(),
                text: INSERTS[insert].into(),
            };
            replicas[replica].edit(&ids[doc], &[edit], now).unwrap();
        }
        Op::Merge { from, to, doc } => {
            if from != to {
                exchange(&replicas[from], &replicas[to], &ids[doc]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the edits and the order of partial exchanges, three replicas that finally
    /// exchange everything hold identical documents and identical resources.
    #[test]
    fn three_replicas_converge_after_a_full_exchange(ops in prop::collection::vec(op(), 1..40)) {
        let replicas: Vec<Replica> =
            OFFICES.iter().map(|o| Replica::in_memory(o.parse().unwrap())).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let ids: Vec<DocumentId> = (0..DOCS)
            .map(|i| {
                let r = resource(json!({"ref": format!("p-{i}"), "kind": "realisation",
                    "title": format!("Ressource {i}"), "office": "caue-63",
                    "description": "Texte de départ."}));
                replicas[0].create(&r, &mut rng, 0).unwrap()
            })
            .collect();
        for id in &ids {
            for to in &replicas[1..] {
                exchange(&replicas[0], to, id);
            }
        }
        for (step, op) in ops.iter().enumerate() {
            apply(&replicas, &ids, op, 1_000 * (step as i64 + 1));
        }
        // Full exchange: everything into replica 0, then replica 0 to everyone.
        for id in &ids {
            for from in &replicas[1..] {
                exchange(from, &replicas[0], id);
            }
            for to in &replicas[1..] {
                exchange(&replicas[0], to, id);
            }
        }
        for id in &ids {
            let expected = replicas[0].get(id).unwrap();
            for r in &replicas[1..] {
                prop_assert_eq!(heads(r, id), heads(&replicas[0], id));
                prop_assert_eq!(&r.get(id).unwrap(), &expected);
            }
        }
        let listings: Vec<_> =
            replicas.iter().map(|r| r.list(&ListFilter::default()).unwrap()).collect();
        prop_assert_eq!(&listings[1], &listings[0]);
        prop_assert_eq!(&listings[2], &listings[0]);
    }
}

#[test]
fn a_file_with_one_bad_line_imports_nothing() {
    let mut lines: Vec<&str> = FIXTURE.lines().collect();
    lines.insert(2, r#"{"kind":"maison","title":"Sans office"}"#);
    let input = lines.join("\n");
    let replica = Replica::in_memory("caue-63".parse().unwrap());
    match jsonl::parse(input.as_bytes()) {
        Err(ImportError::Invalid(errors)) => {
            assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3]);
            let message = ImportError::Invalid(errors).to_string();
            assert!(message.contains("ligne 3") && message.contains("rien n'a été importé"));
        }
        other => panic!("expected the file to be refused, got {other:?}"),
    }
    assert!(replica
        .list(&ListFilter {
            include_deleted: true,
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    assert!(replica.store().is_empty().unwrap());
}

#[test]
fn importing_the_same_file_again_changes_nothing_and_a_changed_line_updates() {
    let replica = Replica::in_memory("caue-63".parse().unwrap());
    let resources = jsonl::parse(FIXTURE.as_bytes()).unwrap();
    let n = resources.len();
    let first = replica.import(&resources, 0, &mut |_| {}).unwrap();
    assert_eq!((first.created, first.updated, first.unchanged), (n, 0, 0));
    let again = replica.import(&resources, 1_000, &mut |_| {}).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, n));
    let mut changed = resources.clone();
    changed[0].title.push_str(" (2e version)");
    let third = replica.import(&changed, 2_000, &mut |_| {}).unwrap();
    assert_eq!(
        (third.created, third.updated, third.unchanged),
        (0, 1, n - 1)
    );
    assert_eq!(replica.list(&ListFilter::default()).unwrap().len(), n);
    let id = ref_id(resources[0].ref_.as_deref().unwrap());
    assert_eq!(replica.get(&id).unwrap().resource, changed[0]);
    assert_eq!(
        replica.history(&id).unwrap().len(),
        2,
        "an unchanged re-import writes no change"
    );
}

#[test]
fn import_export_import_round_trips_every_field_and_unknown_fields() {
    let original = jsonl::parse(FIXTURE.as_bytes()).unwrap();
    let a = Replica::in_memory("caue-63".parse().unwrap());
    a.import(&original, 0, &mut |_| {}).unwrap();
    let mut exported = Vec::new();
    jsonl::write(&mut exported, &a.export().unwrap()).unwrap();
    let text = String::from_utf8(exported).unwrap();
    for unknown in [
        "\"photo_credit\"",
        "\"archivé\":false",
        "\"notes internes\"",
        "\"score_interne\":7.5",
    ] {
        assert!(text.contains(unknown), "{unknown} lost in export:\n{text}");
    }

    let b = Replica::in_memory("caue-15".parse().unwrap());
    let again = jsonl::parse(text.as_bytes()).unwrap();
    b.import(&again, 0, &mut |_| {}).unwrap();
    let by_ref = |rs: Vec<Resource>| -> BTreeMap<String, Resource> {
        rs.into_iter()
            .map(|r| (r.ref_.clone().unwrap(), r))
            .collect()
    };
    let exported_b: Vec<Resource> = b
        .export()
        .unwrap()
        .iter()
        .map(|v| Resource::from_json(v).unwrap())
        .collect();
    assert_eq!(by_ref(exported_b), by_ref(original.clone()));
    // Line by line, the JSON objects are those of the file, key order aside.
    let source: BTreeMap<String, Value> = FIXTURE
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["ref"].as_str().unwrap().to_string(), v))
        .collect();
    for v in a.export().unwrap() {
        let mut expected = source[v["ref"].as_str().unwrap()].clone();
        // Status defaults to brouillon: an exported resource always says it.
        expected
            .as_object_mut()
            .unwrap()
            .entry("status")
            .or_insert(json!("brouillon"));
        assert_eq!(v, expected);
    }
}

#[test]
fn a_reopened_replica_shows_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let (edited, deleted, count) = {
        let r = Replica::init(dir.path(), "caue-71".parse().unwrap()).unwrap();
        let resources = jsonl::parse(FIXTURE.as_bytes()).unwrap();
        r.import(&resources, 0, &mut |_| {}).unwrap();
        let edited = r
            .create(
                &resource(json!({"kind":"action","title":"Balade à Cluny","office":"caue-71"})),
                &mut rng,
                1_000,
            )
            .unwrap();
        r.edit(
            &edited,
            &[Edit::Append {
                field: "description".into(),
                text: "Départ à 10 h.".into(),
            }],
            2_000,
        )
        .unwrap();
        let deleted = r.resolve("fx-002").unwrap();
        r.delete(&deleted, 3_000).unwrap();
        // No explicit close: whatever the replica acknowledged is on disk when it is dropped.
        (edited, deleted, resources.len() + 1)
    };
    let r = Replica::open(dir.path()).unwrap();
    assert_eq!(r.office().as_str(), "caue-71");
    assert_eq!(
        r.list(&ListFilter {
            include_deleted: true,
            ..Default::default()
        })
        .unwrap()
        .len(),
        count
    );
    assert_eq!(r.list(&ListFilter::default()).unwrap().len(), count - 1);
    assert_eq!(
        r.get(&edited).unwrap().resource.description,
        "Départ à 10 h."
    );
    assert_eq!(r.history(&edited).unwrap().len(), 2);
    assert!(r.get(&deleted).unwrap().deleted);
    assert_eq!(r.resolve("fx-001").unwrap(), ref_id("fx-001"));
    assert_eq!(
        r.get(&ref_id("fx-001")).unwrap().resource.extra["photo_credit"],
        json!("Élise Dupré")
    );
}

#[test]
fn a_second_open_of_the_same_replica_is_refused_until_the_first_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let first = Replica::init(dir.path(), "caue-12".parse().unwrap()).unwrap();
    match Replica::open(dir.path()) {
        Err(ReplicaError::Store(StoreError::InUse(_))) => {}
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("a second open succeeded"),
    }
    drop(first);
    Replica::open(dir.path()).unwrap();
}

/// Enough resources for `Replica::import` to use several threads.
fn many(n: usize) -> Vec<Resource> {
    let kinds = ["realisation", "outil", "action", "publication", "acteur"];
    let offices = ["caue-07", "caue-12", "caue-63"];
    let themes = ["habitat", "patrimoine"];
    (0..n)
        .map(|i| {
            resource(json!({
                "ref": format!("many-{i:04}"), "kind": kinds[i % kinds.len()],
                "title": format!("Ressource n° {i} : pisé, lauze et chanvre"),
                "office": offices[i % 3],
                "description": "Texte ".repeat(i % 50),
                "themes": [themes[i % 2]],
            }))
        })
        .collect()
}

#[test]
fn a_large_import_gives_what_line_by_line_imports_give() {
    let resources = many(400);
    let whole = Replica::in_memory("caue-63".parse().unwrap());
    let mut seen = Vec::new();
    let report = whole.import(&resources, 0, &mut |n| seen.push(n)).unwrap();
    assert_eq!(report.created, resources.len());
    assert_eq!(
        seen,
        (1..=resources.len()).collect::<Vec<_>>(),
        "progress counts every resource"
    );

    let by_line = Replica::in_memory("caue-63".parse().unwrap());
    for r in &resources {
        by_line
            .import(std::slice::from_ref(r), 0, &mut |_| {})
            .unwrap();
    }
    assert_eq!(
        whole.list(&ListFilter::default()).unwrap(),
        by_line.list(&ListFilter::default()).unwrap()
    );
    assert_eq!(whole.export().unwrap(), by_line.export().unwrap());
    let shard = Replica::catalog_shard(&ref_id("many-0123"));
    let catalog = whole.store().load(&shard).unwrap().unwrap();
    assert!(automerge::ReadDoc::get(
        &catalog,
        automerge::ROOT,
        ref_id("many-0123").url().as_str()
    )
    .unwrap()
    .is_some());

    let mut changed = resources.clone();
    for r in changed.iter_mut().step_by(10) {
        r.title.push_str(" (révisée)");
    }
    let again = whole.import(&changed, 1, &mut |_| {}).unwrap();
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 40, 360)
    );
    assert_eq!(
        whole.get(&ref_id("many-0010")).unwrap().resource.title,
        changed[10].title
    );
    // A content hash short-cuts unchanged lines: after a rebuild of the indexes it still agrees.
    whole.reindex(3).unwrap();
    let third = whole.import(&changed, 2, &mut |_| {}).unwrap();
    assert_eq!(third.unchanged, 400);
}

#[test]
fn a_batch_naming_one_resource_twice_keeps_its_last_line() {
    let mut resources = many(300);
    let mut last = resources[5].clone();
    last.title = "Dernière version".into();
    resources.push(last);
    let replica = Replica::in_memory("caue-63".parse().unwrap());
    let report = replica.import(&resources, 0, &mut |_| {}).unwrap();
    assert_eq!((report.created, report.updated), (300, 1));
    assert_eq!(
        replica.get(&ref_id("many-0005")).unwrap().resource.title,
        "Dernière version"
    );
}
