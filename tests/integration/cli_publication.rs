//! `atelier publication` end to end, on the replica itself and through the local API of the web
//! app holding it: create, sections added, moved and removed, the export as a folder and as one
//! file (the same page both ways), « regenerer » saying what changed; bad input refused in
//! French, exit 2, nothing saved.

use std::path::Path;

use crate::harness::{atelier, WebHeld};

fn refused(dir: &Path, args: &[&str], words: &str) {
    let run = atelier(dir, args, "");
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
}

fn publication_commands(dir: &Path) {
    let run = |args: &[&str]| atelier(dir, args, "").ok();
    run(&[
        "add",
        "--kind",
        "realisation",
        "--title",
        "Maison en pisé",
        "--ref",
        "p-1",
        "--sector",
        "terre",
        "--office",
        "caue-63",
    ]);
    let created = run(&[
        "publication",
        "creer",
        "Bâtir en terre",
        "--sous-titre",
        "Massif central",
        "--introduction",
        "Une terre, des savoir-faire.",
        "--json",
    ])
    .json();
    assert!(created["id"].as_str().unwrap().starts_with("automerge:"));
    run(&["publication", "section", "add", "batir", "--fiche", "p-1"]);
    run(&[
        "publication",
        "section",
        "add",
        "batir",
        "--texte",
        "Merci.",
        "--titre",
        "Pour finir",
    ]);
    run(&[
        "publication",
        "section",
        "add",
        "batir",
        "--carte",
        "sector=terre",
        "--titre",
        "Où voir",
        "--position",
        "1",
    ]);
    refused(
        dir,
        &[
            "publication",
            "section",
            "add",
            "batir",
            "--fiche",
            "nulle-part",
        ],
        "aucune fiche « nulle-part »",
    );
    refused(
        dir,
        &[
            "publication",
            "section",
            "add",
            "batir",
            "--carte",
            "couleur=bleu",
        ],
        "n'est pas un filtre de la liste",
    );
    refused(
        dir,
        &["publication", "section", "move", "batir", "9", "1"],
        "ne désigne pas une section",
    );
    refused(
        dir,
        &["publication", "voir", "inconnue"],
        "publication « inconnue » introuvable",
    );
    let shown = run(&["publication", "voir", "batir", "--json"]).json();
    assert_eq!(
        shown["headings"],
        serde_json::json!(["Où voir", "Maison en pisé", "Pour finir"])
    );
    run(&["publication", "section", "move", "batir", "1", "3"]);
    run(&["publication", "section", "rm", "batir", "2"]);
    let text = run(&["publication", "voir", "batir"]).stdout;
    assert!(
        text.contains(" 1. Fiche") && text.contains(" 2. Carte"),
        "{text}"
    );
    assert!(!text.contains("Pour finir"), "{text}");
    // Its resource of kind publication is listed with the others.
    let listed = run(&["list", "--kind", "publication"]).stdout;
    assert!(listed.contains("Bâtir en terre"), "{listed}");

    let site = dir.parent().unwrap().join("site");
    let exported = run(&[
        "publication",
        "export",
        "batir",
        "--out",
        site.to_str().unwrap(),
    ]);
    assert!(
        exported.stdout.contains("Publication exportée"),
        "{}",
        exported.stdout
    );
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.starts_with("<!DOCTYPE html><html lang=\"fr\">"));
    assert!(index.contains("Maison en pisé") && index.contains("@page { size: A4;"));
    let one = dir.parent().unwrap().join("un");
    run(&[
        "publication",
        "export",
        "batir",
        "--out",
        one.to_str().unwrap(),
        "--un-fichier",
    ]);
    let single = std::fs::read_to_string(one.join("batir-en-terre.html")).unwrap();
    assert_eq!(
        single, index,
        "no image: the single file is the folder's page"
    );
    assert!(run(&["publication", "regenerer", "batir"])
        .stdout
        .contains("Rien n'a changé depuis"));
    run(&["edit", "p-1", "--set", "summary=Un mur de terre."]);
    let since = run(&["publication", "regenerer", "batir", "--json"]).json();
    assert_eq!(since["since"]["changed"][0]["title"], "Maison en pisé");
}

#[test]
fn publication_commands_on_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-63"], "").ok();
    publication_commands(&dir);
}

#[test]
fn publication_commands_through_the_web_app_holding_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let web = WebHeld::start(&dir, "caue-63");
    publication_commands(&dir);
    web.stop();
}
