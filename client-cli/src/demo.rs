//! Demo data and the seeding of a replica with it.
//!
//! `atelier demo` uses [`seed`] on a throw-away replica; a multi-office demo (a relay, several
//! offices, their web apps) seeds each office's replica the same way and moves documents
//! between them with [`exchange`] until the network sync does it.

use atelier_core::document::Edit;
use atelier_core::replica::{ref_id, ImportReport, NewMedia, Replica};
use atelier_core::store::StoreError;
use atelier_core::work::group::{GroupEdit, NewGroup, NewTask, TaskStatus, Theme};
use atelier_core::work::new_key;
use atelier_core::work::news::day_of;
use atelier_core::work::publication::{Cover, NewPublication, PublicationEdit, SectionContent};
use atelier_core::work::thread::{NewComment, Subject};
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

/// The working group the demo's two offices share.
pub const GROUP_NAME: &str = "Massif central";
/// The resource the other office asks the replica's office to review.
pub const REVIEW_REF: &str = "demo-015-02";

/// What [`seed`] did.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub report: ImportReport,
    /// The resource edited by two offices at once.
    pub story: DocumentId,
    /// The working group « Massif central ».
    pub group: DocumentId,
    /// The publication numérique « Bâtir avec ce qui est là ».
    pub publication: DocumentId,
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
    let group = seed_group(replica, &other, story, now_ms)?;
    let publication = seed_publication(replica, &group, story, now_ms)?;
    Ok(Seeded {
        report,
        story,
        group,
        publication,
    })
}

/// The publication « Bâtir avec ce qui est là » of the replica's office: the story resource
/// (its first photo the cover), the group's theme on earth, a map of the corpus's réalisations
/// in wood or earth, and a closing text.
fn seed_publication(
    replica: &Replica,
    group: &DocumentId,
    story: DocumentId,
    now_ms: i64,
) -> anyhow::Result<DocumentId> {
    let mut rng = rand::thread_rng();
    let id = replica.create_publication(
        &NewPublication {
            title: "Bâtir avec ce qui est là".into(),
            subtitle: "Une sélection du groupe Massif central".into(),
            introduction: "Des réalisations visitables, dans nos montagnes, avec la terre, le \
                           bois et la pierre d'ici.\n\nPour les élus et les habitants."
                .into(),
        },
        &mut rng,
        now_ms - HOUR_MS / 4,
    )?;
    let g = replica.group(group)?;
    let theme = g.themes.iter().find(|t| t.values == ["sectors:terre"]);
    let mut sections = vec![
        SectionContent::Resource { resource: story },
        SectionContent::Map {
            title: "Où les voir".into(),
            filter: "kind=realisation&sector=bois&sector=terre".into(),
        },
    ];
    if let Some(t) = theme {
        sections.push(SectionContent::Theme {
            group: *group,
            theme: t.id.clone(),
        });
    }
    sections.push(SectionContent::Text {
        title: "Pour aller plus loin".into(),
        text: "Les CAUE conseillent gratuitement les particuliers et les communes.".into(),
    });
    let mut edits: Vec<PublicationEdit> = sections
        .into_iter()
        .map(|section| PublicationEdit::AddSection {
            id: new_key(&mut rng),
            section,
            index: None,
        })
        .collect();
    if let Some(m) = replica.get(&story)?.resource.media.first() {
        edits.push(PublicationEdit::Cover(Some(Cover {
            resource: story,
            hash: m.hash,
        })));
    }
    replica.edit_publication(&id, &edits, now_ms - HOUR_MS / 4)?;
    Ok(id)
}

