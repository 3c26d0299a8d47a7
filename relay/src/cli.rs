//! The `atelier-relay` command line: arguments (clap derive, help in French for the IT staff
//! who run the relay) and one function per subcommand.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rand::rngs::OsRng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::info;

use crate::access::{self, AccessStore, Device, WsTokenInfo, DEFAULT_WS_TOKEN_TTL};
use crate::config::{RelayConfig, DEFAULT_TOKEN_TTL_HOURS};
use crate::identity::{Fingerprint, Identity};
use crate::reset_key::ResetKey;

/// Relais Atelier : stocke et retransmet la synchronisation entre les postes des CAUE.
#[derive(Debug, Parser)]
#[command(name = "atelier-relay", version)]
pub struct Cli {
    /// Répertoire de données du relais (identité et registre des accès). Pour `serve`, remplace
    /// le `data_dir` du fichier de configuration.
    #[arg(long, global = true, value_name = "DIR", env = "ATELIER_RELAY_DATA")]
    pub data: Option<PathBuf>,

    /// Affiche le résultat en JSON, pour les scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// La commande à exécuter.
    #[command(subcommand)]
    pub command: Command,
}

/// Les commandes du relais.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crée l'identité du relais dans --data et affiche son empreinte.
    Init,
    /// Crée un jeton d'inscription à usage unique pour un appareil d'un CAUE.
    Invite(InviteArgs),
    /// Crée un jeton d'accès WebSocket pour les navigateurs d'un CAUE.
    Token(TokenArgs),
    /// Liste les jetons WebSocket (identifiant, CAUE, échéance, état), jamais les jetons eux-mêmes.
    Tokens,
    /// Révoque tous les appareils d'un CAUE, un seul appareil, ou un seul jeton WebSocket. Un
    /// relais en service coupe les connexions concernées en une seconde environ.
    Revoke(RevokeArgs),
    /// Liste les appareils inscrits.
    Offices,
    /// Lance le relais.
    Serve(ServeArgs),
    /// Sauvegarde un relais en service (documents, identité, registre des accès, médias
    /// locaux) dans un fichier, par son écoute d'administration.
    Backup(BackupArgs),
    /// Restaure une sauvegarde dans un nouveau répertoire de données (--data) : le relais
    /// garde son empreinte, les postes se reconnectent sans rien changer.
    Restore(RestoreArgs),
}

/// Arguments de `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Fichier de sauvegarde à écrire (remplacé seulement une fois la sauvegarde complète).
    #[arg(long, value_name = "FICHIER")]
    pub out: PathBuf,
    /// Configuration du relais en service (adresse d'administration, répertoire de données).
    #[arg(long, value_name = "FICHIER", default_value = "relay.toml")]
    pub config: PathBuf,
    /// Adresse d'administration du relais, si ce n'est pas `admin_listen` de la configuration
    /// (par exemple le port choisi au démarrage quand la configuration dit 0).
    #[arg(long, value_name = "ADRESSE")]
    pub admin: Option<std::net::SocketAddr>,
}

/// Arguments de `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Fichier de sauvegarde (écrit par `atelier-relay backup`).
    #[arg(value_name = "FICHIER")]
    pub file: PathBuf,
}

/// Arguments de `invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// Identifiant du CAUE, par exemple caue-15, caue-2A ou caue-974.
    #[arg(long, value_name = "CAUE", value_parser = parse_office_arg)]
    pub office: String,
    /// L'appareil pourra lire, mais pas modifier.
    #[arg(long)]
    pub read_only: bool,
    /// Durée de validité du jeton, en heures.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TOKEN_TTL_HOURS)]
    pub ttl_hours: u32,
}

/// Arguments de `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Identifiant du CAUE, par exemple caue-15.
    #[arg(long, value_name = "CAUE", value_parser = parse_office_arg)]
    pub office: String,
    /// Le navigateur pourra lire, mais pas modifier.
    #[arg(long)]
    pub read_only: bool,
    /// Durée de validité du jeton, en jours (au plus 366).
    #[arg(long, value_name = "JOURS", default_value_t = DEFAULT_WS_TOKEN_TTL.whole_days() as u32)]
    pub expire_days: u32,
}

