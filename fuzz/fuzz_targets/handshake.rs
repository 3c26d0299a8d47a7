//! Fuzz target: handshake frame bodies (JSON), the bytes a relay reads before authentication.
#![no_main]

use atelier_relay::handshake::{ClientHandshake, ServerHandshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ClientHandshake::decode(data);
    let _ = ServerHandshake::decode(data);
});
