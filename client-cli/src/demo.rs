//! Demo data and the seeding of a replica with it.
//!
//! `atelier demo` uses [`seed`] on a throw-away replica; a multi-office demo (a relay, several
//! offices, their web apps) seeds each office's replica the same way and moves documents
//! between them with [`exchange`] until the network sync does it.

use atelier_core::document::Edit;
use atelier_core::replica::{ref_id, ImportReport, Replica};
use atelier_core::store::StoreError;
use atelier_core::{jsonl, DocumentId, Resource};
use rand::RngCore;
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
pub fn seed(replica: &Replica, rng: &mut impl RngCore, now_ms: i64) -> anyhow::Result<Seeded> {
    let resources = sample()?;
    let report = replica.import(&resources, rng, now_ms - 3 * DAY_MS, &mut |_| {})?;
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
    Ok(Seeded { report, story })
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
    use rand::SeedableRng;
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
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let seeded = seed(&replica, &mut rng, 1_750_000_000_000).unwrap();
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
