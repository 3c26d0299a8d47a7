//! Spreadsheets (CSV) and GeoJSON read back into resources, with every problem listed by line
//! and column before anything is written.
//!
//! A [`Sheet`] is the file as rows of text cells: CSV with `,`, `;` or tab detected, a UTF-8
//! byte order mark dropped, Windows-1252 (what Excel writes for « CSV (séparateur :
//! point-virgule) ») read when the file is not UTF-8, quoted cells over several lines, title
//! rows above the header skipped; or a GeoJSON FeatureCollection, one row per feature, its
//! Point in the latitude and longitude columns. [`plan`] maps the columns to fields (guessed
//! from the French headers, or given by a [`Mapping`], `mapping.toml`), reads every cell the
//! way people type it (`values`), finds communes (`communes`), and validates each row as
//! FORMAT.md does (`Resource::from_json`); the resulting resources go to the same import as
//! JSON Lines, so a `ref` column makes a re-run update, not duplicate.
//!
//! A blank header (what a merged header cell becomes in CSV) inherits the field of the column
//! to its left when that field holds several values (« Thèmes » over three columns gives
//! three themes); otherwise its column is ignored, and the preview says so when it holds
//! values.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use super::communes::{self, Found};
use super::values::{self, key, Issue};
use super::{column, column_of_field, COLUMNS};
use crate::fields::{self, FieldType};
use crate::resource::Resource;
use crate::vocab;

/// Largest file read: 100,000 rows of a generous sheet; the whole file is checked in memory
/// before anything is written, so this bounds memory too.
pub const MAX_SHEET_BYTES: usize = 64 * 1024 * 1024;
/// Most rows: the largest corpus the project is measured with.
pub const MAX_ROWS: usize = 100_000;
/// Most columns: a sheet wider than this is not a list of resources.
pub const MAX_COLUMNS: usize = 256;
/// The header row is looked for among this many first non-empty rows: sheets often start with
/// a title, a date or a blank line, rarely with more.
const HEADER_SEARCH_ROWS: usize = 5;
/// Most problems kept: past this many, the sheet is mapped wrong, and a longer list helps nobody.
pub const MAX_PROBLEMS: usize = 500;

/// Why a file could not be read at all.
#[derive(Debug, Error)]
pub enum SheetError {
    #[error("le fichier est vide")]
    Empty,
    #[error("fichier trop gros ({size} octets, {MAX_SHEET_BYTES} au plus)")]
    TooLarge { size: usize },
    #[error("trop de lignes ({MAX_ROWS} au plus)")]
    TooManyRows,
    #[error("trop de colonnes ({count}, {MAX_COLUMNS} au plus)")]
    TooManyColumns { count: usize },
    #[error("CSV illisible à la ligne {line} : {message}")]
    Csv { line: u64, message: String },
    #[error("GeoJSON illisible : {0}")]
    GeoJson(String),
}

/// Where a sheet came from, which says how its rows are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A CSV file with this cell separator.
    Csv { delimiter: u8 },
    /// A GeoJSON FeatureCollection: rows are its features.
    GeoJson,
}

/// A file as rows of text cells under one header row.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub source: Source,
    pub headers: Vec<String>,
    /// The line of the header row (0 for GeoJSON).
    pub header_line: usize,
    /// The lines above the header (titles), skipped.
    pub skipped: Vec<usize>,
    pub rows: Vec<Row>,
}

/// One row: its line in the file (the first, for a cell over several lines), or its feature's
/// position in a GeoJSON file.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<String>,
}

impl Sheet {
    /// The cell of `row` in column `index`, trimmed.
    pub fn cell(row: &Row, index: usize) -> &str {
        row.cells.get(index).map_or("", |c| c.trim())
    }
}

