//! The communes of France (INSEE COG 2026, `core/data/communes.csv`): a commune name typed in
//! a spreadsheet matched to its INSEE code and département, with its postcode or département
//! to tell namesakes apart, and old names (communes déléguées and associées, municipal
//! arrondissements) led to the commune they are part of today.
//!
//! Source: the `@etalab/decoupage-administratif` package 6.0.0 (COG lists under the Licence
//! Ouverte / Etalab; postcodes from La Poste's official base, Licence Ouverte).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::values::key;
use crate::fr;

const COMMUNES_CSV: &str = include_str!("../../data/communes.csv");

/// Most communes offered when a name is unknown or ambiguous.
const MAX_SUGGESTIONS: usize = 3;
/// Names this many edits away from a typed name are suggested (« Murrat » → « Murat »); more,
/// and unrelated communes come up.
const NEAR_EDITS: usize = 2;

/// What an entry of the COG list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommuneType {
    Actuelle,
    /// An old commune merged into a commune nouvelle, kept as a commune déléguée.
    Deleguee,
    /// An old commune merged before 2010, kept as a commune associée.
    Associee,
    /// An arrondissement of Paris, Lyon or Marseille.
    Arrondissement,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commune {
    pub insee: String,
    pub name: String,
    pub departement: String,
    pub ty: CommuneType,
    pub postcodes: Vec<String>,
    pub population: u64,
    /// The current commune of a déléguée, associée or arrondissement.
    pub parent: Option<String>,
}

impl Commune {
    /// « Murat (15) ».
    pub fn display(&self) -> String {
        format!("{} ({})", self.name, self.departement)
    }
}

struct Index {
    all: Vec<Commune>,
    by_name: HashMap<String, Vec<usize>>,
    /// Current communes by INSEE code.
    current: HashMap<String, usize>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut all = Vec::new();
        for line in COMMUNES_CSV.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 7 {
                continue;
            }
            let ty = match f[3] {
                "commune-actuelle" => CommuneType::Actuelle,
                "commune-deleguee" => CommuneType::Deleguee,
                "commune-associee" => CommuneType::Associee,
                _ => CommuneType::Arrondissement,
            };
            all.push(Commune {
                insee: f[0].into(),
                name: f[1].into(),
                departement: f[2].into(),
                ty,
                postcodes: f[4]
                    .split('|')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
                population: f[5].parse().unwrap_or(0),
                parent: Some(f[6]).filter(|p| !p.is_empty()).map(String::from),
            });
        }
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut current = HashMap::new();
        for (i, c) in all.iter().enumerate() {
            by_name.entry(name_key(&c.name)).or_default().push(i);
            if c.ty == CommuneType::Actuelle {
                current.insert(c.insee.clone(), i);
            }
        }
        Index {
            all,
            by_name,
            current,
        }
    })
}

