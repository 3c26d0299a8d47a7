//! Integration tests.

mod cli;
mod replica;
mod ws_interop;
