//! Reading the values people type in spreadsheets: years (« mars 2019 »), amounts (« 1,2 M€ »,
//! « 350 000 € », « 350 k€ »), decimals with a comma, dates, offices, départements, and codes
//! of the vocabularies matched by their folded label or code, with suggestions for near misses.

use crate::fr;
use crate::ids::OfficeId;
use crate::resource::YEAR_RANGE;
use crate::vocab;

/// A value that could not be read, said in French, with the value to use instead when one is
/// close enough to suggest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub message: String,
    /// The corrected value (a code, a number), ready to be typed in the sheet.
    pub suggestion: Option<String>,
}

impl Issue {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            suggestion: None,
        }
    }
}

/// Folds a value for comparison: lowercase, no accents, ligatures spelled out, every run of
/// punctuation or spaces as one space (« Maître d’Œuvre » → « maitre d oeuvre »).
pub fn key(text: &str) -> String {
    let folded = fr::fold(text);
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_string()
}

/// How far a folded value may be from a label or code to be suggested: none under four
/// letters (one edit there lands on another word), one edit up to seven, two beyond.
fn near_distance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Most suggestions offered for one value: more would be a list, not a suggestion.
const MAX_SUGGESTIONS: usize = 3;

/// The code of `vocabulary` a cell means: the code itself, or its label, compared folded
/// (« Réhabilitation », « REHABILITATION », « réhabilitation » → `rehabilitation`). A value a
/// few typing mistakes away, or naming one part of a label (« logement » for « Habitat,
/// logement »), is refused with that code as suggestion; anything else lists the labels.
pub fn code(vocabulary: &str, raw: &str, label: &str) -> Result<String, Issue> {
    let k = key(raw);
    let codes = vocab::codes(vocabulary);
    for (code, lab) in codes {
        if k == key(code) || k == key(lab) || k == key(without_parentheses(lab)) {
            return Ok(code.clone());
        }
    }
    let mut near: Vec<(usize, &str, &str)> = Vec::new();
    for (code, lab) in codes {
        let mut forms = vec![key(code), key(lab), key(without_parentheses(lab))];
        forms.extend(lab.split([',', '(', ')']).map(key).filter(|p| p.len() >= 3));
        let parts = forms.len() - 3;
        let best = forms
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let d = fr::edit_distance(&k, f);
                // A label's part (after its whole forms) is a suggestion, never an equal.
                if i >= forms.len() - parts && d == 0 {
                    0
                } else {
                    d
                }
            })
            .min()
            .unwrap_or(usize::MAX);
        if best <= near_distance(k.chars().count()) {
            near.push((best, code, lab));
        }
    }
    near.sort_by_key(|n| n.0);
    if let Some((_, code, lab)) = near.first() {
        let others: Vec<String> = near[1..]
            .iter()
            .take(MAX_SUGGESTIONS - 1)
            .map(|(_, c, l)| format!("« {l} » ({c})"))
            .collect();
        let mut message = format!(
            "« {raw} » n'est pas une valeur de « {label} » ; voulez-vous dire « {lab} » ({code})"
        );
        if !others.is_empty() {
            message.push_str(&format!(" ou {}", others.join(", ")));
        }
        message.push_str(" ?");
        return Err(Issue {
            message,
            suggestion: Some(code.to_string()),
        });
    }
    let labels: Vec<&str> = codes.iter().map(|(_, l)| l.as_str()).collect();
    Err(Issue::new(format!(
        "« {raw} » n'est pas une valeur de « {label} » ; valeurs possibles : {}",
        labels.join(", ")
    )))
}

