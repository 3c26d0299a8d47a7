//! The controlled vocabularies and the 101 départements, embedded from `core/data/`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One département (COG): code, name, région.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departement {
    pub code: String,
    pub name: String,
    pub region_code: String,
    pub region: String,
}

/// The vocabularies of `vocabularies.json`: vocabulary name → (code → French label), in file order.
pub type Vocabularies = BTreeMap<String, Vec<(String, String)>>;

const VOCABULARIES_JSON: &str = include_str!("../data/vocabularies.json");
const DEPARTEMENTS_CSV: &str = include_str!("../data/departements.csv");

/// Names of the vocabularies, as used in `vocabularies.json`.
pub const KINDS: &str = "kinds";
pub const STATUSES: &str = "statuses";
pub const AXES: &str = "axes";
pub const THEMES: &str = "themes";
pub const SECTORS: &str = "sectors";
pub const AUDIENCES: &str = "audiences";
pub const DESIGNER_ROLES: &str = "designer_roles";
pub const INTERVENTIONS: &str = "interventions";
pub const BUILDING_TYPES: &str = "building_types";
pub const TOOL_TYPES: &str = "tool_types";
pub const ACTION_TYPES: &str = "action_types";

/// All vocabularies, parsed once.
pub fn vocabularies() -> &'static Vocabularies {
    static V: OnceLock<Vocabularies> = OnceLock::new();
    V.get_or_init(|| {
        let raw: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(VOCABULARIES_JSON).expect("embedded vocabularies.json is valid");
        raw.into_iter()
            .map(|(name, codes)| {
                let codes = codes
                    .as_object()
                    .expect("each vocabulary is an object")
                    .iter()
                    .map(|(code, label)| (code.clone(), label.as_str().unwrap_or("").to_string()))
                    .collect();
                (name, codes)
            })
            .collect()
    })
}

/// The codes and labels of one vocabulary, in file order.
pub fn codes(vocabulary: &str) -> &'static [(String, String)] {
    vocabularies()
        .get(vocabulary)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The French label of a code, if the code belongs to the vocabulary.
pub fn label(vocabulary: &str, code: &str) -> Option<&'static str> {
    codes(vocabulary)
        .iter()
        .find(|(c, _)| c == code)
        .map(|(_, l)| l.as_str())
}

/// The French label of a code; a code the vocabulary does not know is shown as it is (data
/// written by a newer Atelier, or by a foreign client).
pub fn label_or_code<'a>(vocabulary: &str, code: &'a str) -> &'a str {
    label(vocabulary, code).unwrap_or(code)
}

/// All 101 départements, in code order.
pub fn departements() -> &'static [Departement] {
    static D: OnceLock<Vec<Departement>> = OnceLock::new();
    D.get_or_init(|| {
        DEPARTEMENTS_CSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let f = split_csv_line(line);
                Departement {
                    code: f[0].clone(),
                    name: f[1].clone(),
                    region_code: f[2].clone(),
                    region: f[3].clone(),
                }
            })
            .collect()
    })
}

/// The département with this code (`07`, `2A`, `974`).
pub fn departement(code: &str) -> Option<&'static Departement> {
    departements().iter().find(|d| d.code == code)
}

/// Splits one line of the embedded CSV (fields may be double-quoted; no escaped quotes inside).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    fields.push(current);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_departements_are_embedded() {
        assert_eq!(departements().len(), 101);
        let d = departement("63").unwrap();
        assert_eq!(d.name, "Puy-de-Dôme");
        assert_eq!(d.region, "Auvergne-Rhône-Alpes");
        assert_eq!(
            departement("04").unwrap().region,
            "Provence-Alpes-Côte d'Azur"
        );
        assert!(departement("2A").is_some());
    }

    #[test]
    fn vocabulary_labels_are_french() {
        assert_eq!(
            label(KINDS, "action"),
            Some("Action de médiation (animation, sensibilisation)")
        );
        assert_eq!(label(SECTORS, "terre"), Some("Terre crue"));
        assert_eq!(label(SECTORS, "beton"), None);
        assert_eq!(label_or_code(SECTORS, "terre"), "Terre crue");
        assert_eq!(label_or_code(SECTORS, "beton"), "beton");
        assert_eq!(codes(THEMES).len(), 12);
    }
}
