//! `atelier open` (alias `ouvrir`): prints a one-time login link to the web app that serves the
//! replica, minted by that server from the token of `server.json`.

use std::io::Write;

use serde_json::json;

use super::write_json;
use crate::backend::{Remote, ServerInfo};
use crate::{Ctx, UsageError};

/// Affiche un lien de connexion au navigateur pour l'application web qui sert ce réplica
/// (atelier-web, atelier sync --watch). Le lien ne sert qu'une fois et expire vite : lancez la
/// commande de nouveau pour un autre navigateur.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Page à ouvrir une fois connecté (par défaut la liste des fiches), ex. /lexique.
    #[arg(long, value_name = "CHEMIN", default_value = "/")]
    pub page: String,
    /// Affiche le résultat en JSON : {"url": "…", "expires_in_s": N}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(info) = ServerInfo::read(&ctx.dir) else {
        return Err(UsageError(format!(
            "aucune application web ne sert le réplica « {} » : lancez « atelier-web --dir {} », \
             qui affiche un lien de connexion",
            ctx.dir.display(),
            ctx.dir.display()
        ))
        .into());
    };
    let link = Remote::new(&ctx.dir, info).login_link(&args.page)?;
    if args.json {
        return write_json(
            out,
            &json!({ "url": link.url, "expires_in_s": link.expires_in_s }),
        );
    }
    writeln!(
        out,
        "Ouvrez ce lien dans votre navigateur (il sert une fois, pendant {} minutes) :\n  {}",
        link.expires_in_s / 60,
        link.url
    )?;
    Ok(())
}
