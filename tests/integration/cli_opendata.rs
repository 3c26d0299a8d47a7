//! Open data through the `atelier` binary: CSV and GeoJSON exports read back by `import`,
//! the messy spreadsheet refused with its problems then imported once fixed, on the replica
//! itself and through a running web app's local API.

use std::path::Path;

use atelier_core::{jsonl, Resource};
use serde_json::{json, Value};

use crate::harness::{atelier, WebHeld, FIXTURE};

const MESSY: &[u8] = include_bytes!("../fixtures/tableur-caue.csv");
const FIXED: &[u8] = include_bytes!("../fixtures/tableur-caue-corrige.csv");

/// Every resource of the replica in `dir`, by ref, through `atelier export`.
fn exported(dir: &Path) -> Vec<Resource> {
    let out = atelier(dir, &["export"], "").ok();
    let mut rs = jsonl::parse(out.stdout.as_bytes()).unwrap();
    rs.sort_by(|a, b| a.ref_.cmp(&b.ref_));
    rs
}

#[test]
fn csv_and_geojson_exports_import_back_to_the_same_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    atelier(&source, &["init", "--office", "caue-15"], "").ok();
    let fixture = tmp.path().join("sample.jsonl");
    std::fs::write(&fixture, FIXTURE).unwrap();
    atelier(&source, &["import", fixture.to_str().unwrap()], "").ok();
    let mut expected = exported(&source);
    for r in &mut expected {
        r.extra.clear();
    }
    // The commune without an INSEE code gets it from the shipped commune list.
    let eymoutiers = expected
        .iter_mut()
        .find(|r| r.ref_.as_deref() == Some("fx-004"));
    eymoutiers.unwrap().location.as_mut().unwrap().insee = Some("87064".into());

    for (name, args) in [
        ("corpus.csv", vec!["--format", "csv"]),
        (
            "corpus-fr.csv",
            vec!["--format", "csv", "--separateur", ";"],
        ),
        ("corpus.geojson", vec!["--format", "geojson"]),
    ] {
        let file = tmp.path().join(name);
        let mut export = vec!["export", "--out", file.to_str().unwrap()];
        export.extend(&args);
        let said = atelier(&source, &export, "").ok();
        assert!(
            said.stdout.contains("6 ressources exportées"),
            "{}",
            said.stdout
        );
        let target = tmp.path().join(format!("target-{name}"));
        atelier(&target, &["init", "--office", "caue-63"], "").ok();
        let imported = atelier(&target, &["import", file.to_str().unwrap(), "--json"], "")
            .ok()
            .json();
        assert_eq!(
            imported,
            json!({"created": 6, "updated": 0, "unchanged": 0}),
            "{name}"
        );
        let back = exported(&target);
        assert_eq!(back.len(), expected.len(), "{name}");
        for (b, e) in back.iter().zip(&expected) {
            assert_eq!(b, e, "{name}: {:?}", e.ref_);
        }
    }

    // The filters of `list` apply; stdout gets the file itself.
    let csv = atelier(
        &source,
        &["export", "--format", "csv", "--departement", "15"],
        "",
    )
    .ok();
    assert!(csv.stdout.starts_with("ref,type,titre,"), "{}", csv.stdout);
    let rows = atelier_core::opendata::sheet::read_csv(csv.stdout.as_bytes())
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1, "{}", csv.stdout);
    assert_eq!(rows[0].cells[..2], ["fx-001", "realisation"]);
    let geojson: Value = serde_json::from_str(
        &atelier(
            &source,
            &["export", "--format", "geojson", "--kind", "realisation"],
            "",
        )
        .ok()
        .stdout,
    )
    .unwrap();
    assert_eq!(geojson["features"].as_array().unwrap().len(), 2);
    let readme = atelier(&source, &["export", "--colonnes"], "").ok();
    assert!(
        readme
            .stdout
            .contains("| `maitre_ouvrage` | Maître d'ouvrage |"),
        "{}",
        readme.stdout
    );
    let misuse = atelier(&source, &["export", "--separateur", ";"], "");
    assert_eq!(misuse.code, 2, "{}", misuse.stderr);
}

