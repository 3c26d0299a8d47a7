//! Node scripts as automerge-repo peers: the stock JavaScript client (`tests/js/edit-doc.mjs`)
//! against the relay's WebSocket.

use std::process::Output;

pub(crate) use atelier_tests::node::{wait_for, BROWSER};
use atelier_tests::node::{NodeProject, JS_INTEROP};
use tokio::time::timeout;

use super::WAIT;

/// Makes sure Node and `project`'s dependencies are there (see [`NodeProject::ensure`]), off
/// the async threads; fails the test with what to install.
pub(crate) async fn ensure(project: NodeProject) {
    let ready = tokio::task::spawn_blocking(move || project.ensure())
        .await
        .unwrap();
    if let Err(e) = ready {
        panic!("{e:#}");
    }
}

/// Runs `node edit-doc.mjs WS_URL TOKEN DOC_URL FIELD VALUE PEER_ID` with extra environment:
/// the script opens the document, prints it as a JSON line, sets `field`, and prints it again
/// once the relay has acknowledged. Its output is shown on the test's stderr.
/// Runs `fetch-media.mjs`: the JS client reads `doc_url` over the WebSocket, then fetches its
/// first photo's thumbnail from `http_url` with `token`.
pub(crate) async fn fetch_media(
    ws_url: &str,
    http_url: &str,
    token: &str,
    doc_url: &str,
    peer_id: &str,
) -> Output {
    ensure(JS_INTEROP).await;
    let mut node = tokio::process::Command::new("node");
    node.arg(JS_INTEROP.script("fetch-media.mjs"))
        .args([ws_url, http_url, token, doc_url, peer_id])
        .kill_on_drop(true);
    let out = timeout(WAIT, node.output())
        .await
        .expect("node fetch-media.mjs hung")
        .unwrap();
    eprintln!(
        "fetch-media.mjs exited {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) async fn edit_doc(
    ws_url: &str,
    token: &str,
    doc_url: &str,
    (field, value): (&str, &str),
    peer_id: &str,
    env: &[(&str, &str)],
) -> Output {
    ensure(JS_INTEROP).await;
    let mut node = tokio::process::Command::new("node");
    node.arg(JS_INTEROP.script("edit-doc.mjs"))
        .args([ws_url, token, doc_url, field, value, peer_id])
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let out = timeout(WAIT, node.output())
        .await
        .expect("node edit-doc.mjs hung")
        .unwrap();
    eprintln!(
        "edit-doc.mjs exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
