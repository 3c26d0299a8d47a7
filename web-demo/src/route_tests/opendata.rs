//! Router-level tests of open data: the list's download links and the export routes (the
//! current filters apply, the right `Content-Type` and file name), and « Importer un tableur »
//! (preview with problems by line and column, columns re-chosen, all-or-nothing import).

use super::media::{multipart, Part, BOUNDARY};
use super::*;

async fn send_import(app: &App, parts: &[Part<'_>]) -> Answer {
    call(
        app,
        Method::POST,
        "/import",
        Auth::Page,
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        multipart(parts),
    )
    .await
}

#[tokio::test]
async fn downloads_export_what_the_list_shows() {
    let app = app();
    let list = get(&app, "/?kind=realisation").await;
    assert!(
        list.body.contains("href=\"/export.csv?kind=realisation\""),
        "{}",
        list.body
    );
    assert!(list
        .body
        .contains("href=\"/export.csv?kind=realisation&amp;separateur=%3B\""));
    assert!(list
        .body
        .contains("href=\"/export.geojson?kind=realisation\""));
    assert!(list.body.contains("href=\"/import\""));

    let csv = get(&app, "/export.csv?kind=realisation").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"fiches-atelier.csv\""
    );
    let rows = atelier_core::opendata::sheet::read_csv(csv.body.as_bytes())
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1, "{}", csv.body);
    assert_eq!(rows[0].cells[..3], ["ev-1", "realisation", "École en pisé"]);

    let fr = get(&app, "/export.csv?separateur=%3B").await;
    assert!(
        fr.body.starts_with("\u{feff}ref;type;titre;"),
        "{}",
        fr.body
    );
    assert!(fr.body.contains(";45,85;3,55;"), "{}", fr.body);
    assert_eq!(
        atelier_core::opendata::sheet::read_csv(fr.body.as_bytes())
            .unwrap()
            .rows
            .len(),
        2
    );

    let geo = get(&app, "/export.geojson").await;
    assert_eq!(geo.headers[header::CONTENT_TYPE], "application/geo+json");
    let v = geo.json();
    assert_eq!(v["features"].as_array().unwrap().len(), 2);
    let ecole = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["ref"] == "ev-1")
        .unwrap();
    assert_eq!(ecole["geometry"]["coordinates"], json!([3.55, 45.85]));

    let words = get(&app, "/export.jsonl?q=lauze").await;
    assert_eq!(
        words.headers[header::CONTENT_TYPE],
        "application/x-ndjson; charset=utf-8"
    );
    assert_eq!(words.body.lines().count(), 1, "{}", words.body);
    assert!(words.body.contains("Guide de la lauze"));

    // Only who may read the corpus may download it.
    let stranger = call(
        &app,
        Method::GET,
        "/export.csv",
        Auth::None,
        None,
        Body::empty(),
    )
    .await;
    assert!(!stranger.body.contains("ev-1"), "{}", stranger.body);
}

#[tokio::test]
async fn a_sheet_is_previewed_with_its_problems_then_imported_all_at_once() {
    let app = app();
    let page = get(&app, "/import").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<label for=\"fichier\">"),
        "{}",
        page.body
    );

    let sheet = "Intitulé;Commune;Année de livraison;Type de travaux;Coût;Remarques\n\
                 Halle en bois;Ambert;mars 2019;Rehabilitaton;1,2 M€;à revoir\n\
                 Maison du parc;Thiers;2020;Extension;350 k€;\n";
    let before = app.replica.list(&Default::default()).unwrap().len();
    let preview = send_import(
        &app,
        &[
            Part::File("tableur.csv", sheet.as_bytes()),
            Part::Text("action", "apercu"),
        ],
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK);
    for expected in [
        "Un problème à corriger",
        "href=\"#colonne-3\"",
        "Ligne 2, colonne D « Type de travaux »",
        "voulez-vous dire « Réhabilitation » (rehabilitation) ?",
        "<code>rehabilitation</code>",
        "aria-describedby=\"colonne-3-aide colonne-3-erreur\"",
        "<option value=\"annee\" selected>",
    ] {
        assert!(
            preview.body.contains(expected),
            "{expected}\n{}",
            preview.body
        );
    }
    assert!(
        !preview.body.contains("value=\"importer\""),
        "no import button while a problem remains"
    );

    // Importing anyway is refused whole.
    let forced = send_import(
        &app,
        &[
            Part::Text("contenu", sheet),
            Part::Text("action", "importer"),
        ],
    )
    .await;
    assert_eq!(forced.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.replica.list(&Default::default()).unwrap().len(), before);

    // The column's select says « Ne pas importer »: no problem left.
    let chosen = send_import(
        &app,
        &[
            Part::Text("contenu", sheet),
            Part::Text("colonne.3", "ignorer"),
            Part::Text("action", "apercu"),
        ],
    )
    .await;
    assert!(chosen.body.contains("aucun problème"), "{}", chosen.body);
    assert!(chosen.body.contains("Importer 2 fiches"), "{}", chosen.body);
    let done = send_import(
        &app,
        &[
            Part::Text("contenu", sheet),
            Part::Text("colonne.3", "ignorer"),
            Part::Text("action", "importer"),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(
        done.body
            .contains("2 fiches créées, 0 mise à jour, 0 inchangée"),
        "{}",
        done.body
    );
    let rs: Vec<Resource> = app
        .replica
        .list(&Default::default())
        .unwrap()
        .iter()
        .map(|e| app.replica.get(&e.id).unwrap().resource)
        .filter(|r| r.title == "Halle en bois")
        .collect();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        (rs[0].year, rs[0].cost_eur_ht, rs[0].office.as_str()),
        (Some(2019), Some(1_200_000.0), "caue-63")
    );
    assert_eq!(
        rs[0].location.as_ref().unwrap().insee.as_deref(),
        Some("63003")
    );
    let again = send_import(
        &app,
        &[
            Part::Text("contenu", sheet),
            Part::Text("colonne.3", "ignorer"),
            Part::Text("action", "importer"),
        ],
    )
    .await;
    assert!(
        again
            .body
            .contains("0 fiche créée, 0 mise à jour, 2 inchangées"),
        "{}",
        again.body
    );

    let empty = send_import(&app, &[Part::Text("action", "apercu")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty.body.contains("Choisissez un fichier CSV"),
        "{}",
        empty.body
    );
}