/// Arguments de `revoke`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// Révoque tous les appareils, invitations et jetons WebSocket de ce CAUE.
    #[arg(long, value_name = "CAUE", value_parser = parse_office_arg)]
    pub office: Option<String>,
    /// Révoque l'appareil qui a cette empreinte (64 chiffres hexadécimaux).
    #[arg(long, value_name = "EMPREINTE")]
    pub fingerprint: Option<Fingerprint>,
    /// Révoque le seul jeton WebSocket qui a cet identifiant (voir `atelier-relay tokens`).
    #[arg(long, value_name = "IDENTIFIANT")]
    pub token: Option<String>,
}

/// Arguments de `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Fichier de configuration TOML.
    #[arg(long, value_name = "FICHIER", default_value = "relay.toml")]
    pub config: PathBuf,
    /// Format du journal sur la sortie d'erreur : texte lisible, ou une ligne JSON par
    /// événement (pour journald, Loki, Elasticsearch…).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How the relay writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (colours only on a terminal).
    Text,
    /// One JSON object per event: time, level, target, fields, spans.
    Json,
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let Cli {
        data,
        json,
        command,
    } = cli;
    if !matches!(command, Command::Serve(_)) {
        init_tracing("warn", LogFormat::Text);
    }
    match command {
        Command::Serve(args) => serve(data, &args).await,
        Command::Init => init(&data_dir(data)?, json),
        Command::Invite(args) => invite(&data_dir(data)?, &args, json),
        Command::Token(args) => token(&data_dir(data)?, &args, json),
        Command::Tokens => tokens(&data_dir(data)?, json),
        Command::Revoke(args) => revoke(&data_dir(data)?, &args, json),
        Command::Offices => offices(&data_dir(data)?, json),
        Command::Backup(args) => backup(data, &args, json).await,
        Command::Restore(args) => restore(&data_dir(data)?, &args, json),
    }
}

/// Runs the relay until `shutdown` completes, then stops it gracefully.
pub async fn run_serve(config: &RelayConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    // Caught before anything is announced: a SIGHUP's default action would stop the relay.
    let mut hangups = Hangups::new();
    let relay = crate::relay::spawn(config).await?;
    info!(
        listen = %relay.quic_addr(),
        ws = %relay.ws_addr(),
        fingerprint = %relay.fingerprint(),
        "relais démarré"
    );
    println!("Relais atelier en service");
    println!("  synchronisation : quic://{}", relay.quic_addr());
    let scheme = if relay.is_tls() { "wss" } else { "ws" };
    println!(
        "  navigateurs     : {scheme}://{}/?token=…",
        relay.ws_addr()
    );
    println!("  administration  : http://{}/metrics", relay.admin_addr());
    println!("  empreinte       : {}", relay.fingerprint());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            () = hangups.next() => match relay.reload_tls() {
                Ok(true) => info!("wss certificate reloaded"),
                Ok(false) => info!("SIGHUP: no [tls] to reload"),
                Err(e) => tracing::error!(error = %e, "wss certificate not reloaded, the previous one stays"),
            },
        }
    }
    info!("arrêt du relais");
    relay.shutdown().await;
    Ok(())
}

async fn serve(data: Option<PathBuf>, args: &ServeArgs) -> Result<()> {
    let mut config = RelayConfig::load(&args.config)
        .with_context(|| format!("lecture de la configuration {}", args.config.display()))?;
    if let Some(data) = data {
        config.data_dir = data;
    }
    init_tracing(&config.log_level, args.log_format);
    run_serve(&config, shutdown_signal()).await
}

fn init(data: &Path, json: bool) -> Result<()> {
    let identity = Identity::load_or_create(data)
        .with_context(|| format!("création de l'identité dans {}", data.display()))?;
    ResetKey::load_or_create(data).with_context(|| {
        format!(
            "création de la clé de réinitialisation dans {}",
            data.display()
        )
    })?;
    let fingerprint = identity.fingerprint();
    if json {
        return print_json(&serde_json::json!({
            "data_dir": data,
            "fingerprint": fingerprint,
        }));
    }
    println!("Identité du relais prête dans {}", data.display());
    println!("Empreinte : {fingerprint}");
    println!();
    println!("Étapes suivantes :");
    println!("  1. écrivez relay.toml (listen = \"0.0.0.0:4433\" pour accepter le réseau,");
    println!("     data_dir = \"{}\")", data.display());
    println!("  2. lancez : atelier-relay serve --config relay.toml");
    println!(
        "  3. pour chaque poste : atelier-relay invite --data {} --office caue-NN",
        data.display()
    );
    println!("     et transmettez le jeton avec l'adresse du relais et son empreinte.");
    Ok(())
}

