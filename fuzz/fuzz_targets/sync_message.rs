//! Fuzz target: `atelier-sync/1` messages (postcard); what decodes must encode back to itself.
#![no_main]

use atelier_core::sync::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        assert_eq!(Message::decode(&message.encode()).ok(), Some(message));
    }
});
