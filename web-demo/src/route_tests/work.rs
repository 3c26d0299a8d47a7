//! Router-level tests of working together: groups, plan de charge, tasks, review, discussion,
//! « À relire », « Pour vous », « Quoi de neuf » and the header counts; bad input refused next
//! to its field with what was typed kept and nothing saved; a non-member office read-only.

use atelier_core::work::group::{GroupEdit, NewGroup, NewTask, Theme};
use atelier_core::work::thread::{NewComment, Subject};

use super::*;

const NOW: i64 = 1_780_000_000_000;

/// Copies every document of `from` into `to`, as a sync would.
fn sync(from: &Replica, to: &Replica) {
    let mut ids = Vec::new();
    from.store()
        .for_each_heads(&mut |id, _| {
            ids.push(id);
            true
        })
        .unwrap();
    for id in ids {
        let bytes = from.store().saved(&id).unwrap().unwrap();
        to.store().apply_bytes(&id, &bytes).unwrap();
    }
}

/// A group of caue-63 (this app's office) and caue-15, with a theme on « Terre crue » and a task.
fn group(app: &App) -> (DocumentId, String) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let g = app
        .replica
        .create_group(
            &NewGroup {
                name: "Massif central".into(),
                slogan: "Bâtir avec le territoire".into(),
                action: "Habiter le Massif central".into(),
                line: "Montrer ce qui se construit avec les ressources locales.".into(),
                members: vec!["caue-15".into()],
                publics: vec!["elus".into(), "artisans du bâti ancien".into()],
                approval_required: true,
            },
            &mut rng,
            NOW,
        )
        .unwrap();
    let edits = [
        GroupEdit::PutTheme(Theme {
            id: "terre".into(),
            label: "Construire avec la terre".into(),
            explanation: "Le pisé, l'adobe et la bauge, du neuf à la restauration.".into(),
            values: vec!["sectors:terre".into()],
            created_at: 0,
        }),
        GroupEdit::AddTask {
            id: "t1".into(),
            task: NewTask {
                title: "Rédiger la fiche de l'école".into(),
                office: Some("caue-15".into()),
                person: "Paul".into(),
                due: Some("2020-03-31".into()),
                status: None,
                resources: vec![app.ecole],
            },
        },
    ];
    app.replica.edit_group(&g, &edits, NOW).unwrap();
    (g, format!("/groupes/{}", g.to_base58()))
}

/// The header's count `which` (`news`, `for_you`) as a page shows it; `None` when hidden.
fn header_count(body: &str, which: &str) -> Option<usize> {
    let at = body
        .find(&format!("data-count=\"{which}\""))
        .unwrap_or_else(|| panic!("no {which} count in the header"));
    let tag = &body[at..at + body[at..].find('>').unwrap()];
    if tag.contains(" hidden") {
        return None;
    }
    let n = &body[at + body[at..].find("nav-count").unwrap()..];
    let n = &n[n.find('>').unwrap() + 1..];
    n[..n.find('<').unwrap()].parse().ok()
}

/// The text of the element whose `id` is given, roughly (the next 400 bytes).
fn near<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in page"));
    let mut end = (at + 400).min(body.len());
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[at..end]
}

