//! Router-level tests: every route through `tower::ServiceExt::oneshot`, good and bad input.

mod atlas;
mod media;
mod opendata;
mod publication;
mod work;

use std::sync::Arc;

use atelier_core::document::Edit;
use atelier_core::replica::Replica;
use atelier_core::{DocumentId, Resource};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use rand::SeedableRng;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{router, AppState, WebConfig, MAX_BODY_BYTES};

struct App {
    state: AppState,
    replica: Arc<Replica>,
    ecole: DocumentId,
    /// The session cookie (`name=value`), got on first use by following a login link.
    cookie: tokio::sync::OnceCell<String>,
}

impl App {
    fn new(state: AppState, replica: Arc<Replica>, ecole: DocumentId) -> Self {
        Self {
            state,
            replica,
            ecole,
            cookie: Default::default(),
        }
    }

    /// The session cookie, as a browser gets it: by opening a one-time login link.
    async fn cookie(&self) -> String {
        self.cookie
            .get_or_init(|| async {
                let link = self.state.login_path("/");
                let a = get_as(self, &link, None).await;
                assert_eq!(a.status, StatusCode::SEE_OTHER, "login: {}", a.body);
                set_cookie(&a)
            })
            .await
            .clone()
    }
}

/// The `name=value` of the cookie an answer sets.
fn set_cookie(a: &Answer) -> String {
    let set = a
        .headers
        .get(header::SET_COOKIE)
        .expect("no cookie set")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_string()
}

/// A GET with this cookie only (or none), as a browser's navigation sends it (no `Origin`).
async fn get_as(app: &App, uri: &str, cookie: Option<&str>) -> Answer {
    let mut req = Request::builder()
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8063");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    answer(
        router(app.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap(),
    )
    .await
}

