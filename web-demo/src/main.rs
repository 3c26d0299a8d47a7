//! `atelier-web`: serves one office's replica as a web app on this computer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use atelier_core::replica::Replica;
use atelier_web::{IndexedSearch, WebConfig, DEFAULT_PORT};
use clap::Parser;

/// Application web d'Atelier : consulter et modifier les fiches de l'office dans le navigateur.
///
/// Le serveur n'écoute que sur cet ordinateur (127.0.0.1) sauf si --listen dit autre chose. Il
/// écrit DIR/server.json (adresse et jeton d'accès) pour la commande « atelier », et l'efface en
/// s'arrêtant (Ctrl+C).
#[derive(Debug, Parser)]
#[command(
    name = "atelier-web",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    help_template = "{about-with-newline}\nUtilisation : {usage}\n\nOptions :\n{options}\n"
)]
struct Args {
    /// Dossier du réplica de l'office (créé avec « atelier init »).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Adresse d'écoute (par défaut 127.0.0.1:8063).
    #[arg(long, value_name = "ADRESSE", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)), hide_default_value = true)]
    listen: SocketAddr,
    /// Afficher cette aide.
    #[arg(short = 'h', long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Afficher la version.
    #[arg(short = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "atelier_web=info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The causes are French sentences for staff; no backtrace.
            eprintln!("Erreur : {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let replica = Arc::new(
        Replica::open(&args.dir)
            .with_context(|| format!("ouverture du réplica « {} »", args.dir.display()))?,
    );
    let search = match IndexedSearch::open(replica.clone()) {
        Ok(s) => Some(Arc::new(s) as Arc<dyn atelier_web::SearchBackend>),
        Err(e) => {
            tracing::warn!(error = %e, "full-text search unavailable, using the plain word filter");
            None
        }
    };
    let config = WebConfig {
        listen: args.listen,
        search,
        ..WebConfig::default()
    };
    let handle = atelier_web::spawn(replica.clone(), config).await?;
    println!(
        "Atelier ({}) : ouvrez {} dans votre navigateur. Ctrl+C pour arrêter.",
        replica.office(),
        handle.url()
    );
    stop_requested().await?;
    println!("Arrêt…");
    handle.shutdown().await;
    Ok(())
}

/// Ctrl+C, or the service manager's SIGTERM: both stop the server cleanly (server.json removed).
async fn stop_requested() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("attente de SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("attente de Ctrl+C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("attente de Ctrl+C")
    }
}