/// Reads a CSV file: separator guessed, BOM dropped, UTF-8 or Windows-1252.
pub fn read_csv(bytes: &[u8]) -> Result<Sheet, SheetError> {
    if bytes.len() > MAX_SHEET_BYTES {
        return Err(SheetError::TooLarge { size: bytes.len() });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(_) => windows_1252(bytes),
    };
    if text.trim().is_empty() {
        return Err(SheetError::Empty);
    }
    let delimiter = guess_delimiter(&text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut lines = LineCounter::new(text.as_bytes());
    for record in reader.records() {
        let record = record.map_err(|e| SheetError::Csv {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        if record.len() > MAX_COLUMNS {
            return Err(SheetError::TooManyColumns {
                count: record.len(),
            });
        }
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() > MAX_ROWS {
            return Err(SheetError::TooManyRows);
        }
        let line = record
            .position()
            .map_or(0, |p| lines.line_at(p.byte() as usize));
        rows.push(Row { line, cells });
    }
    if rows.is_empty() {
        return Err(SheetError::Empty);
    }
    // The header is the row among the first few whose cells name the most fields.
    let header = rows
        .iter()
        .take(HEADER_SEARCH_ROWS)
        .enumerate()
        .map(|(i, r)| (i, r.cells.iter().filter(|c| guess(c).is_some()).count()))
        .fold(
            (0, 0),
            |best, (i, n)| if n > best.1 { (i, n) } else { best },
        )
        .0;
    let skipped = rows[..header].iter().map(|r| r.line).collect();
    let mut rows = rows.split_off(header);
    let head = rows.remove(0);
    Ok(Sheet {
        source: Source::Csv { delimiter },
        headers: head.cells.iter().map(|c| c.trim().to_string()).collect(),
        header_line: head.line,
        skipped,
        rows,
    })
}

/// Line numbers of record starts, counted forward from the previous record (records come in
/// order), so a file is scanned once. The csv crate counts a CRLF's `\n` as the next record's,
/// so its own line numbers are one short after a Windows line end.
struct LineCounter<'a> {
    text: &'a [u8],
    /// Bytes counted so far, and the line number at that byte.
    at: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            at: 0,
            line: 1,
        }
    }

    /// The line of the record that starts at byte `start` (line ends before it skipped).
    fn line_at(&mut self, start: usize) -> usize {
        let start = start.min(self.text.len());
        let start = start
            + self.text[start..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        if start > self.at {
            self.line += self.text[self.at..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.at = start;
        }
        self.line
    }
}

/// The separator of the first lines: the one of `;`, tab and `,` seen most outside quotes.
fn guess_delimiter(text: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    let mut lines = 0;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => {
                lines += 1;
                if lines == HEADER_SEARCH_ROWS * 2 {
                    break;
                }
            }
            ';' if !quoted => counts[0] += 1,
            '\t' if !quoted => counts[1] += 1,
            ',' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(2);
    match (best, counts[best]) {
        (_, 0) => b',',
        (0, _) => b';',
        (1, _) => b'\t',
        _ => b',',
    }
}

/// Windows-1252 to text: Latin-1 but for the printable characters Microsoft put in 0x80–0x9F.
fn windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Reads a GeoJSON FeatureCollection (what `atelier export --format geojson` writes, or a
/// layer saved by QGIS or uMap): one row per feature, its properties as cells, its Point in
/// the `latitude` and `longitude` columns.
pub fn read_geojson(bytes: &[u8]) -> Result<Sheet, SheetError> {
    if bytes.len() > MAX_SHEET_BYTES {
        return Err(SheetError::TooLarge { size: bytes.len() });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let v: Value = serde_json::from_slice(bytes).map_err(|e| SheetError::GeoJson(e.to_string()))?;
    if v["type"] != "FeatureCollection" {
        return Err(SheetError::GeoJson(
            "une FeatureCollection est attendue (\"type\": \"FeatureCollection\")".into(),
        ));
    }
    let features = v["features"]
        .as_array()
        .ok_or_else(|| SheetError::GeoJson("la liste « features » manque".into()))?;
    if features.len() > MAX_ROWS {
        return Err(SheetError::TooManyRows);
    }
    let mut headers: Vec<String> = Vec::new();
    for f in features {
        for k in f["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if !headers.contains(k) {
                headers.push(k.clone());
            }
        }
    }
    for coord in ["latitude", "longitude"] {
        if !headers.iter().any(|h| h == coord) {
            headers.push(coord.into());
        }
    }
    if headers.len() > MAX_COLUMNS {
        return Err(SheetError::TooManyColumns {
            count: headers.len(),
        });
    }
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap_or(0);
    let (lat, lon) = (at("latitude"), at("longitude"));
    let rows = features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let props = f["properties"].as_object();
            let mut cells: Vec<String> = headers
                .iter()
                .map(|h| {
                    props
                        .and_then(|p| p.get(h))
                        .map_or(String::new(), cell_text)
                })
                .collect();
            let g = &f["geometry"];
            if g["type"] == "Point" {
                if let (Some(x), Some(y)) =
                    (g["coordinates"][0].as_f64(), g["coordinates"][1].as_f64())
                {
                    cells[lon] = x.to_string();
                    cells[lat] = y.to_string();
                }
            }
            Row { line: i + 1, cells }
        })
        .collect();
    Ok(Sheet {
        source: Source::GeoJson,
        headers,
        header_line: 0,
        skipped: Vec::new(),
        rows,
    })
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(cell_text)
            .collect::<Vec<_>>()
            .join(super::LIST_SEPARATOR),
        other => other.to_string(),
    }
}

