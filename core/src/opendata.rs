//! Open data in and out: the columns of the CSV and GeoJSON exports, their writers and their
//! README, and (in `opendata/`) spreadsheets and GeoJSON read back into resources.
//!
//! One table, [`COLUMNS`], maps each FORMAT.md field to its column name; the French header and
//! the description come from `fields.rs`, so a field is described once. JSON Lines stays the
//! complete interchange format (every field, unknown ones too); CSV and GeoJSON carry the
//! FORMAT.md fields that fit in a cell (photos and fields FORMAT.md does not define stay out),
//! one resource per row or feature, and read back to the same resources.

pub mod communes;
pub mod sheet;
pub mod values;

use std::io::{self, Write};

use serde_json::{Map, Value};

use crate::fields::{self, Field, FieldType};
use crate::resource::Resource;
use crate::vocab;

/// What joins the values of a multi-valued field in one cell: `|` is rare in French text, and
/// spreadsheets leave it alone (`,` and `;` are cell separators, `/` is common in names).
pub const LIST_SEPARATOR: &str = " | ";

/// One column of the CSV export and property of the GeoJSON export.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The column name: ASCII, lowercase, stable (what data portals and scripts read).
    pub name: &'static str,
    /// The FORMAT.md field (dotted for a sub-field), in `fields::FIELDS`.
    pub field: &'static str,
}

impl Column {
    /// The field this column holds.
    pub fn field(&self) -> &'static Field {
        fields::field(self.field).expect("every column names a field of the table")
    }

    /// The French header (the field's label, with its unit for an amount).
    pub fn header(&self) -> String {
        self.field().label_with_unit().into_owned()
    }

    /// What the column holds and how it is written, in French, for the README of the columns.
    pub fn description(&self) -> String {
        let f = self.field();
        let format = match (self.field, f.ty) {
            ("designers", _) => format!(
                "« Nom (rôle) », séparés par « | » ; rôles : {}.",
                codes_of(vocab::DESIGNER_ROLES)
            ),
            ("links", _) => {
                "« adresse intitulé » (l'adresse, une espace, l'intitulé facultatif), séparés par « | ».".to_string()
            }
            (_, FieldType::Code(v)) => format!("Un code parmi : {}.", codes_of(v)),
            (_, FieldType::Codes(v)) => {
                format!("Codes séparés par « | », parmi : {}.", codes_of(v))
            }
            (_, FieldType::Words) => "Valeurs séparées par « | ».".to_string(),
            (_, FieldType::Office) => "Identifiant de l'office : caue-63.".to_string(),
            (_, FieldType::Departement) => "Code du département : 07, 63, 2A, 974.".to_string(),
            (_, FieldType::InseeCode) => "Code officiel géographique : 63113, 2A004.".to_string(),
            (_, FieldType::Year) => "Année sur quatre chiffres.".to_string(),
            (_, FieldType::Amount { .. }) => {
                "Nombre sans espace ni symbole ; point décimal (virgule avec le séparateur « ; »)."
                    .to_string()
            }
            (_, FieldType::Coordinate) => {
                "Degrés décimaux WGS84 ; point décimal (virgule avec le séparateur « ; »)."
                    .to_string()
            }
            (_, FieldType::Date) => "Date AAAA-MM-JJ.".to_string(),
            (_, FieldType::LongText) => "Texte, retours à la ligne compris.".to_string(),
            _ => String::new(),
        };
        [f.help, format.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn codes_of(vocabulary: &str) -> String {
    vocab::codes(vocabulary)
        .iter()
        .map(|(c, _)| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

const fn c(name: &'static str, field: &'static str) -> Column {
    Column { name, field }
}

/// Every column, in the order the exports write them (the order of `fields::FIELDS`).
pub const COLUMNS: &[Column] = &[
    c("ref", "ref"),
    c("type", "kind"),
    c("titre", "title"),
    c("resume", "summary"),
    c("description", "description"),
    c("office", "office"),
    c("statut", "status"),
    c("axes", "axes"),
    c("themes", "themes"),
    c("filieres", "sectors"),
    c("materiaux", "materials"),
    c("publics", "audiences"),
    c("mots_cles", "keywords"),
    c("commune", "location.commune"),
    c("code_insee", "location.insee"),
    c("departement", "location.departement"),
    c("latitude", "location.lat"),
    c("longitude", "location.lon"),
    c("annee", "year"),
    c("maitre_ouvrage", "client"),
    c("concepteurs", "designers"),
    c("nature_travaux", "intervention"),
    c("type_batiment", "building_type"),
    c("cout_eur_ht", "cost_eur_ht"),
    c("surface_m2", "floor_area_m2"),
    c("type_outil", "tool_type"),
    c("type_action", "action_type"),
    c("date_debut", "dates.start"),
    c("date_fin", "dates.end"),
    c("liens", "links"),
];

/// The column of a FORMAT.md field.
pub fn column_of_field(field: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.field == field)
}

/// The column with this name.
pub fn column(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name == name)
}

/// The formats of `atelier export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// FORMAT.md JSON Lines: every field (the complete interchange format).
    #[default]
    Jsonl,
    /// One row per resource, a header row of column names.
    Csv,
    /// An RFC 7946 FeatureCollection, one feature per resource.
    GeoJson,
}

impl Format {
    /// The file extension and the `Content-Type` of this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::GeoJson => "geojson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::GeoJson => "application/geo+json",
        }
    }
}

