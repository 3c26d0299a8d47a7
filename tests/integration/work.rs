//! Working together across offices, through a real relay on loopback: a plan de charge edited
//! by two offices at once, a review round-trip, a mention reaching « Pour vous », « Quoi de
//! neuf » listing exactly the other office's changes, and the relay keeping a group to its
//! member offices.

use atelier_core::clock::now_ms;
use atelier_core::document::ChangeNote;
use atelier_core::replica::Replica;
use atelier_core::work::group::{GroupEdit, NewGroup, NewTask, TaskChange, TaskStatus};
use atelier_core::work::news::NewsKind;
use atelier_core::work::thread::{NewComment, Subject};
use atelier_core::DocumentId;
use automerge::transaction::{CommitOptions, Transactable};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

use crate::harness::{corpus, set, Office, TestRelay};

/// A group of `by`'s office with `others` as members, and the tasks titled `tasks` (nobody in
/// charge yet); returns the group and the tasks' ids.
fn group_with_tasks(
    by: &Replica,
    others: &[&str],
    approval_required: bool,
    tasks: &[&str],
    rng: &mut StdRng,
) -> (DocumentId, Vec<String>) {
    let new = NewGroup {
        name: "Massif central".into(),
        members: others.iter().map(|o| o.to_string()).collect(),
        approval_required,
        ..NewGroup::default()
    };
    let group = by.create_group(&new, rng, now_ms()).unwrap();
    let ids: Vec<String> = tasks
        .iter()
        .map(|_| atelier_core::work::new_key(rng))
        .collect();
    let edits: Vec<GroupEdit> = tasks
        .iter()
        .zip(&ids)
        .map(|(title, id)| GroupEdit::AddTask {
            id: id.clone(),
            task: task(title, None),
        })
        .collect();
    if !edits.is_empty() {
        by.edit_group(&group, &edits, now_ms()).unwrap();
    }
    (group, ids)
}

fn task(title: &str, office: Option<&str>) -> NewTask {
    NewTask {
        title: title.into(),
        office: office.map(str::to_string),
        person: String::new(),
        due: None,
        status: None,
        resources: Vec::new(),
    }
}