/// Where a column's values go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A FORMAT.md field (one of [`COLUMNS`]).
    Field(&'static str),
    /// A designer with this role: a column « Architecte » or « Paysagiste ».
    Designer(&'static str),
    /// A postcode, used to find the commune.
    Postcode,
    /// Not imported.
    Ignore,
}

/// The name `mapping.toml` and the web form give a postcode column.
pub const POSTCODE: &str = "code_postal";
/// The name `mapping.toml` and the web form give a column left out.
pub const IGNORE: &str = "ignorer";

impl Target {
    /// Reads a target as `mapping.toml` writes it: a column name (`maitre_ouvrage`), a FORMAT.md
    /// field (`client`), `concepteurs:architecte`, `code_postal` or `ignorer`.
    pub fn parse(name: &str) -> Option<Target> {
        let name = name.trim();
        match name {
            "" | IGNORE => return Some(Target::Ignore),
            POSTCODE => return Some(Target::Postcode),
            _ => {}
        }
        if let Some((field, role)) = name.split_once(':') {
            if !matches!(field.trim(), "concepteurs" | "designers") {
                return None;
            }
            return vocab::codes(vocab::DESIGNER_ROLES)
                .iter()
                .find(|(c, _)| c == role.trim())
                .map(|(c, _)| Target::Designer(c.as_str()));
        }
        column(name)
            .or_else(|| column_of_field(name))
            .map(|c| Target::Field(c.field))
    }

    /// The name [`Target::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Target::Field(f) => column_of_field(f).map_or(f.to_string(), |c| c.name.into()),
            Target::Designer(role) => format!("concepteurs:{role}"),
            Target::Postcode => POSTCODE.into(),
            Target::Ignore => IGNORE.into(),
        }
    }

    /// What it is, in French, for the preview.
    pub fn label(&self) -> String {
        match self {
            Target::Field(f) => {
                fields::field(f).map_or(f.to_string(), |f| f.label_with_unit().into_owned())
            }
            Target::Designer(role) => format!(
                "Concepteur : {}",
                vocab::label_or_code(vocab::DESIGNER_ROLES, role)
            ),
            Target::Postcode => "Code postal (pour trouver la commune)".into(),
            Target::Ignore => "Ne pas importer".into(),
        }
    }

    /// Every target, in the order a form offers them.
    pub fn all() -> Vec<Target> {
        let mut all = vec![Target::Ignore];
        all.extend(COLUMNS.iter().map(|c| Target::Field(c.field)));
        all.push(Target::Postcode);
        all.extend(
            vocab::codes(vocab::DESIGNER_ROLES)
                .iter()
                .map(|(c, _)| Target::Designer(c.as_str())),
        );
        all
    }

    /// Whether several columns may feed it (their values add up).
    fn is_multi(&self) -> bool {
        match self {
            Target::Designer(_) => true,
            Target::Field(f) => {
                fields::field(f).is_some_and(|f| f.ty.is_list() || f.ty == FieldType::Rows)
            }
            _ => false,
        }
    }
}

/// Other names people give columns, folded (see `values::key`), with the column they mean.
/// The fields' own labels, short labels and column names are recognised without being listed.
const SYNONYMS: &[(&str, &str)] = &[
    ("intitule", "titre"),
    ("nom", "titre"),
    ("nom du projet", "titre"),
    ("projet", "titre"),
    ("operation", "titre"),
    ("nom de l operation", "titre"),
    ("reference", "ref"),
    ("identifiant", "ref"),
    ("id", "ref"),
    ("n", "ref"),
    ("numero", "ref"),
    ("type de travaux", "nature_travaux"),
    ("travaux", "nature_travaux"),
    ("nature", "nature_travaux"),
    ("moa", "maitre_ouvrage"),
    ("maitrise d ouvrage", "maitre_ouvrage"),
    ("commanditaire", "maitre_ouvrage"),
    ("maitre d oeuvre", "concepteurs"),
    ("maitrise d oeuvre", "concepteurs"),
    ("moe", "concepteurs"),
    ("concepteur", "concepteurs"),
    ("annee de livraison", "annee"),
    ("date de livraison", "annee"),
    ("livraison", "annee"),
    ("annee de realisation", "annee"),
    ("date", "annee"),
    ("annee d edition", "annee"),
    ("ville", "commune"),
    ("localite", "commune"),
    ("lieu", "commune"),
    ("insee", "code_insee"),
    ("code commune", "code_insee"),
    ("dept", "departement"),
    ("dpt", "departement"),
    ("dep", "departement"),
    ("code postal", "code_postal"),
    ("cp", "code_postal"),
    ("lat", "latitude"),
    ("lon", "longitude"),
    ("lng", "longitude"),
    ("cout", "cout_eur_ht"),
    ("montant", "cout_eur_ht"),
    ("montant des travaux", "cout_eur_ht"),
    ("montant ht", "cout_eur_ht"),
    ("cout ht", "cout_eur_ht"),
    ("budget", "cout_eur_ht"),
    ("shon", "surface_m2"),
    ("sdp", "surface_m2"),
    ("shab", "surface_m2"),
    ("programme", "type_batiment"),
    ("usage", "type_batiment"),
    ("descriptif", "description"),
    ("commentaire", "description"),
    ("commentaires", "description"),
    ("chapeau", "resume"),
    ("tags", "mots_cles"),
    ("theme", "themes"),
    ("thematique", "themes"),
    ("thematiques", "themes"),
    ("filiere", "filieres"),
    ("materiau", "materiaux"),
    ("public", "publics"),
    ("public cible", "publics"),
    ("axe", "axes"),
    ("etat", "statut"),
    ("caue", "office"),
    ("categorie", "type"),
    ("lien", "liens"),
    ("url", "liens"),
    ("site web", "liens"),
    ("site internet", "liens"),
    ("debut", "date_debut"),
    ("fin", "date_fin"),
];

