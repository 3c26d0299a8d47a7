//! The built-in glossary: sigles and abbreviations of CAUE work, and words that name a kind.
//!
//! Entries are written in plain French and analyzed once, so they fold and stem like the
//! documents. A query expression found here matches any of its equivalents; the glossary is
//! applied to queries only, so changing it needs no reindex.

use std::sync::OnceLock;

use super::analysis::{self, is_stop_word, Word};

/// Sets of equivalent expressions (domain research, section 7, and the usual sigles of the
/// construction and planning trade).
const EQUIVALENTS: &[&[&str]] = &[
    &["MOA", "maître d'ouvrage", "maîtrise d'ouvrage"],
    &["MOE", "maître d'œuvre", "maîtrise d'œuvre"],
    &[
        "AMO",
        "assistance à maîtrise d'ouvrage",
        "assistant à maîtrise d'ouvrage",
    ],
    &["BET", "bureau d'études", "bureau d'étude"],
    &["comcom", "com com", "communauté de communes"],
    &["EPCI", "établissement public de coopération intercommunale"],
    &["réhab", "réhabilitation"],
    &["st", "saint"],
    &["ste", "sainte"],
    &["sts", "saints"],
    &["stes", "saintes"],
    &["PLU", "plan local d'urbanisme"],
    &["PLUi", "plan local d'urbanisme intercommunal"],
    &["SCoT", "schéma de cohérence territoriale"],
    &["ZAN", "zéro artificialisation nette"],
    &["OAP", "orientation d'aménagement et de programmation"],
    &["BTC", "brique de terre compressée"],
    &[
        "CLT",
        "bois lamellé-croisé",
        "lamellé-croisé",
        "cross laminated timber",
    ],
    &[
        "EHPAD",
        "établissement d'hébergement pour personnes âgées dépendantes",
    ],
    &["MSP", "maison de santé pluriprofessionnelle"],
    &["ABF", "architecte des bâtiments de France"],
    &[
        "CAUE",
        "conseil d'architecture, d'urbanisme et de l'environnement",
    ],
    &["PNR", "parc naturel régional"],
    &["ITE", "isolation thermique par l'extérieur"],
    &["ITI", "isolation thermique par l'intérieur"],
    &["ERP", "établissement recevant du public"],
    &["HLM", "habitation à loyer modéré"],
    &["OPAH", "opération programmée d'amélioration de l'habitat"],
    &["SPR", "site patrimonial remarquable"],
    &[
        "AVAP",
        "aire de mise en valeur de l'architecture et du patrimoine",
    ],
    &["PVD", "petites villes de demain"],
    &["VRD", "voirie et réseaux divers"],
    &["DPE", "diagnostic de performance énergétique"],
    &["BBC", "bâtiment basse consommation"],
    &["RE2020", "RE 2020", "réglementation environnementale 2020"],
    &["ANAH", "agence nationale de l'habitat"],
    &["ENSA", "école nationale supérieure d'architecture"],
];

/// Expressions that name a kind of resource: « animation scolaires » is an action de
/// médiation for school pupils, whether or not the word « animation » is in its text.
const KIND_WORDS: &[(&str, &[&str])] = &[
    (
        "action",
        &[
            "action de médiation",
            "médiation",
            "animation",
            "sensibilisation",
            "visite",
            "atelier",
        ],
    ),
    ("outil", &["outil"]),
    ("publication", &["publication"]),
    ("acteur", &["acteur"]),
    ("realisation", &["réalisation", "observatoire"]),
];

/// An analyzed expression: its exact-folded and stemmed words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    pub exact: Vec<String>,
    pub stem: Vec<String>,
}

/// What a run of query words means besides itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meaning {
    /// Other expressions that say the same thing.
    pub alternatives: Vec<Expression>,
    /// Kinds of resource that the words name.
    pub kinds: Vec<&'static str>,
}

/// The longest glossary expression that starts at `words[start]`, compared on stems and
/// skipping stop words on both sides. Returns how many query words it covers, and its meaning.
pub fn lookup(words: &[Word], start: usize) -> Option<(usize, Meaning)> {
    let mut best: Option<(usize, Meaning)> = None;
    for entry in entries() {
        let Some(len) = match_len(&entry.key, words, start) else {
            continue;
        };
        match &mut best {
            Some((best_len, meaning)) if *best_len == len => meaning.merge(&entry.meaning),
            Some((best_len, _)) if *best_len > len => {}
            _ => best = Some((len, entry.meaning.clone())),
        }
    }
    best
}

impl Meaning {
    fn merge(&mut self, other: &Meaning) {
        for a in &other.alternatives {
            if !self.alternatives.contains(a) {
                self.alternatives.push(a.clone());
            }
        }
        for k in &other.kinds {
            if !self.kinds.contains(k) {
                self.kinds.push(k);
            }
        }
    }
}

/// One way in: the words to recognize (stop words removed) and what they mean.
struct Entry {
    key: Vec<KeyWord>,
    meaning: Meaning,
}

