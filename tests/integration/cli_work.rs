//! The working-together commands of the `atelier` binary (groupe, taches, tache, relecture,
//! publier, commenter, discussion, pour-vous, nouveautes), on the replica itself and through
//! the local API of the web app holding it; bad input is refused in French, exit 2, nothing
//! saved.

use std::path::Path;

use serde_json::Value;

use crate::harness::{atelier, WebHeld};

/// Runs a refused command: exit 2, the message names `words`.
fn refused(dir: &Path, args: &[&str], words: &str) {
    let run = atelier(dir, args, "");
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
}

fn tasks(dir: &Path) -> Vec<Value> {
    let plans = atelier(dir, &["taches", "--json"], "").ok().json();
    plans[0]["tasks"].as_array().cloned().unwrap_or_default()
}

/// The group, task, review and discussion commands on `dir`, whichever process holds it.
fn working_together(dir: &Path) {
    let run = |args: &[&str]| atelier(dir, args, "").ok();
    run(&[
        "add",
        "--kind",
        "realisation",
        "--title",
        "Maison en pisé",
        "--ref",
        "w-1",
        "--sector",
        "terre",
        "--office",
        "caue-63",
    ]);
    let created = run(&[
        "groupe",
        "creer",
        "Massif central",
        "--slogan",
        "Bâtir avec ce qui est là",
        "--membre",
        "caue-15",
        "--public",
        "elus",
        "--json",
    ])
    .json();
    assert!(created["id"].as_str().unwrap().starts_with("automerge:"));
    run(&[
        "groupe",
        "theme",
        "massif",
        "--libelle",
        "Construire avec la terre",
        "--explication",
        "Pisé, bauge, enduits.",
        "--valeur",
        "sectors:terre",
    ]);
    refused(
        dir,
        &[
            "groupe",
            "theme",
            "massif",
            "--libelle",
            "X",
            "--explication",
            "Y",
            "--valeur",
            "sectors:beton",
        ],
        "Valeurs du vocabulaire",
    );
    let shown = run(&["groupe", "voir", "Massif central", "--json"]).json();
    assert_eq!(shown["themes"][0]["resource_count"], 1, "{shown}");
    assert_eq!(
        shown["group"]["members"],
        serde_json::json!(["caue-15", "caue-63"])
    );
    let text = run(&["groupe", "voir", "massif"]).stdout;
    assert!(
        text.contains("Construire avec la terre — 1 ressource"),
        "{text}"
    );

    // The plan de charge: a task, then bad input that saves nothing.
    let id = run(&[
        "tache",
        "add",
        "--groupe",
        "massif",
        "--titre",
        "Rédiger la fiche",
        "--office",
        "caue-15",
        "--echeance",
        "2020-01-31",
        "--ressource",
        "w-1",
    ])
    .stdout
    .trim()
    .to_string();
    assert_eq!(id.len(), 16, "{id}");
    refused(
        dir,
        &[
            "tache", "add", "--groupe", "massif", "--titre", "T", "--office", "caue-43",
        ],
        "Bureau responsable : caue-43 n'est pas membre",
    );
    refused(
        dir,
        &[
            "tache",
            "add",
            "--groupe",
            "massif",
            "--titre",
            "T",
            "--echeance",
            "31 mars",
        ],
        "Échéance : « 31 mars » n'est pas une date",
    );
    assert_eq!(tasks(dir).len(), 1, "nothing saved");
    run(&["tache", "set", &id[..6], "--statut", "en_cours"]);
    let plan = run(&["taches", "--office", "caue-15"]).stdout;
    assert!(
        plan.contains("Rédiger la fiche") && plan.contains("EN RETARD"),
        "{plan}"
    );
    run(&["tache", "done", &id]);
    let t = &tasks(dir)[0];
    assert_eq!(
        (t["status"].as_str(), t["late"].as_bool()),
        (Some("fait"), Some(false))
    );

    // Review and discussion.
    refused(
        dir,
        &["publier", "w-1"],
        "demande l'approbation d'un autre bureau",
    );
    run(&[
        "relecture",
        "demander",
        "w-1",
        "--a",
        "caue-15",
        "--commentaire",
        "Tu relis ?",
    ]);
    refused(
        dir,
        &["relecture", "approuver", "w-1"],
        "n'attend pas de relecture",
    );
    assert!(run(&["relecture", "liste"])
        .stdout
        .contains("Rien à relire"));
    let said = run(&[
        "commenter",
        "w-1",
        "Vu, @caue-15 ?",
        "--auteur",
        "Marie",
        "--json",
    ])
    .json();
    let first = said["id"].as_str().unwrap().to_string();
    run(&[
        "commenter",
        "w-1",
        "Et la photo ?",
        "--reponse-a",
        &first[..5],
    ]);
    refused(
        dir,
        &["commenter", "w-1", "Bonjour @caue-999"],
        "ne désigne aucun bureau",
    );
    let long = "a".repeat(5_001);
    refused(dir, &["commenter", "w-1", &long], "au plus 5000");
    run(&["commenter", "--tache", &id, "Commencé ce matin."]);
    let d = run(&["discussion", "w-1", "--json"]).json();
    assert_eq!(d["status"], "a_relire");
    assert_eq!(d["review"]["asked"]["to"], "caue-15");
    let comments = d["thread"]["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 2, "{d}");
    assert_eq!(comments[1]["parent"], first.as_str());
    let text = run(&["discussion", "w-1"]).stdout;
    assert!(
        text.contains("Relecture demandée à caue-15 par caue-63"),
        "{text}"
    );
    let task_thread = run(&["discussion", "--tache", &id, "--json"]).json();
    assert_eq!(task_thread["title"], "Rédiger la fiche (Massif central)");

    // One's own changes are not news; « Pour vous » has nothing either.
    let news = run(&["nouveautes", "--json", "--marquer-lu"]).json();
    assert_eq!(news["items"], serde_json::json!([]), "{news}");
    assert!(news["marked_read_at"].is_i64());
    assert_eq!(
        run(&["nouveautes", "--json"]).json()["read_at"],
        news["marked_read_at"]
    );
    assert!(run(&["pour-vous"]).stdout.contains("Rien pour vous"));
    refused(
        dir,
        &["nouveautes", "--since", "hier"],
        "n'est pas une date",
    );

    // An office that left the group may no longer edit it.
    run(&[
        "groupe",
        "modifier",
        "massif",
        "--retirer-membre",
        "caue-63",
    ]);
    refused(
        dir,
        &["groupe", "modifier", "massif", "--slogan", "Autre"],
        "n'est pas membre du groupe",
    );
    let listed = run(&["groupe", "liste", "--json"]).json();
    assert_eq!(listed[0]["members"], serde_json::json!(["caue-15"]));
}

#[test]
fn working_together_commands_on_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-63"], "").ok();
    working_together(&dir);
}

#[test]
fn working_together_commands_through_the_web_app_holding_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let web = WebHeld::start(&dir, "caue-63");
    working_together(&dir);
    web.stop();
}