/// The target a header names, if it names one: a column name, a field's label or short label
/// (units in parentheses left out), a synonym, or a designer role (« Architecte »).
pub fn guess(header: &str) -> Option<Target> {
    let k = key(header.split(" (").next().unwrap_or(header));
    if k.is_empty() {
        return None;
    }
    for c in COLUMNS {
        let f = c.field();
        if k == key(c.name) || k == key(f.label) || k == key(f.short) || k == key(c.field) {
            return Some(Target::Field(c.field));
        }
    }
    if let Some((_, name)) = SYNONYMS.iter().find(|(s, _)| *s == k) {
        return Target::parse(name);
    }
    vocab::codes(vocab::DESIGNER_ROLES)
        .iter()
        .filter(|(c, _)| c != "autre")
        .find(|(c, l)| k == key(l) || k == key(c))
        .map(|(c, _)| Target::Designer(c.as_str()))
}

/// What the person says about a sheet (`mapping.toml`, or the web preview's choices).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Folded header (or « colonne D ») → target; wins over the guess.
    pub columns: Vec<(String, Target)>,
    /// Values for every row, by field (`[valeurs]`): a column of the sheet wins over them.
    pub defaults: Vec<(&'static str, String)>,
    /// Values read as a code, by field (`[correspondances.<colonne>]`): folded value → code.
    pub values: HashMap<&'static str, HashMap<String, String>>,
}

/// Why a `mapping.toml` was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("mapping.toml illisible : {0}")]
    Toml(String),
    #[error("mapping.toml, section [{section}] : « {name} » n'est pas un champ d'Atelier (voir « atelier export --colonnes »)")]
    UnknownField { section: String, name: String },
    #[error("mapping.toml, section [{section}] : « {key} » doit être un texte entre guillemets")]
    NotText { section: String, key: String },
}

impl Mapping {
    /// Reads `mapping.toml`:
    ///
    /// ```toml
    /// [colonnes]                       # en-tête du tableur (ou « colonne D ») = champ
    /// "Maître d'ouvrage" = "client"
    /// "Remarques" = "ignorer"
    /// [valeurs]                        # valeur de toutes les lignes
    /// type = "realisation"
    /// [correspondances.nature_travaux] # valeur du tableur = code
    /// "Réno lourde" = "rehabilitation"
    /// ```
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| MappingError::Toml(e.message().to_string()))?;
        let mut m = Mapping::default();
        for (section, value) in &table {
            let Some(entries) = value.as_table() else {
                return Err(MappingError::Toml(format!(
                    "« {section} » doit être une section [{section}]"
                )));
            };
            match section.as_str() {
                "colonnes" => {
                    for (header, target) in entries {
                        let name = text_of(section, header, target)?;
                        let t = Target::parse(name).ok_or_else(|| MappingError::UnknownField {
                            section: section.clone(),
                            name: name.to_string(),
                        })?;
                        m.columns.push((key(header), t));
                    }
                }
                "valeurs" => {
                    for (field, v) in entries {
                        let value = text_of(section, field, v)?;
                        m.defaults.push((field_of(section, field)?, value.to_string()));
                    }
                }
                "correspondances" => {
                    for (field, pairs) in entries {
                        let f = field_of(section, field)?;
                        let Some(pairs) = pairs.as_table() else {
                            return Err(MappingError::Toml(format!(
                                "écrivez [correspondances.{field}] puis une ligne par valeur"
                            )));
                        };
                        let map = m.values.entry(f).or_default();
                        for (typed, code) in pairs {
                            map.insert(key(typed), text_of(section, typed, code)?.to_string());
                        }
                    }
                }
                other => {
                    return Err(MappingError::Toml(format!(
                        "section [{other}] inconnue (sections : [colonnes], [valeurs], [correspondances.<champ>])"
                    )))
                }
            }
        }
        Ok(m)
    }

    /// Sets the target of column `index` (the web preview's choice), over any other rule.
    pub fn set_column(&mut self, index: usize, target: Target) {
        self.columns.insert(0, (key(&column_letter(index)), target));
    }
}

fn text_of<'a>(section: &str, k: &str, v: &'a toml::Value) -> Result<&'a str, MappingError> {
    v.as_str().ok_or_else(|| MappingError::NotText {
        section: section.into(),
        key: k.into(),
    })
}

fn field_of(section: &str, name: &str) -> Result<&'static str, MappingError> {
    match Target::parse(name) {
        Some(Target::Field(f)) => Ok(f),
        _ => Err(MappingError::UnknownField {
            section: section.into(),
            name: name.into(),
        }),
    }
}

/// « colonne A », « colonne AB »: how a spreadsheet names column `index` (from 0).
pub fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        letters.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("colonne {}", String::from_utf8(letters).unwrap_or_default())
}

/// How a column got its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Named in the mapping (or chosen in the preview).
    Mapping,
    /// Guessed from its header.
    Guessed,
    /// A blank header (a merged cell) under a multi-valued field's header to its left.
    Inherited,
    /// A header that names no field: ignored.
    Unknown,
    /// A blank header: ignored.
    Blank,
}

/// One column and where its values go.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub index: usize,
    /// « colonne D ».
    pub letter: String,
    pub header: String,
    pub target: Target,
    pub origin: Origin,
}

impl ColumnPlan {
    /// « colonne D « Coût » », or « colonne D » for a blank header.
    pub fn describe(&self) -> String {
        if self.header.is_empty() {
            self.letter.clone()
        } else {
            format!("{} « {} »", self.letter, self.header)
        }
    }
}

