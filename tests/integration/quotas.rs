//! What a whole relay lets each office write, over real QUIC on loopback: an office past its
//! document quota has the rest refused while its session and every other office go on, and
//! changes whose commit message records another office are refused.

use atelier_core::DocumentId;
use atelier_relay::client;
use atelier_relay::quota::QuotaConfig;

use crate::harness::{corpus, Office, SyncFailed, TestRelay, WAIT};

/// Syncs `office`, which the relay partly refuses: the session may end unsettled (the refused
/// documents keep differing), but never with the connection refused or broken.
async fn sync_partly_refused(office: &Office, relay: &TestRelay) {
    match office.sync_with(relay.addr(), &relay.fingerprint()).await {
        Ok(_) | Err(SyncFailed::Drive(atelier_relay::sync_conn::DriveError::NotSettled)) => {}
        Err(other) => panic!("the session itself failed: {other:?}"),
    }
}

fn resources(office: &Office) -> Vec<DocumentId> {
    office
        .replica
        .list(&Default::default())
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_office_past_its_document_quota_is_refused_and_others_keep_syncing() {
    const QUOTA: u64 = 3;
    let relay = TestRelay::start_with_quotas(QuotaConfig {
        max_documents: QUOTA,
        ..QuotaConfig::default()
    })
    .await;
    let greedy = Office::enrolled("caue-63", &relay, false).await;
    let other = Office::enrolled("caue-15", &relay, false).await;
    for n in 0..5 {
        greedy.create(&format!("Fiche {n}"), "Trop de fiches.");
    }
    sync_partly_refused(&greedy, &relay).await;
    let stored = resources(&greedy)
        .iter()
        .filter(|id| relay.store().contains(id).unwrap())
        .count();
    assert_eq!(stored as u64, QUOTA, "the relay kept exactly the quota");
    let quotas_usage = relay.handle().quotas().usage("caue-63");
    assert_eq!(quotas_usage.0, QUOTA);

    // Another office syncs as usual, both ways.
    let id = other.create("Maison du Lioran", "Bois.");
    other.sync(&relay).await;
    assert!(relay.store().contains(&id).unwrap());
    assert_eq!(resources(&other).len() as u64, 1 + QUOTA);
    // And the refused office still gets the others' documents, and still edits its own.
    let mine = resources(&greedy)
        .into_iter()
        .find(|id| relay.store().contains(id).unwrap())
        .unwrap();
    greedy.edit(
        &mine,
        crate::harness::set("title", serde_json::json!("Fiche renommée")),
    );
    sync_partly_refused(&greedy, &relay).await;
    assert!(greedy.replica.get(&id).is_ok());
    let at_relay = atelier_core::document::read(&relay.store().load(&mine).unwrap().unwrap())
        .unwrap()
        .resource;
    assert_eq!(at_relay.title, "Fiche renommée");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_recording_another_office_are_refused() {
    let relay = TestRelay::start().await;
    let legit = Office::enrolled("caue-63", &relay, false).await;
    legit.create("Maison du Parc", "Basalte.");
    legit.sync(&relay).await;

    // A device enrolled for caue-15 whose replica writes changes recording caue-63.
    let forger = Office::new("caue-63");
    let token = relay.invite("caue-15", false);
    tokio::time::timeout(
        WAIT,
        client::enrol(
            &forger.identity(),
            relay.addr(),
            &relay.fingerprint(),
            &token,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let forged = forger.create("Fiche usurpée", "Au nom d'un autre CAUE.");
    sync_partly_refused(&forger, &relay).await;
    assert!(
        !relay.store().contains(&forged).unwrap(),
        "a change recording caue-63 from a caue-15 device reached the relay"
    );

    // The legitimate office goes on syncing.
    let id = legit.create("Toujours là", "Oui.");
    legit.sync(&relay).await;
    assert!(relay.store().contains(&id).unwrap());
    assert_eq!(corpus(relay.store()), corpus(legit.store()));
    relay.shutdown().await;
}
