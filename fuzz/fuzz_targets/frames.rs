//! Fuzz target: a frame as a relay reads it after `Hello` (length prefix, then the body given
//! to a sync session on either side, over an empty in-memory store).
#![no_main]

use std::sync::Arc;

use atelier_core::store::DocStore;
use atelier_core::sync::{Role, Session, MAX_FRAME_SIZE};
use atelier_relay::framing::{decode_header, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((header, body)) = data.split_first_chunk::<HEADER_SIZE>() else {
        return;
    };
    if let Ok(size) = decode_header(*header, MAX_FRAME_SIZE) {
        assert!(size <= MAX_FRAME_SIZE);
    }
    for role in [Role::Responder, Role::Initiator] {
        let mut session = Session::new(Arc::new(DocStore::in_memory()), role);
        let _ = session.handle_frame(body);
        while session.poll_transmit().is_some() {}
    }
});