/// One problem (or, in [`Plan::notes`], one thing done that the person should know), in
/// French, placed by line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line of the file (the feature's number for GeoJSON); `None` for the whole sheet.
    pub line: Option<usize>,
    /// The column's index (from 0).
    pub column: Option<usize>,
    /// Where, in words: « ligne 4, colonne E « Coût » ».
    pub place: String,
    pub message: String,
    /// A corrected value for the cell, when one is close enough to offer.
    pub suggestion: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} : {}", self.place, self.message)
        }
    }
}

/// What an import of a sheet would do: the columns' targets, the resources, the problems.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: Source,
    pub columns: Vec<ColumnPlan>,
    /// Every row's resource, with its line, in file order (rows with problems left out).
    pub resources: Vec<(usize, Resource)>,
    /// What stops the import: nothing is written while there is one.
    pub problems: Vec<Problem>,
    /// What was read in a way worth saying (an old commune name, a default type, a column
    /// ignored).
    pub notes: Vec<Problem>,
    /// Rows read (empty rows left out).
    pub rows: usize,
}

impl Plan {
    /// The resources to import, if there is no problem.
    pub fn resources(&self) -> Option<Vec<Resource>> {
        self.problems
            .is_empty()
            .then(|| self.resources.iter().map(|(_, r)| r.clone()).collect())
    }
}

/// What the import knows besides the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The office of rows with no office column (the replica's office).
    pub office: Option<String>,
    pub mapping: Mapping,
}

/// Maps the columns, reads every row and lists every problem.
pub fn plan(sheet: &Sheet, options: &Options) -> Plan {
    let columns = map_columns(sheet, &options.mapping);
    let mut p = Planner {
        sheet,
        options,
        columns: &columns,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    p.check_columns();
    let mut resources = Vec::new();
    let mut refs: HashMap<String, usize> = HashMap::new();
    for row in &sheet.rows {
        if let Some(r) = p.row(row) {
            if let Some(reference) = &r.ref_ {
                if let Some(first) = refs.insert(reference.clone(), row.line) {
                    let col = p.column_of("ref");
                    let unit = p.unit();
                    p.problem(
                        row.line,
                        col,
                        format!("la référence « {reference} » est déjà celle de la {unit} {first}"),
                        None,
                    );
                    continue;
                }
            }
            resources.push((row.line, r));
        }
    }
    let (mut problems, notes) = (p.problems, p.notes);
    problems.truncate(MAX_PROBLEMS);
    Plan {
        source: sheet.source,
        columns,
        resources,
        problems,
        notes,
        rows: sheet.rows.len(),
    }
}

fn map_columns(sheet: &Sheet, mapping: &Mapping) -> Vec<ColumnPlan> {
    let width = sheet
        .rows
        .iter()
        .map(|r| r.cells.len())
        .chain([sheet.headers.len()])
        .max()
        .unwrap_or(0);
    let mut out: Vec<ColumnPlan> = Vec::with_capacity(width);
    for index in 0..width {
        let header = sheet.headers.get(index).cloned().unwrap_or_default();
        let letter = column_letter(index);
        let named = mapping
            .columns
            .iter()
            .find(|(k, _)| *k == key(&letter) || (!header.is_empty() && *k == key(&header)))
            .map(|(_, t)| *t);
        let (target, origin) = match (named, header.is_empty()) {
            (Some(t), _) => (t, Origin::Mapping),
            (None, false) => match guess(&header) {
                Some(t) => (t, Origin::Guessed),
                None => (Target::Ignore, Origin::Unknown),
            },
            (None, true) => match out.last() {
                Some(left) if left.target.is_multi() => (left.target, Origin::Inherited),
                _ => (Target::Ignore, Origin::Blank),
            },
        };
        out.push(ColumnPlan {
            index,
            letter,
            header,
            target,
            origin,
        });
    }
    out
}

struct Planner<'a> {
    sheet: &'a Sheet,
    options: &'a Options,
    columns: &'a [ColumnPlan],
    problems: Vec<Problem>,
    notes: Vec<Problem>,
}

/// The location cells of one row, before the commune is looked up.
#[derive(Default)]
struct Place {
    commune: Option<(usize, String)>,
    postcode: Option<String>,
    insee: Option<(usize, String)>,
    departement: Option<(usize, String)>,
}