/// The cell separator of a CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Separator {
    /// `,`: RFC 4180, what data portals and scripts expect; numbers with a decimal point.
    #[default]
    Comma,
    /// `;`: what spreadsheets set to French expect; numbers with a decimal comma, and a UTF-8
    /// byte order mark so that Excel reads the accents right.
    Semicolon,
}

impl Separator {
    pub fn byte(self) -> u8 {
        match self {
            Separator::Comma => b',',
            Separator::Semicolon => b';',
        }
    }
}

/// One value of a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        if s.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s)
        }
    }

    /// The cell as CSV writes it.
    pub fn to_csv(&self, sep: Separator) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Number(x) => {
                let s = number_text(*x);
                match sep {
                    Separator::Comma => s,
                    Separator::Semicolon => s.replace('.', ","),
                }
            }
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Cell::Empty => Value::Null,
            Cell::Text(s) => Value::from(s.clone()),
            Cell::Number(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Value::from(*x as i64),
            Cell::Number(x) => serde_json::Number::from_f64(*x)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        }
    }
}

/// A number as JSON writes it, whole numbers without a fraction (`2600000`, `45.11`).
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        (x as i64).to_string()
    } else {
        x.to_string()
    }
}

/// The cells of one resource, in [`COLUMNS`] order.
pub fn cells(r: &Resource) -> Vec<Cell> {
    COLUMNS.iter().map(|c| cell(r, c.field)).collect()
}

fn cell(r: &Resource, field: &str) -> Cell {
    let loc = r.location.clone().unwrap_or_default();
    let dates = r.dates.clone().unwrap_or_default();
    let opt = |s: &Option<String>| Cell::text(s.clone().unwrap_or_default());
    let num = |x: Option<f64>| x.map_or(Cell::Empty, Cell::Number);
    let list = |v: &[String]| Cell::text(v.join(LIST_SEPARATOR));
    match field {
        "ref" => opt(&r.ref_),
        "kind" => Cell::text(r.kind.clone()),
        "title" => Cell::text(r.title.clone()),
        "summary" => Cell::text(r.summary.clone()),
        "description" => Cell::text(r.description.clone()),
        "office" => Cell::text(r.office.clone()),
        "status" => Cell::text(r.status.clone()),
        "axes" => list(&r.axes),
        "themes" => list(&r.themes),
        "sectors" => list(&r.sectors),
        "materials" => list(&r.materials),
        "audiences" => list(&r.audiences),
        "keywords" => list(&r.keywords),
        "location.commune" => opt(&loc.commune),
        "location.insee" => opt(&loc.insee),
        "location.departement" => opt(&loc.departement),
        "location.lat" => num(loc.lat),
        "location.lon" => num(loc.lon),
        "year" => num(r.year.map(|y| y as f64)),
        "client" => opt(&r.client),
        "designers" => Cell::text(
            r.designers
                .iter()
                .map(|d| format!("{} ({})", d.name, d.role))
                .collect::<Vec<_>>()
                .join(LIST_SEPARATOR),
        ),
        "intervention" => opt(&r.intervention),
        "building_type" => opt(&r.building_type),
        "cost_eur_ht" => num(r.cost_eur_ht),
        "floor_area_m2" => num(r.floor_area_m2),
        "tool_type" => opt(&r.tool_type),
        "action_type" => opt(&r.action_type),
        "dates.start" => opt(&dates.start),
        "dates.end" => opt(&dates.end),
        "links" => Cell::text(
            r.links
                .iter()
                .map(|l| match &l.label {
                    Some(label) => format!("{} {label}", l.url),
                    None => l.url.clone(),
                })
                .collect::<Vec<_>>()
                .join(LIST_SEPARATOR),
        ),
        other => unreachable!("{other} has no column"),
    }
}

