//! The web binary.
fn main() {}
