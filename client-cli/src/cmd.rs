//! One module per subcommand, each with its arguments (`Args`, whose doc comments are the help)
//! and its `run`; helpers shared by several commands below.

pub mod add;
pub mod backup;
pub mod demo;
pub mod discussion;
pub mod edit;
pub mod export;
pub mod groupe;
pub mod history;
pub mod import;
pub mod init;
pub mod join;
pub mod list;
pub mod media;
pub mod nouveautes;
pub mod open;
pub mod publication;
pub mod reindex;
pub mod relecture;
pub mod restore;
pub mod rm;
pub mod search;
pub mod serve;
pub mod show;
pub mod status;
pub mod sync;
pub mod taches;

use std::io::Write;

use anyhow::Context as _;
use atelier_core::vocab;
use clap::builder::{PossibleValue, PossibleValuesParser};

/// The resource a command acts on, shared so that every command accepts and documents it alike.
#[derive(clap::Args, Debug)]
pub struct ResourceArg {
    /// La ressource : URL automerge:…, identifiant ou référence.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Accepts the codes of one vocabulary of `vocabularies.json` (their labels show in the help).
pub(crate) fn codes(vocabulary: &'static str) -> PossibleValuesParser {
    PossibleValuesParser::new(
        vocab::codes(vocabulary)
            .iter()
            .map(|(code, label)| PossibleValue::new(code.as_str()).help(label.as_str())),
    )
}

/// The file formats of `export` and `import`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON Lines du format d'échange (FORMAT.md) : tous les champs.
    Jsonl,
    /// CSV en UTF-8, une ligne d'en-tête, une fiche par ligne.
    Csv,
    /// GeoJSON (RFC 7946), un objet par fiche : QGIS, uMap.
    Geojson,
}

impl FileFormat {
    pub fn core(self) -> atelier_core::opendata::Format {
        use atelier_core::opendata::Format;
        match self {
            FileFormat::Jsonl => Format::Jsonl,
            FileFormat::Csv => Format::Csv,
            FileFormat::Geojson => Format::GeoJson,
        }
    }
}

/// Writes `value` as indented JSON followed by a newline (`--json`).
pub(crate) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).context("écriture du JSON")?;
    writeln!(out)?;
    Ok(())
}
