//! Integration tests.

mod cli;
mod replica;
