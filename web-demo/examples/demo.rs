//! A throwaway demo: a fresh replica in a temporary folder, filled from a JSON Lines file, served
//! until Ctrl+C. `cargo run -p atelier-web --example demo -- client-cli/src/sample.jsonl [caue-63]`

use std::sync::Arc;

use anyhow::Context;
use atelier_core::replica::Replica;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("atelier_web=debug")
        .init();
    let mut args = std::env::args().skip(1);
    let file = args.next().context("usage: demo FILE.jsonl [OFFICE]")?;
    let office = args.next().unwrap_or_else(|| "caue-63".into());
    let dir = tempfile::tempdir()?;
    let replica = Arc::new(Replica::init(dir.path(), office.parse()?)?);
    let text = std::fs::read(&file).with_context(|| file.clone())?;
    let resources = atelier_core::jsonl::parse(text.as_slice())?;
    let report = replica.import(&resources, 1_700_000_000_000, &mut |_| {})?;
    println!("{report:?}");
    let listen = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8063".into())
        .parse()?;
    let index = atelier_core::search::SearchIndex::in_memory()?;
    let search = atelier_web::IndexedSearch::new(replica.clone(), index)?;
    let config = atelier_web::WebConfig {
        search: Some(Arc::new(search)),
        ..atelier_web::WebConfig::listening_on(listen)
    };
    let handle = atelier_web::spawn(replica, config).await?;
    println!("{}", handle.url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
