//! Integration tests.

mod blobs_s3;
mod cli;
mod harness;
mod replica;
mod sync;
mod sync_refusals;
mod web_browser;
mod ws_interop;
