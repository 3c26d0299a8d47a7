//! Fuzz target: automerge-repo's CBOR messages, as the relay's WebSocket endpoint decodes them.
#![no_main]

use atelier_core::repo_wire::RepoMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = RepoMessage::decode(data) {
        let _ = RepoMessage::decode(&message.encode());
    }
});
