//! Atelier test helpers, and the library behind the `atelier-bench` binary.

pub mod bench;
pub mod crash;
pub mod node;
pub mod powercut;
