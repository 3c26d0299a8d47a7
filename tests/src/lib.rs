//! Atelier test helpers, and the library behind the `atelier-bench` binary.

pub mod bench;
pub mod node;
pub mod powercut;
