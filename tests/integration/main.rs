//! Integration tests.

mod cli;
mod replica;
mod ws_interop;
mod web_browser;
