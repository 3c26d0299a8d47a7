//! Integration tests.

mod cli;
mod replica;
mod sync;
mod sync_refusals;
mod ws_interop;
mod web_browser;
