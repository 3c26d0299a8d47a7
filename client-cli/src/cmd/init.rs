//! `atelier init`: creates an office's replica and this device's identity.

use std::io::Write;

use anyhow::Context as _;
use atelier_core::replica::Replica;
use atelier_core::OfficeId;
use atelier_relay::identity::Identity;

use crate::Ctx;

/// Directory of the device identity inside the replica directory (see `atelier_core::replica`).
pub const IDENTITY_DIR: &str = "identity";

/// Crée le réplica d'un office dans le dossier choisi (--dir), avec l'identité de cet appareil
/// pour la synchronisation.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Office propriétaire du réplica : caue-<code département>, ex. caue-63, caue-2A.
    #[arg(long, value_name = "OFFICE")]
    pub office: OfficeId,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = &ctx.dir;
    let replica = Replica::init(dir, args.office.clone())?;
    drop(replica);
    // The identity is made after the replica, so that `init` on an existing replica changes
    // nothing; `load_or_create` keeps an identity that is already there.
    let identity_dir = dir.join(IDENTITY_DIR);
    let identity = Identity::load_or_create(&identity_dir).with_context(|| {
        format!(
            "réplica créé, mais pas l'identité de l'appareil dans « {} »",
            identity_dir.display()
        )
    })?;
    writeln!(
        out,
        "Réplica de {} créé dans « {} ».",
        args.office,
        dir.display()
    )?;
    writeln!(out, "  données : {}", dir.join("db").display())?;
    writeln!(
        out,
        "  identité de cet appareil : {} (empreinte {})",
        identity_dir.display(),
        identity.fingerprint()
    )?;
    let default = crate::default_dir().ok();
    let prefix = if default.as_deref() == Some(dir.as_path()) {
        "atelier".to_string()
    } else {
        format!("atelier --dir {}", shell_quote(&dir.display().to_string()))
    };
    writeln!(out, "\nEt ensuite :")?;
    writeln!(
        out,
        "  {prefix} add --kind realisation --title \"…\"   ajouter une ressource"
    )?;
    writeln!(
        out,
        "  {prefix} import ressources.jsonl            importer un fichier JSON Lines"
    )?;
    writeln!(
        out,
        "  {prefix} list                               voir les ressources"
    )?;
    writeln!(
        out,
        "  atelier demo                                 essayer sur des exemples"
    )?;
    if default.as_deref() != Some(dir.as_path()) {
        writeln!(
            out,
            "(ou définissez ATELIER_DIR={} pour ne plus préciser --dir)",
            dir.display()
        )?;
    }
    Ok(())
}

/// Quotes a path for a copy-paste into a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_alphanumeric() || "/._-~".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
