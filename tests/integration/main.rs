//! Integration tests.

mod access_live;
mod allocator;
mod blobs_s3;
mod cli;
mod cli_media;
mod cli_opendata;
mod cli_publication;
mod cli_work;
mod crash;
mod harness;
mod media;
mod network;
mod operations;
mod powercut;
mod publication;
mod quotas;
mod replica;
mod sync;
mod sync_refusals;
mod web_browser;
mod work;
mod ws_interop;
