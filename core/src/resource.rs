//! The resource model of FORMAT.md: typed fields, validation with French messages, JSON in and out.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::{self, FieldType};
use crate::ids::OfficeId;
use crate::media::{self, Media, MAX_MEDIA_PER_RESOURCE};
use crate::vocab;

mod write_json;

/// Longest `summary` FORMAT.md allows, in characters: it is the teaser shown on list cards.
pub const MAX_SUMMARY_CHARS: usize = 300;
/// Earliest and latest accepted `year`: the observatoire holds buildings from any era, but a
/// year outside this range is a typing mistake.
pub const YEAR_RANGE: std::ops::RangeInclusive<i64> = 1000..=2100;

/// The top-level fields FORMAT.md defines, in the order `export` writes them (names from
/// [`fields::FIELDS`]).
pub static KNOWN_FIELDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| fields::top_level().map(|f| f.name).collect());

/// One problem with one field, said in French for office staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "champ « {} » : {}", self.field, self.message)
    }
}

/// Every problem found in one resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Location {
    pub commune: Option<String>,
    pub insee: Option<String>,
    pub departement: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Designer {
    pub role: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dates {
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub label: Option<String>,
}

/// One resource of the corpus, validated. Vocabulary fields hold codes known to `vocab`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub ref_: Option<String>,
    pub kind: String,
    pub title: String,
    pub summary: String,
    pub description: String,
    pub office: String,
    pub status: String,
    pub axes: Vec<String>,
    pub themes: Vec<String>,
    pub sectors: Vec<String>,
    pub materials: Vec<String>,
    pub audiences: Vec<String>,
    pub keywords: Vec<String>,
    pub location: Option<Location>,
    pub year: Option<i64>,
    pub client: Option<String>,
    pub designers: Vec<Designer>,
    pub intervention: Option<String>,
    pub building_type: Option<String>,
    pub cost_eur_ht: Option<f64>,
    pub floor_area_m2: Option<f64>,
    pub tool_type: Option<String>,
    pub action_type: Option<String>,
    pub dates: Option<Dates>,
    pub links: Vec<Link>,
    /// Photos, plans and documents, in gallery order (`media::sort`); their bytes are blobs.
    pub media: Vec<Media>,
    /// Fields FORMAT.md does not define, kept as they came so that export gives them back.
    pub extra: BTreeMap<String, Value>,
}

