//! The atelier CLI.
fn main() {}
