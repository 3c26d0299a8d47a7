//! The `atelier` command line: one office's replica, edited offline, in French.
//!
//! `main.rs` only parses arguments, sets up tracing and calls [`run`]; each subcommand lives in
//! its own module under [`cmd`]. Commands talk to the replica through a [`backend::Backend`]:
//! the replica itself when this process can open it, or the local API of the `atelier-web`
//! server that holds it.

pub mod backend;
pub mod cmd;
pub mod demo;
pub mod live_demo;
pub mod media_folder;
pub mod migrate;
mod render;
mod usage;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{FromArgMatches, Parser, Subcommand};

pub use usage::{parse_args, usage_exit};

/// What the exit code of a failed command means (documented in `atelier --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Something failed while running (disk, network, a bug).
    Runtime = 1,
    /// The command line or the data given to it is invalid; nothing was changed.
    Usage = 2,
    /// The replica is held by another process.
    InUse = 3,
    /// The relay or peer is unreachable, or the sync was cut short: try again later.
    Network = 4,
    /// The relay or peer refused this device (token, enrolment, revocation), or presented
    /// another certificate than the one pinned.
    Refused = 5,
}

/// Atelier : le corpus de ressources d'architecture des CAUE, dans un réplica local qui
/// fonctionne hors ligne.
#[derive(Parser, Debug)]
#[command(name = "atelier", version)]
pub struct Cli {
    /// Dossier du réplica (ou variable ATELIER_DIR) [défaut : dossier de données de
    /// l'utilisateur, ex. ~/.local/share/atelier].
    #[arg(
        long,
        global = true,
        env = "ATELIER_DIR",
        value_name = "DOSSIER",
        display_order = 900
    )]
    pub dir: Option<PathBuf>,

    /// Plus de messages de diagnostic sur la sortie d'erreur (-v, -vv).
    #[arg(long, short, global = true, action = clap::ArgAction::Count, display_order = 901)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each variant's doc comment is its one-line help.
#[derive(Subcommand, Debug)]
// Parsed once per process: the size of the largest variant (`add`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Crée le réplica d'un office (et l'identité de cet appareil).
    Init(cmd::init::Args),
    /// Ajoute une ressource (options, ou un objet JSON sur l'entrée standard).
    Add(cmd::add::Args),
    /// Modifie une ressource, champ par champ.
    Edit(cmd::edit::Args),
    /// Affiche une ressource.
    Show(cmd::show::Args),
    /// Liste les ressources, avec des filtres.
    List(cmd::list::Args),
    /// Supprime une ressource (elle reste dans l'historique).
    Rm(cmd::rm::Args),
    /// Affiche l'historique des modifications d'une ressource.
    History(cmd::history::Args),
    /// Importe un fichier JSON Lines, un tableur CSV ou un GeoJSON (tout ou rien).
    Import(cmd::import::Args),
    /// Exporte les ressources en JSON Lines, CSV ou GeoJSON.
    Export(cmd::export::Args),
    /// Reconstruit les index dérivés (liste, références, recherche) et complète le catalogue.
    Reindex(cmd::reindex::Args),
    /// Démonstration sur un réplica jetable rempli d'exemples.
    Demo(cmd::demo::Args),
    /// Inscrit cet appareil auprès d'un relais (jeton à usage unique) et retient ce relais.
    Join(cmd::join::Args),
    /// Synchronise avec le relais, ou directement avec un autre poste (--peer).
    Sync(cmd::sync::Args),
    /// Montre le relais, la dernière synchronisation et ce qui n'est pas encore envoyé.
    Status(cmd::status::Args),
    /// Accepte la synchronisation directe d'autres postes autorisés, sans relais.
    Serve(cmd::serve::Args),
    /// Cherche dans les ressources (texte, filtres, nombre de résultats par type).
    Search(cmd::search::Args),
    /// Photos, plans et documents d'une ressource ; ce que ce poste reçoit.
    Media(cmd::media::Args),
    /// Affiche un lien de connexion à usage unique vers l'application web de ce réplica.
    #[command(visible_alias = "ouvrir")]
    Open(cmd::open::Args),
    /// Groupes de travail : ligne éditoriale, thèmes, membres (creer, liste, voir, modifier, theme).
    Groupe(cmd::groupe::Args),
    /// Publications numériques : assembler fiches, textes, cartes et thèmes ; exporter un site
    /// lisible sans connexion (creer, liste, voir, modifier, section, export, regenerer).
    Publication(cmd::publication::Args),
    /// Plan de charge : les tâches des groupes par office et par mois, la part de chacun, les retards.
    Taches(cmd::taches::ListArgs),
    /// Ajoute, modifie ou termine une tâche du plan de charge (add, set, done).
    Tache(cmd::taches::Args),
    /// Relecture entre offices : demander, approuver, renvoyer, liste « À relire ».
    Relecture(cmd::relecture::Args),
    /// Publie une ressource (avec l'approbation d'un autre office si son groupe la demande).
    Publier(cmd::relecture::PublishArgs),
    /// Commente une ressource ou une tâche ; « @caue-XX » prévient cet office.
    Commenter(cmd::discussion::CommentArgs),
    /// Affiche la discussion d'une ressource (et sa relecture) ou d'une tâche.
    Discussion(cmd::discussion::ShowArgs),
    /// « Pour vous » : relectures demandées, mentions, vos tâches.
    PourVous(cmd::nouveautes::ForYouArgs),
    /// « Quoi de neuf » : ce que les autres offices ont changé depuis votre dernière visite.
    Nouveautes(cmd::nouveautes::NewsArgs),
    /// Sauvegarde le réplica dans un fichier vérifié (fiches, identité, relais, médias).
    Backup(cmd::backup::Args),
    /// Restaure une sauvegarde du réplica dans un dossier vide.
    Restore(cmd::restore::Args),
}

