//! Fuzz target: Automerge chunks and sync messages through `sync_guard`, then Automerge itself
//! where the guard lets them through (applied to a small document, and a message generated).
#![no_main]

use atelier_core::sync_guard::{
    check_chunk, decode_sync_message, generate_sync_message, load_document, receive_sync_message,
};
use automerge::transaction::Transactable;
use automerge::AutoCommit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_chunk(data);
    if let Ok(mut doc) = load_document(data) {
        let _ = doc.save();
    }
    if let Ok(message) = decode_sync_message(data) {
        let mut doc = AutoCommit::new();
        let _ = doc.put(automerge::ROOT, "n", 1);
        let mut state = automerge::sync::State::new();
        let _ = receive_sync_message(&mut doc, &mut state, message);
        let _ = generate_sync_message(&mut doc, &mut state);
    }
});