fn invite(data: &Path, args: &InviteArgs, json: bool) -> Result<()> {
    let fingerprint = load_identity(data)?.fingerprint();
    let ttl = time::Duration::hours(i64::from(args.ttl_hours));
    let now = OffsetDateTime::now_utc();
    let token = AccessStore::new(data)
        .update(|r| r.invite(&mut OsRng, &args.office, args.read_only, ttl, now))
        .context("création de l'invitation")?;
    let expires_at = now + ttl;
    if json {
        return print_json(&serde_json::json!({
            "office": args.office,
            "read_only": args.read_only,
            "token": token,
            "expires_at": format_time_json(expires_at),
            "relay_fingerprint": fingerprint,
        }));
    }
    println!(
        "Jeton d'inscription pour {} (usage unique, valable jusqu'au {}) :",
        args.office,
        format_time(expires_at)
    );
    println!("{token}");
    println!("Empreinte du relais : {fingerprint}");
    Ok(())
}

fn token(data: &Path, args: &TokenArgs, json: bool) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let ttl = time::Duration::days(i64::from(args.expire_days));
    let (token, id) = AccessStore::new(data)
        .update(|r| {
            let token = r.issue_ws_token(&mut OsRng, &args.office, args.read_only, ttl, now)?;
            let id = r.authorize_ws_token(&token, now)?.id;
            Ok((token, id))
        })
        .context("création du jeton WebSocket")?;
    let expires_at = now + ttl;
    if json {
        return print_json(&serde_json::json!({
            "office": args.office,
            "read_only": args.read_only,
            "token": token,
            "id": id,
            "expires_at": format_time_json(expires_at),
        }));
    }
    println!(
        "Jeton WebSocket pour {} (identifiant {id}, valable jusqu'au {}, révoqué avec le CAUE) :",
        args.office,
        format_time(expires_at)
    );
    println!("{token}");
    Ok(())
}

