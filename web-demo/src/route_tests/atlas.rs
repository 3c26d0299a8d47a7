//! Router-level tests of `/atlas`: the count per département of a small corpus (coordinates,
//! département only, coordinates only, overseas, nowhere, deleted), the list page's filters
//! carried both ways, with the plain filter and with the full-text index.

use std::collections::BTreeMap;

use super::*;

const NOW: i64 = 1_700_000_000_000;

/// A replica of caue-63 with six live resources and a deleted one; the ids by title.
fn corpus() -> (Arc<Replica>, BTreeMap<&'static str, DocumentId>) {
    let replica = Arc::new(Replica::in_memory("caue-63".parse().unwrap()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut ids = BTreeMap::new();
    for (title, kind, location) in [
        (
            "École en pisé",
            "realisation",
            json!({"commune":"Thiers","departement":"63","lat":45.8564,"lon":3.5475}),
        ),
        (
            "Halle en pisé",
            "realisation",
            json!({"commune":"Clermont-Ferrand","departement":"63","lat":45.7797,"lon":3.0863}),
        ),
        ("Guide du pisé", "outil", json!({"departement":"63"})),
        // Aurillac: no département, found from the point (Cantal).
        (
            "Grange restaurée",
            "realisation",
            json!({"commune":"Aurillac","lat":44.9264,"lon":2.4449}),
        ),
        (
            "Case créole",
            "realisation",
            json!({"commune":"Saint-Pierre","departement":"974","lat":-21.3393,"lon":55.4781}),
        ),
        ("Fiche sans lieu", "action", Value::Null),
        (
            "Ancienne fiche",
            "realisation",
            json!({"commune":"Riom","departement":"63","lat":45.8936,"lon":3.1126}),
        ),
    ] {
        let mut r = json!({"kind":kind,"title":title,"office":"caue-63"});
        if !location.is_null() {
            r["location"] = location;
        }
        let id = replica
            .create(&Resource::from_json(&r).unwrap(), &mut rng, NOW)
            .unwrap();
        ids.insert(title, id);
    }
    replica.delete(&ids["Ancienne fiche"], NOW + 1).unwrap();
    (replica, ids)
}

/// The list groups under the map: département code ("" for « sans localisation ») → count.
fn groups(html: &str) -> BTreeMap<String, usize> {
    html.split("<details class=\"atlas-group\"")
        .skip(1)
        .map(|tag| {
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                tag[start..start + tag[start..].find('"').unwrap()].to_string()
            };
            (
                attr("data-departement"),
                attr("data-count").parse().unwrap(),
            )
        })
        .collect()
}

fn expected(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
}

async fn check_counts(app: &App, ids: &BTreeMap<&'static str, DocumentId>) {
    let a = get(app, "/atlas").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Atlas des fiches") && a.body.contains("(6 fiches)"));
    assert_eq!(
        groups(&a.body),
        expected(&[("15", 1), ("63", 3), ("974", 1), ("", 1)])
    );
    // The shading counts the same, the point-only resource and the overseas one included.
    for (code, n) in [("63", 3), ("15", 1), ("974", 1), ("43", 0)] {
        assert!(
            a.body.contains(&format!(
                "data-departement=\"{code}\" data-count=\"{n}\"><title>"
            )),
            "shading of {code}"
        );
    }
    // Markers are links with a name; the deleted resource is nowhere.
    assert!(a.body.contains(&format!(
        "<a href=\"{}\" aria-label=\"Grange restaurée, Aurillac\"",
        page_of(&ids["Grange restaurée"])
    )));
    assert!(!a.body.contains("Ancienne fiche"));
    assert!(a.body.contains(
        "Guide du pisé</a><span class=\"atlas-meta\"> · Outil · position non renseignée"
    ));
    assert!(a.body.contains("Licence Ouverte / Etalab"));
    assert!(a.body.contains(">La Réunion</text>"));
    // The filters of the list apply: by kind, and by words.
    let a = get(app, "/atlas?kind=outil").await;
    assert_eq!(groups(&a.body), expected(&[("63", 1)]));
    assert!(a.body.contains("Filtres : Outil."));
    let a = get(app, "/atlas?q=pis%C3%A9&departement=63").await;
    assert_eq!(groups(&a.body), expected(&[("63", 3)]));
    assert!(a.body.contains("href=\"/?q=pis%C3%A9&amp;departement=63\""));
}

#[tokio::test]
async fn the_atlas_counts_every_resource_by_departement() {
    let (replica, ids) = corpus();
    let state = AppState::new(replica.clone(), &WebConfig::default());
    let app = App::new(state, replica, ids["École en pisé"]);
    check_counts(&app, &ids).await;
}

#[tokio::test]
async fn the_atlas_counts_the_same_with_the_full_text_index() {
    let (replica, ids) = corpus();
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
    let app = App::new(state, replica, ids["École en pisé"]);
    check_counts(&app, &ids).await;
    // No resource has every word: the atlas shows those with some, and says so as the list does.
    let a = get(&app, "/atlas?q=pis%C3%A9+basalte").await;
    assert_eq!(groups(&a.body), expected(&[("63", 3)]));
    assert!(a.body.contains("Aucune fiche ne contient tous vos mots"));
}

#[tokio::test]
async fn the_list_and_the_atlas_link_to_each_other_keeping_the_filters() {
    let (replica, ids) = corpus();
    let state = AppState::new(replica.clone(), &WebConfig::default());
    let app = App::new(state, replica, ids["École en pisé"]);
    let list = get(&app, "/?kind=realisation&q=pis%C3%A9&page=1").await;
    assert!(list
        .body
        .contains("href=\"/atlas?q=pis%C3%A9&amp;kind=realisation\""));
    assert!(list.body.contains("Voir sur l'atlas"));
    assert!(list.body.contains("<a href=\"/atlas\">Atlas</a>"));
    let fragment = get(&app, "/fragments/resultats?kind=outil").await;
    assert!(fragment.body.contains("href=\"/atlas?kind=outil\""));
    let atlas = get(&app, "/atlas?q=pis%C3%A9&kind=realisation").await;
    assert!(atlas.body.contains(
        "<a class=\"button\" href=\"/?q=pis%C3%A9&amp;kind=realisation\">← Revenir à la liste</a>"
    ));
    assert!(atlas
        .body
        .contains("<a href=\"/atlas\" aria-current=\"page\">Atlas</a>"));
    // Nothing found: no atlas link on the list, an empty atlas says so.
    let none = get(&app, "/?q=introuvable").await;
    assert!(!none.body.contains("Voir sur l'atlas"));
    let empty = get(&app, "/atlas?q=introuvable").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("Aucune fiche à montrer."));
}