#[tokio::test]
async fn every_work_page_answers_200_with_its_content() {
    let app = app();
    let (g, gp) = group(&app);
    // Another office comments with a mention of this one and asks it for a review.
    let other = Replica::in_memory("caue-15".parse().unwrap());
    sync(&app.replica, &other);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    other
        .comment(
            &Subject::Resource(app.ecole),
            &NewComment {
                parent: None,
                author: "Léa".into(),
                text: "Belle fiche, @caue-63 : il manque le coût ?".into(),
            },
            &mut rng,
            atelier_core::clock::now_ms(),
        )
        .unwrap();
    other
        .request_review(
            &app.ecole,
            "caue-63",
            "Léa",
            "Merci de relire",
            &mut rng,
            atelier_core::clock::now_ms(),
        )
        .unwrap();
    sync(&other, &app.replica);
    let task = format!("{gp}/taches/t1");
    let ecole = page_of(&app.ecole);
    for (uri, expect) in [
        ("/groupes".to_string(), "Massif central"),
        ("/groupes".into(), "Créer un groupe"),
        (gp.clone(), "Bâtir avec le territoire"),
        (gp.clone(), "Habiter le Massif central"),
        (gp.clone(), "Montrer ce qui se construit"),
        (gp.clone(), "Construire avec la terre"),
        (gp.clone(), "Le pisé, l'adobe"),
        (gp.clone(), "École en pisé"),
        (gp.clone(), "Élus"),
        (gp.clone(), "artisans du bâti ancien"),
        (gp.clone(), "CAUE du Cantal"),
        (gp.clone(), "0 % du plan de charge fait"),
        (format!("{gp}/reglages"), "Ajouter un thème"),
        (format!("{gp}/reglages"), "Terre crue"),
        (format!("{gp}/reglages"), "Approbation exigée"),
        (format!("{gp}/plan"), "Rédiger la fiche de l'école"),
        (format!("{gp}/plan"), "mars 2020"),
        (format!("{gp}/plan"), "en retard"),
        (format!("{gp}/plan"), "Ajouter une tâche"),
        (
            format!("{gp}/plan?bureau=caue-15"),
            "Seules les tâches de CAUE du Cantal",
        ),
        (task.clone(), "Paul"),
        (task.clone(), "Discussion"),
        (ecole.clone(), "Relecture demandée à"),
        (ecole.clone(), "Approuver"),
        (ecole.clone(), "Renvoyer avec un commentaire"),
        (
            ecole.clone(),
            "<mark class=\"mention\" title=\"CAUE du Puy-de-Dôme\">@caue-63</mark>",
        ),
        (ecole.clone(), "Massif central"),
        ("/a-relire".into(), "Merci de relire"),
        ("/pour-vous".into(), "il manque le coût"),
        (
            "/pour-vous".into(),
            "Relectures demandées à votre office (1)",
        ),
        ("/nouveautes".into(), "CAUE du Cantal"),
        ("/nouveautes".into(), "relecture demandée"),
        (
            "/nouveautes".into(),
            "« Belle fiche, @caue-63 : il manque le coût ? »",
        ),
        ("/nouveautes".into(), "Marquer comme lu"),
        ("/lexique".into(), "Plan de charge"),
        ("/lexique".into(), "Ligne éditoriale"),
    ] {
        let a = get(&app, &uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
        assert!(a.body.contains(expect), "{uri} lacks {expect}");
    }
    // The header counts on every page: one review and one mention for this office; news.
    let home = get(&app, "/").await;
    assert_eq!(header_count(&home.body, "for_you"), Some(2));
    assert!(
        home.body.contains(" : 2 éléments"),
        "worded for screen readers"
    );
    assert!(header_count(&home.body, "news").is_some_and(|n| n >= 2));
    let _ = g;
}

#[tokio::test]
async fn bad_task_and_comment_input_is_refused_next_to_the_field_nothing_saved() {
    let app = app();
    let (g, gp) = group(&app);
    let plan = format!("{gp}/plan");
    let outside = post_form(
        &app,
        &plan,
        &[
            ("title", "Tâche du Lot"),
            ("office", "caue-46"),
            ("due", ""),
        ],
    )
    .await;
    assert_eq!(outside.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&outside.body, "nouvelle-tache-office-erreur").contains("n'est pas membre"));
    assert!(
        outside.body.contains("value=\"Tâche du Lot\""),
        "title kept"
    );
    assert!(
        outside.body.contains("<option value=\"caue-46\" selected"),
        "office kept"
    );
    let not_a_date = post_form(
        &app,
        &plan,
        &[
            ("title", "Relire"),
            ("office", "caue-15"),
            ("due", "31 février"),
        ],
    )
    .await;
    assert_eq!(not_a_date.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&not_a_date.body, "nouvelle-tache-due-erreur").contains("n'est pas une date"));
    assert!(
        not_a_date.body.contains("value=\"31 février\""),
        "date kept"
    );
    assert_eq!(
        app.replica.group(&g).unwrap().tasks.len(),
        1,
        "no task added"
    );

    let ecole = page_of(&app.ecole);
    let long = "é".repeat(atelier_core::work::MAX_COMMENT_CHARS + 1);
    let too_long = post_form(
        &app,
        &format!("{ecole}/commentaires"),
        &[("action", "ajouter"), ("author", "Marie"), ("text", &long)],
    )
    .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&too_long.body, "commentaire-text-erreur").contains("au plus 5"));
    let unknown = post_form(
        &app,
        &format!("{ecole}/commentaires"),
        &[
            ("action", "ajouter"),
            ("author", "Marie"),
            ("text", "Voir avec @caue-999"),
        ],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&unknown.body, "commentaire-text-erreur").contains("ne désigne aucun bureau"));
    assert!(
        unknown.body.contains(">Voir avec @caue-999</textarea>"),
        "text kept"
    );
    assert!(unknown.body.contains("value=\"Marie\""), "name kept");
    assert!(
        app.replica
            .thread(&Subject::Resource(app.ecole))
            .unwrap()
            .is_none(),
        "nothing saved"
    );

    let task_comment = post_form(
        &app,
        &format!("{gp}/taches/t1/commentaires"),
        &[("action", "ajouter"), ("text", "@caue-7777 ?")],
    )
    .await;
    assert_eq!(task_comment.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&task_comment.body, "commentaire-text-erreur").contains("ne désigne aucun bureau"));

    let nameless = post_form(&app, "/groupes", &[("name", " "), ("slogan", "Sans nom")]).await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&nameless.body, "nouveau-groupe-name-erreur").contains("obligatoire"));
    assert!(nameless.body.contains("value=\"Sans nom\""));
    assert_eq!(app.replica.groups().unwrap().len(), 1, "no group created");

    let no_theme_value = post_form(
        &app,
        &format!("{gp}/reglages"),
        &[
            ("formulaire", "theme"),
            ("theme_label", ""),
            ("theme_explanation", "x"),
        ],
    )
    .await;
    assert_eq!(no_theme_value.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&no_theme_value.body, "theme-theme_label-erreur").contains("obligatoire"));
    let no_member = post_form(
        &app,
        &format!("{gp}/reglages"),
        &[("formulaire", "membres"), ("members", " ")],
    )
    .await;
    assert_eq!(no_member.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&no_member.body, "membres-members-erreur").contains("bureau à ajouter"));
    let bad_member = post_form(
        &app,
        &format!("{gp}/reglages"),
        &[("formulaire", "membres"), ("members", "caue-999")],
    )
    .await;
    assert_eq!(bad_member.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&bad_member.body, "membres-members-erreur").contains("n'est pas un bureau"));
    assert!(bad_member.body.contains("value=\"caue-999\""));
    assert_eq!(
        app.replica.group(&g).unwrap().members,
        ["caue-15", "caue-63"]
    );

    // Publishing from the resource form is held to the group's rule too, next to « État ».
    let publish = post_form(
        &app,
        &format!("{ecole}/modifier"),
        &[
            ("status", "publie"),
            ("title", "École en pisé"),
            ("kind", "realisation"),
            ("office", "caue-63"),
        ],
    )
    .await;
    assert_eq!(publish.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&publish.body, "champ-status-erreur").contains("approbation"));
}

