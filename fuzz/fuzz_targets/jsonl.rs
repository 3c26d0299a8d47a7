//! Fuzz target: a JSON Lines file given to `atelier import` (parsed and validated whole).
#![no_main]

use atelier_core::jsonl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jsonl::parse(data);
});