/// Writes resources one at a time in CSV or GeoJSON (JSON Lines too, for callers that choose
/// the format at run time), so an export of a large corpus holds one resource at a time.
pub struct Writer<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Jsonl(W),
    // Boxed: the CSV writer holds its buffers, the other variants a writer alone.
    Csv(Box<csv::Writer<W>>, Separator),
    GeoJson { out: W, written: usize },
}

impl<W: Write> Writer<W> {
    /// Starts the output: the header row, or the FeatureCollection's opening.
    pub fn new(format: Format, sep: Separator, mut out: W) -> io::Result<Self> {
        let inner = match format {
            Format::Jsonl => Inner::Jsonl(out),
            Format::Csv => {
                if sep == Separator::Semicolon {
                    out.write_all("\u{feff}".as_bytes())?;
                }
                let mut w = csv::WriterBuilder::new()
                    .delimiter(sep.byte())
                    .from_writer(out);
                w.write_record(COLUMNS.iter().map(|c| c.name))
                    .map_err(io::Error::other)?;
                Inner::Csv(Box::new(w), sep)
            }
            Format::GeoJson => {
                out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
                Inner::GeoJson { out, written: 0 }
            }
        };
        Ok(Self { inner })
    }

    /// Writes one resource.
    pub fn write(&mut self, r: &Resource) -> io::Result<()> {
        match &mut self.inner {
            Inner::Jsonl(out) => crate::jsonl::write_line(out, &r.to_json()),
            Inner::Csv(w, sep) => w
                .write_record(cells(r).iter().map(|c| c.to_csv(*sep)))
                .map_err(io::Error::other),
            Inner::GeoJson { out, written } => {
                if *written > 0 {
                    out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut *out, &feature(r))?;
                *written += 1;
                Ok(())
            }
        }
    }

    /// Ends the output and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Jsonl(out) => Ok(out),
            Inner::Csv(w, _) => w.into_inner().map_err(|e| io::Error::other(e.to_string())),
            Inner::GeoJson { mut out, .. } => {
                out.write_all(b"\n]}\n")?;
                Ok(out)
            }
        }
    }
}

/// One resource as an RFC 7946 Feature: a Point `[longitude, latitude]` in WGS84, or a null
/// geometry for a resource without coordinates (RFC 7946 §3.2: it is still a feature, so
/// the export lists every resource). Properties are the columns, flat, so QGIS and uMap show
/// them as attributes: numbers as numbers, lists joined with « | » as in the CSV.
pub fn feature(r: &Resource) -> Value {
    let geometry = match r.location.as_ref().and_then(|l| Some((l.lon?, l.lat?))) {
        Some((lon, lat)) => serde_json::json!({"type": "Point", "coordinates": [lon, lat]}),
        None => Value::Null,
    };
    let mut properties = Map::new();
    for (c, cell) in COLUMNS.iter().zip(cells(r)) {
        properties.insert(c.name.into(), cell.to_json());
    }
    serde_json::json!({"type": "Feature", "geometry": geometry, "properties": properties})
}