impl Planner<'_> {
    fn unit(&self) -> &'static str {
        match self.sheet.source {
            Source::Csv { .. } => "ligne",
            Source::GeoJson => "objet",
        }
    }

    fn place(&self, line: Option<usize>, column: Option<usize>) -> String {
        let col = column.map(|i| self.columns[i].describe());
        match (line, col) {
            (Some(l), Some(c)) => format!("{} {l}, {c}", self.unit()),
            (Some(l), None) => format!("{} {l}", self.unit()),
            (None, Some(c)) => c,
            (None, None) => String::new(),
        }
    }

    fn entry(
        &self,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
        suggestion: Option<String>,
    ) -> Problem {
        Problem {
            line,
            column,
            place: self.place(line, column),
            message,
            suggestion,
        }
    }

    fn problem(
        &mut self,
        line: usize,
        column: Option<usize>,
        message: String,
        suggestion: Option<String>,
    ) {
        let p = self.entry(Some(line), column, message, suggestion);
        self.problems.push(p);
    }

    fn issue(&mut self, line: usize, column: usize, issue: Issue) {
        self.problem(line, Some(column), issue.message, issue.suggestion);
    }

    fn note(&mut self, line: Option<usize>, column: Option<usize>, message: String) {
        let p = self.entry(line, column, message, None);
        self.notes.push(p);
    }

    /// The first column feeding `field`.
    fn column_of(&self, field: &str) -> Option<usize> {
        self.columns
            .iter()
            .find(|c| match c.target {
                Target::Field(f) => f == field || f.split('.').next() == Some(field),
                Target::Designer(_) => field.starts_with("designers"),
                _ => false,
            })
            .map(|c| c.index)
    }

    fn has_values(&self, index: usize) -> bool {
        self.sheet
            .rows
            .iter()
            .any(|r| !Sheet::cell(r, index).is_empty())
    }

    fn default_of(&self, field: &str) -> Option<&str> {
        self.options
            .mapping
            .defaults
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }

    /// Sheet-wide checks and notes: columns ignored, one field fed twice, title missing.
    fn check_columns(&mut self) {
        for line in self.sheet.skipped.clone() {
            self.note(
                Some(line),
                None,
                "au-dessus de la ligne d'en-tête : ignorée".into(),
            );
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for c in self.columns {
            match c.origin {
                Origin::Unknown if self.has_values(c.index) => self.note(
                    None,
                    Some(c.index),
                    "aucun champ ne porte ce nom : colonne ignorée (choisissez son champ dans l'aperçu ou dans mapping.toml)".into(),
                ),
                Origin::Blank if self.has_values(c.index) => self.note(
                    None,
                    Some(c.index),
                    "colonne sans titre : ignorée (une cellule fusionnée ne donne son titre qu'à la première colonne ; choisissez son champ dans l'aperçu, ou « colonne … » dans mapping.toml)".into(),
                ),
                Origin::Inherited => self.note(
                    None,
                    Some(c.index),
                    format!("colonne sans titre à droite d'une colonne « {} » : ses valeurs s'y ajoutent", c.target.label()),
                ),
                _ => {}
            }
            if c.target == Target::Ignore || c.target.is_multi() {
                continue;
            }
            if let Some(first) = seen.insert(c.target.name(), c.index) {
                let message = format!(
                    "la {} et la {} vont toutes deux dans « {} » : gardez-en une",
                    self.columns[first].describe(),
                    c.describe(),
                    c.target.label()
                );
                let p = self.entry(None, Some(c.index), message, None);
                self.problems.push(p);
            }
        }
        if self.column_of("title").is_none() {
            let p = self.entry(
                None,
                None,
                "aucune colonne ne donne le titre des fiches (« Titre », « Intitulé », « Nom du projet »…) : choisissez-la".into(),
                None,
            );
            self.problems.push(p);
        }
        if self.column_of("kind").is_none() && self.default_of("kind").is_none() {
            self.note(
                None,
                None,
                "aucune colonne « Type de fiche » : toutes les lignes sont des réalisations (mapping.toml : [valeurs] type = \"outil\" pour en changer)".into(),
            );
        }
    }

    /// One row as a resource, or its problems.
    fn row(&mut self, row: &Row) -> Option<Resource> {
        let before = self.problems.len();
        let mut obj = Map::new();
        let mut nested: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut lists: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        let mut place = Place::default();
        for c in self.columns {
            let raw = Sheet::cell(row, c.index);
            if raw.is_empty() {
                continue;
            }
            let field = match c.target {
                Target::Ignore => continue,
                Target::Postcode => {
                    place.postcode = Some(raw.to_string());
                    continue;
                }
                Target::Designer(role) => {
                    for name in split_names(raw) {
                        lists
                            .entry("designers")
                            .or_default()
                            .push(serde_json::json!({"role": role, "name": name}));
                    }
                    continue;
                }
                Target::Field(f) => f,
            };
            match field {
                "location.commune" => place.commune = Some((c.index, raw.to_string())),
                "location.insee" => place.insee = Some((c.index, raw.trim().to_ascii_uppercase())),
                "location.departement" => place.departement = Some((c.index, raw.to_string())),
                _ => match self.read(field, raw) {
                    Ok(Read::One(v)) => match field.split_once('.') {
                        Some((group, sub)) => {
                            nested.entry(group).or_default().insert(sub.into(), v);
                        }
                        None => {
                            obj.insert(field.into(), v);
                        }
                    },
                    Ok(Read::Many(vs)) => lists.entry(field).or_default().extend(vs),
                    Err(issues) => {
                        for issue in issues {
                            self.issue(row.line, c.index, issue);
                        }
                    }
                },
            }
        }
        for (field, values) in lists {
            obj.insert(field.into(), Value::Array(values));
        }
        for field in ["kind", "office", "status"] {
            if obj.contains_key(field) {
                continue;
            }
            let value = match (self.default_of(field), field) {
                (Some(v), _) => self.read(field, v).ok().and_then(|r| match r {
                    Read::One(v) => Some(v),
                    Read::Many(_) => None,
                }),
                (None, "kind") => Some(Value::from("realisation")),
                (None, "office") => self.options.office.clone().map(Value::from),
                _ => None,
            };
            if let Some(v) = value {
                obj.insert(field.into(), v);
            }
        }
        let office = obj
            .get("office")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.locate(row.line, place, office.as_deref(), &mut nested);
        for (group, map) in nested {
            if !map.is_empty() {
                obj.insert(group.into(), Value::Object(map));
            }
        }
        let title_missing = self.column_of("title").is_none();
        match Resource::from_json(&Value::Object(obj)) {
            Ok(r) if self.problems.len() == before => Some(r),
            Ok(_) => None,
            Err(errors) => {
                for e in errors.0 {
                    if title_missing && e.field == "title" {
                        continue;
                    }
                    let col = self.column_of(&e.field);
                    let label =
                        fields::field(&e.field).map_or(e.field.clone(), |f| f.label.to_string());
                    let message = match col {
                        Some(_) => e.message,
                        None => format!("{label} : {}", e.message),
                    };
                    self.problem(row.line, col, message, None);
                }
                None
            }
        }
    }

    /// A cell read for `field`: one JSON value, or values to add to a list.
    fn read(&self, field: &'static str, raw: &str) -> Result<Read, Vec<Issue>> {
        let f = fields::field(field).expect("targets are fields of the table");
        let label = f.label;
        let mapped = self.options.mapping.values.get(field);
        let code = |v: &str, raw: &str| match mapped.and_then(|m| m.get(&key(raw))) {
            Some(c) => Ok(c.clone()),
            None => values::code(v, raw, label),
        };
        let one = |r: Result<Value, Issue>| r.map(Read::One).map_err(|i| vec![i]);
        match (field, f.ty) {
            ("designers", _) => designers(raw).map(Read::Many),
            ("links", _) => Ok(Read::Many(links(raw))),
            (_, FieldType::Text | FieldType::InseeCode | FieldType::Url) => {
                Ok(Read::One(Value::from(raw.trim())))
            }
            (_, FieldType::LongText) => {
                Ok(Read::One(Value::from(raw.replace("\r\n", "\n").trim())))
            }
            (_, FieldType::Code(v)) => one(code(v, raw).map(Value::from)),
            (_, FieldType::Codes(v)) => {
                // The whole cell first: a label may hold a comma (« Habitat, logement »).
                if let Ok(c) = code(v, raw) {
                    return Ok(Read::Many(vec![Value::from(c)]));
                }
                let (mut ok, mut issues) = (Vec::new(), Vec::new());
                for item in values::split_list(raw) {
                    match code(v, &item) {
                        Ok(c) => ok.push(Value::from(c)),
                        Err(i) => issues.push(i),
                    }
                }
                if issues.is_empty() {
                    Ok(Read::Many(ok))
                } else {
                    Err(issues)
                }
            }
            (_, FieldType::Words) => Ok(Read::Many(
                values::split_list(raw)
                    .into_iter()
                    .map(Value::from)
                    .collect(),
            )),
            (_, FieldType::Office) => one(values::office(raw).map(Value::from)),
            (_, FieldType::Departement) => one(values::departement(raw).map(Value::from)),
            (_, FieldType::Year) => one(values::year(raw).map(Value::from)),
            (_, FieldType::Amount { unit }) => one(values::amount(raw, unit, label).map(number)),
            (_, FieldType::Coordinate) => {
                one(values::decimal(raw, false)
                    .map(number)
                    .ok_or_else(|| Issue {
                        message: format!(
                            "« {raw} » n'est pas un nombre en degrés décimaux (par exemple 45,78)"
                        ),
                        suggestion: None,
                    }))
            }
            (_, FieldType::Date) => one(values::date(raw).map(Value::from)),
            _ => Ok(Read::One(Value::from(raw))),
        }
    }

    /// Finds the commune and fills the INSEE code and département the sheet lacks.
    fn locate(
        &mut self,
        line: usize,
        place: Place,
        office: Option<&str>,
        nested: &mut BTreeMap<&str, Map<String, Value>>,
    ) {
        let mut departement = None;
        if let Some((col, raw)) = &place.departement {
            match values::departement(raw) {
                Ok(d) => departement = Some(d),
                Err(issue) => return self.issue(line, *col, issue),
            }
        }
        let mut loc = nested.remove("location").unwrap_or_default();
        let mut set = |k: &str, v: &str| {
            loc.insert(k.into(), Value::from(v));
        };
        if let Some(d) = &departement {
            set("departement", d);
        }
        if let Some((col, code)) = &place.insee {
            set("insee", code);
            if let Some((_, name)) = &place.commune {
                set("commune", name);
            }
            match communes::by_insee(code) {
                Some(c) => {
                    if place.commune.is_none() {
                        set("commune", &c.name);
                    }
                    match &departement {
                        Some(d) if *d != c.departement => {
                            let dcol = place.departement.as_ref().map(|x| x.0);
                            self.problem(
                                line,
                                dcol,
                                format!(
                                    "le code INSEE {code} est celui de {}, pas du département {d}",
                                    c.display()
                                ),
                                Some(c.departement.clone()),
                            );
                            return;
                        }
                        Some(_) => {}
                        None => set("departement", &c.departement),
                    }
                }
                None if code.len() == 5 => {
                    self.problem(
                        line,
                        Some(*col),
                        format!("« {code} » n'est le code INSEE d'aucune commune actuelle"),
                        None,
                    );
                    return;
                }
                None => {}
            }
        } else if let Some((col, name)) = &place.commune {
            let hint = office.and_then(|o| o.strip_prefix("caue-"));
            let found = communes::find(name, departement.as_deref(), place.postcode.as_deref());
            let found = match found {
                Found::Ambiguous(cs) => match cs
                    .iter()
                    .filter(|c| Some(c.departement.as_str()) == hint)
                    .collect::<Vec<_>>()
                    .as_slice()
                {
                    [one] => Found::Commune(one),
                    _ => Found::Ambiguous(cs),
                },
                other => other,
            };
            match found {
                Found::Commune(c) => {
                    set("commune", &c.name);
                    set("insee", &c.insee);
                    set("departement", &c.departement);
                }
                Found::OldName { typed, current } => {
                    set("commune", &current.name);
                    set("insee", &current.insee);
                    set("departement", &current.departement);
                    self.note(
                        Some(line),
                        Some(*col),
                        format!(
                            "« {} » fait aujourd'hui partie de {} ({}) : la fiche y est rattachée",
                            typed.name,
                            current.display(),
                            current.insee
                        ),
                    );
                }
                Found::Ambiguous(cs) => {
                    let list: Vec<String> = cs
                        .iter()
                        .take(5)
                        .map(|c| {
                            format!("{} (code postal {})", c.display(), c.postcodes.join(", "))
                        })
                        .collect();
                    self.problem(line, Some(*col), format!("plusieurs communes s'appellent « {name} » : {} ; ajoutez une colonne « Département » ou « Code postal »", list.join(", ")), None);
                }
                Found::Elsewhere(cs) => {
                    let within = match (&departement, &place.postcode) {
                        (Some(d), _) => format!("dans le département {d}"),
                        (None, Some(p)) => format!("au code postal {p}"),
                        _ => String::new(),
                    };
                    let list: Vec<String> = cs.iter().take(5).map(|c| c.display()).collect();
                    self.problem(
                        line,
                        Some(*col),
                        format!(
                            "aucune commune « {name} » {within} ; il y en a : {}",
                            list.join(", ")
                        ),
                        None,
                    );
                }
                Found::Unknown(near) => {
                    let (message, suggestion) = match near.first() {
                        Some(c) => (
                            format!("commune « {name} » inconnue ; voulez-vous dire {} ?", near.iter().map(|c| format!("« {} » ({})", c.name, c.departement)).collect::<Vec<_>>().join(" ou ")),
                            Some(c.name.clone()),
                        ),
                        None => (format!("commune « {name} » inconnue (nom officiel attendu, par exemple « Saint-Flour »)"), None),
                    };
                    self.problem(line, Some(*col), message, suggestion);
                }
            }
        }
        if !loc.is_empty() {
            nested.insert("location", loc);
        }
    }
}