async fn answer(response: axum::response::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn app() -> App {
    let replica = Arc::new(Replica::in_memory("caue-63".parse().unwrap()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let ecole = replica
        .create(
            &Resource::from_json(&json!({"ref":"ev-1","kind":"realisation","title":"École en pisé","office":"caue-63","summary":"Une école en terre crue.","description":"Premier paragraphe.\n\nSecond.","themes":["equipements_publics"],"sectors":["terre"],"location":{"commune":"Thiers","departement":"63","lat":45.85,"lon":3.55},"year":2016,"cost_eur_ht":2600000}))
                .unwrap(),
            &mut rng,
            1_700_000_000_000,
        )
        .unwrap();
    replica
        .create(
            &Resource::from_json(&json!({"kind":"outil","title":"Guide de la lauze","office":"caue-15","sectors":["pierre"]})).unwrap(),
            &mut rng,
            1_700_000_000_000,
        )
        .unwrap();
    let state = AppState::new(replica.clone(), &WebConfig::default());
    App::new(state, replica, ecole)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

enum Auth {
    /// No credentials: someone who has not logged in.
    None,
    /// The bearer token of `server.json` (the CLI).
    Token,
    /// The session cookie alone, as a navigation sends it.
    Browse,
    /// The session cookie and the page's own `Origin`, as a form or the pages' script sends them.
    Page,
}

async fn call(
    app: &App,
    method: Method,
    uri: &str,
    auth: Auth,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8063");
    match auth {
        Auth::None => {}
        Auth::Token => {
            req = req.header(
                header::AUTHORIZATION,
                format!("Bearer {}", app.state.api_token()),
            )
        }
        Auth::Browse => req = req.header(header::COOKIE, app.cookie().await),
        Auth::Page => {
            req = req
                .header(header::COOKIE, app.cookie().await)
                .header(header::ORIGIN, "http://127.0.0.1:8063")
        }
    }
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    answer(
        router(app.state.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap(),
    )
    .await
}

/// A page as a logged-in browser gets it.
async fn get(app: &App, uri: &str) -> Answer {
    call(app, Method::GET, uri, Auth::Browse, None, Body::empty()).await
}

async fn api(app: &App, method: Method, uri: &str, body: Value) -> Answer {
    call(
        app,
        method,
        uri,
        Auth::Token,
        Some("application/json"),
        body.to_string(),
    )
    .await
}

async fn post_form(app: &App, uri: &str, pairs: &[(&str, &str)]) -> Answer {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    call(
        app,
        Method::POST,
        uri,
        Auth::Page,
        Some("application/x-www-form-urlencoded"),
        body.join("&"),
    )
    .await
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page_of(id: &DocumentId) -> String {
    format!("/ressources/{}", id.to_base58())
}

#[tokio::test]
async fn every_page_renders_in_french_once_logged_in() {
    let app = app();
    let p = page_of(&app.ecole);
    let list = get(&app, "/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("École en pisé") && list.body.contains("Guide de la lauze"));
    assert!(list.body.contains("Filière de construction") && list.body.contains("Terre crue"));
    assert!(!list.headers.contains_key(header::SET_COOKIE));
    for (uri, expect) in [
        (p.clone(), "Équipements publics"),
        (p.clone(), "2\u{202f}600\u{202f}000 € HT"),
        (p.clone(), "Licence Ouverte / Etalab"),
        (format!("{p}/modifier"), "Enregistré automatiquement"),
        (format!("{p}/historique"), "création de la fiche"),
        (format!("{p}/supprimer"), "Oui, supprimer cette fiche"),
        ("/ressources/nouvelle".into(), "sensibiliser un public"),
        ("/ressources/nouvelle?type=action".into(), "Type d'action"),
        ("/lexique".into(), "Action de médiation"),
        ("/?kind=outil".into(), "Guide de la lauze"),
        ("/?q=pise".into(), "École en pisé"),
        ("/?supprimees=1".into(), "Fiches supprimées"),
        ("/ressources/ev-1".into(), "École en pisé"),
    ] {
        let a = get(&app, &uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert!(a.body.contains(expect), "{uri} lacks {expect}");
        assert!(
            a.body.contains("Synchronisation non configurée"),
            "{uri} lacks the sync indicator"
        );
    }
    assert!(!get(&app, "/?kind=outil")
        .await
        .body
        .contains("École en pisé"));
    for asset in [
        "/assets/app.css",
        "/assets/app.js",
        "/assets/departements.geojson",
    ] {
        assert_eq!(get(&app, asset).await.status, StatusCode::OK, "{asset}");
    }
}

#[tokio::test]
async fn unknown_ids_and_pages_get_a_french_404_page() {
    let app = app();
    for uri in [
        "/ressources/nimporte-quoi",
        "/ressources/nimporte-quoi/historique",
        "/pas-de-page",
        "/assets/x.js",
    ] {
        let a = get(&app, uri).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{uri}"
        );
        assert!(a.body.contains("Revenir à la liste des fiches"), "{uri}");
    }
    assert!(get(&app, "/ressources/nimporte-quoi")
        .await
        .body
        .contains("Aucune fiche ne correspond à « nimporte-quoi »"));
    let version = get(&app, &format!("{}/version/00ff", page_of(&app.ecole))).await;
    assert_eq!(version.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_form_answers_422_with_the_message_next_to_the_field() {
    let app = app();
    let a = post_form(
        &app,
        "/ressources/nouvelle",
        &[
            ("kind", "realisation"),
            ("title", " "),
            ("office", "caue-63"),
            ("year", "deux mille"),
            ("location.lat", "123"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    for (id, message) in [
        ("champ-title-erreur", "Obligatoire"),
        ("champ-year-erreur", "Une année"),
        ("champ-location-lat-erreur", "Latitude entre -90 et 90"),
    ] {
        let at = a
            .body
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id} in form"));
        assert!(
            a.body[at..at + 200].contains(message),
            "{id}: {}",
            &a.body[at..at + 200]
        );
    }
    assert!(
        a.body.contains("value=\"deux mille\""),
        "typed value shown again"
    );
    assert_eq!(
        app.replica.list(&Default::default()).unwrap().len(),
        2,
        "nothing created"
    );
}

#[tokio::test]
async fn forms_create_edit_delete_and_restore() {
    let app = app();
    let a = post_form(
        &app,
        "/ressources/nouvelle",
        &[
            ("kind", "action"),
            ("title", "Balade du pisé"),
            ("office", "caue-63"),
            ("action_type", "balade"),
            ("dates.start", "2024-05-01"),
            ("themes", "patrimoine"),
            ("themes", "paysage"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let location = a.headers[header::LOCATION].to_str().unwrap().to_string();
    let id: DocumentId = location
        .trim_start_matches("/ressources/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let created = app.replica.get(&id).unwrap().resource;
    assert_eq!(created.themes, ["patrimoine", "paysage"]);
    assert_eq!(created.dates.unwrap().start.as_deref(), Some("2024-05-01"));

    // The form is drawn, then another office changes the title; saving the form (status only)
    // keeps that title: only fields changed in the form are written.
    let form = get(&app, &format!("{}/modifier", page_of(&id))).await.body;
    let version = attr_after(&form, "name=\"version\"", "value");
    app.replica
        .edit(
            &id,
            &[Edit::Set {
                field: "title".into(),
                value: json!("Balade du pisé (reportée)"),
            }],
            1,
        )
        .unwrap();
    let a = post_form(
        &app,
        &format!("{}/modifier", page_of(&id)),
        &[
            ("version", &version),
            ("formulaire", "action"),
            ("texte_en_direct", "1"),
            ("kind", "action"),
            ("title", "Balade du pisé"),
            ("office", "caue-63"),
            ("status", "a_relire"),
            ("action_type", "balade"),
            ("dates.start", "2024-05-01"),
            ("themes", "patrimoine"),
            ("themes", "paysage"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let now = app.replica.get(&id).unwrap().resource;
    assert_eq!(now.status, "a_relire");
    assert_eq!(now.title, "Balade du pisé (reportée)");

    let bad = post_form(
        &app,
        &format!("{}/modifier", page_of(&id)),
        &[
            ("version", &version),
            ("formulaire", "action"),
            ("kind", "action"),
            ("title", ""),
            ("office", "caue-63"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("champ-title-erreur"));

    let a = post_form(&app, &format!("{}/supprimer", page_of(&id)), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(app.replica.get(&id).unwrap().deleted);
    let list = get(&app, a.headers[header::LOCATION].to_str().unwrap()).await;
    assert!(list.body.contains("Annuler la suppression"));
    assert!(get(&app, "/?supprimees=1")
        .await
        .body
        .contains("Balade du pisé"));
    let a = post_form(&app, &format!("{}/restaurer", page_of(&id)), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(!app.replica.get(&id).unwrap().deleted);
    let history = get(&app, &format!("{}/historique", page_of(&id)))
        .await
        .body;
    assert!(
        history.contains("suppression")
            && history.contains("restauration")
            && history.contains("État de la fiche")
    );
    let hash = app.replica.history(&id).unwrap()[0].hash.clone();
    let old = get(&app, &format!("{}/version/{hash}", page_of(&id))).await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(old.body.contains("ancienne version") && old.body.contains("Brouillon"));
    let a = post_form(&app, &format!("{}/version/{hash}", page_of(&id)), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let back = app.replica.get(&id).unwrap();
    assert_eq!(
        (
            back.resource.status.as_str(),
            back.resource.title.as_str(),
            back.deleted
        ),
        ("brouillon", "Balade du pisé", false)
    );
}

fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html.find(marker).unwrap();
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_string()
}

#[tokio::test]
async fn html_in_a_title_is_escaped_everywhere() {
    let app = app();
    let evil = "<script>alert('x')</script><b>gras</b>";
    let a = api(&app, Method::POST, "/api/resources", json!({"kind":"outil","title":evil,"office":"caue-63","summary":"<img src=x onerror=alert(1)>","description":"<iframe>"})).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let id: DocumentId = a.json()["id"].as_str().unwrap().parse().unwrap();
    for uri in [
        "/".to_string(),
        page_of(&id),
        format!("{}/modifier", page_of(&id)),
        format!("{}/historique", page_of(&id)),
    ] {
        let body = get(&app, &uri).await.body;
        assert!(
            !body.contains("<script>alert")
                && !body.contains("<b>gras")
                && !body.contains("<img src=x")
                && !body.contains("<iframe>"),
            "{uri} not escaped"
        );
        assert!(body.contains("&lt;script&gt;"), "{uri}");
    }
}

#[tokio::test]
async fn the_results_fragment_is_the_list_pages_facets_and_results_alone() {
    let app = app();
    let a = get(&app, "/fragments/resultats?q=pise&sector=terre").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    assert!(a.body.starts_with("<div id=\"facettes\">"), "{}", a.body);
    assert!(a.body.contains("<section id=\"resultats\""));
    assert!(!a.body.contains("<html") && !a.body.contains("<header"));
    assert!(a.body.contains("École en pisé") && !a.body.contains("Guide de la lauze"));
    assert!(a.body.contains("data-annonce=\"1 fiche trouvée\""));
    // The ticked box stays ticked, with the count of the current results.
    let terre = &a.body[a.body.find("id=\"f-sector-terre\"").unwrap()..];
    let terre = &terre[..terre.find("</label>").unwrap()];
    assert!(
        terre.contains("checked") && terre.contains("(1)"),
        "{terre}"
    );
    // The same renderer as the page: the page holds the very same blocks.
    let page = get(&app, "/?q=pise&sector=terre").await.body;
    assert!(page.contains(&a.body[..a.body.find("<section").unwrap()]));
    // Facet counts follow the text.
    let all = get(&app, "/fragments/resultats").await.body;
    assert!(all.contains("data-annonce=\"2 fiches trouvées\""));
    assert!(all.contains("id=\"f-kind-outil\"") && !a.body.contains("id=\"f-kind-outil\""));
    let none = get(&app, "/fragments/resultats?q=zzzz").await.body;
    assert!(
        none.contains("Aucune fiche ne correspond à « zzzz »"),
        "{none}"
    );
}

#[tokio::test]
async fn the_query_and_chosen_values_are_escaped_in_the_page_and_the_fragment() {
    let app = app();
    let q = "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E&kind=%3Cb%3Egras%3C%2Fb%3E";
    for uri in [q.to_string(), q.replacen('/', "/fragments/resultats", 1)] {
        let a = get(&app, &uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert!(
            !a.body.contains("<script>alert") && !a.body.contains("<b>gras"),
            "{uri} not escaped"
        );
        assert!(a.body.contains("&lt;b&gt;gras"), "{uri}");
    }
    let page = get(&app, q).await.body;
    assert!(page.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;\""));
    let fragment = get(&app, &q.replacen('/', "/fragments/resultats", 1))
        .await
        .body;
    assert!(fragment.contains("« &lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt; »"));
}

#[tokio::test]
async fn the_fragment_highlights_the_words_found_with_the_full_text_index() {
    let replica = Arc::new(Replica::in_memory("caue-63".parse().unwrap()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let ecole = replica
        .create(
            &Resource::from_json(&json!({"kind":"realisation","title":"École en pisé","office":"caue-63","summary":"Une école en terre crue, <b>unique</b>.","location":{"departement":"07"}})).unwrap(),
            &mut rng,
            1_700_000_000_000,
        )
        .unwrap();
    let search = crate::IndexedSearch::new(
        replica.clone(),
        atelier_core::search::SearchIndex::in_memory().unwrap(),
    )
    .unwrap();
    let config = WebConfig {
        search: Some(Arc::new(search)),
        ..WebConfig::default()
    };
    let state = AppState::new(replica.clone(), &config);
    let app = App::new(state, replica, ecole);
    let a = get(&app, "/fragments/resultats?q=terre").await;
    assert!(a.body.contains("<mark>terre</mark>"), "{}", a.body);
    assert!(!a.body.contains("<b>"), "{}", a.body);
    // A one-digit département number finds the resources located there.
    let a = get(&app, "/fragments/resultats?q=7").await;
    assert!(a.body.contains("École en pisé"), "{}", a.body);
}

#[tokio::test]
async fn a_large_search_backlog_is_taken_in_the_background_while_pages_answer() {
    let replica = Arc::new(Replica::in_memory("caue-63".parse().unwrap()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut first = None;
    for i in 0..12 {
        let v = json!({"kind":"outil","title":format!("Guide {i} du pisé"),"office":"caue-63","description":"La bauge et le torchis."});
        let id = replica
            .create(&Resource::from_json(&v).unwrap(), &mut rng, 0)
            .unwrap();
        first.get_or_insert(id);
    }
    let engine = crate::IndexedSearch::new_deferred(
        replica.clone(),
        atelier_core::search::SearchIndex::in_memory().unwrap(),
    )
    .unwrap();
    // Above 5 pending documents, the page does not wait for the index.
    let search = Arc::new(crate::search::CatchingUp::new(Arc::new(engine), 5));
    let config = WebConfig {
        search: Some(search.clone()),
        ..WebConfig::default()
    };
    let state = AppState::new(replica.clone(), &config);
    let app = App::new(state, replica, first.unwrap());
    let a = get(&app, "/?q=pisé").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body
            .contains("La recherche se met à jour : il lui reste 12 fiches à lire"),
        "{}",
        a.body
    );
    // From the listing meanwhile: titles match, descriptions do not yet.
    assert!(a.body.contains("(12 fiches)"), "{}", a.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while crate::search::SearchBackend::catching_up(&*search).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the catch-up never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let a = get(&app, "/?q=torchis").await;
    assert!(!a.body.contains("se met à jour"), "{}", a.body);
    assert!(
        a.body.contains("(12 fiches)"),
        "the descriptions are indexed: {}",
        a.body
    );
}

#[tokio::test]
async fn list_cards_come_from_the_listing_without_loading_documents() {
    let app = app();
    let before = get(&app, "/").await;
    // Its chunks gone, the document cannot be loaded: its card must not need it.
    let mut batch = atelier_core::store::Batch::default();
    batch.remove(atelier_core::store::keys::chunk_key(&app.ecole, 0));
    app.replica.store().kv().apply(batch).unwrap();
    assert!(app.replica.get(&app.ecole).is_err());
    let after = get(&app, "/").await;
    assert_eq!(after.status, StatusCode::OK);
    for shown in [
        "École en pisé",
        "Thiers (63)",
        "Une école en terre crue.",
        "(2 fiches)",
    ] {
        assert!(after.body.contains(shown), "{shown}: {}", after.body);
    }
    let cards = |html: &str| html[html.find("<ol class=\"cards\"").unwrap()..].to_string();
    assert_eq!(cards(&after.body), cards(&before.body));
}

#[tokio::test]
async fn every_page_but_the_list_has_the_search_box_in_its_header() {
    let app = app();
    let p = page_of(&app.ecole);
    for uri in [
        p.clone(),
        format!("{p}/modifier"),
        format!("{p}/historique"),
        format!("{p}/supprimer"),
        "/ressources/nouvelle".into(),
        "/lexique".into(),
        "/pas-de-page".into(),
    ] {
        let body = get(&app, &uri).await.body;
        let form = &body[body
            .find("<form class=\"header-search\" method=\"get\" action=\"/\" role=\"search\">")
            .unwrap_or_else(|| panic!("{uri} has no header search"))..];
        let form = &form[..form.find("</form>").unwrap()];
        assert!(
            form.contains("<label class=\"visually-hidden\" for=\"recherche\">Rechercher dans le corpus</label>")
                && form.contains("id=\"recherche\" name=\"q\""),
            "{uri}: {form}"
        );
    }
    // The list page is the search page: one box, in its filter panel.
    for uri in ["/", "/?q=pise", "/?supprimees=1"] {
        let body = get(&app, uri).await.body;
        assert_eq!(body.matches("type=\"search\"").count(), 1, "{uri}");
        assert!(!body.contains("header-search"), "{uri}");
    }
    // Where the header box leads: the list, searched.
    let found = get(&app, "/?q=lauze").await.body;
    assert!(found.contains("Guide de la lauze") && !found.contains("École en pisé"));
}

#[tokio::test]
async fn mutating_pages_need_the_session_and_the_same_origin() {
    let app = app();
    let p = format!("{}/supprimer", page_of(&app.ecole));
    let a = call(&app, Method::POST, &p, Auth::None, None, Body::empty()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("rechargez la page"));
    let cross = Request::builder()
        .method(Method::POST)
        .uri(&p)
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router(app.state.clone())
            .oneshot(cross)
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let rebinding = Request::builder()
        .uri("/")
        .header(header::HOST, "evil.example:8063")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router(app.state.clone())
            .oneshot(rebinding)
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(!app.replica.get(&app.ecole).unwrap().deleted);
}

#[tokio::test]
async fn api_needs_the_token_and_answers_french_json_errors() {
    let app = app();
    for (method, uri) in [
        (Method::GET, "/api/resources"),
        (Method::GET, "/api/export"),
        (Method::POST, "/api/import"),
        (Method::DELETE, "/api/resources/ev-1"),
        (Method::GET, "/api/sync-record"),
    ] {
        let a = call(&app, method, uri, Auth::None, None, Body::empty()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            a.json()["error"].as_str().unwrap().contains("jeton"),
            "{uri}"
        );
    }
    let wrong = Request::builder()
        .uri("/api/resources")
        .header(header::AUTHORIZATION, "Bearer 00")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router(app.state.clone())
            .oneshot(wrong)
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The pages' session works for the API too.
    assert_eq!(
        call(
            &app,
            Method::GET,
            "/api/resources",
            Auth::Page,
            None,
            Body::empty()
        )
        .await
        .status,
        StatusCode::OK
    );
    let a = api(&app, Method::GET, "/api/resources/inconnu", Value::Null).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.json()["error"],
        "Aucune fiche ne correspond à « inconnu »."
    );
    let a = call(
        &app,
        Method::POST,
        "/api/resources",
        Auth::Token,
        Some("application/json"),
        "{pas du json",
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("JSON invalide"));
    let a = api(
        &app,
        Method::POST,
        "/api/resources",
        json!({"kind":"maison","title":"X","office":"caue-63"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.json()["fields"][0]["field"], "kind");
    let a = api(&app, Method::GET, "/api/nope", Value::Null).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.json()["error"].as_str().unwrap().contains("/api/nope"));
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_413() {
    let app = app();
    let big = format!(
        "{{\"kind\":\"outil\",\"title\":\"{}\",\"office\":\"caue-63\"}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    let a = call(
        &app,
        Method::POST,
        "/api/resources",
        Auth::Token,
        Some("application/json"),
        big.clone(),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("trop volumineux"));
    let form = format!("kind=outil&title={}", "x".repeat(MAX_BODY_BYTES));
    let a = call(
        &app,
        Method::POST,
        "/ressources/nouvelle",
        Auth::Page,
        Some("application/x-www-form-urlencoded"),
        form,
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.body.contains("trop volumineux"));
    // Import has its own, larger limit.
    let a = call(
        &app,
        Method::POST,
        "/api/import",
        Auth::Token,
        Some("application/x-ndjson"),
        format!("{big}\n"),
    )
    .await;
    assert_ne!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn api_follows_the_cli_contract() {
    let app = app();
    let a = api(&app, Method::POST, "/api/resources", json!({"ref":"x-1","kind":"outil","title":"Mallette terre","office":"caue-15","themes":["habitat"]})).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let url = a.json()["id"].as_str().unwrap().to_string();
    assert!(url.starts_with("automerge:"));
    let bare = url.trim_start_matches("automerge:");
    for key in [url.as_str(), bare, "x-1"] {
        let a = api(
            &app,
            Method::GET,
            &format!("/api/resources/{key}"),
            Value::Null,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{key}");
        let v = a.json();
        assert_eq!(v["id"], url.as_str());
        assert_eq!(v["resource"]["title"], "Mallette terre");
        assert_eq!(v["deleted"], false);
        assert!(v["created_at"].is_i64());
    }
    let a = api(&app, Method::POST, "/api/resources/x-1/edits", json!({"edits":[{"set":{"field":"title","value":"Mallette pisé"}},{"append":{"field":"description","text":"Prêtée aux écoles."}},{"splice":{"field":"description","pos":0,"delete":0,"insert":"« "}}]})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json(), json!({"fields":["title","description"]}));
    let a = api(
        &app,
        Method::POST,
        "/api/resources/x-1/edits",
        json!({"edits":[{"splice":{"field":"description","pos":999,"delete":0,"insert":"x"}}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let list = api(
        &app,
        Method::GET,
        "/api/resources?office=caue-15&theme=habitat",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["title"], "Mallette pisé");
    let history = api(&app, Method::GET, "/api/resources/x-1/history", Value::Null)
        .await
        .json();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["office"], "caue-63");
    let a = api(&app, Method::DELETE, "/api/resources/x-1", Value::Null).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        api(
            &app,
            Method::GET,
            "/api/resources?office=caue-15",
            Value::Null
        )
        .await
        .json()
        .as_array()
        .unwrap()
        .len(),
        1
    );
    assert_eq!(
        api(
            &app,
            Method::GET,
            "/api/resources?office=caue-15&deleted=1",
            Value::Null
        )
        .await
        .json()
        .as_array()
        .unwrap()
        .len(),
        2
    );

    let export = call(
        &app,
        Method::GET,
        "/api/export",
        Auth::Token,
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.body.lines().count(), 2);
    let bad = "{\"kind\":\"outil\",\"title\":\"A\",\"office\":\"caue-63\"}\n{\"kind\":\"x\"}\n";
    let a = call(
        &app,
        Method::POST,
        "/api/import",
        Auth::Token,
        Some("application/x-ndjson"),
        bad,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.json()["error"].as_str().unwrap().contains("ligne 2"),
        "{}",
        a.body
    );
    assert_eq!(
        app.replica.list(&Default::default()).unwrap().len(),
        2,
        "nothing imported"
    );
    let good = "{\"ref\":\"n-1\",\"kind\":\"outil\",\"title\":\"A\",\"office\":\"caue-63\"}\n{\"ref\":\"ev-1\",\"kind\":\"realisation\",\"title\":\"École en pisé\",\"office\":\"caue-63\"}\n";
    let a = call(
        &app,
        Method::POST,
        "/api/import",
        Auth::Token,
        Some("application/x-ndjson"),
        good,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["created"], 1);
    assert_eq!(a.json()["updated"], 1);

    let sync = api(&app, Method::GET, "/api/sync", Value::Null)
        .await
        .json();
    assert_eq!(sync["kind"], "non_configure");
    assert_eq!(
        api(&app, Method::POST, "/api/sync", Value::Null)
            .await
            .status,
        StatusCode::ACCEPTED
    );

    // The sync record, as `atelier status` reads it while this server holds the replica.
    let record = api(&app, Method::GET, "/api/sync-record", Value::Null)
        .await
        .json();
    assert_eq!(record["last_sync_ms"], Value::Null);
    app.replica
        .update_sync_record(|r| r.last_sync_ms = Some(1_700_000_000_000))
        .unwrap();
    let record = api(&app, Method::GET, "/api/sync-record", Value::Null)
        .await
        .json();
    assert_eq!(record["last_sync_ms"], 1_700_000_000_000_i64);
}

#[tokio::test]
async fn live_splices_merge_with_changes_the_page_has_not_seen() {
    let app = app();
    let texte = format!("{}/texte", page_of(&app.ecole));
    let s = call(&app, Method::GET, &texte, Auth::Page, None, Body::empty())
        .await
        .json();
    let base = s["heads"].clone();
    assert_eq!(
        s["resource"]["description"],
        "Premier paragraphe.\n\nSecond."
    );
    // Another office appends meanwhile; the page, still at `base`, inserts at the start.
    app.replica
        .edit(
            &app.ecole,
            &[Edit::Append {
                field: "description".into(),
                text: " Visite en mai.".into(),
            }],
            1,
        )
        .unwrap();
    let body = json!({"base": base, "edits":[{"splice":{"field":"description","pos":0,"delete":0,"insert":"🙂 Très "}},{"splice":{"field":"description","pos":7,"delete":1,"insert":"p"}}]});
    let a = call(
        &app,
        Method::POST,
        &texte,
        Auth::Page,
        Some("application/json"),
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        app.replica.get(&app.ecole).unwrap().resource.description,
        "🙂 Très premier paragraphe.\n\nSecond. Visite en mai."
    );
    // The answer's heads are the page's next base: a splice from there lands right.
    let next = json!({"base": a.json()["heads"], "edits":[{"splice":{"field":"description","pos":2,"delete":5,"insert":""}}]});
    let a = call(
        &app,
        Method::POST,
        &texte,
        Auth::Page,
        Some("application/json"),
        next.to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        app.replica.get(&app.ecole).unwrap().resource.description,
        "🙂 premier paragraphe.\n\nSecond. Visite en mai."
    );
    let delete = json!({"base": a.json()["heads"], "edits": [{"set_deleted": true}]});
    let a = call(
        &app,
        Method::POST,
        &texte,
        Auth::Page,
        Some("application/json"),
        delete.to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(!app.replica.get(&app.ecole).unwrap().deleted);
    let unknown = json!({"base": ["00".repeat(32)], "edits": []});
    let a = call(
        &app,
        Method::POST,
        &texte,
        Auth::Page,
        Some("application/json"),
        unknown.to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let without_session = call(&app, Method::GET, &texte, Auth::None, None, Body::empty()).await;
    assert_eq!(without_session.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn events_start_with_the_sync_state_then_carry_changes() {
    use futures::StreamExt;
    let app = app();
    let req = Request::builder()
        .uri("/events")
        .header(header::HOST, "127.0.0.1:8063")
        .header(header::COOKIE, app.cookie().await)
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let first = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(
        first.contains("event: sync") && first.contains("non_configure"),
        "{first}"
    );
    app.replica
        .edit(
            &app.ecole,
            &[Edit::Set {
                field: "year".into(),
                value: json!(2017),
            }],
            1,
        )
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let next = String::from_utf8(next.to_vec()).unwrap();
    assert!(
        next.contains("event: change") && next.contains(&app.ecole.to_base58()),
        "{next}"
    );
}

#[tokio::test]
async fn spawn_writes_server_json_and_shutdown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Arc::new(Replica::init(dir.path(), "caue-15".parse().unwrap()).unwrap());
    let handle = crate::spawn(replica, WebConfig::default()).await.unwrap();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("server.json")).unwrap())
            .unwrap();
    assert_eq!(file["url"], handle.url());
    assert_eq!(file["token"], handle.api_token());
    assert_eq!(file["pid"], std::process::id());
    assert!(handle.local_addr().ip().is_loopback());
    // A live event stream (of a browser logged in with the server's link) does not hold
    // shutdown back.
    let link = handle.login_url("/");
    let path = link.trim_start_matches(&handle.url());
    let mut login = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut login,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut login, &mut head)
        .await
        .unwrap();
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_string();
    let mut sse = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut sse,
        format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut sse, &mut buf)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::timeout(std::time::Duration::from_secs(10), handle.shutdown())
        .await
        .expect("shutdown hangs");
    assert!(!dir.path().join("server.json").exists());
}

#[tokio::test]
async fn a_browser_that_has_not_logged_in_gets_the_login_page_no_cookie_and_no_data() {
    let app = app();
    let p = page_of(&app.ecole);
    for uri in [
        "/".to_string(),
        "/?q=pise".into(),
        "/fragments/resultats".into(),
        p.clone(),
        format!("{p}/modifier"),
        format!("{p}/texte"),
        "/ressources/ev-1".into(),
        "/lexique".into(),
        "/events".into(),
        format!("/media/{}", "00".repeat(32)),
        "/pas-de-page".into(),
    ] {
        let a = get_as(&app, &uri, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(!a.headers.contains_key(header::SET_COOKIE), "{uri}");
        assert!(
            !a.body.contains("pisé") && !a.body.contains("lauze"),
            "{uri} shows data"
        );
        assert!(
            a.body.contains("Connexion nécessaire") && a.body.contains("ouvrir"),
            "{uri}: {}",
            a.body
        );
    }
    // A made-up link is no better, nor a cookie of another server.
    let forged = get_as(&app, &crate::auth::login_path(&"ab".repeat(32), "/"), None).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(!forged.headers.contains_key(header::SET_COOKIE));
    let other = AppState::new(app.replica.clone(), &WebConfig::default());
    let other = App::new(other, app.replica.clone(), app.ecole);
    let foreign = get_as(&app, "/", Some(&other.cookie().await)).await;
    assert_eq!(foreign.status, StatusCode::UNAUTHORIZED);
    // The login page's style still loads.
    assert_eq!(
        get_as(&app, "/assets/app.css", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_login_link_logs_in_once_and_goes_to_the_page_asked_for() {
    let app = app();
    let link = app.state.login_path("/ressources/ev-1?onglet=1");
    let first = get_as(&app, &link, None).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(first.headers[header::LOCATION], "/ressources/ev-1?onglet=1");
    let set = first.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let cookie = set_cookie(&first);
    let page = get_as(&app, "/ressources/ev-1", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("École en pisé"));

    // Used once: another browser gets no cookie, only the login page saying so.
    let again = get_as(&app, &link, None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(!again.headers.contains_key(header::SET_COOKIE));
    assert!(again.body.contains("déjà servi"), "{}", again.body);
    // The same browser clicking it twice just goes on.
    let twice = get_as(&app, &link, Some(&cookie)).await;
    assert_eq!(twice.status, StatusCode::SEE_OTHER);
    assert!(!twice.headers.contains_key(header::SET_COOKIE));

    // Only this server's paths are followed after login.
    for (suite, expect) in [
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/lexique", "/lexique"),
    ] {
        let link = app.state.login_path(suite);
        let a = get_as(&app, &link, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{suite}");
        assert_eq!(a.headers[header::LOCATION], expect, "{suite}");
    }
}

#[tokio::test]
async fn the_api_takes_the_cookie_only_with_this_servers_origin() {
    let app = app();
    let cookie = app.cookie().await;
    let api_get = |origin: Option<&'static str>| {
        let mut req = Request::builder()
            .uri("/api/resources")
            .header(header::HOST, "127.0.0.1:8063")
            .header(header::COOKIE, cookie.clone());
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        router(app.state.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    // A local process replaying the cookie without an Origin, or a page of another port.
    assert_eq!(api_get(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api_get(Some("http://127.0.0.1:9999"))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api_get(Some("http://127.0.0.1:8063"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            "/api/resources",
            Auth::Token,
            None,
            Body::empty()
        )
        .await
        .status,
        StatusCode::OK
    );

    // Links are minted with the bearer token only (what `atelier ouvrir` does), not by a page.
    let by_page = call(
        &app,
        Method::POST,
        "/api/login-link",
        Auth::Page,
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(by_page.status, StatusCode::UNAUTHORIZED);
    let minted = api(
        &app,
        Method::POST,
        "/api/login-link",
        json!({"suite": "/lexique"}),
    )
    .await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.body);
    assert_eq!(
        minted.json()["expires_in_s"],
        crate::auth::LOGIN_LINK_TTL.as_secs()
    );
    let path = minted.json()["path"].as_str().unwrap().to_string();
    assert!(path.starts_with("/connexion?jeton="), "{path}");
    let used = get_as(&app, &path, None).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER);
    assert_eq!(used.headers[header::LOCATION], "/lexique");
    assert_eq!(
        get_as(&app, &path, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_listener_reachable_from_the_network_needs_insecure_lan() {
    let replica = Arc::new(Replica::in_memory("caue-63".parse().unwrap()));
    let lan = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = crate::spawn(replica.clone(), WebConfig::listening_on(lan)).await;
    let message = format!("{:#}", refused.err().expect("listened on the network"));
    assert!(message.contains("--insecure-lan"), "{message}");
    let config = WebConfig {
        insecure_lan: true,
        ..WebConfig::listening_on(lan)
    };
    let handle = crate::spawn(replica, config).await.unwrap();
    assert!(
        handle.url().starts_with("http://127.0.0.1:"),
        "{}",
        handle.url()
    );
    assert!(handle.login_url("/").contains("/connexion?jeton="));
    handle.shutdown().await;
}