/// The group « Massif central » of the replica's office and [`OTHER_OFFICE`], as their
/// founding workshop left it: a slogan, an action, an editorial line, three themes in plain
/// words, a plan de charge shared between the two offices (one task late, one done), a
/// resource of the other office waiting for this office's review, and a short discussion with
/// a mention. Each office's part is written by its own replica (`other`, exchanged here), as
/// the relay takes changes only from the office that made them.
fn seed_group(
    replica: &Replica,
    other: &Replica,
    story: DocumentId,
    now_ms: i64,
) -> anyhow::Result<DocumentId> {
    let mut rng = rand::thread_rng();
    let me = replica.office().to_string();
    let day = |days: i64| day_of(now_ms + days * DAY_MS);
    let group = replica.create_group(
        &NewGroup {
            name: GROUP_NAME.into(),
            slogan: "Bâtir avec ce qui est là".into(),
            action: "Les Rencontres de l'architecture du Massif central".into(),
            line: "Montrer aux élus et aux habitants que l'on construit aujourd'hui, dans nos \
                   montagnes, avec la terre, le bois et la pierre d'ici : des réalisations \
                   visitables, expliquées simplement, avec leurs coûts et leurs artisans."
                .into(),
            members: vec![OTHER_OFFICE.into()],
            publics: vec!["elus".into(), "particuliers".into()],
            approval_required: true,
        },
        &mut rng,
        now_ms - 2 * DAY_MS,
    )?;
    let themes = [
        (
            "Construire avec la terre",
            "Pisé, bauge et enduits : la terre crue des bâtiments d'hier et d'aujourd'hui.",
            &["sectors:terre"][..],
        ),
        (
            "Le bois de nos forêts",
            "Charpentes, ossatures et bardages en bois local, de la forêt au chantier.",
            &["sectors:bois"][..],
        ),
        (
            "Habiter le centre-bourg",
            "Rénover et réhabiter les maisons des bourgs plutôt que construire plus loin.",
            &["themes:centre_bourg", "themes:habitat"][..],
        ),
    ];
    let mut edits: Vec<GroupEdit> = themes
        .iter()
        .map(|(label, explanation, values)| {
            GroupEdit::PutTheme(Theme {
                id: new_key(&mut rng),
                label: label.to_string(),
                explanation: explanation.to_string(),
                values: values.iter().map(|v| v.to_string()).collect(),
                created_at: now_ms - 2 * DAY_MS,
            })
        })
        .collect();
    let mine = [
        (
            "Rédiger la ligne éditoriale",
            TaskStatus::Fait,
            -20,
            "Marie",
        ),
        (
            "Relire les fiches bois du Cantal",
            TaskStatus::EnCours,
            -3,
            "",
        ),
        (
            "Préparer la rencontre de Riom",
            TaskStatus::AFaire,
            40,
            "Marie",
        ),
    ];
    edits.extend(task_edits(&mine, &me, &day, &mut rng));
    replica.edit_group(&group, &edits, now_ms - 2 * DAY_MS + HOUR_MS)?;
    exchange(replica, other, &group)?;
    let theirs = [
        (
            "Photographier la halle de Salers",
            TaskStatus::EnCours,
            10,
            "Jeanne",
        ),
        ("Recenser les maisons en pisé", TaskStatus::AFaire, 30, ""),
        (
            "Traduire le slogan en occitan",
            TaskStatus::AFaire,
            60,
            "Jeanne",
        ),
    ];
    let edits = task_edits(&theirs, OTHER_OFFICE, &day, &mut rng);
    other.edit_group(&group, &edits, now_ms - DAY_MS)?;
    exchange(other, replica, &group)?;

    // The other office asks this one to review its market hall.
    let hall = ref_id(REVIEW_REF);
    exchange(replica, other, &hall)?;
    other.request_review(
        &hall,
        &me,
        "Jeanne",
        "Peux-tu relire la description avant qu'on la publie pour le groupe ?",
        &mut rng,
        now_ms - 5 * HOUR_MS,
    )?;
    exchange(other, replica, &hall)?;
    exchange(other, replica, &Subject::Resource(hall).thread_id())?;

    // A short discussion of the story resource, with a mention of each office.
    let subject = Subject::Resource(story);
    let first = replica.comment(
        &subject,
        &NewComment {
            parent: None,
            author: "Marie".into(),
            text: format!(
                "La maison de santé irait bien sous « Le bois de nos forêts ». @{OTHER_OFFICE}, vous avez des photos du chantier ?"
            ),
        },
        &mut rng,
        now_ms - 4 * HOUR_MS,
    )?;
    exchange(replica, other, &subject.thread_id())?;
    other.comment(
        &subject,
        &NewComment {
            parent: Some(first),
            author: "Jeanne".into(),
            text: format!(
                "Oui, une dizaine : je les ajoute cette semaine. @{me}, je te dis quand."
            ),
        },
        &mut rng,
        now_ms - 3 * HOUR_MS,
    )?;
    exchange(other, replica, &subject.thread_id())?;
    Ok(group)
}

