//! French display: numbers, sizes, dates, plurals, accent folding, office and département names.
//!
//! Every French string the CLI and the web app build from a value goes through here, so that
//! « 2 600 000 € HT » or « CAUE du Puy-de-Dôme » is written one way everywhere.

use crate::ids::OfficeId;
use crate::vocab;

/// The digit group separator: French typography puts a narrow no-break space between groups of
/// three digits (« 10 000 »), which also keeps a number on one line.
pub const DIGIT_GROUP_SEPARATOR: char = '\u{202f}';

/// `10000` → « 10 000 », with the narrow no-break space.
pub fn integer(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(DIGIT_GROUP_SEPARATOR);
        }
        out.push(c);
    }
    out
}

/// `2600000.0` → « 2 600 000 », `12.5` → « 12,5 »: digit groups, and at most two decimals after a
/// comma, as amounts and surfaces are written in French. Whole numbers show no decimals.
pub fn number(x: f64) -> String {
    // Rounding to hundredths first means 2.999 reads « 3 », not « 2,1. » nor « 2, ».
    let cents = (x.abs() * 100.0).round();
    let whole = (cents / 100.0).trunc() as u64;
    let fraction = (cents % 100.0) as u64;
    let mut out = String::new();
    if x < 0.0 && cents > 0.0 {
        out.push('-');
    }
    out.push_str(&integer(whole));
    if fraction > 0 {
        let decimals = format!("{fraction:02}");
        out.push(',');
        out.push_str(decimals.trim_end_matches('0'));
    }
    out
}

/// A size in bytes with a decimal unit: « 512 o », « 3,1 Mo ».
pub fn size(bytes: u64) -> String {
    let (value, unit) = match bytes {
        n if n >= 1_000_000_000 => (n as f64 / 1e9, "Go"),
        n if n >= 1_000_000 => (n as f64 / 1e6, "Mo"),
        n if n >= 1_000 => (n as f64 / 1e3, "ko"),
        n => return format!("{n} o"),
    };
    format!("{value:.1} {unit}").replace('.', ",")
}

/// A duration in milliseconds: « 340 ms », « 1,4 s ».
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0).replace('.', ",")
    }
}

/// French month names, January first.
pub const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// « mars 2027 » for `2027-03`; the text itself if it is not a month.
pub fn month(ym: &str) -> String {
    match ym.split_once('-') {
        Some((y, m)) => match m.parse::<usize>() {
            Ok(m @ 1..=12) => format!("{} {y}", MONTHS[m - 1]),
            _ => ym.to_string(),
        },
        None => ym.to_string(),
    }
}

/// The plural mark of a regular French noun: none for 0 and 1 (« 0 document », « 1 document »),
/// « s » from 2 on.
pub fn plural_s(n: u64) -> &'static str {
    if n > 1 {
        "s"
    } else {
        ""
    }
}

/// A count and its regular noun: « 1 ressource », « 10 000 documents ».
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", integer(n), plural_s(n))
}

/// « 01/05/2024 » from FORMAT.md's « 2024-05-01 »; anything else is shown as it is.
pub fn date(iso: &str) -> String {
    match iso.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

/// The dates of an action: « le 01/05/2024 » (one day: no end, or the same end), « du … au … »,
/// « jusqu'au … »; empty when neither is known.
pub fn date_range(start: Option<&str>, end: Option<&str>) -> String {
    match (start, end) {
        (Some(s), Some(e)) if s != e => format!("du {} au {}", date(s), date(e)),
        (Some(s), _) => format!("le {}", date(s)),
        (None, Some(e)) => format!("jusqu'au {}", date(e)),
        (None, None) => String::new(),
    }
}

/// Seconds since the epoch as « JJ/MM/AAAA HH:MM » at the given offset (the caller knows the
/// local offset: the core reads no clock and no time zone).
pub fn date_time(secs: i64, offset: time::UtcOffset) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// « Puy-de-Dôme (63) »; the code itself if no département has it.
pub fn departement_name(code: &str) -> String {
    vocab::departement(code)
        .map(|d| format!("{} ({})", d.name, d.code))
        .unwrap_or_else(|| code.to_string())
}

/// « CAUE du Puy-de-Dôme » for `caue-63`.
pub fn office_name(office: &OfficeId) -> String {
    match vocab::departement(office.departement()) {
        Some(d) => format!("CAUE {}", with_article(&d.name)),
        None => office.to_string(),
    }
}

/// Lowercases and folds a whole string (accents, ligatures) without tokenizing it: « Maître
/// d’Œuvre » → « maitre d’oeuvre ». Search indexes words folded this way, and sort keys start
/// from it.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_folded(c, &mut out);
    }
    out
}

