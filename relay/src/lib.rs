//! Atelier relay library: the network edge shared by the relay and the office CLI.
//!
//! Identities and fingerprints ([`identity`]), mutual-TLS QUIC endpoints ([`transport`]),
//! length-prefixed frames ([`framing`]), the connection handshake ([`handshake`], [`client`]),
//! the relay's access registry ([`access`], held in memory and watched by [`live_access`]), its quotas ([`quota`]), its blobs ([`blobs`], served over HTTP by
//! [`media_http`]), the accept loop ([`server`]), and the relay's
//! configuration and command line ([`config`], [`cli`]). The sync protocol itself lives in
//! atelier-core and runs inside a [`server::ConnectionHandler`].

pub mod access;
pub mod admin;
pub mod admission;
pub mod agent;
pub mod backup;
pub mod blobs;
pub mod cli;
pub mod client;
pub mod config;
pub mod framing;
pub mod handshake;
pub mod identity;
pub mod live_access;
pub mod media_http;
pub mod media_sync;
pub mod metrics;
pub mod quic_url;
pub mod quota;
pub mod relay;
pub mod reset_key;
pub mod server;
pub mod sync_conn;
pub mod tls_reload;
pub mod transport;
pub mod ws;