/// A commune name folded for comparison: « St-Flour », « SAINT FLOUR » and « Saint-Flour » are
/// one key, and « Puy-en-Velay (Le) » is « Le Puy-en-Velay ».
pub fn name_key(name: &str) -> String {
    let mut k = key(name);
    for article in ["le", "la", "les", "l"] {
        if let Some(rest) = k.strip_suffix(&format!(" {article}")) {
            k = format!("{article} {rest}");
            break;
        }
    }
    k.split(' ')
        .map(|w| match w {
            "st" => "saint",
            "ste" => "sainte",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The current commune with this INSEE code.
pub fn by_insee(code: &str) -> Option<&'static Commune> {
    let i = index();
    i.current
        .get(&code.to_ascii_uppercase())
        .map(|&n| &i.all[n])
}

/// What a typed commune name leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// One current commune.
    Commune(&'static Commune),
    /// An old name (commune déléguée or associée, arrondissement): the commune it is part of.
    OldName {
        typed: &'static Commune,
        current: &'static Commune,
    },
    /// Several communes bear this name: the postcode or département tells them apart.
    Ambiguous(Vec<&'static Commune>),
    /// Communes of that name exist, none in the given département or postcode.
    Elsewhere(Vec<&'static Commune>),
    /// No commune of that name; the nearest names, if any.
    Unknown(Vec<&'static Commune>),
}

/// Finds the commune `name` (with a département code or a postcode when the sheet has them).
pub fn find(name: &str, departement: Option<&str>, postcode: Option<&str>) -> Found {
    let ix = index();
    let k = name_key(name);
    let Some(entries) = ix.by_name.get(&k) else {
        return Found::Unknown(near(&k, departement));
    };
    let all: Vec<&'static Commune> = entries.iter().map(|&n| &ix.all[n]).collect();
    let postcode = postcode.map(str::trim).filter(|p| !p.is_empty());
    let fits = |c: &&'static Commune| {
        departement.is_none_or(|d| c.departement == d)
            && postcode.is_none_or(|p| {
                current_of(c).is_some_and(|cur| cur.postcodes.iter().any(|x| x == p))
                    || c.postcodes.iter().any(|x| x == p)
            })
    };
    let mut fitting: Vec<&'static Commune> = all.iter().copied().filter(fits).collect();
    if fitting.is_empty() {
        return Found::Elsewhere(all);
    }
    // A current commune and its own déléguée of the same name are one place.
    let actual: Vec<&'static Commune> = fitting
        .iter()
        .copied()
        .filter(|c| c.ty == CommuneType::Actuelle)
        .collect();
    if !actual.is_empty() {
        fitting = actual;
    } else {
        fitting.dedup_by_key(|c| current_of(c).map(|p| p.insee.clone()));
    }
    match fitting.as_slice() {
        [one] if one.ty == CommuneType::Actuelle => Found::Commune(one),
        [one] => match current_of(one) {
            Some(current) => Found::OldName {
                typed: one,
                current,
            },
            None => Found::Unknown(Vec::new()),
        },
        _ => {
            fitting.sort_by_key(|c| std::cmp::Reverse(c.population));
            Found::Ambiguous(fitting)
        }
    }
}

/// The current commune an entry is, or is part of.
fn current_of(c: &'static Commune) -> Option<&'static Commune> {
    match c.ty {
        CommuneType::Actuelle => Some(c),
        _ => c.parent.as_deref().and_then(by_insee),
    }
}

/// Current communes whose name is a few edits from `k`, in the département if given; closest
/// then most populated first.
fn near(k: &str, departement: Option<&str>) -> Vec<&'static Commune> {
    let ix = index();
    let len = k.chars().count();
    if len < 4 {
        return Vec::new();
    }
    let mut found: Vec<(usize, &'static Commune)> = ix
        .all
        .iter()
        .filter(|c| c.ty == CommuneType::Actuelle)
        .filter(|c| departement.is_none_or(|d| c.departement == d))
        .filter_map(|c| {
            let ck = name_key(&c.name);
            if ck.chars().count().abs_diff(len) > NEAR_EDITS {
                return None;
            }
            let d = fr::edit_distance(k, &ck);
            (d <= NEAR_EDITS).then_some((d, c))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.population.cmp(&a.1.population)));
    found
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_communes_by_name_with_departement_or_postcode() {
        match find("Murat", Some("15"), None) {
            Found::Commune(c) => assert_eq!(c.insee, "15138"),
            other => panic!("{other:?}"),
        }
        match find("murat", None, Some("03390")) {
            Found::Commune(c) => assert_eq!(c.insee, "03191"),
            other => panic!("{other:?}"),
        }
        match find("Murat", None, None) {
            Found::Ambiguous(cs) => {
                let codes: Vec<&str> = cs.iter().map(|c| c.insee.as_str()).collect();
                assert_eq!(codes, ["15138", "03191"]);
            }
            other => panic!("{other:?}"),
        }
        match find("St-Flour", Some("15"), None) {
            Found::Commune(c) => assert_eq!(c.insee, "15187"),
            other => panic!("{other:?}"),
        }
        assert_eq!(by_insee("63113").unwrap().name, "Clermont-Ferrand");
    }

    #[test]
    fn old_names_lead_to_todays_commune() {
        match find("Chastel-sur-Murat", None, None) {
            Found::OldName { typed, current } => {
                assert_eq!(typed.name, "Chastel-sur-Murat");
                assert_eq!(current.insee, "15138");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_or_misplaced_names_say_what_is_near() {
        match find("Murrat", Some("15"), None) {
            Found::Unknown(cs) => assert_eq!(cs[0].insee, "15138"),
            other => panic!("{other:?}"),
        }
        match find("Murat", Some("63"), None) {
            Found::Elsewhere(cs) => assert!(cs.iter().any(|c| c.insee == "15138")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("Xyzzyville", None, None), Found::Unknown(v) if v.is_empty()));
    }
}
