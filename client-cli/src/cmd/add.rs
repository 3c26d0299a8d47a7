//! `atelier add`: a new resource from flags or from one FORMAT.md JSON object on stdin.

use std::io::{Read, Write};

use anyhow::Context as _;
use atelier_core::vocab::*;
use atelier_core::Resource;
use serde_json::{json, Map, Value};

use super::{codes, write_json};
use crate::{backend, Ctx, UsageError};

/// Ajoute une ressource. Les options donnent les champs courants ; --stdin (ou « - ») lit à la
/// place un objet JSON du format d'échange (FORMAT.md), dont l'office par défaut est celui du
/// réplica.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// « - » : lit l'objet JSON sur l'entrée standard (comme --stdin).
    #[arg(value_name = "-", value_parser = ["-"])]
    pub source: Option<String>,
    /// Lit un objet JSON (FORMAT.md) sur l'entrée standard.
    #[arg(long)]
    pub stdin: bool,
    /// Type de ressource.
    #[arg(long, value_parser = codes(KINDS), value_name = "TYPE", required_unless_present_any = ["stdin", "source"])]
    pub kind: Option<String>,
    /// Titre.
    #[arg(long, value_name = "TEXTE", required_unless_present_any = ["stdin", "source"])]
    pub title: Option<String>,
    /// Résumé (300 caractères au plus).
    #[arg(long, value_name = "TEXTE")]
    pub summary: Option<String>,
    /// Description (Markdown).
    #[arg(long, value_name = "TEXTE")]
    pub description: Option<String>,
    /// Office propriétaire [défaut : celui du réplica].
    #[arg(long, value_name = "OFFICE")]
    pub office: Option<String>,
    /// Référence externe stable (un import de la même référence met à jour la ressource).
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Statut [défaut : brouillon].
    #[arg(long, value_parser = codes(STATUSES), value_name = "STATUT")]
    pub status: Option<String>,
    /// Thème (répétable).
    #[arg(long = "theme", value_parser = codes(THEMES), value_name = "THÈME")]
    pub themes: Vec<String>,
    /// Filière de construction (répétable).
    #[arg(long = "sector", value_parser = codes(SECTORS), value_name = "FILIÈRE")]
    pub sectors: Vec<String>,
    /// Axe du programme (répétable).
    #[arg(long = "axe", value_parser = codes(AXES), value_name = "AXE")]
    pub axes: Vec<String>,
    /// Public visé (répétable).
    #[arg(long = "audience", value_parser = codes(AUDIENCES), value_name = "PUBLIC")]
    pub audiences: Vec<String>,
    /// Matériau, texte libre, ex. pisé, lauze (répétable).
    #[arg(long = "material", value_name = "TEXTE")]
    pub materials: Vec<String>,
    /// Mot-clé libre (répétable).
    #[arg(long = "keyword", value_name = "TEXTE")]
    pub keywords: Vec<String>,
    /// Commune.
    #[arg(long, value_name = "NOM")]
    pub commune: Option<String>,
    /// Code du département, ex. 07, 63, 2A.
    #[arg(long, value_name = "CODE")]
    pub departement: Option<String>,
    /// Année (livraison, édition ou tenue).
    #[arg(long, value_name = "ANNÉE")]
    pub year: Option<i64>,
    /// Latitude (degrés décimaux WGS84).
    #[arg(long, value_name = "DEGRÉS", allow_negative_numbers = true)]
    pub lat: Option<f64>,
    /// Longitude (degrés décimaux WGS84).
    #[arg(long, value_name = "DEGRÉS", allow_negative_numbers = true)]
    pub lon: Option<f64>,
    /// Affiche le résultat en JSON : {"id": …}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<()> {
    let from_stdin = args.stdin || args.source.is_some();
    let fields = args.fields();
    if from_stdin && !fields.is_empty() {
        return Err(UsageError(
            "--stdin lit la ressource entière : ne donnez pas d'options de champ en plus".into(),
        )
        .into());
    }
    let mut object = if from_stdin { read_stdin()? } else { fields };
    let backend = backend::open(&ctx.dir)?;
    if !object.contains_key("office") {
        let office = args
            .office
            .clone()
            .or_else(|| backend.office().map(|o| o.to_string()));
        let office = office.ok_or_else(|| {
            UsageError(
                "l'application web qui tient le réplica n'indique pas son office : précisez --office"
                    .into(),
            )
        })?;
        object.insert("office".into(), Value::from(office));
    }
    let resource = Resource::from_json(&Value::Object(object))?;
    let id = backend.create(&resource)?;
    if args.json {
        return write_json(out, &json!({ "id": id }));
    }
    writeln!(out, "{id}")?;
    writeln!(
        out,
        "Ressource ajoutée : « {} » ({}).",
        resource.title, resource.office
    )?;
    let handle = resource.ref_.clone().unwrap_or_else(|| id.to_string());
    writeln!(out, "Pour la voir : atelier show {handle}")?;
    Ok(())
}

impl Args {
    /// The FORMAT.md object the field flags describe, without the office (it has a default, and
    /// may also be given with --stdin).
    fn fields(&self) -> Map<String, Value> {
        let mut o = Map::new();
        let mut text = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.insert(k.into(), Value::from(v.clone()));
            }
        };
        text("ref", &self.reference);
        text("kind", &self.kind);
        text("title", &self.title);
        text("summary", &self.summary);
        text("description", &self.description);
        text("status", &self.status);
        for (k, v) in [
            ("axes", &self.axes),
            ("themes", &self.themes),
            ("sectors", &self.sectors),
            ("materials", &self.materials),
            ("audiences", &self.audiences),
            ("keywords", &self.keywords),
        ] {
            if !v.is_empty() {
                o.insert(k.into(), Value::from(v.clone()));
            }
        }
        let mut location = Map::new();
        if let Some(c) = &self.commune {
            location.insert("commune".into(), Value::from(c.clone()));
        }
        if let Some(d) = &self.departement {
            location.insert("departement".into(), Value::from(d.clone()));
        }
        for (k, v) in [("lat", self.lat), ("lon", self.lon)] {
            if let Some(x) = v {
                location.insert(k.into(), json!(x));
            }
        }
        if !location.is_empty() {
            o.insert("location".into(), Value::Object(location));
        }
        if let Some(y) = self.year {
            o.insert("year".into(), Value::from(y));
        }
        o
    }
}

fn read_stdin() -> anyhow::Result<Map<String, Value>> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("lecture de l'entrée standard")?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => {
            Err(UsageError("un objet JSON {…} est attendu sur l'entrée standard".into()).into())
        }
        Err(e) => Err(UsageError(format!(
            "JSON invalide sur l'entrée standard ({e}) : un seul objet est attendu ; pour \
             plusieurs ressources, utilisez « atelier import »"
        ))
        .into()),
    }
}
