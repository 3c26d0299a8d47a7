//! Router-level tests of publications numériques: the editor's forms (create, add, move,
//! remove, refusals drawn again with what was typed), the preview exactly as exported, the
//! downloads, « Régénérer », the local API, and exports byte-identical on two replicas.

use atelier_core::replica::NewMedia;
use atelier_core::work::publication::{NewPublication, PublicationEdit, SectionContent};

use super::*;

const NOW: i64 = 1_780_000_000_000;

/// The location of a redirect.
fn location(a: &Answer) -> String {
    a.headers[header::LOCATION].to_str().unwrap().to_string()
}

fn sections(app: &App, id: &DocumentId) -> Vec<String> {
    let p = app.replica.publication(id).unwrap();
    p.sections
        .into_iter()
        .map(|s| s.content.kind().to_string())
        .collect()
}

#[tokio::test]
async fn the_editor_creates_adds_moves_and_removes_sections_without_script() {
    let app = app();
    let empty = post_form(
        &app,
        "/publications",
        &[("title", " "), ("subtitle", "Gardé")],
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty.body.contains("Rien n'a été enregistré") && empty.body.contains("value=\"Gardé\"")
    );
    let created = post_form(
        &app,
        "/publications",
        &[
            ("title", "Bâtir en terre"),
            ("subtitle", "Le Massif central"),
            ("introduction", "Une terre, des savoir-faire."),
        ],
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let editor = location(&created);
    let id: DocumentId = editor
        .trim_start_matches("/publications/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let page = get(&app, &editor).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("La publication a été créée") && page.body.contains("Bâtir en terre")
    );
    let base = editor.split('?').next().unwrap().to_string();
    let add = |pairs: Vec<(&'static str, &'static str)>| {
        let app = &app;
        let uri = format!("{base}/sections");
        async move { post_form(app, &uri, &pairs).await }
    };
    // A resource named by the start of its title, a text, a map.
    let r = add(vec![("formulaire", "ajout-fiche"), ("fiche", "école en")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = add(vec![
        ("formulaire", "ajout-texte"),
        ("titre", "Pour finir"),
        ("texte", "Merci."),
    ])
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = add(vec![
        ("formulaire", "ajout-carte"),
        ("titre", "Où voir"),
        ("carte", "kind=realisation"),
    ])
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(sections(&app, &id), ["resource", "text", "map"]);
    // Refusals: unknown resource, a filter key the list does not have; nothing added.
    let bad = add(vec![("formulaire", "ajout-fiche"), ("fiche", "Cathédrale")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("Aucune fiche « Cathédrale »")
            && bad.body.contains("value=\"Cathédrale\"")
    );
    let bad = add(vec![
        ("formulaire", "ajout-carte"),
        ("carte", "couleur=bleu"),
    ])
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("n'est pas un filtre de la liste"),
        "{}",
        bad.body
    );
    assert_eq!(sections(&app, &id).len(), 3);
    // « Monter » on the map: its form carries the index above.
    let page = get(&app, &base).await;
    assert!(
        page.body
            .contains(">Monter<span class=\"visually-hidden\"> « Où voir »</span>"),
        "{}",
        page.body
    );
    let map_id = app.replica.publication(&id).unwrap().sections[2].id.clone();
    let moved = post_form(
        &app,
        &format!("{base}/sections/{map_id}/deplacer"),
        &[("index", "0")],
    )
    .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    assert_eq!(sections(&app, &id), ["map", "resource", "text"]);
    let down = post_form(
        &app,
        &format!("{base}/sections/{map_id}/deplacer"),
        &[("index", "2")],
    )
    .await;
    assert_eq!(down.status, StatusCode::SEE_OTHER);
    assert_eq!(sections(&app, &id), ["resource", "text", "map"]);
    // The map is the atlas; its marker leads to the resource's own section of the page.
    let preview = get(&app, &format!("{base}/apercu")).await;
    let resource_section = app.replica.publication(&id).unwrap().sections[0].id.clone();
    assert!(
        preview
            .body
            .contains(&format!("<title id=\"carte-{map_id}-titre\">")),
        "{}",
        preview.body
    );
    assert!(preview
        .body
        .contains(&format!("href=\"#s-{resource_section}\"")));
    let gone = post_form(&app, &format!("{base}/sections/{map_id}/retirer"), &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(sections(&app, &id), ["resource", "text"]);
    // The publication is a resource of kind publication, listed and linking back.
    let res = app.replica.publication(&id).unwrap().resource.unwrap();
    let list = get(&app, "/?kind=publication").await;
    assert!(list.body.contains("Bâtir en terre"), "{}", list.body);
    let show = get(&app, &page_of(&res)).await;
    assert!(
        show.body
            .contains("Cette fiche est une publication assemblée")
            && show.body.contains(&format!("{base}/apercu"))
    );
}

#[tokio::test]
async fn the_preview_is_the_export_and_regenerate_says_what_changed() {
    let app = app();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let added = app
        .replica
        .add_media(
            &app.ecole,
            vec![NewMedia {
                name: "facade.jpg".into(),
                bytes: super::media::jpeg(400, 300),
                credit: Some("© CAUE 63".into()),
                alt: Some("La façade en pisé, côté cour".into()),
                ..Default::default()
            }],
            NOW,
        )
        .unwrap();
    let photo = added[0].media.clone();
    let id = app
        .replica
        .create_publication(
            &NewPublication {
                title: "Bâtir en terre".into(),
                ..NewPublication::default()
            },
            &mut rng,
            NOW,
        )
        .unwrap();
    let edits = [
        PublicationEdit::AddSection {
            id: "s1".into(),
            section: SectionContent::Resource {
                resource: app.ecole,
            },
            index: None,
        },
        PublicationEdit::Cover(Some(atelier_core::work::publication::Cover {
            resource: app.ecole,
            hash: photo.hash,
        })),
    ];
    app.replica.edit_publication(&id, &edits, NOW).unwrap();
    let base = format!("/publications/{}", id.to_base58());
    let preview = get(&app, &format!("{base}/apercu")).await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview
        .body
        .starts_with("<!DOCTYPE html><html lang=\"fr\">"));
    assert!(preview
        .body
        .contains("alt=\"La façade en pisé, côté cour\""));
    assert!(preview.body.contains("@page { size: A4;") && !preview.body.contains("<script"));
    assert!(
        preview.body.contains("<main id=\"contenu\">")
            && preview.body.contains("aria-label=\"Sommaire\"")
    );
    assert_eq!(
        preview.headers[header::CONTENT_SECURITY_POLICY],
        crate::pages::work::publications::PREVIEW_CSP
    );
    // The exported file is the preview with its images inlined.
    let html = post_form(&app, &format!("{base}/exporter"), &[("format", "html")]).await;
    assert_eq!(html.status, StatusCode::OK);
    assert_eq!(
        html.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"batir-en-terre.html\""
    );
    let display = photo.display.unwrap().hash.to_hex();
    assert!(html.body.contains("src=\"data:image/jpeg;base64,/9j/"));
    assert_eq!(
        strip_srcs(&html.body),
        strip_srcs(&preview.body),
        "same document but for image addresses"
    );
    assert!(preview.body.contains(&format!("/media/{display}")));
    let regen = get(&app, &format!("{base}/regenerer")).await;
    assert!(
        regen.body.contains("Rien n'a changé depuis"),
        "{}",
        regen.body
    );
    let zip = post_form(&app, &format!("{base}/exporter"), &[("format", "zip")]).await;
    assert_eq!(zip.headers[header::CONTENT_TYPE], "application/zip");
    // A change to the resource shows in « Régénérer ».
    let edit = Edit::Set {
        field: "summary".into(),
        value: json!("Une école en terre crue, agrandie."),
    };
    app.replica.edit(&app.ecole, &[edit], NOW + 1000).unwrap();
    let regen = get(&app, &format!("{base}/regenerer")).await;
    assert!(
        regen.body.contains("Fiches modifiées (1)") && regen.body.contains("École en pisé"),
        "{}",
        regen.body
    );
}

/// Every `src="…"` emptied, so two renderings with different image addresses compare.
fn strip_srcs(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find("src=\"") {
        out.push_str(&rest[..i + 5]);
        let after = &rest[i + 5..];
        let end = after.find('"').unwrap();
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_api_answers_the_cli_and_exports_are_the_same_on_two_synced_replicas() {
    let app = app();
    app.replica
        .add_media(
            &app.ecole,
            vec![NewMedia {
                name: "facade.jpg".into(),
                bytes: super::media::jpeg(320, 200),
                credit: Some("© CAUE 63".into()),
                alt: Some("La façade".into()),
                ..Default::default()
            }],
            NOW,
        )
        .unwrap();
    let created = api(
        &app,
        Method::POST,
        "/api/publications",
        json!({"title": "Halles et marchés"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let added = api(
        &app,
        Method::POST,
        "/api/publications/halles/sections",
        json!({"fiche": "ev-1"}),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let bad = api(
        &app,
        Method::POST,
        "/api/publications/halles/sections",
        json!({"fiche": "ev-1", "texte": "x"}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"]
        .as_str()
        .unwrap()
        .contains("une seule chose"));
    // A group's theme, named as people say it.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let g = app
        .replica
        .create_group(
            &atelier_core::work::group::NewGroup {
                name: "Massif central".into(),
                ..Default::default()
            },
            &mut rng,
            NOW,
        )
        .unwrap();
    let theme = atelier_core::work::group::Theme {
        id: "terre".into(),
        label: "Construire avec la terre".into(),
        explanation: "Le pisé et la bauge.".into(),
        values: vec!["sectors:terre".into()],
        created_at: 0,
    };
    app.replica
        .edit_group(
            &g,
            &[atelier_core::work::group::GroupEdit::PutTheme(theme)],
            NOW,
        )
        .unwrap();
    let themed = api(
        &app,
        Method::POST,
        "/api/publications/halles/sections",
        json!({"theme": "massif central:construire avec la terre"}),
    )
    .await;
    assert_eq!(themed.status, StatusCode::CREATED, "{}", themed.body);
    let view = api(&app, Method::GET, "/api/publications/halles", Value::Null).await;
    assert_eq!(
        view.json()["headings"],
        json!(["École en pisé", "Construire avec la terre"])
    );
    let pid = app.replica.resolve_publication("halles").unwrap();
    let page = crate::publication::render(
        &app.replica.assemble(&pid).unwrap(),
        &crate::publication::app_src,
    )
    .into_string();
    assert!(
        page.contains("Thème du groupe de travail « Massif central »") && page.contains("1 fiche"),
        "{page}"
    );
    let exported = api(
        &app,
        Method::POST,
        "/api/publications/halles/export",
        Value::Null,
    )
    .await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    assert_eq!(exported.json()["files"][0]["path"], "index.html");
    let since = api(
        &app,
        Method::GET,
        "/api/publications/halles/since",
        Value::Null,
    )
    .await;
    assert!(since.json()["export"].is_object());

    // Another office's replica, synced, exports the very same bytes.
    let other = Replica::in_memory("caue-15".parse().unwrap());
    let mut ids = Vec::new();
    app.replica
        .store()
        .for_each_heads(&mut |id, _| {
            ids.push(id);
            true
        })
        .unwrap();
    for id in ids {
        let bytes = app.replica.store().saved(&id).unwrap().unwrap();
        other.store().apply_bytes(&id, &bytes).unwrap();
    }
    let pid = app.replica.resolve_publication("halles").unwrap();
    // Blobs travel apart from documents: the other office receives them too.
    for p in crate::publication::pictures(&app.replica.assemble(&pid).unwrap()) {
        let bytes = app.replica.media_blob(&p.hash).unwrap().unwrap();
        other.import_blob(&p.hash, &bytes).unwrap();
    }
    let blob_a = |h: &atelier_core::media::BlobHash| app.replica.media_blob(h).ok().flatten();
    let blob_b = |h: &atelier_core::media::BlobHash| other.media_blob(h).ok().flatten();
    for single in [false, true] {
        let a = crate::publication::export(&app.replica.assemble(&pid).unwrap(), &blob_a, single);
        let b = crate::publication::export(&other.assemble(&pid).unwrap(), &blob_b, single);
        assert_eq!(a, b);
        assert_eq!(
            a.len(),
            if single { 1 } else { 2 },
            "the page and its photo"
        );
    }
}