/// A sort key that ignores case, accents, ligatures and quotation marks, so that titles sort
/// as a French reader expects: « Balade », École, Œuvre, ossature, Zinc.
pub fn sort_key(text: &str) -> String {
    let mut key = fold(text);
    key.retain(|c| !matches!(c, '«' | '»' | '"' | '\'' | '’'));
    key.trim().to_string()
}

/// Edit distance with adjacent transpositions counted as one edit (optimal string alignment),
/// the measure of the search's typo automaton and of the near misses a spreadsheet import
/// suggests (« Rehabilitaton » → « Réhabilitation »).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// Combining diacritical marks: decomposed input (`e` + U+0301) folds like precomposed `é`.
pub(crate) fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Appends the lowercased, accent-free form of `c` to `out`.
pub(crate) fn push_folded(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    if is_combining_mark(c) {
        return;
    }
    for l in c.to_lowercase() {
        let folded: &str = match l {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
            'ď' | 'đ' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
            'ñ' | 'ń' | 'ņ' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
            'ś' | 'ŝ' | 'ş' | 'š' => "s",
            'ţ' | 'ť' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'ł' => "l",
            'œ' => "oe",
            'æ' => "ae",
            'ß' => "ss",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ª' => "a",
            'º' => "o",
            other => {
                out.push(other);
                continue;
            }
        };
        out.push_str(folded);
    }
}