/// The README of the columns, in French Markdown: how the files are written, how to open the
/// CSV in a spreadsheet, and one line per column. `atelier export --colonnes` prints it and
/// `docs/OPENDATA.md` holds it (a test keeps the two the same).
pub fn columns_readme() -> String {
    let mut s = String::from(
        "# Colonnes des exports CSV et GeoJSON d'Atelier\n\n\
         Une ligne (CSV) ou un objet (GeoJSON) par fiche. Les deux formats ont les mêmes \
         colonnes, décrites ci-dessous ; les valeurs des listes sont séparées par « | ». \
         Les valeurs des vocabulaires sont des codes stables (par exemple `rehabilitation`), \
         dont le libellé français est dans le lexique d'Atelier. Les photos et documents, et les \
         champs que le format d'échange ne définit pas, ne sont que dans l'export JSON Lines \
         (`atelier export`, le format complet).\n\n\
         - **CSV** : UTF-8, une ligne d'en-tête avec les noms de colonnes, cellules entre \
         guillemets quand elles contiennent le séparateur, un guillemet ou un retour à la ligne \
         (RFC 4180). Par défaut le séparateur est la virgule et les nombres ont un point décimal ; \
         avec `--separateur ';'` (ou le lien « CSV (;) » de l'application web), le séparateur \
         est le point-virgule, les nombres ont une virgule décimale et le fichier commence par \
         une marque d'ordre des octets (BOM), comme l'attendent les tableurs réglés en français.\n\
         - **Ouvrir le CSV** : dans Excel, ouvrez directement le fichier « ; » (double-clic) ; \
         pour le fichier « , », utilisez Données › À partir d'un fichier texte/CSV, origine « \
         65001 : Unicode (UTF-8) », délimiteur « Virgule ». Dans LibreOffice Calc, la fenêtre \
         d'import s'ouvre : jeu de caractères « Unicode (UTF-8) », séparateur « Virgule » ou « \
         Point-virgule », et cochez « Champs entre guillemets comme texte » pour garder les codes \
         INSEE et de département (`07`, `2A004`) tels quels.\n\
         - **GeoJSON** : une FeatureCollection (RFC 7946), coordonnées `[longitude, latitude]` en \
         WGS84 ; une fiche sans coordonnées a une géométrie `null`. S'ouvre dans QGIS (glisser \
         le fichier) et dans uMap (Importer des données, format GeoJSON).\n\n\
         | Colonne | En-tête français | Description |\n|---|---|---|\n",
    );
    for c in COLUMNS {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.name,
            c.header(),
            c.description().replace('|', "\\|")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Resource> {
        include_str!("../../tests/fixtures/sample.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Resource::from_json(&serde_json::from_str(l).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn every_field_that_fits_a_cell_has_one_column() {
        for f in fields::FIELDS {
            let covered = column_of_field(f.name).is_some()
                || f.parent()
                    .is_some_and(|p| column_of_field(p.name).is_some())
                || matches!(f.ty, FieldType::Group | FieldType::Media)
                || f.parent().is_some_and(|p| p.ty == FieldType::Media);
            assert!(covered, "{} has no column", f.name);
        }
        for (i, c) in COLUMNS.iter().enumerate() {
            assert!(COLUMNS[..i].iter().all(|d| d.name != c.name));
            assert!(c
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(!c.header().is_empty());
        }
        assert_eq!(
            column("maitre_ouvrage").unwrap().header(),
            "Maître d'ouvrage"
        );
    }

    #[test]
    fn csv_has_a_header_row_and_joins_lists() {
        let mut w = Writer::new(Format::Csv, Separator::Comma, Vec::new()).unwrap();
        for r in sample() {
            w.write(&r).unwrap();
        }
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("ref,type,titre,resume,"), "{first}");
        assert!(text.contains("patrimoine | habitat"), "{text}");
        assert!(text.contains(
            "Atelier Cœur de Cantal (architecte_mandataire) | Structures Æquo (bet_structure)"
        ));
        assert!(text.contains(",412345.5,"), "{text}");
        let mut w = Writer::new(Format::Csv, Separator::Semicolon, Vec::new()).unwrap();
        w.write(&sample()[0]).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(text.starts_with("\u{feff}ref;type;"));
        assert!(
            text.contains(";412345,5;") && text.contains(";45,11;2,866;"),
            "{text}"
        );
    }

    #[test]
    fn geojson_is_a_feature_collection_in_lon_lat_order() {
        let mut w = Writer::new(Format::GeoJson, Separator::Comma, Vec::new()).unwrap();
        for r in sample() {
            w.write(&r).unwrap();
        }
        let v: Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
        assert_eq!(v["type"], "FeatureCollection");
        let features = v["features"].as_array().unwrap();
        assert_eq!(features.len(), sample().len());
        assert_eq!(
            features[0]["geometry"]["coordinates"],
            serde_json::json!([2.866, 45.11])
        );
        assert_eq!(features[0]["properties"]["annee"], 2019);
        assert_eq!(features[0]["properties"]["commune"], "Murat");
        // fx-002 has a département but no coordinates.
        assert_eq!(features[1]["geometry"], Value::Null);
        assert_eq!(features[1]["properties"]["commune"], Value::Null);
    }

    #[test]
    fn the_readme_of_the_columns_is_in_the_docs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/OPENDATA.md");
        let docs = std::fs::read_to_string(path).unwrap();
        if std::env::var_os("ATELIER_BLESS").is_some() && !docs.contains(&columns_readme()) {
            // Rewrites the generated part: everything from its title to the end.
            let start = docs.find("# Colonnes des exports").unwrap_or(docs.len());
            std::fs::write(path, format!("{}{}", &docs[..start], columns_readme())).unwrap();
            return;
        }
        assert!(
            docs.contains(&columns_readme()),
            "docs/OPENDATA.md is out of date: paste `atelier export --colonnes` into it"
        );
    }
}
