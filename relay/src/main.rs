//! The `atelier-relay` binary: parses arguments and runs the command (see `atelier_relay::cli`).

use std::process::ExitCode;
use std::sync::Arc;

use atelier_relay::cli::{self, Cli};
use atelier_relay::framing::FramedStream;
use atelier_relay::server::{ConnectionHandler, Peer};
use clap::Parser;
use futures::future::BoxFuture;
use futures::FutureExt;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli, Arc::new(DiscardFrames)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erreur : {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// PLACEHOLDER, to be replaced by the sync engine's handler (atelier-core's sans-IO protocol
/// driven over the stream), which its author wires here. Until then an authenticated peer's
/// frames are read, logged by size and discarded: nothing is stored or forwarded.
struct DiscardFrames;

impl ConnectionHandler for DiscardFrames {
    fn handle(
        &self,
        peer: Peer,
        mut stream: FramedStream,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            while let Some(frame) = stream.recv().await? {
                tracing::info!(
                    office = %peer.office,
                    fingerprint = %peer.fingerprint,
                    bytes = frame.len(),
                    "frame discarded (sync engine not wired yet)"
                );
            }
            Ok(())
        }
        .boxed()
    }
}
