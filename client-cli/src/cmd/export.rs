//! `atelier export`: the live resources as FORMAT.md JSON Lines (the complete format), CSV or
//! GeoJSON, all or those the filters of `atelier list` keep, to stdout or a file.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;

use atelier_core::fr;
use atelier_core::opendata::{self, Separator};
use atelier_core::replica::{ListFilter, Unreadable};
use atelier_core::Resource;

use super::list::Filters;
use super::FileFormat;
use crate::{backend, media_folder, Ctx, UsageError};

/// Exporte les ressources (sauf les supprimées) : en JSON Lines du format d'échange
/// (FORMAT.md, champs inconnus compris) par défaut, ou en CSV ou GeoJSON pour les partenaires
/// et les portails de données ouvertes (colonnes décrites par « --colonnes »), vers la sortie
/// standard ou un fichier. Les filtres sont ceux d'« atelier list ».
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
    /// Format : jsonl (par défaut), csv ou geojson.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FileFormat,
    /// Séparateur des cellules du CSV : « , » (par défaut, portails de données) ou « ; »
    /// (tableurs réglés en français : virgule décimale, Excel l'ouvre d'un double-clic).
    #[arg(long, value_name = "CARACTÈRE", value_parser = separator)]
    pub separateur: Option<Separator>,
    #[command(flatten)]
    pub filters: Filters,
    /// Affiche la description des colonnes du CSV et du GeoJSON (le README à joindre aux
    /// fichiers), sans rien exporter.
    #[arg(long)]
    pub colonnes: bool,
}

fn separator(s: &str) -> Result<Separator, String> {
    match s.trim() {
        "," | "virgule" => Ok(Separator::Comma),
        ";" | "point-virgule" => Ok(Separator::Semicolon),
        other => Err(format!("« {other} » : le séparateur est « , » ou « ; »")),
    }
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.colonnes {
        out.write_all(opendata::columns_readme().as_bytes())?;
        return Ok(());
    }
    if args.separateur.is_some() && args.format != FileFormat::Csv {
        return Err(UsageError("--separateur ne s'emploie qu'avec --format csv".into()).into());
    }
    let sep = args.separateur.unwrap_or_default();
    let filter = args.filters.filter();
    let backend = backend::open(&ctx.dir)?;
    let Some(path) = args.out else {
        let mut w = BufWriter::new(out);
        let (_, unreadable) = write_export(backend.as_ref(), &filter, args.format, sep, &mut w)?;
        w.flush().context("écriture de l'export")?;
        if let Some(dir) = &args.media {
            let done = export_media(backend.as_ref(), &filter, dir)?;
            eprintln!("{}", describe_media(&done, dir));
        }
        return incomplete(&unreadable);
    };
    let (count, unreadable) = atelier_core::fs::write_atomic_with(&path, Some(0o644), |file| {
        let mut w = BufWriter::new(file);
        let done = write_export(backend.as_ref(), &filter, args.format, sep, &mut w)?;
        w.flush().context("écriture de l'export")?;
        Ok::<_, anyhow::Error>(done)
    })
    .with_context(|| format!("export vers « {} »", path.display()))?;
    writeln!(
        out,
        "{} exportée{} dans « {} ».",
        fr::count(count as u64, "ressource"),
        fr::plural_s(count as u64),
        path.display()
    )?;
    if let Some(dir) = &args.media {
        let done = export_media(backend.as_ref(), &filter, dir)?;
        writeln!(out, "{}", describe_media(&done, dir))?;
    }
    incomplete(&unreadable)
}

/// Writes the resources `filter` keeps in `format`; returns how many, and those left out.
fn write_export(
    backend: &dyn backend::Backend,
    filter: &ListFilter,
    format: FileFormat,
    sep: Separator,
    out: &mut dyn Write,
) -> anyhow::Result<(usize, Vec<Unreadable>)> {
    if format == FileFormat::Jsonl {
        // As the backend writes it: unknown fields and media entries byte for byte.
        let mut counter = LineCounter {
            inner: out,
            lines: 0,
        };
        let unreadable = backend.export(filter, &mut counter)?;
        return Ok((counter.lines, unreadable));
    }
    // Both backends give JSON Lines, one resource a line; CSV and GeoJSON are written from
    // each line as it arrives, so one resource at a time is held.
    let writer = opendata::Writer::new(format.core(), sep, out).context("écriture de l'export")?;
    let mut lines = Lines {
        writer,
        pending: Vec::new(),
        count: 0,
    };
    let unreadable = backend.export(filter, &mut lines)?;
    lines.flush()?;
    let count = lines.count;
    lines.writer.finish().context("écriture de l'export")?;
    Ok((count, unreadable))
}

/// Reads JSON Lines written into it and writes each resource through an `opendata::Writer`.
struct Lines<W: Write> {
    writer: opendata::Writer<W>,
    pending: Vec<u8>,
    count: usize,
}

impl<W: Write> Lines<W> {
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: serde_json::Value = serde_json::from_slice(line)?;
        let resource = Resource::from_json(&value).map_err(io::Error::other)?;
        self.writer.write(&resource)?;
        self.count += 1;
        Ok(())
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        self.line(&rest)
    }
}

/// Counts the lines written through it (one per resource).
struct LineCounter<W> {
    inner: W,
    lines: usize,
}

impl<W: Write> Write for LineCounter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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

/// Copies the blobs of every exported resource into `dir`.
fn export_media(
    backend: &dyn backend::Backend,
    filter: &ListFilter,
    dir: &Path,
) -> anyhow::Result<media_folder::Exported> {
    let blobs: Vec<_> = backend
        .list(filter)?
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