/// A word of an entry, with its exact and stemmed forms.
struct KeyWord {
    exact: String,
    stem: String,
}

/// Words up to this long must be typed exactly: stems of sigles collide (« moa » and « moe »
/// both stem to « mo »). Longer words match on their stem (« bureaux » → « bureau »).
const EXACT_ONLY_MAX_CHARS: usize = 4;

impl KeyWord {
    fn matches(&self, w: &Word) -> bool {
        w.exact == self.exact
            || (self.exact.chars().count() > EXACT_ONLY_MAX_CHARS && w.stem == self.stem)
    }
}

fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(build_entries)
}

fn build_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for set in EQUIVALENTS {
        let all: Vec<Expression> = set.iter().map(|e| analyze(e)).collect();
        for (i, e) in all.iter().enumerate() {
            let alternatives = all
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, a)| a.clone())
                .collect();
            entries.push(Entry {
                key: key(e),
                meaning: Meaning {
                    alternatives,
                    kinds: Vec::new(),
                },
            });
        }
    }
    for (kind, words) in KIND_WORDS {
        for w in *words {
            entries.push(Entry {
                key: key(&analyze(w)),
                meaning: Meaning {
                    alternatives: Vec::new(),
                    kinds: vec![kind],
                },
            });
        }
    }
    entries.retain(|e| !e.key.is_empty());
    entries
}

fn analyze(text: &str) -> Expression {
    let words = analysis::words(text);
    Expression {
        exact: words.iter().map(|w| w.exact.clone()).collect(),
        stem: words.into_iter().map(|w| w.stem).collect(),
    }
}

fn key(e: &Expression) -> Vec<KeyWord> {
    e.exact
        .iter()
        .zip(&e.stem)
        .filter(|(exact, _)| !is_stop_word(exact))
        .map(|(exact, stem)| KeyWord {
            exact: exact.clone(),
            stem: stem.clone(),
        })
        .collect()
}

/// How many query words (stop words included) `key` covers from `start`, if it matches.
fn match_len(key: &[KeyWord], words: &[Word], start: usize) -> Option<usize> {
    let mut i = start;
    let mut k = 0;
    while k < key.len() {
        // Stop words between the words of an expression do not count: « bureau d'études »
        // and « bureau études » are the same expression.
        while k > 0
            && i < words.len()
            && is_stop_word(&words[i].exact)
            && !key[k].matches(&words[i])
        {
            i += 1;
        }
        if i >= words.len() || !key[k].matches(&words[i]) {
            return None;
        }
        i += 1;
        k += 1;
    }
    Some(i - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meaning(text: &str) -> Option<(usize, Meaning)> {
        lookup(&analysis::words(text), 0)
    }

    fn alternatives(text: &str) -> Vec<Vec<String>> {
        meaning(text)
            .map(|(_, m)| m.alternatives.into_iter().map(|a| a.exact).collect())
            .unwrap_or_default()
    }

    #[test]
    fn sigles_expand_both_ways() {
        assert!(alternatives("MOA").contains(&vec!["maitre".into(), "ouvrage".into()]));
        assert!(alternatives("maître d’ouvrage").contains(&vec!["moa".into()]));
        assert!(alternatives("moe").contains(&vec!["maitre".into(), "oeuvre".into()]));
        assert!(alternatives("BET").contains(&vec!["bureau".into(), "etudes".into()]));
        assert!(alternatives("ZAN").contains(&vec![
            "zero".into(),
            "artificialisation".into(),
            "nette".into()
        ]));
        assert_eq!(alternatives("st"), vec![vec!["saint".to_string()]]);
        // Short sigles are not conflated through their stems (moa, moe → « mo »).
        assert!(!alternatives("moa").contains(&vec!["maitre".into(), "oeuvre".into()]));
        assert_eq!(alternatives("ste"), vec![vec!["sainte".to_string()]]);
        assert_eq!(
            alternatives("rehab"),
            vec![vec!["rehabilitation".to_string()]]
        );
        assert!(alternatives("comcom").contains(&vec![
            "communaute".into(),
            "de".into(),
            "communes".into()
        ]));
    }

    #[test]
    fn longest_expression_wins_and_plurals_match() {
        let (len, _) = meaning("plan local d'urbanisme intercommunal de la vallée").unwrap();
        assert_eq!(len, 4);
        let (len, m) = meaning("bureaux d'études structure").unwrap();
        assert_eq!(len, 2);
        assert!(m.alternatives.iter().any(|a| a.exact == ["bet"]));
    }

    #[test]
    fn kind_words() {
        assert_eq!(meaning("animation").unwrap().1.kinds, ["action"]);
        assert_eq!(meaning("visites").unwrap().1.kinds, ["action"]);
        assert_eq!(meaning("sensibilisation").unwrap().1.kinds, ["action"]);
        assert!(meaning("grange").is_none());
    }
}
