//! Demo data and the seeding of a replica with it.
//!
//! `atelier demo` uses [`seed`] on a throw-away replica; a multi-office demo (a relay, several
//! offices, their web apps) seeds each office's replica the same way and moves documents
//! between them with [`exchange`] until the network sync does it.

use atelier_core::document::Edit;
use atelier_core::replica::{ref_id, ImportReport, NewMedia, Replica};
use atelier_core::store::StoreError;
use atelier_core::{jsonl, DocumentId, Resource};
use serde_json::json;

/// About 25 French resources of the seven Massif central CAUE, in FORMAT.md JSON Lines.
pub const SAMPLE_JSONL: &str = include_str!("sample.jsonl");
/// The ref of the sample resource whose history the demo tells.
pub const STORY_REF: &str = "demo-063-01";
/// The office that edits the story resource concurrently with the replica's own office.
pub const OTHER_OFFICE: &str = "caue-15";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What [`seed`] did.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub report: ImportReport,
    /// The resource edited by two offices at once.
    pub story: DocumentId,
}

/// The sample resources, validated.
pub fn sample() -> Result<Vec<Resource>, jsonl::ImportError> {
    jsonl::parse(SAMPLE_JSONL.as_bytes())
}

/// Imports the sample into `replica` as of three days before `now_ms`, then edits the story
/// resource the way two offices would: the replica's office reviews it, another office adds a
/// sentence to the same description while the first one types too, the copies are exchanged and
/// merge with both texts kept, and the resource is published.
pub fn seed(replica: &Replica, now_ms: i64) -> anyhow::Result<Seeded> {
    let resources = sample()?;
    let report = replica.import(&resources, now_ms - 3 * DAY_MS, &mut |_| {})?;
    let story = ref_id(STORY_REF);
    replica.edit(
        &story,
        &[
            Edit::Set {
                field: "status".into(),
                value: json!("a_relire"),
            },
            Edit::Append {
                field: "description".into(),
                text: "\n\nLivraison en septembre 2022, après quatorze mois de chantier.".into(),
            },
        ],
        now_ms - 2 * DAY_MS,
    )?;
    let other = Replica::in_memory(OTHER_OFFICE.parse()?);
    exchange(replica, &other, &story)?;
    other.edit(
        &story,
        &[Edit::Splice {
            field: "description".into(),
            pos: "Le projet réunit six cabinets médicaux".chars().count(),
            delete: 0,
            insert: ", un cabinet de kinésithérapie".into(),
        }],
        now_ms - DAY_MS,
    )?;
    replica.edit(
        &story,
        &[Edit::Append {
            field: "description".into(),
            text: " Visite publique prévue au printemps.".into(),
        }],
        now_ms - DAY_MS + 20 * 60_000,
    )?;
    exchange(&other, replica, &story)?;
    exchange(replica, &other, &story)?;
    replica.edit(
        &story,
        &[Edit::Set {
            field: "status".into(),
            value: json!("publie"),
        }],
        now_ms - HOUR_MS,
    )?;
    add_photos(replica, now_ms - HOUR_MS / 2)?;
    Ok(Seeded { report, story })
}

/// The sample photos: drawings made here (`media::sample`), so the demo's gallery and cards
/// show pictures on the first run. (ref, credit, alternative text, caption) per photo.
const PHOTOS: &[(&str, &str, &str, &str)] = &[
    (
        STORY_REF,
        "© CAUE 63 — dessin de démonstration",
        "Maison de santé : façade en bardage bois sous un toit à deux pans",
        "La façade sur le patio.",
    ),
    (
        STORY_REF,
        "© CAUE 63 — dessin de démonstration",
        "Maison de santé vue depuis la place, baies régulières",
        "Côté place, à l'automne.",
    ),
    (
        "demo-015-02",
        "© CAUE 15 — dessin de démonstration",
        "Halle de marché en bois sous un ciel clair",
        "La halle un jour de marché.",
    ),
    (
        "demo-007-01",
        "© CAUE 07 — dessin de démonstration",
        "École aux murs de pisé ocre et fenêtres en bandeau",
        "Les quatre classes côté cour.",
    ),
    (
        "demo-012-03",
        "© CAUE 12 — dessin de démonstration",
        "Ancienne grange en pierre devenue médiathèque",
        "La grange réhabilitée.",
    ),
    (
        "demo-071-01",
        "© CAUE 71 — dessin de démonstration",
        "Extension en ossature bois accolée à une maison en pierre",
        "L'extension vue du jardin.",
    ),
];

/// Width and height of the sample photos, in pixels.
const PHOTO_SIZE: (u32, u32) = (1600, 1067);

fn add_photos(replica: &Replica, now_ms: i64) -> anyhow::Result<()> {
    for (i, (reference, credit, alt, caption)) in PHOTOS.iter().enumerate() {
        let bytes =
            atelier_core::media::sample::jpeg(i as u64 + 1, PHOTO_SIZE.0, PHOTO_SIZE.1, 4, 85);
        let file = NewMedia {
            name: format!("{reference}-{}.jpg", i + 1),
            bytes,
            credit: Some(credit.to_string()),
            alt: Some(alt.to_string()),
            caption: Some(caption.to_string()),
            ..Default::default()
        };
        replica.add_media(&ref_id(reference), vec![file], now_ms + i as i64)?;
    }
    Ok(())
}

/// Brings `to`'s copy of document `id` up to date with `from`'s (what the sync does over the
/// network), and flushes it.
pub fn exchange(from: &Replica, to: &Replica, id: &DocumentId) -> anyhow::Result<()> {
    let Some(bytes) = from.store().saved(id)? else {
        return Ok(());
    };
    to.store().update(id, |doc, _| {
        doc.load_incremental(&bytes)
            .map(|_| ())
            .map_err(StoreError::from)
    })?;
    to.store().flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::replica::ListFilter;
    use std::collections::BTreeSet;

    #[test]
    fn sample_is_valid_and_covers_the_seven_offices_and_every_kind() {
        let resources = sample().unwrap();
        assert!((20..=30).contains(&resources.len()), "{}", resources.len());
        let offices: BTreeSet<&str> = resources.iter().map(|r| r.office.as_str()).collect();
        let expected = [
            "caue-07", "caue-12", "caue-15", "caue-34", "caue-63", "caue-71", "caue-87",
        ];
        assert_eq!(offices, expected.into_iter().collect());
        let kinds: BTreeSet<&str> = resources.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds.len(), 5);
        assert!(resources
            .iter()
            .any(|r| r.ref_.as_deref() == Some(STORY_REF)));
    }

    #[test]
    fn seeding_merges_both_offices_texts_in_the_story() {
        let replica = Replica::in_memory("caue-63".parse().unwrap());
        let seeded = seed(&replica, 1_750_000_000_000).unwrap();
        assert_eq!(seeded.report.created, sample().unwrap().len());
        let story = replica.get(&seeded.story).unwrap().resource;
        assert!(story
            .description
            .contains("six cabinets médicaux, un cabinet de kinésithérapie"));
        assert!(story.description.contains("quatorze mois"));
        assert!(story.description.contains("Visite publique"));
        assert_eq!(story.status, "publie");
        let offices: BTreeSet<Option<String>> = replica
            .history(&seeded.story)
            .unwrap()
            .into_iter()
            .map(|h| h.office)
            .collect();
        assert!(offices.contains(&Some(OTHER_OFFICE.to_string())));
        assert_eq!(
            replica.list(&ListFilter::default()).unwrap().len(),
            seeded.report.created
        );
    }
}
