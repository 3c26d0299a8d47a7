//! `atelier export`: every live resource as FORMAT.md JSON Lines, to stdout or a file.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;

use atelier_core::fr;
use atelier_core::replica::Unreadable;

use crate::{backend, media_folder, Ctx};

/// Exporte toutes les ressources (sauf les supprimées) en JSON Lines du format d'échange
/// (FORMAT.md), champs inconnus compris, vers la sortie standard ou un fichier.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fichier de sortie. L'export est écrit à côté puis renommé : un export interrompu ne
    /// laisse jamais un fichier à moitié écrit.
    #[arg(long, short, value_name = "FICHIER")]
    pub out: Option<PathBuf>,
    /// Copie aussi les photos et documents reçus sur ce poste dans ce dossier, un fichier par
    /// empreinte (« atelier import » les relit à côté du fichier JSON Lines).
    #[arg(long, value_name = "DOSSIER")]
    pub media: Option<PathBuf>,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let backend = backend::open(&ctx.dir)?;
    let Some(path) = args.out else {
        let mut w = BufWriter::new(out);
        let unreadable = backend.export(&mut w)?;
        w.flush().context("écriture de l'export")?;
        if let Some(dir) = &args.media {
            let done = export_media(backend.as_ref(), dir)?;
            eprintln!("{}", describe_media(&done, dir));
        }
        return incomplete(&unreadable);
    };
    let (lines, unreadable) = export_to_file(backend.as_ref(), &path)?;
    writeln!(
        out,
        "{} exportée{} dans « {} ».",
        fr::count(lines as u64, "ressource"),
        fr::plural_s(lines as u64),
        path.display()
    )?;
    if let Some(dir) = &args.media {
        let done = export_media(backend.as_ref(), dir)?;
        writeln!(out, "{}", describe_media(&done, dir))?;
    }
    incomplete(&unreadable)
}

/// Names on stderr every resource the export left out, and fails (exit code 1) when there was
/// one, after the rest was written: a backup script must not take an incomplete export for a
/// whole one, nor lose the readable resources because of one bad document.
fn incomplete(unreadable: &[Unreadable]) -> anyhow::Result<()> {
    if unreadable.is_empty() {
        return Ok(());
    }
    for u in unreadable {
        match u.title.is_empty() {
            true => eprintln!("Non exportée : {} : {}", u.id, u.reason),
            false => eprintln!("Non exportée : {} « {} » : {}", u.id, u.title, u.reason),
        }
    }
    let n = unreadable.len() as u64;
    anyhow::bail!(
        "export incomplet : {} illisible{} non exportée{} (voir ci-dessus), toutes les autres \
         l'ont été",
        fr::count(n, "ressource"),
        fr::plural_s(n),
        fr::plural_s(n)
    )
}

/// Copies the blobs of every live resource into `dir`.
fn export_media(
    backend: &dyn backend::Backend,
    dir: &Path,
) -> anyhow::Result<media_folder::Exported> {
    let blobs: Vec<_> = backend
        .list(&Default::default())?
        .into_iter()
        .flat_map(|e| e.media)
        .collect();
    media_folder::export(backend, dir, &blobs)
}

fn describe_media(done: &media_folder::Exported, dir: &Path) -> String {
    let mut s = format!(
        "Médias : {} ({}) copiés dans « {} »",
        fr::count(done.written as u64, "fichier"),
        fr::size(done.bytes),
        dir.display()
    );
    if done.missing > 0 {
        s.push_str(&format!(
            " ; {} pas encore reçu{} sur ce poste (voir atelier media policy)",
            fr::count(done.missing as u64, "fichier"),
            fr::plural_s(done.missing as u64)
        ));
    }
    s.push('.');
    s
}

/// Writes the export atomically to `path` (readable by all, as an ordinary document is);
/// returns the lines written and the resources left out.
fn export_to_file(
    backend: &dyn backend::Backend,
    path: &Path,
) -> anyhow::Result<(usize, Vec<Unreadable>)> {
    atelier_core::fs::write_atomic_with(path, Some(0o644), |file| {
        let mut counter = LineCounter {
            inner: BufWriter::new(file),
            lines: 0,
        };
        let unreadable = backend.export(&mut counter)?;
        counter.inner.flush().context("écriture de l'export")?;
        Ok::<_, anyhow::Error>((counter.lines, unreadable))
    })
    .with_context(|| format!("export vers « {} »", path.display()))
}

/// Counts the lines written through it (one per resource).
struct LineCounter<W> {
    inner: W,
    lines: usize,
}

impl<W: Write> Write for LineCounter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