impl Resource {
    /// Parses and validates one JSON object; reports every problem, not just the first.
    pub fn from_json(value: &Value) -> Result<Resource, ValidationErrors> {
        let Some(obj) = value.as_object() else {
            return Err(ValidationErrors(vec![FieldError {
                field: "(ligne)".into(),
                message: "un objet JSON {…} est attendu".into(),
            }]));
        };
        let mut p = Parser { errors: Vec::new() };
        let r = Resource {
            ref_: p.opt_string(obj, "ref"),
            kind: p.required_code(obj, "kind"),
            title: p.required_string(obj, "title"),
            summary: p.opt_string(obj, "summary").unwrap_or_default(),
            description: p.opt_string(obj, "description").unwrap_or_default(),
            office: p.office(obj),
            status: p
                .opt_code(obj, "status")
                .unwrap_or_else(|| "brouillon".into()),
            axes: p.codes(obj, "axes"),
            themes: p.codes(obj, "themes"),
            sectors: p.codes(obj, "sectors"),
            materials: p.strings(obj, "materials"),
            audiences: p.codes(obj, "audiences"),
            keywords: p.strings(obj, "keywords"),
            location: p.location(obj),
            year: p.year(obj),
            client: p.opt_string(obj, "client"),
            designers: p.designers(obj),
            intervention: p.opt_code(obj, "intervention"),
            building_type: p.opt_code(obj, "building_type"),
            cost_eur_ht: p.amount(obj, "cost_eur_ht"),
            floor_area_m2: p.amount(obj, "floor_area_m2"),
            tool_type: p.opt_code(obj, "tool_type"),
            action_type: p.opt_code(obj, "action_type"),
            dates: p.dates(obj),
            links: p.links(obj),
            media: p.media(obj),
            extra: obj
                .iter()
                .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if r.summary.chars().count() > MAX_SUMMARY_CHARS {
            p.error("summary", format!("{MAX_SUMMARY_CHARS} caractères au plus"));
        }
        if p.errors.is_empty() {
            Ok(r)
        } else {
            Err(ValidationErrors(p.errors))
        }
    }

    /// The FORMAT.md JSON object: known fields in order, empty ones left out, unknown fields last.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        let mut put = |k: &str, v: Value| {
            let empty = match &v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !empty {
                o.insert(k.to_string(), v);
            }
        };
        put("ref", json_opt(&self.ref_));
        put("kind", Value::from(self.kind.clone()));
        put("title", Value::from(self.title.clone()));
        put("summary", Value::from(self.summary.clone()));
        put("description", Value::from(self.description.clone()));
        put("office", Value::from(self.office.clone()));
        put("status", Value::from(self.status.clone()));
        put("axes", Value::from(self.axes.clone()));
        put("themes", Value::from(self.themes.clone()));
        put("sectors", Value::from(self.sectors.clone()));
        put("materials", Value::from(self.materials.clone()));
        put("audiences", Value::from(self.audiences.clone()));
        put("keywords", Value::from(self.keywords.clone()));
        if let Some(l) = &self.location {
            let mut lo = Map::new();
            for (k, v) in [
                ("commune", json_opt(&l.commune)),
                ("insee", json_opt(&l.insee)),
                ("departement", json_opt(&l.departement)),
                ("lat", l.lat.map(number).unwrap_or(Value::Null)),
                ("lon", l.lon.map(number).unwrap_or(Value::Null)),
            ] {
                if !v.is_null() {
                    lo.insert(k.into(), v);
                }
            }
            put("location", Value::Object(lo));
        }
        put("year", self.year.map(Value::from).unwrap_or(Value::Null));
        put("client", json_opt(&self.client));
        put(
            "designers",
            Value::Array(
                self.designers
                    .iter()
                    .map(|d| serde_json::json!({"role": d.role, "name": d.name}))
                    .collect(),
            ),
        );
        put("intervention", json_opt(&self.intervention));
        put("building_type", json_opt(&self.building_type));
        put(
            "cost_eur_ht",
            self.cost_eur_ht.map(number).unwrap_or(Value::Null),
        );
        put(
            "floor_area_m2",
            self.floor_area_m2.map(number).unwrap_or(Value::Null),
        );
        put("tool_type", json_opt(&self.tool_type));
        put("action_type", json_opt(&self.action_type));
        if let Some(d) = &self.dates {
            let mut dm = Map::new();
            if let Some(s) = &d.start {
                dm.insert("start".into(), Value::from(s.clone()));
            }
            if let Some(e) = &d.end {
                dm.insert("end".into(), Value::from(e.clone()));
            }
            put("dates", Value::Object(dm));
        }
        put(
            "links",
            Value::Array(
                self.links
                    .iter()
                    .map(|l| {
                        let mut m = Map::new();
                        m.insert("url".into(), Value::from(l.url.clone()));
                        if let Some(label) = &l.label {
                            m.insert("label".into(), Value::from(label.clone()));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            ),
        );
        put(
            "media",
            Value::Array(self.media.iter().map(Media::to_json).collect()),
        );
        for (k, v) in &self.extra {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }

    /// The département of the resource's location, if any.
    pub fn departement(&self) -> Option<&str> {
        self.location.as_ref()?.departement.as_deref()
    }

    /// The commune of the resource's location, if any.
    pub fn commune(&self) -> Option<&str> {
        self.location.as_ref()?.commune.as_deref()
    }
}

fn json_opt(s: &Option<String>) -> Value {
    s.as_ref()
        .map(|s| Value::from(s.clone()))
        .unwrap_or(Value::Null)
}

/// Whole numbers are written without a fraction, as people type them (`2600000`, not `2600000.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// The vocabulary the field table gives a code field.
fn vocabulary_of(field: &str) -> &'static str {
    match fields::field(field).map(|f| f.ty) {
        Some(FieldType::Code(v) | FieldType::Codes(v)) => v,
        _ => unreachable!("{field} is a code field of the table"),
    }
}

/// Collects every field error while building a `Resource`.
struct Parser {
    errors: Vec<FieldError>,
}

impl Parser {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn opt_string(&mut self, o: &Map<String, Value>, k: &str) -> Option<String> {
        match o.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(k, "du texte est attendu");
                None
            }
        }
    }

