//! A publication numérique edited by two offices through a real relay on loopback: one office
//! reorders sections and adds one while the other writes the introduction and adds one too;
//! both converge to the same publication, and export the very same bytes (photos included,
//! media synced); « Régénérer » then names what the other office changed since the export.

use atelier_core::clock::now_ms;
use atelier_core::document::Edit;
use atelier_core::media::sample;
use atelier_core::replica::NewMedia;
use atelier_core::work::publication::{Cover, NewPublication, PublicationEdit, SectionContent};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::harness::{corpus, Office, TestRelay};

fn add(id: &str, section: SectionContent) -> PublicationEdit {
    PublicationEdit::AddSection {
        id: id.into(),
        section,
        index: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_offices_edit_one_publication_converge_and_export_the_same_site() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let mut rng = StdRng::seed_from_u64(21);
    let pise = a.create("Maison en pisé", "Un mur de terre.");
    let halle = b.create("Halle en bois", "Une charpente.");
    let added = a
        .replica
        .add_media(
            &pise,
            vec![NewMedia {
                name: "mur.jpg".into(),
                bytes: sample::jpeg(3, 640, 420, 12, 80),
                credit: Some("© CAUE 63".into()),
                alt: Some("Un mur de pisé, lits de terre visibles".into()),
                ..Default::default()
            }],
            now_ms(),
        )
        .unwrap();
    let p = a
        .replica
        .create_publication(
            &NewPublication {
                title: "Bâtir avec le territoire".into(),
                subtitle: "Massif central".into(),
                introduction: String::new(),
            },
            &mut rng,
            now_ms(),
        )
        .unwrap();
    a.replica
        .edit_publication(
            &p,
            &[
                add("s1", SectionContent::Resource { resource: pise }),
                add(
                    "s2",
                    SectionContent::Map {
                        title: "Où les voir".into(),
                        filter: "kind=realisation".into(),
                    },
                ),
                PublicationEdit::Cover(Some(Cover {
                    resource: pise,
                    hash: added[0].media.hash,
                })),
            ],
            now_ms(),
        )
        .unwrap();
    a.sync_media(&relay).await;
    b.sync_media(&relay).await;
    assert_eq!(b.replica.publication(&p).unwrap().sections.len(), 2);

    // At once, offline: caue-63 moves the map first and adds a text at the end; caue-15
    // writes the introduction, adds its halle at the end and moves the pisé last.
    let now = now_ms();
    a.replica
        .edit_publication(
            &p,
            &[
                PublicationEdit::MoveSection {
                    id: "s2".into(),
                    index: 0,
                },
                add(
                    "atext",
                    SectionContent::Text {
                        title: "Remerciements".into(),
                        text: "Aux maîtres d'ouvrage.".into(),
                    },
                ),
            ],
            now,
        )
        .unwrap();
    b.replica
        .edit_publication(
            &p,
            &[
                PublicationEdit::Set {
                    field: "introduction".into(),
                    value: "Ce que deux offices ont vu.\n\nEt montré.".into(),
                },
                add("bhalle", SectionContent::Resource { resource: halle }),
                PublicationEdit::MoveSection {
                    id: "s1".into(),
                    index: 9,
                },
            ],
            now,
        )
        .unwrap();
    a.sync(&relay).await;
    b.sync(&relay).await;
    a.sync(&relay).await;
    assert_eq!(corpus(a.store()), corpus(b.store()));

    let (xa, xb) = (
        a.replica.assemble(&p).unwrap(),
        b.replica.assemble(&p).unwrap(),
    );
    assert_eq!(xa, xb);
    let order: Vec<&str> = xa.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order.len(), 4, "nothing lost or doubled: {order:?}");
    assert_eq!(order[0], "s2", "caue-63's move kept");
    let mut tail = order[1..].to_vec();
    tail.sort();
    assert_eq!(
        tail,
        ["atext", "bhalle", "s1"],
        "three sections went last at once"
    );
    assert_eq!(
        xa.publication.introduction,
        "Ce que deux offices ont vu.\n\nEt montré."
    );

    for single in [false, true] {
        let blob_a = |h: &_| a.replica.media_blob(h).ok().flatten();
        let blob_b = |h: &_| b.replica.media_blob(h).ok().flatten();
        let ea = atelier_web::publication::export(&xa, &blob_a, single);
        let eb = atelier_web::publication::export(&xb, &blob_b, single);
        assert_eq!(ea, eb, "byte-identical exports (single file: {single})");
        let page = String::from_utf8(ea[0].bytes.clone()).unwrap();
        assert!(page.contains("alt=\"Un mur de pisé, lits de terre visibles\""));
        assert!(!single || page.contains("src=\"data:image/jpeg;base64,"));
        assert!(single || ea.iter().any(|f| f.path.starts_with("images/")));
    }

    // caue-63 exports; caue-15 edits the halle; after a sync, « Régénérer » on caue-63 says so.
    a.replica.record_export(&xa, &mut rng, now_ms()).unwrap();
    b.replica
        .edit(
            &halle,
            &[Edit::Set {
                field: "summary".into(),
                value: json!("Charpente en douglas."),
            }],
            now_ms(),
        )
        .unwrap();
    b.sync(&relay).await;
    a.sync(&relay).await;
    let since = a.replica.since_export(&p).unwrap();
    let changed: Vec<&str> = since.changed.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(changed, ["Halle en bois"]);
    assert!(since.publication.is_empty() && since.added.is_empty() && since.removed.is_empty());
    relay.shutdown().await;
}
