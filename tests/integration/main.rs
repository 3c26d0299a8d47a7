//! Integration tests.

mod cli;
mod harness;
mod media;
mod replica;
mod sync;
mod sync_refusals;
mod web_browser;
mod ws_interop;