impl Cli {
    /// Parses `std::env::args_os()` with French help and messages.
    pub fn from_env() -> Result<Self, clap::Error> {
        let matches = parse_args(std::env::args_os())?;
        Self::from_arg_matches(&matches)
    }
}

/// What every command gets: where the replica is, and how to tell the time.
pub struct Ctx {
    /// The replica directory (`--dir`, `ATELIER_DIR`, or the platform data directory).
    pub dir: PathBuf,
    /// The local time zone, for showing change times; UTC when it cannot be read.
    pub offset: time::UtcOffset,
}

impl Ctx {
    /// Milliseconds since the epoch, from the system clock (the core takes time as an argument).
    pub fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// Runs one command, writing its output to standard output.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Read the local offset first: the time crate only does so while the process has one thread.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let dir = match cli.dir {
        Some(dir) => dir,
        None => default_dir()?,
    };
    let ctx = Ctx { dir, offset };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with(cli.command, &ctx, &mut out)?;
    out.flush().context("écriture sur la sortie standard")?;
    Ok(())
}

/// Runs one command against `ctx`, writing to `out`.
pub fn run_with(command: Command, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Command::Init(a) => cmd::init::run(a, ctx, out),
        Command::Add(a) => cmd::add::run(a, ctx, out),
        Command::Edit(a) => cmd::edit::run(a, ctx, out),
        Command::Show(a) => cmd::show::run(a, ctx, out),
        Command::List(a) => cmd::list::run(a, ctx, out),
        Command::Rm(a) => cmd::rm::run(a, ctx, out),
        Command::History(a) => cmd::history::run(a, ctx, out),
        Command::Import(a) => cmd::import::run(a, ctx, out),
        Command::Export(a) => cmd::export::run(a, ctx, out),
        Command::Reindex(a) => cmd::reindex::run(a, ctx, out),
        Command::Demo(a) => cmd::demo::run(a, ctx, out),
        Command::Search(a) => cmd::search::run(a, ctx, out),
        Command::Join(a) => cmd::join::run(a, ctx, out),
        Command::Sync(a) => cmd::sync::run(a, ctx, out),
        Command::Status(a) => cmd::status::run(a, ctx, out),
        Command::Serve(a) => cmd::serve::run(a, ctx, out),
        Command::Media(a) => cmd::media::run(a, ctx, out),
        Command::Open(a) => cmd::open::run(a, ctx, out),
        Command::Groupe(a) => cmd::groupe::run(a, ctx, out),
        Command::Publication(a) => cmd::publication::run(a, ctx, out),
        Command::Taches(a) => cmd::taches::run_list(a, ctx, out),
        Command::Tache(a) => cmd::taches::run(a, ctx, out),
        Command::Relecture(a) => cmd::relecture::run(a, ctx, out),
        Command::Publier(a) => cmd::relecture::run_publish(a, ctx, out),
        Command::Commenter(a) => cmd::discussion::run_comment(a, ctx, out),
        Command::Discussion(a) => cmd::discussion::run_show(a, ctx, out),
        Command::PourVous(a) => cmd::nouveautes::run_for_you(a, ctx, out),
        Command::Nouveautes(a) => cmd::nouveautes::run_news(a, ctx, out),
        Command::Backup(a) => cmd::backup::run(a, ctx, out),
        Command::Restore(a) => cmd::restore::run(a, ctx, out),
    }
}

