//! Fuzz target: a `Docs` frame's card batch, raw and deflated (so that the JSON parse is
//! reached); the first byte says how many documents the frame carries.
#![no_main]

use std::io::Write;

use atelier_core::card::decode_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((docs, cards)) = data.split_first() else {
        return;
    };
    let docs = usize::from(*docs % 16);
    let _ = decode_batch(cards, docs);
    let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    if deflated.write_all(cards).is_ok() {
        if let Ok(bytes) = deflated.finish() {
            let _ = decode_batch(&bytes, docs);
        }
    }
});