fn tokens(data: &Path, json: bool) -> Result<()> {
    let store = AccessStore::new(data);
    let tokens: Vec<WsTokenInfo> = store
        .read(|r| r.ws_tokens().collect())
        .with_context(|| format!("lecture du registre {}", store.path().display()))?;
    if json {
        return print_json(&tokens);
    }
    if tokens.is_empty() {
        println!("Aucun jeton WebSocket.");
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    println!(
        "{:<12} {:<10} {:<8} {:<20} {:<20} ÉTAT",
        "IDENTIFIANT", "CAUE", "ACCÈS", "CRÉÉ LE", "EXPIRE LE"
    );
    for t in tokens {
        let state = if t.revoked {
            "révoqué"
        } else if t.expires_at <= now {
            "expiré"
        } else {
            "actif"
        };
        println!(
            "{:<12} {:<10} {:<8} {:<20} {:<20} {state}",
            t.id,
            t.office,
            if t.read_only { "lecture" } else { "complet" },
            format_time(t.issued_at),
            format_time(t.expires_at),
        );
    }
    Ok(())
}

fn revoke(data: &Path, args: &RevokeArgs, json: bool) -> Result<()> {
    let store = AccessStore::new(data);
    match (&args.office, &args.fingerprint, &args.token) {
        (Some(office), _, _) => {
            let revoked = store
                .update(|r| r.revoke_office(office))
                .with_context(|| format!("révocation de {office}"))?;
            if json {
                return print_json(&serde_json::json!({
                    "office": office,
                    "devices": revoked.devices,
                    "invites": revoked.invites,
                    "ws_tokens": revoked.ws_tokens,
                }));
            }
            println!(
                "{office} révoqué : {} appareil(s), {} invitation(s), {} jeton(s) WebSocket.",
                revoked.devices, revoked.invites, revoked.ws_tokens
            );
        }
        (None, Some(fingerprint), _) => {
            let device = store
                .update(|r| r.revoke_device(fingerprint))
                .with_context(|| format!("révocation de l'appareil {fingerprint}"))?;
            if json {
                return print_json(&device);
            }
            println!("Appareil {fingerprint} ({}) révoqué.", device.office);
        }
        (None, None, Some(id)) => {
            let token = store
                .update(|r| r.revoke_ws_token(id))
                .with_context(|| format!("révocation du jeton WebSocket {id}"))?;
            if json {
                return print_json(&token);
            }
            println!("Jeton WebSocket {} ({}) révoqué.", token.id, token.office);
        }
        (None, None, None) => bail!("indiquez --office, --fingerprint ou --token"),
    }
    println!("Un relais en service coupe les connexions concernées en une seconde environ.");
    Ok(())
}

fn offices(data: &Path, json: bool) -> Result<()> {
    let store = AccessStore::new(data);
    let devices: Vec<Device> = store
        .read(|r| r.devices().cloned().collect())
        .with_context(|| format!("lecture du registre {}", store.path().display()))?;
    if json {
        return print_json(&devices);
    }
    if devices.is_empty() {
        println!("Aucun appareil inscrit.");
        return Ok(());
    }
    let mut devices = devices;
    devices.sort_by(|a, b| (&a.office, a.enrolled_at).cmp(&(&b.office, b.enrolled_at)));
    println!(
        "{:<10} {:<64} {:<8} {:<20} ÉTAT",
        "CAUE", "EMPREINTE", "ACCÈS", "INSCRIT LE"
    );
    for d in devices {
        println!(
            "{:<10} {:<64} {:<8} {:<20} {}",
            d.office,
            d.fingerprint,
            if d.read_only { "lecture" } else { "complet" },
            format_time(d.enrolled_at),
            if d.revoked { "révoqué" } else { "actif" },
        );
    }
    Ok(())
}

async fn backup(data: Option<PathBuf>, args: &BackupArgs, json: bool) -> Result<()> {
    let mut config = RelayConfig::load(&args.config)
        .with_context(|| format!("lecture de la configuration {}", args.config.display()))?;
    if let Some(data) = data {
        config.data_dir = data;
    }
    let token = std::fs::read_to_string(config.data_dir.join(crate::admin::ADMIN_TOKEN_FILE))
        .with_context(|| {
            format!(
                "lecture du jeton d'administration dans {} (le relais a-t-il démarré au moins une fois ? \
                 lancez la sauvegarde avec l'utilisateur du relais)",
                config.data_dir.display()
            )
        })?;
    let mut admin = args.admin.unwrap_or(config.admin_listen);
    // A relay listening on every address answers on loopback too.
    if admin.ip().is_unspecified() {
        admin.set_ip(match admin {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let out = args.out.clone();
    let (header, summary) =
        tokio::task::spawn_blocking(move || crate::backup::fetch(admin, token.trim(), &out))
            .await
            .context("sauvegarde interrompue")?
            .with_context(|| {
                format!("sauvegarde du relais par http://{admin} (le relais est-il en service ?)")
            })?;
    if json {
        return print_json(&serde_json::json!({
            "file": args.out,
            "fingerprint": header.fingerprint,
            "created_at": header.created_at,
            "documents": summary.documents,
            "files": summary.files,
            "bytes": summary.bytes,
        }));
    }
    println!(
        "Sauvegarde écrite et vérifiée : {} ({} documents, {} fichiers, {} octets)",
        args.out.display(),
        summary.documents,
        summary.files,
        summary.bytes
    );
    if let Some(fp) = header.fingerprint {
        println!("Empreinte du relais : {fp}");
    }
    Ok(())
}

fn restore(data: &Path, args: &RestoreArgs, json: bool) -> Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("ouverture de {}", args.file.display()))?;
    let check = |h: &crate::backup::Header| {
        if h.kind != "relay" {
            return Err(crate::backup::BackupError::Invalid(format!(
                "this is a backup of a {}, not of a relay (use `atelier restore`)",
                h.kind
            )));
        }
        if h.store_format > crate::relay::RELAY_FORMAT_VERSION {
            return Err(crate::backup::BackupError::Newer(format!(
                "la sauvegarde vient d'un relais au format {}, cette version d'atelier-relay lit le format {} : mettez atelier-relay à jour",
                h.store_format,
                crate::relay::RELAY_FORMAT_VERSION
            )));
        }
        Ok(())
    };
    let (header, summary) = crate::backup::restore(file, data, check, crate::relay::STORE_DIR)
        .with_context(|| {
            format!(
                "restauration de {} dans {} (rien n'a été écrit dans ce répertoire)",
                args.file.display(),
                data.display()
            )
        })?;
    let fingerprint = load_identity(data)?.fingerprint();
    if json {
        return print_json(&serde_json::json!({
            "data_dir": data,
            "fingerprint": fingerprint,
            "created_at": header.created_at,
            "documents": summary.documents,
            "files": summary.files,
        }));
    }
    println!(
        "Relais restauré dans {} : {} documents, {} fichiers (sauvegarde du {}).",
        data.display(),
        summary.documents,
        summary.files,
        header.created_at
    );
    println!("Empreinte : {fingerprint} (inchangée : les postes se reconnectent tels quels)");
    println!(
        "Lancez : atelier-relay serve --config relay.toml (data_dir = \"{}\")",
        data.display()
    );
    Ok(())
}

fn data_dir(data: Option<PathBuf>) -> Result<PathBuf> {
    data.context(
        "indiquez le répertoire de données du relais avec --data DIR \
         (ou la variable ATELIER_RELAY_DATA)",
    )
}

fn load_identity(data: &Path) -> Result<Identity> {
    Identity::load(data).with_context(|| {
        format!(
            "lecture de l'identité du relais dans {} (lancez d'abord atelier-relay init --data {})",
            data.display(),
            data.display()
        )
    })
}

/// SIGHUP (`systemctl reload`), where there is such a signal.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "SIGHUP cannot be caught: no certificate reload")
                })
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Completes at the next SIGHUP; never where there is none.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Completes on Ctrl-C, or on SIGTERM (how systemd stops a service).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr with `filter`, unless `RUST_LOG` says otherwise, in `format`.
fn init_tracing(filter: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only if a subscriber is already installed (tests), which is fine.
    // Colours only on a terminal: under systemd the log goes to the journal as plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

fn parse_office_arg(text: &str) -> Result<String, access::AccessError> {
    access::parse_office(text)
}

/// A UTC time to the minute, for people: `2025-03-04 09:30 UTC`.
fn format_time(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

/// A time for scripts: RFC 3339, to the second.
fn format_time_json(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("sérialisation JSON")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn office_and_fingerprint_are_validated_by_the_parser() {
        let cli = Cli::try_parse_from([
            "atelier-relay",
            "--data",
            "/tmp/x",
            "invite",
            "--office",
            "CAUE-2a",
            "--read-only",
        ])
        .unwrap();
        match cli.command {
            Command::Invite(args) => {
                assert_eq!(args.office, "caue-2A");
                assert!(args.read_only);
                assert_eq!(args.ttl_hours, 72);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["atelier-relay", "invite", "--office", "caue-99"]).is_err());
        assert!(Cli::try_parse_from(["atelier-relay", "revoke", "--fingerprint", "abc"]).is_err());
        assert!(Cli::try_parse_from(["atelier-relay", "revoke"]).is_err());
        assert!(Cli::try_parse_from([
            "atelier-relay",
            "revoke",
            "--office",
            "caue-15",
            "--fingerprint",
            &"a".repeat(64)
        ])
        .is_err());
    }

    #[test]
    fn commands_work_on_a_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("relay");
        init(&data, false).unwrap();
        let args = InviteArgs {
            office: "caue-15".into(),
            read_only: false,
            ttl_hours: 1,
        };
        invite(&data, &args, true).unwrap();
        token(
            &data,
            &TokenArgs {
                office: "caue-15".into(),
                read_only: true,
                expire_days: 7,
            },
            false,
        )
        .unwrap();
        offices(&data, false).unwrap();
        tokens(&data, false).unwrap();
        tokens(&data, true).unwrap();
        let id = AccessStore::new(&data)
            .read(|r| r.ws_tokens().next().unwrap().id)
            .unwrap();
        let one_token = RevokeArgs {
            office: None,
            fingerprint: None,
            token: Some(id),
        };
        revoke(&data, &one_token, false).unwrap();
        assert!(AccessStore::new(&data)
            .read(|r| r.ws_tokens().all(|t| t.revoked))
            .unwrap());
        let revoke_args = RevokeArgs {
            office: Some("caue-15".into()),
            fingerprint: None,
            token: None,
        };
        revoke(&data, &revoke_args, false).unwrap();
        let unknown = RevokeArgs {
            office: None,
            fingerprint: Some(Fingerprint::from_bytes([1; 32])),
            token: None,
        };
        let err = revoke(&data, &unknown, false).unwrap_err();
        assert!(format!("{err:#}").contains("unknown device"), "{err:#}");
        let missing = invite(&dir.path().join("nowhere"), &args, false).unwrap_err();
        assert!(
            format!("{missing:#}").contains("atelier-relay init"),
            "{missing:#}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn run_serve_starts_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), true).unwrap();
        let config = RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ws_listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            ..RelayConfig::default()
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(15),
            run_serve(&config, async {}),
        )
        .await
        .unwrap()
        .unwrap();
    }
}