enum Read {
    One(Value),
    Many(Vec<Value>),
}

fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// Names in one cell: separated by « | », `;` or line breaks (commas stay: « Atelier X,
/// architectes »).
fn split_names(raw: &str) -> Vec<String> {
    raw.split(['|', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Designers as the export writes them, « Nom (rôle) », or typed « Rôle : Nom »; a name
/// alone is role « autre ». A role a few letters off is a problem with its suggestion.
fn designers(raw: &str) -> Result<Vec<Value>, Vec<Issue>> {
    let label = fields::field("designers.role").map_or("Rôle", |f| f.label);
    let (mut out, mut issues) = (Vec::new(), Vec::new());
    for item in split_names(raw) {
        let (name, role) = if let Some((name, role)) =
            item.strip_suffix(')').and_then(|s| s.rsplit_once(" ("))
        {
            match values::code(vocab::DESIGNER_ROLES, role, label) {
                Ok(code) => (name.trim().to_string(), code),
                Err(issue) if issue.suggestion.is_some() => {
                    issues.push(issue);
                    continue;
                }
                Err(_) => (item.clone(), "autre".to_string()),
            }
        } else if let Some((role, name)) = item.split_once(" : ").or_else(|| item.split_once(": "))
        {
            match values::code(vocab::DESIGNER_ROLES, role, label) {
                Ok(code) => (name.trim().to_string(), code),
                Err(_) => (item.clone(), "autre".to_string()),
            }
        } else {
            (item.clone(), "autre".to_string())
        };
        out.push(serde_json::json!({"role": role, "name": name}));
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// Links as the export writes them, « adresse intitulé »; an address written « www.… » gets
/// `https://` (FORMAT.md wants a full address).
fn links(raw: &str) -> Vec<Value> {
    raw.split(['|', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (url, label) = item.split_once(char::is_whitespace).unwrap_or((item, ""));
            let url = if url.starts_with("www.") {
                format!("https://{url}")
            } else {
                url.to_string()
            };
            let mut m = Map::new();
            m.insert("url".into(), Value::from(url));
            if !label.trim().is_empty() {
                m.insert("label".into(), Value::from(label.trim()));
            }
            Value::Object(m)
        })
        .collect()
}

#[cfg(test)]
mod tests;