    fn required_string(&mut self, o: &Map<String, Value>, k: &str) -> String {
        match self.opt_string(o, k) {
            Some(s) => s,
            None => {
                if matches!(o.get(k), None | Some(Value::Null) | Some(Value::String(_))) {
                    self.error(k, "obligatoire");
                }
                String::new()
            }
        }
    }

    fn check_code(&mut self, k: &str, code: &str, vocabulary: &str) -> bool {
        if vocab::label(vocabulary, code).is_some() {
            return true;
        }
        let known: Vec<&str> = vocab::codes(vocabulary)
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        self.error(
            k,
            format!(
                "« {code} » inconnu ; valeurs possibles : {}",
                known.join(", ")
            ),
        );
        false
    }

    fn opt_code(&mut self, o: &Map<String, Value>, k: &str) -> Option<String> {
        self.opt_code_of(o, k, k)
    }

    /// The code under key `k` of `o`, checked against the vocabulary of `field` (the dotted
    /// name, for a key of a nested object).
    fn opt_code_of(&mut self, o: &Map<String, Value>, k: &str, field: &str) -> Option<String> {
        let s = self.opt_string(o, k)?;
        self.check_code(k, &s, vocabulary_of(field)).then_some(s)
    }

    fn required_code(&mut self, o: &Map<String, Value>, k: &str) -> String {
        let s = self.required_string(o, k);
        if !s.is_empty() {
            self.check_code(k, &s, vocabulary_of(k));
        }
        s
    }

    fn office(&mut self, o: &Map<String, Value>) -> String {
        let s = self.required_string(o, "office");
        if s.is_empty() {
            return s;
        }
        match s.parse::<OfficeId>() {
            Ok(id) => id.to_string(),
            Err(e) => {
                self.error("office", e.to_string());
                s
            }
        }
    }