fn without_parentheses(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

/// The values of a multi-valued cell: split on « | », and on `;` or `,` when there is no « | »
/// (lists typed by hand); blanks dropped.
pub fn split_list(raw: &str) -> Vec<String> {
    let parts: Vec<&str> = if raw.contains('|') {
        raw.split('|').collect()
    } else {
        raw.split([';', ',', '\n']).collect()
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A year out of « 2019 », « mars 2019 », « 03/2019 », « 15/03/2019 », « 2019-03-15 » or
/// « 2019.0 » (a spreadsheet's number): the one four-digit number in [`YEAR_RANGE`].
pub fn year(raw: &str) -> Result<i64, Issue> {
    let s = raw.trim().trim_end_matches(".0").trim_end_matches(",0");
    let years: Vec<i64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 4)
        .filter_map(|run| run.parse().ok())
        .filter(|y| YEAR_RANGE.contains(y))
        .collect();
    match years.as_slice() {
        [y] => Ok(*y),
        [.., last] if years.iter().all(|y| y == last) => Ok(*last),
        [_, .., last] => Err(Issue {
            message: format!("« {raw} » contient plusieurs années ; n'en gardez qu'une"),
            suggestion: Some(last.to_string()),
        }),
        [] => Err(Issue::new(format!(
            "« {raw} » n'est pas une année (quatre chiffres entre {} et {}, par exemple 2019 ou « mars 2019 »)",
            YEAR_RANGE.start(),
            YEAR_RANGE.end()
        ))),
    }
}

/// A date `AAAA-MM-JJ` out of « 2019-03-15 », « 15/03/2019 », « 15-03-2019 » or « 15 mars 2019 »
/// (« 1er mars 2019 » too). A month alone (« mars 2019 ») is refused: the day is missing.
pub fn date(raw: &str) -> Result<String, Issue> {
    let s = key(raw).replace("1er", "1");
    let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    let month_of = |w: &str| {
        fr::MONTHS
            .iter()
            .position(|m| key(m) == w)
            .map(|i| i as u32 + 1)
    };
    let (y, m, d) = match words.as_slice() {
        [y, m, d] if y.len() == 4 => (y.parse().ok(), m.parse().ok(), d.parse().ok()),
        [d, m, y] if y.len() == 4 => (
            y.parse().ok(),
            m.parse().ok().or_else(|| month_of(m)),
            d.parse().ok(),
        ),
        [m, y] if y.len() == 4 && (month_of(m).is_some() || m.parse::<u32>().is_ok()) => {
            return Err(Issue::new(format!(
                "« {raw} » n'a pas de jour ; écrivez la date entière, par exemple 15/03/2019"
            )))
        }
        _ => (None, None, None),
    };
    let date = (|| {
        let y: i32 = y?;
        let m = time::Month::try_from(u8::try_from(m?).ok()?).ok()?;
        time::Date::from_calendar_date(y, m, d?).ok()
    })();
    match date {
        Some(date) => Ok(format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )),
        None => Err(Issue::new(format!(
            "« {raw} » n'est pas une date (par exemple 15/03/2019 ou 2019-03-15)"
        ))),
    }
}

/// A decimal number written the French way or the international way: « 45,11 », « 45.11 »,
/// « 1 200 000 », « 1.200.000 », « 1,200,000.50 ». With `dot_groups`, a lone dot followed by
/// three digits groups thousands (« 350.000 » is 350000, as amounts are typed in France).
pub fn decimal(raw: &str, dot_groups: bool) -> Option<f64> {
    let mut s: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\''))
        .collect();
    let commas = s.matches(',').count();
    let dots = s.matches('.').count();
    match (commas, dots) {
        (0, 0) => {}
        (_, 0) if commas > 1 => s = s.replace(',', ""),
        (1, 0) => s = s.replace(',', "."),
        (0, _) if dots > 1 => s = s.replace('.', ""),
        (0, 1) => {
            let (whole, fraction) = s.split_once('.').unwrap_or((&s, ""));
            let whole_digits = whole.trim_start_matches('-').len();
            if dot_groups && fraction.len() == 3 && (1..=3).contains(&whole_digits) {
                s = s.replace('.', "");
            }
        }
        _ => {
            // Both: the last one is the decimal mark, the other groups thousands.
            let (group, mark) = if s.rfind(',') > s.rfind('.') {
                (".", ",")
            } else {
                (",", ".")
            };
            s = s.replace(group, "").replace(mark, ".");
        }
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// An amount in `unit` (« € HT », « m² ») out of « 1,2 M€ », « 350 000 € », « 350 k€ »,
/// « 2 600 000 € HT », « env. 300 000 € » or « 210 m² »; a cost « TTC » is refused, the field
/// being without taxes.
pub fn amount(raw: &str, unit: &str, label: &str) -> Result<f64, Issue> {
    let mut s = fr::fold(raw);
    if unit.contains("HT") && key(&s).split(' ').any(|w| w == "ttc") {
        return Err(Issue::new(format!(
            "« {raw} » est toutes taxes comprises : « {label} » est hors taxes (HT) ; convertissez le montant"
        )));
    }
    for noise in [
        "environ", "env.", "env", "~", "≈", "euros", "euro", "eur", "€", "h.t.", "ht", "m²", "m2",
    ] {
        s = s.replace(noise, " ");
    }
    let s = s.trim();
    let multipliers: [(&str, f64); 8] = [
        ("milliards", 1e9),
        ("milliard", 1e9),
        ("millions", 1e6),
        ("million", 1e6),
        ("mds", 1e9),
        ("md", 1e9),
        ("m", 1e6),
        ("k", 1e3),
    ];
    let (number, factor) = multipliers
        .iter()
        .find_map(|(suffix, f)| {
            s.strip_suffix(suffix)
                .filter(|rest| rest.trim_end().ends_with(|c: char| c.is_ascii_digit()))
                .map(|rest| (rest.trim(), *f))
        })
        .unwrap_or((s, 1.0));
    match decimal(number, factor == 1.0) {
        Some(x) if x >= 0.0 => Ok((x * factor * 100.0).round() / 100.0),
        Some(_) => Err(Issue::new(format!("« {raw} » : le montant doit être positif"))),
        None => Err(Issue::new(format!(
            "« {raw} » n'est pas un montant lisible (par exemple 350000, « 350 000 € », « 350 k€ » ou « 1,2 M€ »)"
        ))),
    }
}

/// An office out of « caue-63 », « CAUE 63 », « CAUE du Puy-de-Dôme ».
pub fn office(raw: &str) -> Result<String, Issue> {
    if let Ok(id) = raw.trim().parse::<OfficeId>() {
        return Ok(id.to_string());
    }
    match departement(raw) {
        Ok(code) => format!("caue-{code}")
            .parse::<OfficeId>()
            .map(|id| id.to_string())
            .map_err(|e| Issue::new(e.to_string())),
        Err(_) => Err(Issue::new(format!(
            "« {raw} » n'est pas un office (par exemple caue-63 ou « CAUE 63 »)"
        ))),
    }
}

/// A département code out of « 63 », « 063 », « 2a », « Puy-de-Dôme », « 63 - Puy-de-Dôme »
/// or « CAUE du Cantal ».
pub fn departement(raw: &str) -> Result<String, Issue> {
    let k = key(raw);
    for word in k.split(' ') {
        let code = word.to_ascii_uppercase();
        let code = match code.len() {
            3 if code.starts_with('0') => code[1..].to_string(),
            1 => format!("0{code}"),
            _ => code,
        };
        if vocab::departement(&code).is_some() {
            return Ok(code);
        }
    }
    // The longest name found in the value: « Haute-Loire » before « Loire ».
    let found = vocab::departements()
        .iter()
        .filter(|d| {
            let name = key(&d.name);
            k == name || format!(" {k} ").contains(&format!(" {name} "))
        })
        .max_by_key(|d| d.name.len());
    if let Some(d) = found {
        return Ok(d.code.clone());
    }
    let near = vocab::departements()
        .iter()
        .map(|d| (fr::edit_distance(&k, &key(&d.name)), d))
        .filter(|(dist, _)| *dist <= near_distance(k.chars().count()))
        .min_by_key(|(dist, _)| *dist);
    Err(match near {
        Some((_, d)) => Issue {
            message: format!(
                "« {raw} » n'est pas un département ; voulez-vous dire « {} » ({}) ?",
                d.name, d.code
            ),
            suggestion: Some(d.code.clone()),
        },
        None => Issue::new(format!(
            "« {raw} » n'est pas un département (un code comme 07, 63, 2A, 974, ou un nom)"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_folded_label_or_code() {
        let label = "Nature des travaux";
        for typed in [
            "Réhabilitation",
            "REHABILITATION",
            "rehabilitation",
            " réhabilitation ",
        ] {
            assert_eq!(
                code(vocab::INTERVENTIONS, typed, label).unwrap(),
                "rehabilitation"
            );
        }
        assert_eq!(
            code(vocab::KINDS, "Réalisation", "Type").unwrap(),
            "realisation"
        );
        assert_eq!(
            code(vocab::INTERVENTIONS, "Construction neuve", label).unwrap(),
            "construction_neuve"
        );
        assert_eq!(
            code(vocab::INTERVENTIONS, "construction_neuve", label).unwrap(),
            "construction_neuve"
        );
        let near = code(vocab::INTERVENTIONS, "Réhabilitaton", label).unwrap_err();
        assert_eq!(near.suggestion.as_deref(), Some("rehabilitation"));
        assert!(
            near.message
                .contains("voulez-vous dire « Réhabilitation » (rehabilitation)"),
            "{}",
            near.message
        );
        let part = code(vocab::THEMES, "Logement", "Thèmes").unwrap_err();
        assert_eq!(part.suggestion.as_deref(), Some("habitat"));
        let none = code(vocab::INTERVENTIONS, "Démolition", label).unwrap_err();
        assert_eq!(none.suggestion, None);
        assert!(
            none.message
                .contains("valeurs possibles : Construction neuve"),
            "{}",
            none.message
        );
    }

    #[test]
    fn years_are_found_in_dates_and_months() {
        for typed in [
            "2019",
            "mars 2019",
            "03/2019",
            "15/03/2019",
            "2019-03-15",
            "2019.0",
            " 2019 ",
        ] {
            assert_eq!(year(typed), Ok(2019), "{typed}");
        }
        assert_eq!(
            year("2018-2019").unwrap_err().suggestion.as_deref(),
            Some("2019")
        );
        assert!(year("19").is_err());
        assert!(year("en cours").is_err());
    }

    #[test]
    fn dates_in_french_become_iso() {
        for typed in ["2024-06-06", "06/06/2024", "6 juin 2024", "6-06-2024"] {
            assert_eq!(date(typed).unwrap(), "2024-06-06", "{typed}");
        }
        assert_eq!(date("1er mars 2019").unwrap(), "2019-03-01");
        assert!(date("mars 2019")
            .unwrap_err()
            .message
            .contains("pas de jour"));
        assert!(date("31/02/2019").is_err());
    }

    #[test]
    fn amounts_read_as_people_type_them() {
        let cost = |s: &str| amount(s, "€ HT", "Coût des travaux");
        assert_eq!(cost("1,2 M€"), Ok(1_200_000.0));
        assert_eq!(cost("350 000 €"), Ok(350_000.0));
        assert_eq!(cost("350\u{a0}000 € HT"), Ok(350_000.0));
        assert_eq!(cost("350 k€"), Ok(350_000.0));
        assert_eq!(cost("350K€"), Ok(350_000.0));
        assert_eq!(cost("2 600 000"), Ok(2_600_000.0));
        assert_eq!(cost("1.200.000 €"), Ok(1_200_000.0));
        assert_eq!(cost("350.000"), Ok(350_000.0));
        assert_eq!(cost("412345.5"), Ok(412_345.5));
        assert_eq!(cost("412345,5"), Ok(412_345.5));
        assert_eq!(cost("env. 300 000 €"), Ok(300_000.0));
        assert_eq!(cost("1,5 million"), Ok(1_500_000.0));
        assert!(cost("500 000 € TTC")
            .unwrap_err()
            .message
            .contains("hors taxes"));
        assert!(cost("beaucoup").is_err());
        assert_eq!(amount("210 m²", "m²", "Surface"), Ok(210.0));
        assert_eq!(decimal("45,11", false), Some(45.11));
        assert_eq!(decimal("2.866", false), Some(2.866));
        assert_eq!(decimal("-0,5", false), Some(-0.5));
    }

    #[test]
    fn offices_and_departements_by_code_or_name() {
        assert_eq!(office("caue-63").unwrap(), "caue-63");
        assert_eq!(office("CAUE 63").unwrap(), "caue-63");
        assert_eq!(office("CAUE du Puy-de-Dôme").unwrap(), "caue-63");
        assert!(office("mairie").is_err());
        assert_eq!(departement("63").unwrap(), "63");
        assert_eq!(departement("7").unwrap(), "07");
        assert_eq!(departement("2a").unwrap(), "2A");
        assert_eq!(departement("Haute-Loire").unwrap(), "43");
        assert_eq!(departement("Loire").unwrap(), "42");
        assert_eq!(departement("15 - Cantal").unwrap(), "15");
        assert_eq!(
            departement("Cantall").unwrap_err().suggestion.as_deref(),
            Some("15")
        );
    }

    #[test]
    fn lists_split_on_bars_or_separators() {
        assert_eq!(
            split_list("patrimoine | habitat"),
            ["patrimoine", "habitat"]
        );
        assert_eq!(split_list("bois, terre crue"), ["bois", "terre crue"]);
        assert_eq!(split_list(" "), Vec::<String>::new());
    }
}