fn set_task(id: &str, change: TaskChange) -> GroupEdit {
    GroupEdit::SetTask {
        id: id.to_string(),
        change,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_task_edits_of_two_offices_converge() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let mut rng = StdRng::seed_from_u64(14);
    let (group, t) = group_with_tasks(
        &a.replica,
        &["caue-15"],
        true,
        &["Rédiger la fiche du pisé", "Photographier la halle"],
        &mut rng,
    );
    a.sync(&relay).await;
    b.sync(&relay).await;
    assert_eq!(b.replica.group(&group).unwrap().tasks.len(), 2);

    // Offline at once: each office takes a task and adds one; caue-63 renames the task
    // caue-15 takes, while caue-15 changes the status of the one caue-63 takes.
    let now = now_ms();
    a.replica
        .edit_group(
            &group,
            &[
                set_task(&t[0], TaskChange::Office("caue-63".into())),
                set_task(
                    &t[1],
                    TaskChange::Title("Photographier la halle au marché".into()),
                ),
                GroupEdit::AddTask {
                    id: "a-new".into(),
                    task: task("Relire le guide", Some("caue-63")),
                },
            ],
            now,
        )
        .unwrap();
    b.replica
        .edit_group(
            &group,
            &[
                set_task(&t[1], TaskChange::Office("caue-15".into())),
                set_task(&t[0], TaskChange::Status(TaskStatus::EnCours)),
                GroupEdit::AddTask {
                    id: "b-new".into(),
                    task: task("Traduire le slogan", Some("caue-15")),
                },
            ],
            now,
        )
        .unwrap();
    a.sync(&relay).await;
    b.sync(&relay).await;
    a.sync(&relay).await;

    for office in [&a, &b] {
        let g = office.replica.group(&group).unwrap();
        let first = g.task(&t[0]).unwrap();
        assert_eq!(first.office.as_deref(), Some("caue-63"));
        assert_eq!(first.status, TaskStatus::EnCours);
        let second = g.task(&t[1]).unwrap();
        assert_eq!(second.title, "Photographier la halle au marché");
        assert_eq!(second.office.as_deref(), Some("caue-15"));
        assert_eq!(g.tasks.len(), 4, "both new tasks kept");
        assert!(g.task("a-new").is_some() && g.task("b-new").is_some());
    }
    assert_eq!(corpus(a.store()), corpus(b.store()));
    assert_eq!(corpus(a.store()), corpus(relay.store()));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_round_trip_between_two_offices_publishes_on_both() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let mut rng = StdRng::seed_from_u64(15);
    group_with_tasks(&a.replica, &["caue-15"], true, &[], &mut rng);
    let r = a.create("Maison en pisé à Riom", "Murs en terre.");
    let refused = a.replica.publish(&r, "Marie", &mut rng, now_ms());
    assert!(
        refused.unwrap_err().to_string().contains("approbation"),
        "the group asks for another office's approval"
    );
    a.replica
        .request_review(&r, "caue-15", "Marie", "Tu relis ?", &mut rng, now_ms())
        .unwrap();
    a.sync(&relay).await;
    b.sync(&relay).await;

    let waiting = b.replica.to_review().unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].resource.id, r);
    assert_eq!(waiting[0].asked.office, "caue-63");
    assert_eq!(waiting[0].asked.comment, "Tu relis ?");
    assert!(a.replica.to_review().unwrap().is_empty());
    b.replica
        .approve(&r, "Paul", "Très clair.", &mut rng, now_ms())
        .unwrap();
    b.sync(&relay).await;
    a.sync(&relay).await;

    for office in [&a, &b] {
        assert_eq!(
            office.replica.listing(&r).unwrap().unwrap().status,
            "publie"
        );
        let review = office
            .replica
            .thread(&Subject::Resource(r))
            .unwrap()
            .unwrap()
            .review();
        let approved = review.approved.unwrap();
        assert_eq!(
            (approved.office.as_str(), approved.author.as_str()),
            ("caue-15", "Paul")
        );
        assert!(review.asked.is_none());
        assert!(office.replica.to_review().unwrap().is_empty());
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mention_reaches_pour_vous_and_news_lists_exactly_the_other_offices_changes() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let mut rng = StdRng::seed_from_u64(16);
    let (group, t) = group_with_tasks(&a.replica, &["caue-15"], false, &["Visite"], &mut rng);
    let r = a.create("Halle en bois", "Charpente locale.");
    a.sync(&relay).await;
    b.sync(&relay).await;
    // Times are given, a second apart after the visit, so the items fall where the test says.
    let t0 = now_ms() + 1_000;
    b.replica.mark_news_read(t0).unwrap();
    // b's own change after the visit is not news to b.
    b.replica
        .comment(
            &Subject::Resource(r),
            &NewComment {
                parent: None,
                author: "Paul".into(),
                text: "Je prends les photos.".into(),
            },
            &mut rng,
            t0 + 1_000,
        )
        .unwrap();

    a.replica
        .edit(
            &r,
            &[set("summary", json!("Une halle de marché."))],
            t0 + 2_000,
        )
        .unwrap();
    a.replica
        .comment(
            &Subject::Resource(r),
            &NewComment {
                parent: None,
                author: "Marie".into(),
                text: "@caue-15 tu peux relire le résumé ?".into(),
            },
            &mut rng,
            t0 + 3_000,
        )
        .unwrap();
    a.replica
        .edit_group(
            &group,
            &[set_task(&t[0], TaskChange::Status(TaskStatus::Fait))],
            t0 + 4_000,
        )
        .unwrap();
    a.sync(&relay).await;
    b.sync(&relay).await;

    let for_b = b.replica.for_you("2026-12-06").unwrap();
    assert_eq!(for_b.mentions.len(), 1, "{for_b:?}");
    assert_eq!(for_b.mentions[0].title, "Halle en bois");
    assert_eq!(for_b.mentions[0].comment.office, "caue-63");
    assert!(a.replica.for_you("2026-12-06").unwrap().mentions.is_empty());

    let since = b.replica.news_since(now_ms()).unwrap();
    assert_eq!(since, t0);
    let news = b.replica.news(since).unwrap();
    let mut got: Vec<(NewsKind, String, Vec<String>)> = news
        .iter()
        .map(|n| (n.kind, n.office.clone(), n.details.clone()))
        .collect();
    got.sort();
    let comment_id = for_b.mentions[0].comment.id.clone();
    assert_eq!(
        got,
        [
            (
                NewsKind::Edited,
                "caue-63".to_string(),
                vec!["summary".to_string()]
            ),
            (NewsKind::Comment, "caue-63".to_string(), vec![comment_id]),
            (NewsKind::Task, "caue-63".to_string(), vec![t[0].clone()]),
        ]
    );
    let titles: Vec<&str> = news.iter().map(|n| n.title.as_str()).collect();
    assert!(titles.contains(&"Massif central"), "{titles:?}");
    // Marked read: nothing new until the other office changes something again.
    b.replica.mark_news_read(t0 + 10_000).unwrap();
    let since = b.replica.news_since(now_ms()).unwrap();
    assert!(b.replica.news(since).unwrap().is_empty());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_keeps_a_group_to_its_member_offices_and_the_rest_of_the_sync_goes_on() {
    let relay = TestRelay::start().await;
    let a = Office::enrolled("caue-63", &relay, false).await;
    let b = Office::enrolled("caue-15", &relay, false).await;
    let outsider = Office::enrolled("caue-43", &relay, false).await;
    let mut rng = StdRng::seed_from_u64(17);
    let (group, _) = group_with_tasks(&a.replica, &["caue-15"], true, &[], &mut rng);
    a.sync(&relay).await;
    outsider.sync(&relay).await;

    // The outsider's replica refuses it too: only members edit a group.
    let refused = outsider
        .replica
        .edit_group(
            &group,
            &[GroupEdit::Set {
                field: "slogan".into(),
                value: "Le slogan d'un autre".into(),
            }],
            now_ms(),
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("n'est pas membre"),
        "{refused}"
    );
    // A client that writes the document anyway (an older or foreign one): the relay refuses it.
    outsider
        .store()
        .update(&group, |doc, _| {
            doc.put(automerge::ROOT, "slogan", "Le slogan d'un autre")
                .unwrap();
            let note = ChangeNote {
                office: "caue-43".into(),
                fields: vec!["group:slogan".into()],
            };
            doc.commit_with(
                CommitOptions::default()
                    .with_message(serde_json::to_string(&note).unwrap())
                    .with_time(now_ms() / 1000),
            );
            Ok::<_, atelier_core::store::StoreError>(())
        })
        .unwrap();
    let theirs = outsider.create("Fiche de la Haute-Loire", "Publiée malgré tout.");
    let before = corpus(relay.store())[&group];
    let stats = outsider.sync(&relay).await;
    assert!(stats.settled, "{stats:?}");
    assert!(
        stats.skipped.contains_key(&group),
        "the refusal is recorded: {stats:?}"
    );
    assert_eq!(
        corpus(relay.store())[&group],
        before,
        "the members' version"
    );
    assert!(relay.store().contains(&theirs).unwrap(), "the rest goes on");

    b.sync(&relay).await;
    let g = b.replica.group(&group).unwrap();
    assert_eq!(g.slogan, "");
    assert!(b.titles().iter().any(|t| t == "Fiche de la Haute-Loire"));
    // A member's edit still goes through.
    b.replica
        .edit_group(
            &group,
            &[GroupEdit::Set {
                field: "slogan".into(),
                value: "Bâtir avec ce qui est là".into(),
            }],
            now_ms(),
        )
        .unwrap();
    b.sync(&relay).await;
    a.sync(&relay).await;
    assert_eq!(
        a.replica.group(&group).unwrap().slogan,
        "Bâtir avec ce qui est là"
    );
    relay.shutdown().await;
}