#[test]
fn a_messy_sheet_is_refused_with_every_problem_then_imports_once_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-15"], "").ok();
    let messy = tmp.path().join("tableur-caue.csv");
    let fixed = tmp.path().join("tableur-caue-corrige.csv");
    std::fs::write(&messy, MESSY).unwrap();
    std::fs::write(&fixed, FIXED).unwrap();
    let run = |args: &[&str]| atelier(&dir, args, "");

    let preview = run(&["import", messy.to_str().unwrap(), "--apercu"]).ok();
    for expected in [
        "colonne B « Intitulé » → Titre (reconnu)",
        "colonne K → Thèmes (comme la colonne de gauche (en-tête fusionné))",
        "colonne L « Remarques » → Ne pas importer (en-tête inconnu)",
        "ligne 4, colonne C « Commune » : « Chastel-sur-Murat » fait aujourd'hui partie de Murat (15)",
        "Problèmes (2) :",
        "ligne 5, colonne H « Type de travaux » : « Rehabilitaton » n'est pas une valeur de « Nature des travaux » ; voulez-vous dire « Réhabilitation » (rehabilitation) ? [suggestion : rehabilitation]",
        "ligne 8, colonne C « Commune » : aucune commune « Aurillac » dans le département 63 ; il y en a : Aurillac (15)",
        "Aperçu seulement : rien n'a été importé.",
    ] {
        assert!(preview.stdout.contains(expected), "{expected}\n{}", preview.stdout);
    }
    let json_preview = run(&["import", messy.to_str().unwrap(), "--apercu", "--json"])
        .ok()
        .json();
    let places: Vec<(u64, &str)> = json_preview["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_u64().unwrap(), p["column"].as_str().unwrap()))
        .collect();
    assert_eq!(places, [(5, "H"), (8, "C")]);

    let refused = run(&["import", messy.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("2 problèmes"), "{}", refused.stderr);
    assert!(
        refused.stdout.contains("ligne 5, colonne H"),
        "{}",
        refused.stdout
    );
    assert!(
        exported(&dir).is_empty(),
        "nothing is written while a problem remains"
    );

    let first = run(&["import", fixed.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(first, json!({"created": 6, "updated": 0, "unchanged": 0}));
    let again = run(&["import", fixed.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(again, json!({"created": 0, "updated": 0, "unchanged": 6}));
    let rs = exported(&dir);
    assert_eq!(rs[0].ref_.as_deref(), Some("CAUE15-001"));
    assert_eq!(
        (rs[0].year, rs[0].cost_eur_ht),
        (Some(2019), Some(1_200_000.0))
    );
    assert_eq!(rs[0].office, "caue-15");

    // A mapping changes what a column means: « Remarques » becomes the description.
    let mapping = tmp.path().join("mapping.toml");
    std::fs::write(&mapping, "[colonnes]\n\"Remarques\" = \"description\"\n").unwrap();
    let mapped = run(&[
        "import",
        fixed.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(mapped, json!({"created": 0, "updated": 1, "unchanged": 5}));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[colonnes]\n\"Remarques\" = \"remarque\"\n").unwrap();
    let refused = run(&[
        "import",
        fixed.to_str().unwrap(),
        "--mapping",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("« remarque » n'est pas un champ d'Atelier"),
        "{}",
        refused.stderr
    );
}

#[test]
fn sheets_import_and_export_through_the_web_app_that_holds_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let web = WebHeld::start(&dir, "caue-15");
    let fixed = tmp.path().join("tableur.csv");
    std::fs::write(&fixed, FIXED).unwrap();
    let run = |args: &[&str]| atelier(&dir, args, "");
    let messy = tmp.path().join("messy.csv");
    std::fs::write(&messy, MESSY).unwrap();
    let refused = run(&["import", messy.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let imported = run(&["import", fixed.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(
        imported,
        json!({"created": 6, "updated": 0, "unchanged": 0})
    );
    let geojson: Value = serde_json::from_str(
        &run(&["export", "--format", "geojson", "--departement", "15"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(geojson["type"], "FeatureCollection");
    assert_eq!(geojson["features"].as_array().unwrap().len(), 6);
    let none = run(&["export", "--format", "csv", "--departement", "63"]).ok();
    assert_eq!(
        none.stdout.lines().count(),
        1,
        "only the header row: {}",
        none.stdout
    );
    web.stop();
}