    fn strings(&mut self, o: &Map<String, Value>, k: &str) -> Vec<String> {
        match o.get(k) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                        Value::String(_) => {}
                        _ => {
                            self.error(k, "une liste de textes est attendue");
                            return Vec::new();
                        }
                    }
                }
                out
            }
            Some(_) => {
                self.error(k, "une liste [ … ] est attendue");
                Vec::new()
            }
        }
    }

    fn codes(&mut self, o: &Map<String, Value>, k: &str) -> Vec<String> {
        let vocabulary = vocabulary_of(k);
        let items = self.strings(o, k);
        let mut out = Vec::new();
        for c in items {
            if self.check_code(k, &c, vocabulary) && !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    fn number(&mut self, o: &Map<String, Value>, k: &str, field: &str) -> Option<f64> {
        match o.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.error(field, "un nombre est attendu");
                None
            }
        }
    }

    fn amount(&mut self, o: &Map<String, Value>, k: &str) -> Option<f64> {
        let x = self.number(o, k, k)?;
        if x < 0.0 || !x.is_finite() {
            self.error(k, "doit être positif");
            return None;
        }
        Some(x)
    }

    fn year(&mut self, o: &Map<String, Value>) -> Option<i64> {
        match o.get("year") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(y) if YEAR_RANGE.contains(&y) => Some(y),
                _ => {
                    self.error(
                        "year",
                        format!(
                            "année entière entre {} et {} attendue",
                            YEAR_RANGE.start(),
                            YEAR_RANGE.end()
                        ),
                    );
                    None
                }
            },
            Some(_) => {
                self.error("year", "une année (nombre entier) est attendue");
                None
            }
        }
    }

    fn location(&mut self, o: &Map<String, Value>) -> Option<Location> {
        let lo = match o.get("location") {
            None | Some(Value::Null) => return None,
            Some(Value::Object(lo)) => lo,
            Some(_) => {
                self.error(
                    "location",
                    "un objet {commune, insee, departement, lat, lon} est attendu",
                );
                return None;
            }
        };
        let departement = self
            .opt_string(lo, "departement")
            .map(|d| d.to_ascii_uppercase());
        if let Some(d) = &departement {
            if vocab::departement(d).is_none() {
                self.error(
                    "location.departement",
                    format!("« {d} » n'est pas un code de département (ex. 07, 63, 2A, 974)"),
                );
            }
        }
        let insee = self.opt_string(lo, "insee");
        if let Some(code) = &insee {
            let ok = code.len() == 5
                && code.chars().all(|c| c.is_ascii_alphanumeric())
                && (code[..2].chars().all(|c| c.is_ascii_digit())
                    || code[..2].eq_ignore_ascii_case("2A")
                    || code[..2].eq_ignore_ascii_case("2B"))
                && code[2..].chars().all(|c| c.is_ascii_digit());
            if !ok {
                self.error(
                    "location.insee",
                    format!("« {code} » n'est pas un code commune INSEE (5 caractères, ex. 63113)"),
                );
            }
        }
        let lat = self.number(lo, "lat", "location.lat");
        if lat.is_some_and(|x| !(-90.0..=90.0).contains(&x)) {
            self.error("location.lat", "latitude entre -90 et 90 attendue");
        }
        let lon = self.number(lo, "lon", "location.lon");
        if lon.is_some_and(|x| !(-180.0..=180.0).contains(&x)) {
            self.error("location.lon", "longitude entre -180 et 180 attendue");
        }
        Some(Location {
            commune: self.opt_string(lo, "commune"),
            insee,
            departement,
            lat,
            lon,
        })
    }

    fn designers(&mut self, o: &Map<String, Value>) -> Vec<Designer> {
        let items = match o.get("designers") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error("designers", "une liste [{role, name}] est attendue");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            let Some(d) = item.as_object() else {
                self.error("designers", "chaque concepteur est un objet {role, name}");
                continue;
            };
            let role = self
                .opt_code_of(d, "role", "designers.role")
                .unwrap_or_else(|| "autre".into());
            match self.opt_string(d, "name") {
                Some(name) => out.push(Designer { role, name }),
                None => self.error("designers.name", "nom du concepteur obligatoire"),
            }
        }
        out
    }

    fn dates(&mut self, o: &Map<String, Value>) -> Option<Dates> {
        let d = match o.get("dates") {
            None | Some(Value::Null) => return None,
            Some(Value::Object(d)) => d,
            Some(_) => {
                self.error("dates", "un objet {start, end} est attendu");
                return None;
            }
        };
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let parse = |p: &mut Self, k: &str| {
            let s = p.opt_string(d, k)?;
            match time::Date::parse(&s, &fmt) {
                Ok(date) => Some((s, date)),
                Err(_) => {
                    p.error(
                        &format!("dates.{k}"),
                        format!("« {s} » n'est pas une date AAAA-MM-JJ"),
                    );
                    None
                }
            }
        };
        let start = parse(self, "start");
        let end = parse(self, "end");
        if let (Some((_, s)), Some((_, e))) = (&start, &end) {
            if e < s {
                self.error("dates.end", "la date de fin précède la date de début");
            }
        }
        Some(Dates {
            start: start.map(|x| x.0),
            end: end.map(|x| x.0),
        })
    }

    fn media(&mut self, o: &Map<String, Value>) -> Vec<Media> {
        let items = match o.get("media") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error("media", "une liste [{hash, kind, name, …}] est attendue");
                return Vec::new();
            }
        };
        if items.len() > MAX_MEDIA_PER_RESOURCE {
            self.error(
                "media",
                format!("{MAX_MEDIA_PER_RESOURCE} photos et documents au plus par fiche"),
            );
            return Vec::new();
        }
        let mut out: Vec<Media> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(mut m) = Media::from_json(item, &mut self.errors) {
                // Entries without a time keep the order they were listed in.
                if m.added_at == 0 {
                    m.added_at = i as i64;
                }
                if !out.iter().any(|x| x.hash == m.hash) {
                    out.push(m);
                }
            }
        }
        media::sort(&mut out);
        out
    }

    fn links(&mut self, o: &Map<String, Value>) -> Vec<Link> {
        let items = match o.get("links") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error("links", "une liste [{url, label}] est attendue");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            let Some(l) = item.as_object() else {
                self.error("links", "chaque lien est un objet {url, label}");
                continue;
            };
            match self.opt_string(l, "url") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    out.push(Link {
                        url,
                        label: self.opt_string(l, "label"),
                    })
                }
                Some(url) => self.error(
                    "links.url",
                    format!("« {url} » doit commencer par http:// ou https://"),
                ),
                None => self.error("links.url", "adresse obligatoire"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_format_example_and_writes_it_back() {
        let line = json!({"ref":"mc-063-001","kind":"realisation","title":"École en pisé","office":"caue-63","status":"publie","axes":["architecture_integree"],"sectors":["terre"],"materials":["pisé"],"location":{"commune":"Montbrison-sur-Lez","departement":"26","lat":44.44,"lon":5.02},"year":2016,"designers":[{"role":"architecte","name":"Atelier X"}],"intervention":"construction_neuve","cost_eur_ht":2600000,"photo_credit":"J. Martin"});
        let r = Resource::from_json(&line).unwrap();
        assert_eq!(r.kind, "realisation");
        assert_eq!(r.departement(), Some("26"));
        assert_eq!(r.extra["photo_credit"], json!("J. Martin"));
        let back = r.to_json();
        assert_eq!(back["cost_eur_ht"], json!(2600000));
        assert_eq!(back["photo_credit"], json!("J. Martin"));
        assert_eq!(Resource::from_json(&back).unwrap(), r);
    }

    #[test]
    fn reports_every_problem_with_its_field_in_french() {
        let bad = json!({"kind":"maison","office":"caue-99","year":"2016","location":{"departement":"00","lat":123.0,"insee":"ABC"},"themes":["habitat","plage"],"summary":"x".repeat(301)});
        let errs = Resource::from_json(&bad).unwrap_err().0;
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "kind",
            "title",
            "office",
            "year",
            "location.departement",
            "location.lat",
            "location.insee",
            "themes",
            "summary",
        ] {
            assert!(fields.contains(&f), "missing error for {f}: {errs:?}");
        }
        let kind = errs.iter().find(|e| e.field == "kind").unwrap();
        assert!(kind.message.contains("inconnu"), "{}", kind.message);
        assert!(Resource::from_json(&json!([1])).is_err());
    }

    #[test]
    fn status_defaults_to_brouillon_and_dates_are_checked() {
        let r = Resource::from_json(&json!({"kind":"action","title":"Visite","office":"caue-15","dates":{"start":"2024-05-01","end":"2024-05-02"}})).unwrap();
        assert_eq!(r.status, "brouillon");
        let e = Resource::from_json(&json!({"kind":"action","title":"Visite","office":"caue-15","dates":{"start":"2024-05-03","end":"2024-05-02"}})).unwrap_err();
        assert_eq!(e.0[0].field, "dates.end");
    }
}