/// French contracted article before a département name: « du Cantal », « de l'Ain », « de la
/// Loire », « des Vosges ». The rule follows the name's first word, which covers the 101 names.
fn with_article(name: &str) -> String {
    const FEMININE: &[&str] = &[
        "Loire",
        "Haute-Loire",
        "Lozère",
        "Corrèze",
        "Creuse",
        "Haute-Vienne",
        "Vienne",
        "Charente",
        "Charente-Maritime",
        "Dordogne",
        "Gironde",
        "Haute-Garonne",
        "Haute-Marne",
        "Marne",
        "Haute-Saône",
        "Saône-et-Loire",
        "Haute-Savoie",
        "Savoie",
        "Somme",
        "Meuse",
        "Moselle",
        "Manche",
        "Mayenne",
        "Sarthe",
        "Nièvre",
        "Drôme",
        "Haute-Corse",
        "Corse-du-Sud",
        "Guadeloupe",
        "Martinique",
        "Guyane",
        "Réunion",
        "Seine-Maritime",
        "Seine-Saint-Denis",
        "Seine-et-Marne",
        "Vendée",
        "Côte-d'Or",
        "Meurthe-et-Moselle",
        "Loire-Atlantique",
        "Orne",
        "Aube",
        "Ardèche",
        "Aude",
        "Eure",
        "Eure-et-Loir",
        "Essonne",
        "Indre",
        "Indre-et-Loire",
        "Isère",
        "Oise",
        "Allier",
    ];
    const PLURAL_PREFIXES: &[&str] = &[
        "Alpes",
        "Ardennes",
        "Bouches",
        "Côtes",
        "Deux",
        "Hautes",
        "Hauts",
        "Landes",
        "Pyrénées",
        "Vosges",
        "Yvelines",
    ];
    let first = name.split(['-', ' ']).next().unwrap_or(name);
    // « Haut » has an aspirated h: du Haut-Rhin, de la Haute-Loire.
    let vowel = name.starts_with(['A', 'E', 'I', 'O', 'U', 'Y', 'É', 'Î', 'H'])
        && !name.starts_with("Haut");
    if name.starts_with("La ") || name.starts_with("Le ") {
        format!("de {name}")
    } else if PLURAL_PREFIXES.contains(&first) {
        format!("des {name}")
    } else if vowel {
        format!("de l'{name}")
    } else if name == "Mayotte" || name == "Paris" {
        format!("de {name}")
    } else if FEMININE.contains(&name) {
        format!("de la {name}")
    } else {
        format!("du {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_digits_with_a_narrow_no_break_space() {
        assert_eq!(integer(10_000), "10\u{202f}000");
        assert_eq!(integer(999), "999");
        assert_eq!(integer(0), "0");
        assert_eq!(integer(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(number(2_600_000.0), "2\u{202f}600\u{202f}000");
        assert_eq!(number(940.0), "940");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(12.5), "12,5");
        assert_eq!(number(450.5), "450,5");
        assert_eq!(number(450.25), "450,25");
        assert_eq!(number(-1500.5), "-1\u{202f}500,5");
        // Fractions that round to a whole number show none.
        assert_eq!(number(2.999), "3");
        assert_eq!(number(12.001), "12");
    }

    #[test]
    fn sizes_use_decimal_units_and_a_comma() {
        assert_eq!(size(3_140_000), "3,1 Mo");
        assert_eq!(size(512), "512 o");
        assert_eq!(size(2_000), "2,0 ko");
        assert_eq!(size(7_500_000_000), "7,5 Go");
    }

    #[test]
    fn durations_switch_to_seconds_at_one() {
        assert_eq!(duration_ms(340), "340 ms");
        assert_eq!(duration_ms(1_420), "1,4 s");
    }

    #[test]
    fn plurals_start_at_two() {
        assert_eq!(count(0, "ressource"), "0 ressource");
        assert_eq!(count(1, "ressource"), "1 ressource");
        assert_eq!(count(2, "ressource"), "2 ressources");
        assert_eq!(count(10_000, "document"), "10\u{202f}000 documents");
        assert_eq!(plural_s(3), "s");
    }

    #[test]
    fn dates_read_day_first() {
        assert_eq!(date("2024-05-01"), "01/05/2024");
        assert_eq!(date("bientôt"), "bientôt");
        assert_eq!(
            date_range(Some("2024-05-01"), Some("2024-05-03")),
            "du 01/05/2024 au 03/05/2024"
        );
        assert_eq!(
            date_range(Some("2024-05-01"), Some("2024-05-01")),
            "le 01/05/2024"
        );
        assert_eq!(date_range(Some("2024-05-01"), None), "le 01/05/2024");
        assert_eq!(date_range(None, Some("2024-05-03")), "jusqu'au 03/05/2024");
        assert_eq!(date_range(None, None), "");
        assert_eq!(date_time(0, time::UtcOffset::UTC), "01/01/1970 00:00");
        let paris = time::UtcOffset::from_hms(2, 0, 0).unwrap();
        assert_eq!(date_time(3600, paris), "01/01/1970 03:00");
    }

    #[test]
    fn folding_drops_case_accents_and_ligatures() {
        assert_eq!(fold("Maître d’Œuvre"), "maitre d’oeuvre");
        assert_eq!(fold("ÉGLISE Mâcon Lozère"), "eglise macon lozere");
        assert_eq!(fold("pise\u{0301}"), "pise");
        assert_eq!(fold("Ærø Łódź"), "aero lodz");
    }

    #[test]
    fn french_titles_sort_by_their_letters() {
        let mut titles = ["Zinc", "Œuvre", "École", "« Balade »", "ossature"];
        titles.sort_by_key(|t| sort_key(t));
        assert_eq!(titles, ["« Balade »", "École", "Œuvre", "ossature", "Zinc"]);
        // Letters the CLI's own folding used to miss sort by their base letter too.
        let mut titles = ["Zinc", "Œuvre", "École", "« Balade »", "ossature", "Ærø"];
        titles.sort_by_key(|t| sort_key(t));
        assert_eq!(
            titles,
            ["Ærø", "« Balade »", "École", "Œuvre", "ossature", "Zinc"]
        );
    }

    #[test]
    fn office_and_departement_names_read_naturally() {
        let name = |id: &str| office_name(&id.parse().unwrap());
        assert_eq!(name("caue-63"), "CAUE du Puy-de-Dôme");
        assert_eq!(name("caue-15"), "CAUE du Cantal");
        assert_eq!(name("caue-01"), "CAUE de l'Ain");
        assert_eq!(name("caue-43"), "CAUE de la Haute-Loire");
        assert_eq!(name("caue-88"), "CAUE des Vosges");
        assert_eq!(name("caue-12"), "CAUE de l'Aveyron");
        assert_eq!(name("caue-68"), "CAUE du Haut-Rhin");
        assert_eq!(name("caue-34"), "CAUE de l'Hérault");
        assert_eq!(name("caue-974"), "CAUE de La Réunion");
        assert_eq!(name("caue-976"), "CAUE de Mayotte");
        assert_eq!(name("caue-75"), "CAUE de Paris");
        assert_eq!(departement_name("63"), "Puy-de-Dôme (63)");
        assert_eq!(departement_name("00"), "00");
    }
}