#[tokio::test]
async fn forms_create_a_group_add_and_move_a_task_and_discuss_it() {
    let app = app();
    let created = post_form(
        &app,
        "/groupes",
        &[
            ("name", "Terres du Massif"),
            ("members", "caue-15, caue-43"),
            ("publics", "elus"),
            ("publics_own", "bailleurs sociaux"),
            ("approval_required", "1"),
            ("line", "Notre ligne."),
        ],
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let gp = created.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let g = app.replica.resolve_group("Terres du Massif").unwrap();
    let group = app.replica.group(&g).unwrap();
    assert_eq!(group.members, ["caue-15", "caue-43", "caue-63"]);
    assert_eq!(group.publics, ["bailleurs sociaux", "elus"]);

    let theme = post_form(
        &app,
        &format!("{gp}/reglages"),
        &[
            ("formulaire", "theme"),
            ("theme_label", "Construire avec la terre"),
            ("theme_explanation", "Le pisé et la bauge."),
            ("theme_values", "sectors:terre"),
        ],
    )
    .await;
    assert_eq!(theme.status, StatusCode::SEE_OTHER, "{}", theme.body);
    let home = get(&app, &gp).await;
    assert!(
        home.body.contains("École en pisé"),
        "the resource is under the theme"
    );

    let added = post_form(
        &app,
        &format!("{gp}/plan"),
        &[
            ("title", "Photos du chantier"),
            ("office", "caue-43"),
            ("person", "Jeanne"),
            ("due", "31/03/2027"),
            ("resource_ref", "ev-1"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let task = app.replica.group(&g).unwrap().tasks[0].clone();
    assert_eq!(task.due.as_deref(), Some("2027-03-31"));
    assert_eq!(task.resources, [app.ecole]);
    let moved = post_form(
        &app,
        &format!("{gp}/taches/{}/etat", task.id),
        &[("status", "en_cours"), ("retour", "plan")],
    )
    .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.replica.group(&g).unwrap().tasks[0].status,
        atelier_core::work::group::TaskStatus::EnCours
    );

    let said = post_form(
        &app,
        &format!("{gp}/taches/{}/commentaires", task.id),
        &[
            ("action", "ajouter"),
            ("author", "Marie Léa"),
            ("text", "On s'en charge, @caue-43 ?"),
        ],
    )
    .await;
    assert_eq!(said.status, StatusCode::SEE_OTHER, "{}", said.body);
    let cookie = said.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("nom_auteur=Marie+L%C3%A9a;"), "{cookie}");
    let thread = app
        .replica
        .thread(&Subject::Task {
            group: g,
            task: task.id.clone(),
        })
        .unwrap()
        .unwrap();
    let c = thread.comments[0].id.clone();
    let edited = post_form(
        &app,
        &format!("{gp}/taches/{}/commentaires", task.id),
        &[
            ("action", "modifier"),
            ("comment", &c),
            ("text", "On s'en charge."),
        ],
    )
    .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER);
    let page = get(&app, &format!("{gp}/taches/{}", task.id)).await;
    assert!(page.body.contains("modifié") && page.body.contains("Versions précédentes (1)"));
    assert!(page.body.contains("Marie Léa"));
    let deleted = post_form(
        &app,
        &format!("{gp}/taches/{}/commentaires", task.id),
        &[("action", "supprimer"), ("comment", &c)],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let page = get(&app, &format!("{gp}/taches/{}", task.id)).await;
    assert!(page.body.contains("commentaire supprimé"));
}

#[tokio::test]
async fn review_forms_ask_publish_and_refuse_in_french() {
    let app = app();
    let (_, _) = group(&app);
    let ecole = page_of(&app.ecole);
    let refused = post_form(
        &app,
        &format!("{ecole}/relecture"),
        &[("decision", "publier")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = near(&refused.body, "publication-erreur");
    assert!(
        message.contains("demande l'approbation d'un autre bureau"),
        "{message}"
    );
    let to_self = post_form(
        &app,
        &format!("{ecole}/relecture"),
        &[("decision", "demander"), ("to", "caue-63")],
    )
    .await;
    assert_eq!(to_self.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(near(&to_self.body, "relecture-demande-to-erreur").contains("un autre bureau"));
    let asked = post_form(
        &app,
        &format!("{ecole}/relecture"),
        &[
            ("decision", "demander"),
            ("to", "caue-15"),
            ("author", "Marie"),
        ],
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    assert_eq!(
        app.replica.listing(&app.ecole).unwrap().unwrap().status,
        "a_relire"
    );
    let page = get(&app, &ecole).await;
    assert!(
        page.body.contains("Relecture demandée à"),
        "the panel says who was asked"
    );
    // Only the office asked approves: here, a French 403.
    let not_mine = post_form(
        &app,
        &format!("{ecole}/relecture"),
        &[("decision", "approuver")],
    )
    .await;
    assert_eq!(not_mine.status, StatusCode::FORBIDDEN);
    assert!(
        not_mine.body.contains("n'attend pas de relecture"),
        "{}",
        not_mine.body
    );
}

#[tokio::test]
async fn a_non_member_office_reads_the_group_and_is_told_why_it_cannot_change_it() {
    let app = app();
    let other = Replica::in_memory("caue-15".parse().unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let g = other
        .create_group(
            &NewGroup {
                name: "Cantal seul".into(),
                approval_required: false,
                ..NewGroup::default()
            },
            &mut rng,
            NOW,
        )
        .unwrap();
    sync(&other, &app.replica);
    let gp = format!("/groupes/{}", g.to_base58());
    for uri in [gp.clone(), format!("{gp}/reglages"), format!("{gp}/plan")] {
        let a = get(&app, &uri).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("n'est pas membre de ce groupe"), "{uri}");
        assert!(
            !a.body.contains("name=\"formulaire\""),
            "{uri} offers a settings form"
        );
        assert!(
            !a.body.contains("Ajouter une tâche"),
            "{uri} offers the task form"
        );
    }
    let refused = post_form(&app, &format!("{gp}/plan"), &[("title", "Intrusion")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused
        .body
        .contains("seuls ses membres peuvent le modifier"));
    assert!(app.replica.group(&g).unwrap().tasks.is_empty());
}

#[tokio::test]
async fn marking_news_read_empties_quoi_de_neuf_and_its_count() {
    let app = app();
    let other = Replica::in_memory("caue-15".parse().unwrap());
    sync(&app.replica, &other);
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    other
        .edit(
            &app.ecole,
            &[Edit::Set {
                field: "title".into(),
                value: json!("École en pisé de Thiers"),
            }],
            // Seconds before « Marquer comme lu »: news compares whole seconds.
            atelier_core::clock::now_ms() - 5000,
        )
        .unwrap();
    let _ = &mut rng;
    sync(&other, &app.replica);
    let before = get(&app, "/nouveautes").await;
    assert!(
        before.body.contains("fiche modifiée") && before.body.contains("Titre"),
        "{}",
        before.body
    );
    assert_eq!(header_count(&before.body, "news"), Some(1));
    let read = post_form(&app, "/nouveautes", &[]).await;
    assert_eq!(read.status, StatusCode::SEE_OTHER);
    let after = get(&app, "/nouveautes").await;
    assert!(after.body.contains("Rien de nouveau"), "{}", after.body);
    assert_eq!(header_count(&after.body, "news"), None);
}

#[tokio::test]
async fn the_servers_counts_task_pushes_new_counts_to_open_pages() {
    use futures::StreamExt;
    let app = app();
    let req = Request::builder()
        .uri("/events")
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(req).await.unwrap();
    let mut stream = response.into_body().into_data_stream();
    let worker = tokio::spawn(crate::counts::keep_current(app.state.clone()));
    // Reads events until one `counts` event says `news` is `n`.
    let mut until_news = async |n: usize| {
        let wanted = format!("\"news\":{n},");
        loop {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                .await
                .expect("no counts event within 10 s")
                .unwrap()
                .unwrap();
            let text = String::from_utf8(chunk.to_vec()).unwrap();
            if text.contains("event: counts") && text.contains(&wanted) {
                return text;
            }
        }
    };
    until_news(0).await;
    let other = Replica::in_memory("caue-15".parse().unwrap());
    sync(&app.replica, &other);
    other
        .edit(
            &app.ecole,
            &[Edit::Set {
                field: "year".into(),
                value: json!(2017),
            }],
            atelier_core::clock::now_ms(),
        )
        .unwrap();
    sync(&other, &app.replica);
    let pushed = until_news(1).await;
    assert!(pushed.contains("\"for_you\":0"), "{pushed}");
    // Pages of a server with the task read the cache: no computation on the request path.
    let page = get(&app, "/").await;
    assert_eq!(header_count(&page.body, "news"), Some(1));
    let _ = app.state.0.shutdown_tx.send(true);
    worker.await.unwrap();
}
