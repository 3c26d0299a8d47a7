//! `atelier media …`, and export/import with a media folder, end to end: the real binary on a
//! replica it holds, and on a replica held by a running web app (through its local API).

use std::path::Path;

use atelier_core::media::sample;
use serde_json::Value;

use crate::harness::{atelier, Run, WebHeld};

/// A photo file drawn for the test.
fn photo(dir: &Path, name: &str, seed: u64) -> String {
    let path = dir.join(name);
    std::fs::write(&path, sample::jpeg(seed, 900, 600, 4, 85)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Adds, lists, gets, edits and removes media, then exports them with their folder and imports
/// them into a second replica; `run` runs `atelier` on the first replica.
fn media_round_trip(tmp: &Path, run: &dyn Fn(&[&str]) -> Run) {
    run(&[
        "add",
        "--kind",
        "realisation",
        "--title",
        "Halle en bois",
        "--ref",
        "m-1",
    ])
    .ok();
    let a = photo(tmp, "halle.jpg", 1);
    let b = photo(tmp, "charpente.jpg", 2);

    let refused = run(&["media", "add", "m-1", &a]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("crédit"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("texte alternatif"),
        "{}",
        refused.stderr
    );
    let cut = tmp.join("coupee.jpg");
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let refused = run(&[
        "media",
        "add",
        "m-1",
        &b,
        cut.to_str().unwrap(),
        "--credit",
        "© A",
        "--alt",
        "Halle",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("coupee.jpg") && refused.stderr.contains("tronquée"),
        "{}",
        refused.stderr
    );
    assert!(
        run(&["media", "list", "m-1", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was added"
    );

    let added = run(&[
        "media",
        "add",
        "m-1",
        &a,
        &b,
        "--credit",
        "© CAUE 15",
        "--alt",
        "Halle en bois, poteaux en douglas",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(added.as_array().unwrap().len(), 2);
    let listed = run(&["media", "list", "m-1", "--json"]).ok().json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "halle.jpg");
    assert_eq!(listed[0]["thumb"]["width"], 320);
    assert!(run(&["media", "list", "m-1"])
        .ok()
        .stdout
        .contains("reçu sur ce poste"));

    let out = tmp.join("copie.jpg");
    run(&["media", "get", "m-1", "1", "--out", out.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        bytes,
        "the original comes back byte for byte"
    );
    let thumb = tmp.join("vignette.jpg");
    run(&[
        "media",
        "get",
        "m-1",
        "2",
        "--size",
        "vignette",
        "--out",
        thumb.to_str().unwrap(),
    ])
    .ok();
    assert!(std::fs::metadata(&thumb).unwrap().len() < 40_000);

    run(&["media", "edit", "m-1", "2", "--caption", "La charpente"]).ok();
    run(&["media", "rm", "m-1", "1"]).ok();
    let listed = run(&["media", "list", "m-1", "--json"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["caption"], "La charpente");

    run(&["media", "policy", "vignettes"]).ok();
    assert!(run(&["media", "policy"]).ok().stdout.contains("vignettes"));
    run(&["media", "policy", "tout"]).ok();

    let jsonl = tmp.join("corpus.jsonl");
    let folder = tmp.join("corpus.media");
    let exported = run(&[
        "export",
        "--out",
        jsonl.to_str().unwrap(),
        "--media",
        folder.to_str().unwrap(),
    ])
    .ok();
    assert!(
        exported.stdout.contains("3 fichiers"),
        "{}",
        exported.stdout
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 3);

    // A second replica reads the folder beside the JSON Lines by itself.
    let other = tmp.join("autre");
    atelier(&other, &["init", "--office", "caue-63"], "").ok();
    let imported = atelier(&other, &["import", jsonl.to_str().unwrap(), "--json"], "")
        .ok()
        .json();
    assert_eq!(imported["media"]["imported"], 3);
    let got = tmp.join("retour.jpg");
    atelier(
        &other,
        &["media", "get", "m-1", "1", "--out", got.to_str().unwrap()],
        "",
    )
    .ok();
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&b).unwrap());
    let status = atelier(&other, &["media", "policy"], "").ok().stdout;
    assert!(status.contains("à envoyer : 3 fichiers"), "{status}");
}

#[test]
fn media_commands_and_export_import_on_a_replica_the_cli_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-15"], "").ok();
    media_round_trip(tmp.path(), &|args| atelier(&dir, args, ""));
}

#[test]
fn media_commands_work_through_the_web_app_holding_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let web = WebHeld::start(&dir, "caue-15");
    media_round_trip(tmp.path(), &|args| atelier(&dir, args, ""));
    web.stop();
}

#[test]
fn an_import_whose_media_folder_holds_a_damaged_file_imports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    atelier(&src, &["init", "--office", "caue-15"], "").ok();
    atelier(
        &src,
        &[
            "add",
            "--kind",
            "realisation",
            "--title",
            "Halle",
            "--ref",
            "m-2",
        ],
        "",
    )
    .ok();
    let a = photo(tmp.path(), "a.jpg", 3);
    atelier(
        &src,
        &[
            "media", "add", "m-2", &a, "--credit", "© A", "--alt", "Halle",
        ],
        "",
    )
    .ok();
    let jsonl = tmp.path().join("c.jsonl");
    let folder = tmp.path().join("m");
    atelier(
        &src,
        &[
            "export",
            "--out",
            jsonl.to_str().unwrap(),
            "--media",
            folder.to_str().unwrap(),
        ],
        "",
    )
    .ok();
    let victim = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&victim, bytes).unwrap();

    let dst = tmp.path().join("dst");
    atelier(&dst, &["init", "--office", "caue-63"], "").ok();
    let refused = atelier(
        &dst,
        &[
            "import",
            jsonl.to_str().unwrap(),
            "--media",
            folder.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("rien n'a été importé"),
        "{}",
        refused.stderr
    );
    let listed: Value = atelier(&dst, &["list", "--json"], "").ok().json();
    assert!(listed.as_array().unwrap().is_empty());
}

/// Runs `atelier` with the replica's media folder on a 256 KB file system (a tmpfs mounted in
/// a user and mount namespace of its own, so no privilege is needed), then lists what that
/// folder holds, all inside the namespace.
fn atelier_on_a_full_disk(dir: &Path, args: &[&str]) -> (std::process::Output, String) {
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k none '{media}' && \"$0\" \"$@\"; code=$?; \
         echo; echo \"media:$(find '{media}' -type f | wc -l)\"; exit $code",
        media = media.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .arg(crate::harness::atelier_bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("unshare (util-linux) runs this test: it must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("media:"),
        "the namespace could not be set up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

#[test]
fn a_full_disk_while_adding_a_photo_says_so_and_leaves_nothing_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    atelier(&dir, &["init", "--office", "caue-15"], "").ok();
    atelier(
        &dir,
        &[
            "add",
            "--kind",
            "realisation",
            "--title",
            "Halle",
            "--ref",
            "m-3",
        ],
        "",
    )
    .ok();
    let big = tmp.path().join("grande.jpg");
    std::fs::write(&big, sample::jpeg(5, 1600, 1200, 40, 95)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 300_000);
    let (out, stdout) = atelier_on_a_full_disk(
        &dir,
        &[
            "media",
            "add",
            "m-3",
            big.to_str().unwrap(),
            "--credit",
            "© A",
            "--alt",
            "Halle",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(stderr.contains("disque plein"), "{stderr}");
    assert!(
        stdout.contains("media:0") || stdout.contains("media:1"),
        "{stdout}"
    );
    // Whatever fitted is a whole blob; the resource names none of them.
    let listed = atelier(&dir, &["media", "list", "m-3", "--json"], "")
        .ok()
        .json();
    assert!(listed.as_array().unwrap().is_empty());
}
