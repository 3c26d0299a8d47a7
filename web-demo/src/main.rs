//! `atelier-web`: serves one office's replica as a web app on this computer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use atelier_core::replica::Replica;
use atelier_web::search::CatchingUp;
use atelier_web::{WebConfig, DEFAULT_PORT};
use clap::Parser;

/// Application web d'Atelier : consulter et modifier les fiches de l'office dans le navigateur.
///
/// Le serveur n'écoute que sur cet ordinateur (127.0.0.1) sauf si --listen dit autre chose. Il
/// écrit DIR/server.json (adresse et jeton d'accès) pour la commande « atelier », et l'efface en
/// s'arrêtant (Ctrl+C). Le navigateur s'y connecte par un lien à usage unique : celui affiché au
/// démarrage, ou un nouveau avec « atelier --dir DIR ouvrir ».
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
    /// Accepter une adresse --listen joignable depuis le réseau, sans chiffrement (HTTP) : à
    /// réserver à un réseau de confiance.
    #[arg(long)]
    insecure_lan: bool,
    /// Afficher cette aide.
    #[arg(short = 'h', long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Afficher la version.
    #[arg(short = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
}

atelier_core::binary_allocator!();

fn main() -> std::process::ExitCode {
    // Before tokio starts its threads (see `atelier_core::malloc`).
    atelier_core::malloc::configure();
    start()
}

#[tokio::main]
async fn start() -> std::process::ExitCode {
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
    let started = std::time::Instant::now();
    let replica = Arc::new(
        Replica::open(&args.dir)
            .with_context(|| format!("ouverture du réplica « {} »", args.dir.display()))?,
    );
    // The list page reads the whole listing while search catches up, and so does marking a
    // rebuild below: read it once, here, and keep it current (`Replica::listed`).
    let opened = started.elapsed();
    let listed = replica
        .listed()
        .with_context(|| format!("lecture des fiches du réplica « {} »", args.dir.display()))?;
    tracing::info!(?opened, entries = listed.len(), elapsed = ?started.elapsed(), "replica opened, listing read");
    let search = match CatchingUp::open(replica.clone()) {
        Ok(s) => Some(Arc::new(s) as Arc<dyn atelier_web::SearchBackend>),
        Err(e) => {
            tracing::warn!(error = %e, "full-text search unavailable, using the plain word filter");
            None
        }
    };
    tracing::info!(elapsed = ?started.elapsed(), "search opened");
    let config = WebConfig {
        listen: args.listen,
        search,
        insecure_lan: args.insecure_lan,
        ..WebConfig::default()
    };
    let handle = atelier_web::spawn(replica.clone(), config).await?;
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "Attention : l'application écoute sur {} sans chiffrement (--insecure-lan). Sur ce \
             réseau, quiconque voit passer les échanges ou obtient un lien de connexion peut lire \
             et modifier les fiches.",
            args.listen
        );
    }
    println!(
        "Atelier ({}) : ouvrez ce lien dans votre navigateur (il sert une fois, pendant {} minutes) :\n  {}\nPour un nouveau lien : atelier --dir {} ouvrir. Ctrl+C pour arrêter.",
        replica.office(),
        atelier_web::auth::LOGIN_LINK_TTL.as_secs() / 60,
        handle.login_url("/"),
        args.dir.display()
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