/// `AddTask` edits for `office`: (title, status, due in days from now, person).
fn task_edits(
    tasks: &[(&str, TaskStatus, i64, &str)],
    office: &str,
    day: &dyn Fn(i64) -> String,
    rng: &mut impl rand::RngCore,
) -> Vec<GroupEdit> {
    tasks
        .iter()
        .map(|(title, status, due, person)| GroupEdit::AddTask {
            id: new_key(rng),
            task: NewTask {
                title: title.to_string(),
                office: Some(office.to_string()),
                person: person.to_string(),
                due: Some(day(*due)),
                status: Some(*status),
                resources: Vec::new(),
            },
        })
        .collect()
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
        // The sample, and the publication's own resource.
        assert_eq!(
            replica.list(&ListFilter::default()).unwrap().len(),
            seeded.report.created + 1
        );
    }

    #[test]
    fn the_demo_group_has_its_line_themes_plan_review_and_discussion() {
        const NOW: i64 = 1_750_000_000_000;
        let replica = Replica::in_memory("caue-63".parse().unwrap());
        let seeded = seed(&replica, NOW).unwrap();
        let g = replica.group(&seeded.group).unwrap();
        assert_eq!(g.name, GROUP_NAME);
        assert_eq!(g.members, ["caue-15", "caue-63"]);
        assert!(!g.slogan.is_empty() && !g.action.is_empty() && !g.line.is_empty());
        assert_eq!(g.themes.len(), 3);
        let resources = replica.group_resources(&g).unwrap();
        for t in &g.themes {
            assert!(
                resources
                    .iter()
                    .any(|e| atelier_core::work::group::Group::theme_matches(t, e)),
                "theme « {} » gathers a resource",
                t.label
            );
        }
        assert_eq!(g.tasks.len(), 6);
        let p = replica.publication(&seeded.publication).unwrap();
        let kinds: Vec<&str> = p.sections.iter().map(|s| s.content.kind()).collect();
        assert_eq!(kinds, ["resource", "map", "theme", "text"]);
        assert!(p.cover.is_some());
        let a = replica.assemble(&seeded.publication).unwrap();
        for s in &a.sections {
            let shown = match &s.body {
                atelier_core::replica::Body::Map { points, .. } => points.len(),
                atelier_core::replica::Body::Theme { resources, .. } => resources.len(),
                _ => 1,
            };
            assert!(shown > 0, "section {} shows resources", s.id);
        }
        let today = day_of(NOW);
        assert_eq!(g.tasks.iter().filter(|t| t.is_late(&today)).count(), 1);
        assert_eq!(
            g.tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Fait)
                .count(),
            1
        );
        let shares = g.shares(&today);
        assert!(shares.iter().all(|s| s.tasks == 3), "{shares:?}");
        let waiting = replica.to_review().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].resource.id, ref_id(REVIEW_REF));
        assert_eq!(waiting[0].asked.office, OTHER_OFFICE);
        let for_me = replica.for_you(&today).unwrap();
        assert_eq!(for_me.mentions.len(), 1, "{for_me:?}");
        let thread = replica
            .thread(&Subject::Resource(seeded.story))
            .unwrap()
            .unwrap();
        assert_eq!(thread.comments.len(), 2);
        let offices: BTreeSet<&str> = thread.comments.iter().map(|c| c.office.as_str()).collect();
        assert_eq!(offices, BTreeSet::from(["caue-15", "caue-63"]));
    }
}