/// The default replica directory: the platform's data directory for atelier.
pub fn default_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("fr", "caue", "atelier")
        .map(|p| p.data_dir().to_path_buf())
        .context("impossible de trouver le dossier de données de l'utilisateur : précisez --dir")
}

/// Milliseconds since the epoch, from the system clock: the commands read the clock here.
pub use atelier_core::clock::now_ms;

/// A problem with what the user typed: exit code 2, nothing changed.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error: walks the cause chain for the errors that mean "usage" or "in use".
pub fn exit_code(err: &anyhow::Error) -> Exit {
    use atelier_core::document::DocumentError;
    use atelier_core::jsonl::ImportError;
    use atelier_core::replica::ReplicaError;
    use atelier_core::resource::ValidationErrors;
    use atelier_core::store::StoreError;
    for cause in err.chain() {
        if cause.is::<backend::InUse>() {
            return Exit::InUse;
        }
        if let Some(e) = cause.downcast_ref::<cmd::sync::SyncFailure>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<backend::RemoteError>() {
            return e.exit();
        }
        if cause.is::<UsageError>()
            || cause.is::<ValidationErrors>()
            || cause.is::<atelier_core::ids::IdError>()
        {
            return Exit::Usage;
        }
        if let Some(e) = cause.downcast_ref::<ImportError>() {
            return match e {
                ImportError::Io(_) => Exit::Runtime,
                _ => Exit::Usage,
            };
        }
        if let Some(e) = cause.downcast_ref::<atelier_core::work::WorkError>() {
            return work_exit(e);
        }
        match cause.downcast_ref::<ReplicaError>() {
            Some(ReplicaError::Store(StoreError::InUse(_))) => return Exit::InUse,
            Some(ReplicaError::Work(e)) => return work_exit(e),
            Some(
                ReplicaError::NotFound(_)
                | ReplicaError::NotInitialised(_)
                | ReplicaError::AlreadyInitialised(_)
                | ReplicaError::Document(DocumentError::Invalid(_) | DocumentError::BadEdit { .. }),
            ) => return Exit::Usage,
            _ => {}
        }
        if let Some(DocumentError::Invalid(_) | DocumentError::BadEdit { .. }) =
            cause.downcast_ref::<DocumentError>()
        {
            return Exit::Usage;
        }
    }
    Exit::Runtime
}

/// A refused working-together edit is the user's to correct; an unreadable document is not.
fn work_exit(e: &atelier_core::work::WorkError) -> Exit {
    match e {
        atelier_core::work::WorkError::Malformed(_) => Exit::Runtime,
        _ => Exit::Usage,
    }
}

/// True when the error is only that standard output was closed (`atelier export | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == broken
    })
}

/// The error and its causes on one line, French style (`a : b`), each message once: some
/// errors repeat their cause in their own message.
pub fn describe_error(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let msg = match cause.downcast_ref::<std::io::Error>() {
            Some(e) => io_message(e),
            None => cause.to_string(),
        };
        if text.contains(&msg) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(" : ");
        }
        text.push_str(&msg);
    }
    text
}

/// The operating system's messages are English: say the common ones in French.
fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let what = match e.kind() {
        NotFound => "fichier ou dossier introuvable",
        PermissionDenied => "permission refusée",
        AlreadyExists => "le fichier existe déjà",
        InvalidData => "contenu illisible (ce n'est pas du texte UTF-8 ?)",
        StorageFull => "disque plein",
        ReadOnlyFilesystem => "système de fichiers en lecture seule",
        IsADirectory => "c'est un dossier",
        _ => return e.to_string(),
    };
    what.to_string()
}
