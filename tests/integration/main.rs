//! Integration tests.

mod blobs_s3;
mod cli;
mod cli_media;
mod harness;
mod media;
mod network;
mod replica;
mod sync;
mod sync_refusals;
mod web_browser;
mod ws_interop;
