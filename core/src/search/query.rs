//! From the text a user types to a tantivy query: parsing (phrases, département numbers,
//! glossary), then expansion against the index (plurals, completions, typos) and weights.
//!
//! Every query word must be found (AND), in any text group, in one of its forms, which score
//! in this order: the exact folded word; its other number (`batiments` → `batiment`); a
//! glossary equivalent; a completion of the last word while it is typed; a typo correction
//! (one edit from 5 letters, two from 9); its Snowball stem alone (derived words). A word
//! found in the resource's own text, not only in a label, earns a large bonus, so resources
//! with every word in their text come first; within them BM25 and the text group weights
//! rank. Runs of query words found next to each other score extra.

use std::collections::{HashMap, HashSet};

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

use super::analysis::{self, is_stop_word, Word};
use super::bonus::BonusQuery;
use super::fields::{Facet, Fields, TextGroup};
use super::synonyms::{self, Expression, Meaning};
use super::SearchError;

/// Weight of a match on the exact folded word.
const EXACT_WEIGHT: f32 = 1.0;
/// Weight of a match on the other number of the word (singular for plural and back).
const PLURAL_WEIGHT: f32 = 0.8;
/// Weight of a match on the Snowball stem only (feminine, verb form, derived word): looser
/// than a plural (« restaurer » also finds « restauration »), so it weighs less.
const STEM_WEIGHT: f32 = 0.2;
/// Weight of a match through the glossary.
const SYNONYM_WEIGHT: f32 = 0.8;
/// Weight of a completion of the last word.
const PREFIX_WEIGHT: f32 = 0.6;
/// Weight of a typo-corrected word at one edit (halved at two).
const FUZZY_WEIGHT: f32 = 0.3;
/// Extra weight of a run of query words found as a phrase in a text group.
const PROXIMITY_WEIGHT: f32 = 1.5;
/// Score added for each required word found in the resource's own text rather than only in
/// a vocabulary label or a département name (corpus README: such partial matches rank lower).
/// Larger than most differences of BM25 between two resources that both contain the word.
const FOUND_IN_TEXT_BONUS: f32 = 10.0;
/// Score given by a kind named in the query (« animation » → actions) to resources of that kind.
const KIND_HINT_SCORE: f32 = 0.5;

/// Typo tolerance: one edit from this many letters…
const FUZZY_ONE_EDIT_FROM: usize = 5;
/// …two edits from this many.
const FUZZY_TWO_EDITS_FROM: usize = 9;
/// A known word is also corrected to a neighbour at least this many times more frequent:
/// the word may itself be the typo of a common one, but a rare neighbour is just noise.
const FUZZY_DOMINANCE: u64 = 10;
/// Most typo corrections kept per word (the most frequent first): bounds the query size.
const MAX_FUZZY_TERMS: usize = 8;
/// Most completions kept for the last word (the most frequent first).
const MAX_PREFIX_TERMS: usize = 24;
/// Shortest prefix completed: one letter would expand to a large part of the dictionary.
const MIN_PREFIX_CHARS: usize = 2;
/// Longest text read, in characters: a search box, not a document. The rest is ignored.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most words read: each word expands to dozens of term lookups.
pub const MAX_QUERY_WORDS: usize = 32;

/// The query as typed, cut into clauses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub clauses: Vec<Clause>,
    /// Runs of consecutive plain words, for the proximity boost.
    pub runs: Vec<Vec<QueryWord>>,
}

/// One unit of the query; all non-optional clauses must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// A word, or words that the glossary reads as one expression.
    Words {
        words: Vec<QueryWord>,
        meaning: Meaning,
    },
    /// A quoted phrase: its exact words, in order.
    Phrase(Vec<Word>),
    /// A bare département number (« 63 »): where the resource is, not a word of its text.
    Departement(String),
}

/// A typed word and how to look it up.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryWord {
    pub word: Word,
    /// The last word, still being typed: completions count.
    pub prefix: bool,
    /// A stop word: scored if present, not required.
    pub optional: bool,
}

impl Clause {
    fn optional(&self) -> bool {
        match self {
            Clause::Words { words, .. } => words.iter().all(|w| w.optional),
            Clause::Phrase(_) | Clause::Departement(_) => false,
        }
    }
}

/// Cuts the typed text into clauses. Pure: no index needed.
pub fn parse(text: &str) -> Parsed {
    let text = match text.char_indices().nth(MAX_QUERY_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    let mut parsed = Parsed::default();
    let segments = split_quotes(text);
    let typing_last_word = text.chars().last().is_some_and(char::is_alphanumeric);
    let n = segments.len();
    for (i, (segment, quoted)) in segments.into_iter().enumerate() {
        let words = analysis::words(segment);
        if quoted {
            if !words.is_empty() {
                parsed.clauses.push(Clause::Phrase(words));
            }
            continue;
        }
        let last_segment = i + 1 == n;
        parse_plain(
            segment,
            words,
            last_segment && typing_last_word,
            &mut parsed,
        );
    }
    drop_sentence_words(&mut parsed, text.trim_end().ends_with('?'));
    parsed.clauses.truncate(MAX_QUERY_WORDS);
    for run in &mut parsed.runs {
        run.truncate(MAX_QUERY_WORDS);
    }
    // A query of stop words only (« la », « de la ») still has to find something.
    if !parsed.clauses.is_empty() && parsed.clauses.iter().all(Clause::optional) {
        for clause in &mut parsed.clauses {
            if let Clause::Words { words, .. } = clause {
                words.iter_mut().for_each(|w| w.optional = false);
            }
        }
    }
    parsed
}

/// A query typed as a sentence (« comment rénover une maison en pierre ? ») ranks by its content
/// words: when it has any, question and filler words (`analysis::is_filler_word`) are dropped,
/// and so are its stop words (otherwise optional but scoring), so that it finds and orders what
/// « rénover maison pierre » does. Runs for the proximity boost are cut at the dropped words.
fn drop_sentence_words(parsed: &mut Parsed, question_mark: bool) {
    let is_filler = |c: &Clause| match c {
        Clause::Words { words, meaning } => {
            *meaning == Meaning::default()
                && words
                    .iter()
                    .all(|w| analysis::is_filler_word(&w.word.exact))
        }
        Clause::Phrase(_) | Clause::Departement(_) => false,
    };
    let has_content = parsed
        .clauses
        .iter()
        .any(|c| !is_filler(c) && !c.optional());
    if !has_content {
        return;
    }
    let before = parsed.clauses.len();
    parsed.clauses.retain(|c| !is_filler(c));
    let sentence = question_mark || parsed.clauses.len() < before;
    if !sentence {
        return;
    }
    parsed.clauses.retain(|c| !c.optional());
    let runs = std::mem::take(&mut parsed.runs);
    for run in runs {
        for part in run.split(|w| analysis::is_filler_word(&w.word.exact)) {
            let trimmed = trim_stop_words(part);
            if trimmed.len() > 1 {
                parsed.runs.push(trimmed.to_vec());
            }
        }
    }
}

/// A run without its leading and trailing stop words.
fn trim_stop_words(run: &[QueryWord]) -> &[QueryWord] {
    let start = run.iter().position(|w| !w.optional).unwrap_or(run.len());
    let end = run
        .iter()
        .rposition(|w| !w.optional)
        .map_or(start, |i| i + 1);
    &run[start..end]
}

fn parse_plain(segment: &str, words: Vec<Word>, typing_last: bool, parsed: &mut Parsed) {
    let mut run: Vec<QueryWord> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if let Some(code) = departement_code(&segment[w.from..w.to]) {
            parsed.clauses.push(Clause::Departement(code));
            if run.len() > 1 {
                parsed.runs.push(std::mem::take(&mut run));
            }
            run.clear();
            i += 1;
            continue;
        }
        let (len, meaning) = synonyms::lookup(&words, i).unwrap_or((1, Meaning::default()));
        let is_last = i + len == words.len();
        let group: Vec<QueryWord> = words[i..i + len]
            .iter()
            .map(|w| QueryWord {
                word: w.clone(),
                prefix: false,
                optional: is_stop_word(&w.exact),
            })
            .collect();
        let mut group = group;
        if is_last && typing_last && meaning == Meaning::default() {
            if let Some(last) = group.last_mut() {
                last.prefix = !last.optional && last.word.exact.chars().count() >= MIN_PREFIX_CHARS;
            }
        }
        run.extend(group.iter().cloned());
        parsed.clauses.push(Clause::Words {
            words: group,
            meaning,
        });
        i += len;
    }
    if run.len() > 1 {
        parsed.runs.push(run);
    }
}

/// Splits on double quotes (straight, curly or French guillemets); returns (text, quoted).
/// An unclosed quote is read as plain text: the user is still typing the phrase.
fn split_quotes(text: &str) -> Vec<(&str, bool)> {
    let is_quote = |c: char| matches!(c, '"' | '“' | '”' | '«' | '»' | '„');
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let Some(open) = rest.find(is_quote) else {
            out.push((rest, false));
            break;
        };
        let after_open = open + rest[open..].chars().next().map_or(1, char::len_utf8);
        let Some(close_rel) = rest[after_open..].find(is_quote) else {
            out.push((&rest[..open], false));
            out.push((&rest[after_open..], false));
            break;
        };
        let close = after_open + close_rel;
        out.push((&rest[..open], false));
        out.push((&rest[after_open..close], true));
        rest = &rest[close + rest[close..].chars().next().map_or(1, char::len_utf8)..];
    }
    out.retain(|(s, quoted)| *quoted || !s.trim().is_empty());
    out
}

/// The département code of a bare number typed in the query (« 63 », « 07 », « 2A », « 974 »).
/// A single digit is the same number without its leading zero (« 7 » is « 07 », Ardèche): the
/// codes are written with two digits, people often write them with one.
fn departement_code(typed: &str) -> Option<String> {
    let code = match typed.as_bytes() {
        [d @ b'1'..=b'9'] => format!("0{}", char::from(*d)),
        b if (2..=3).contains(&b.len()) => typed.to_ascii_uppercase(),
        _ => return None,
    };
    crate::vocab::departement(&code).map(|d| d.code.clone())
}

/// The tantivy query for a parsed text, and what to highlight in the hits.
pub struct Built {
    /// Every clause required (AND).
    pub strict: Box<dyn Query>,
    /// Any clause suffices (OR); present when `strict` has more than one required clause.
    pub relaxed: Option<Box<dyn Query>>,
    pub highlight: Highlight,
}

/// Terms whose occurrences are marked in snippets.
#[derive(Debug, Clone, Default)]
pub struct Highlight {
    pub exact: HashSet<String>,
    pub stem: HashSet<String>,
}

/// Builds the text part of the query (filters are added by the caller). `None` for a query
/// with no words: it matches every document.
pub fn build(
    parsed: &Parsed,
    fields: &Fields,
    searcher: &Searcher,
) -> Result<Option<Built>, SearchError> {
    if parsed.clauses.is_empty() {
        return Ok(None);
    }
    let builder = Builder { fields, searcher };
    let mut highlight = Highlight::default();
    let mut required = Vec::new();
    let mut optional = Vec::new();
    for clause in &parsed.clauses {
        let q = builder.clause(clause, &mut highlight)?;
        if clause.optional() {
            optional.push(q);
        } else {
            required.push(q);
        }
    }
    for run in &parsed.runs {
        optional.extend(builder.proximity(run)?);
    }
    let relaxed = (required.len() > 1).then(|| {
        let any: Vec<(Occur, Box<dyn Query>)> = required
            .iter()
            .chain(&optional)
            .map(|q| (Occur::Should, q.box_clone()))
            .collect();
        Box::new(BooleanQuery::new(any)) as Box<dyn Query>
    });
    let strict = required
        .into_iter()
        .map(|q| (Occur::Must, q))
        .chain(optional.into_iter().map(|q| (Occur::Should, q)))
        .collect();
    Ok(Some(Built {
        strict: Box::new(BooleanQuery::new(strict)),
        relaxed,
        highlight,
    }))
}

struct Builder<'a> {
    fields: &'a Fields,
    searcher: &'a Searcher,
}

/// One form of a query word to look up: its text, in the exact or stemmed fields, and its weight.
struct Form {
    text: String,
    stem: bool,
    weight: f32,
}

impl Form {
    /// Whether a match on this form means the word is in the text (for
    /// [`FOUND_IN_TEXT_BONUS`]). A Snowball stem alone does not: it also joins derived words
    /// (« végétal » and « végétaliser »), which rank below the word itself and its plural.
    fn is_the_word(&self) -> bool {
        !self.stem
    }
}

/// Which forms of a word, in which text groups: everything, or the two disjoint parts of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    All,
    /// The word itself (exact, plural, completion, correction, glossary) in the own text.
    OwnText,
    /// The rest: stems anywhere, the word itself in labels, kinds.
    Rest,
}

/// `own_text` scored with the bonus of `words` words found, or else `rest`, scores summed.
fn with_bonus(own_text: Box<dyn Query>, rest: Box<dyn Query>, words: usize) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (
            Occur::Should,
            Box::new(BonusQuery {
                inner: own_text,
                bonus: FOUND_IN_TEXT_BONUS * words as f32,
            }),
        ),
        (Occur::Should, rest),
    ]))
}

impl Builder<'_> {
    /// The query of one clause. A required clause found in the resource's own text (not only in
    /// a vocabulary label or a département name, nor only through a stem) earns
    /// [`FOUND_IN_TEXT_BONUS`]: resources that contain every word rank above those that match
    /// a word only through a label.
    fn clause(&self, clause: &Clause, hl: &mut Highlight) -> Result<Box<dyn Query>, SearchError> {
        match clause {
            Clause::Departement(code) => {
                let term = Term::from_field_text(self.fields.facet(Facet::Departement), code);
                Ok(Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    0.0,
                )))
            }
            Clause::Phrase(words) => {
                for w in words.iter().filter(|w| !is_stop_word(&w.exact)) {
                    hl.exact.insert(w.exact.clone());
                }
                let exact: Vec<String> = words.iter().map(|w| w.exact.clone()).collect();
                Ok(with_bonus(
                    self.expression(&exact, false, 1.0, TextGroup::OWN_TEXT),
                    self.expression(&exact, false, 1.0, &[TextGroup::Labels]),
                    1,
                ))
            }
            Clause::Words { words, meaning } => {
                let forms = words
                    .iter()
                    .map(|w| Ok((w.optional, self.forms(w, hl)?)))
                    .collect::<Result<Vec<_>, SearchError>>()?;
                for alt in &meaning.alternatives {
                    for (exact, stem) in alt.exact.iter().zip(&alt.stem) {
                        if !is_stop_word(exact) {
                            hl.exact.insert(exact.clone());
                            hl.stem.insert(stem.clone());
                        }
                    }
                }
                let required = words.iter().filter(|w| !w.optional).count();
                if required == 0 {
                    return Ok(self.words(&forms, meaning, Part::All));
                }
                // One word: its forms split in two disjoint sets of term queries, each looked
                // up once. Several words (a glossary expression typed in full): a word may be
                // in the text and another only in a label, so the whole is looked up again
                // within the own text for the bonus.
                let rest = if words.len() == 1 {
                    self.words(&forms, meaning, Part::Rest)
                } else {
                    self.words(&forms, meaning, Part::All)
                };
                let own_text = self.words(&forms, meaning, Part::OwnText);
                if words.len() == 1 {
                    Ok(with_bonus(own_text, rest, required))
                } else {
                    Ok(Box::new(BooleanQuery::new(vec![
                        (Occur::Should, rest),
                        (
                            Occur::Should,
                            Box::new(ConstScoreQuery::new(
                                own_text,
                                FOUND_IN_TEXT_BONUS * required as f32,
                            )),
                        ),
                    ])))
                }
            }
        }
    }

    /// Words (all required but stop words), or any of their glossary equivalents, or a kind
    /// they name; `part` says which forms, in which text groups.
    fn words(&self, forms: &[(bool, Vec<Form>)], meaning: &Meaning, part: Part) -> Box<dyn Query> {
        let mut own: Vec<(Occur, Box<dyn Query>)> = forms
            .iter()
            .map(|(optional, forms)| {
                let occur = if *optional {
                    Occur::Should
                } else {
                    Occur::Must
                };
                (occur, self.forms_query(forms, part))
            })
            .collect();
        let own: Box<dyn Query> = if own.len() == 1 {
            own.pop().map(|(_, q)| q).expect("one clause")
        } else {
            Box::new(BooleanQuery::new(own))
        };
        let (alt_groups, kinds): (&[TextGroup], &[&str]) = match part {
            Part::All => (&TextGroup::ALL, &meaning.kinds),
            Part::OwnText => (TextGroup::OWN_TEXT, &[]),
            Part::Rest => (&[TextGroup::Labels], &meaning.kinds),
        };
        if meaning.alternatives.is_empty() && kinds.is_empty() {
            return own;
        }
        let mut any = vec![(Occur::Should, own)];
        for alt in &meaning.alternatives {
            any.push((Occur::Should, self.alternative(alt, alt_groups)));
        }
        for kind in kinds {
            let term = Term::from_field_text(self.fields.facet(Facet::Kind), kind);
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            any.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(Box::new(q), KIND_HINT_SCORE)),
            ));
        }
        Box::new(BooleanQuery::new(any))
    }

    /// The forms of one word to look up, with their weights: exact, other number, stem,
    /// completions of a word being typed, typo corrections.
    fn forms(&self, w: &QueryWord, hl: &mut Highlight) -> Result<Vec<Form>, SearchError> {
        let exact = &w.word.exact;
        let stem = &w.word.stem;
        let form = |text: &str, stem: bool, weight: f32| Form {
            text: text.to_string(),
            stem,
            weight,
        };
        let mut forms = vec![form(exact, false, EXACT_WEIGHT)];
        if w.optional {
            return Ok(forms);
        }
        hl.exact.insert(exact.clone());
        hl.stem.insert(stem.clone());
        for variant in self.plural_variants(exact)? {
            forms.push(form(&variant, false, PLURAL_WEIGHT));
            hl.exact.insert(variant);
        }
        forms.push(form(stem, true, STEM_WEIGHT));
        let mut completed = false;
        if w.prefix {
            for (completion, _) in self.completions(exact)? {
                if &completion != exact {
                    forms.push(form(&completion, false, PREFIX_WEIGHT));
                    hl.exact.insert(completion);
                    completed = true;
                }
            }
        }
        if let Some(mut distance) = typo_distance(exact) {
            // A word being typed that starts indexed words is less likely a typo: only one
            // edit then (« terrasseme » is on its way to « terrassement », not a misspelt
            // « terrasses »; « creus » may still be « crues »).
            if completed {
                distance = 1;
            }
            let known = self.doc_freq(self.fields.all_exact, exact)?;
            for (fix, d) in self.corrections(exact, distance, known)? {
                let weight = FUZZY_WEIGHT / f32::from(d);
                for variant in self.plural_variants(&fix)? {
                    forms.push(form(&variant, false, weight * PLURAL_WEIGHT));
                    hl.exact.insert(variant);
                }
                forms.push(form(&fix, false, weight));
                hl.exact.insert(fix);
            }
        }
        // A word reached two ways (« pierres »: plural and completion of « pierre ») counts
        // once, with its best weight.
        forms.sort_by(|a, b| {
            (&a.text, a.stem)
                .cmp(&(&b.text, b.stem))
                .then(b.weight.total_cmp(&a.weight))
        });
        forms.dedup_by(|later, first| later.text == first.text && later.stem == first.stem);
        Ok(forms)
    }

    /// The other number of a word, when indexed.
    fn plural_variants(&self, exact: &str) -> Result<Vec<String>, SearchError> {
        let mut out = Vec::new();
        for variant in analysis::plural_variants(exact) {
            if self.doc_freq(self.fields.all_exact, &variant)? > 0 {
                out.push(variant);
            }
        }
        Ok(out)
    }

    /// The term queries of some forms of a word, in some groups.
    fn forms_query(&self, forms: &[Form], part: Part) -> Box<dyn Query> {
        let mut any = Vec::new();
        for f in forms {
            let groups: &[TextGroup] = match (part, f.is_the_word()) {
                (Part::All, _) => &TextGroup::ALL,
                (Part::OwnText, true) => TextGroup::OWN_TEXT,
                (Part::OwnText, false) => &[],
                (Part::Rest, true) => &[TextGroup::Labels],
                (Part::Rest, false) => &TextGroup::ALL,
            };
            self.terms(&mut any, &f.text, f.stem, f.weight, groups);
        }
        Box::new(BooleanQuery::new(any))
    }

    /// A term in each text group (exact or stemmed fields), weighted by group.
    fn terms(
        &self,
        out: &mut Vec<(Occur, Box<dyn Query>)>,
        text: &str,
        stem: bool,
        w: f32,
        groups: &[TextGroup],
    ) {
        for &g in groups {
            let field = if stem {
                self.fields.stem(g)
            } else {
                self.fields.exact(g)
            };
            let q = TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::WithFreqs,
            );
            out.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(q), w * g.weight())),
            ));
        }
    }

    /// A glossary equivalent: one word (exact or stemmed) or an expression (stemmed phrase).
    fn alternative(&self, alt: &Expression, groups: &[TextGroup]) -> Box<dyn Query> {
        if alt.exact.len() == 1 {
            let mut any = Vec::new();
            self.terms(&mut any, &alt.exact[0], false, SYNONYM_WEIGHT, groups);
            self.terms(
                &mut any,
                &alt.stem[0],
                true,
                SYNONYM_WEIGHT * STEM_WEIGHT,
                groups,
            );
            return Box::new(BooleanQuery::new(any));
        }
        self.expression(&alt.stem, true, SYNONYM_WEIGHT, groups)
    }

    /// Words in sequence in any of the groups; a single word is a plain term.
    fn expression(
        &self,
        words: &[String],
        stem: bool,
        w: f32,
        groups: &[TextGroup],
    ) -> Box<dyn Query> {
        let mut any = Vec::new();
        if words.len() == 1 {
            self.terms(&mut any, &words[0], stem, w, groups);
            return Box::new(BooleanQuery::new(any));
        }
        for &g in groups {
            any.push((Occur::Should, self.phrase(g, words, stem, w * g.weight())));
        }
        Box::new(BooleanQuery::new(any))
    }

    fn phrase(&self, g: TextGroup, words: &[String], stem: bool, w: f32) -> Box<dyn Query> {
        let field = if stem {
            self.fields.stem(g)
        } else {
            self.fields.exact(g)
        };
        let terms = words
            .iter()
            .map(|t| Term::from_field_text(field, t))
            .collect();
        Box::new(BoostQuery::new(Box::new(PhraseQuery::new(terms)), w))
    }

    /// Phrase boosts for a run of plain words: « cœur de bourg » as an expression ranks above
    /// the three words apart. Uses stems so that plurals still count; a word being typed is
    /// left out unless the index knows it whole.
    fn proximity(&self, run: &[QueryWord]) -> Result<Vec<Box<dyn Query>>, SearchError> {
        let mut stems: Vec<String> = run.iter().map(|w| w.word.stem.clone()).collect();
        if let Some(last) = run.last() {
            if last.prefix && self.doc_freq(self.fields.all_exact, &last.word.exact)? == 0 {
                stems.pop();
            }
        }
        while stems.last().is_some_and(|s| is_stop_word(s)) {
            stems.pop();
        }
        if stems.len() < 2 {
            return Ok(Vec::new());
        }
        let groups = [
            TextGroup::Title,
            TextGroup::Summary,
            TextGroup::Tags,
            TextGroup::Description,
        ];
        Ok(groups
            .into_iter()
            .map(|g| self.phrase(g, &stems, true, PROXIMITY_WEIGHT * g.weight()))
            .collect())
    }

    fn doc_freq(&self, field: Field, text: &str) -> Result<u64, SearchError> {
        Ok(self
            .searcher
            .doc_freq(&Term::from_field_text(field, text))?)
    }

    /// Indexed words starting with `prefix`, most frequent first.
    fn completions(&self, prefix: &str) -> Result<Vec<(String, u64)>, SearchError> {
        let field = self.fields.all_exact;
        let mut found: HashMap<String, u64> = HashMap::new();
        let upper = prefix_upper_bound(prefix);
        for segment in self.searcher.segment_readers() {
            let index = segment.inverted_index(field)?;
            let mut range = index.terms().range().ge(prefix.as_bytes());
            if let Some(upper) = &upper {
                range = range.lt(upper);
            }
            let mut stream = range.into_stream().map_err(tantivy::TantivyError::from)?;
            while stream.advance() {
                let key = String::from_utf8_lossy(stream.key()).into_owned();
                *found.entry(key).or_default() += u64::from(stream.value().doc_freq);
            }
        }
        Ok(most_frequent(found, MAX_PREFIX_TERMS))
    }

    /// Indexed words within `distance` edits of `text` (transpositions count as one edit),
    /// with their distance, closest then most frequent first, without `text` itself. When
    /// `text` is itself indexed (`known` documents), only much more frequent neighbours are kept.
    fn corrections(
        &self,
        text: &str,
        distance: u8,
        known: u64,
    ) -> Result<Vec<(String, u8)>, SearchError> {
        let field = self.fields.all_exact;
        let fuzzy = FuzzyTermQuery::new(Term::from_field_text(field, text), distance, true);
        let mut found: HashMap<String, u64> = HashMap::new();
        for segment in self.searcher.segment_readers() {
            let index = segment.inverted_index(field)?;
            let mut stream = index
                .terms()
                .search(fuzzy.automaton()?)
                .into_stream()
                .map_err(tantivy::TantivyError::from)?;
            while stream.advance() {
                let key = String::from_utf8_lossy(stream.key()).into_owned();
                *found.entry(key).or_default() += u64::from(stream.value().doc_freq);
            }
        }
        found.remove(text);
        found.retain(|_, df| known == 0 || *df >= known.saturating_mul(FUZZY_DOMINANCE));
        let mut v: Vec<(String, u64, u8)> = found
            .into_iter()
            .map(|(t, df)| {
                let d = crate::fr::edit_distance(text, &t).clamp(1, usize::from(distance)) as u8;
                (t, df, d)
            })
            .collect();
        v.sort_by(|a, b| {
            a.2.cmp(&b.2)
                .then(b.1.cmp(&a.1))
                .then_with(|| a.0.cmp(&b.0))
        });
        v.truncate(MAX_FUZZY_TERMS);
        Ok(v.into_iter().map(|(t, _, d)| (t, d)).collect())
    }
}

/// How many edits a typed word may carry: none for short words, where one edit already lands
/// on many other words, and none for numbers.
fn typo_distance(word: &str) -> Option<u8> {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let len = word.chars().count();
    if len >= FUZZY_TWO_EDITS_FROM {
        Some(2)
    } else if len >= FUZZY_ONE_EDIT_FROM {
        Some(1)
    } else {
        None
    }
}

/// The smallest byte string greater than every string starting with `prefix`.
fn prefix_upper_bound(prefix: &str) -> Option<Vec<u8>> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < u8::MAX {
            bytes.push(last + 1);
            return Some(bytes);
        }
    }
    None
}

fn most_frequent(found: HashMap<String, u64>, max: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = found.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(max);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_words(c: &Clause) -> Vec<String> {
        match c {
            Clause::Words { words, .. } => words.iter().map(|w| w.word.exact.clone()).collect(),
            Clause::Phrase(words) => words.iter().map(|w| w.exact.clone()).collect(),
            Clause::Departement(code) => vec![format!("dep:{code}")],
        }
    }

    fn clauses(text: &str) -> Vec<Vec<String>> {
        parse(text).clauses.iter().map(exact_words).collect()
    }

    #[test]
    fn quoted_text_is_a_phrase() {
        let p = parse("\"maison de santé\" bois");
        assert!(matches!(&p.clauses[0], Clause::Phrase(w) if w.len() == 3));
        assert_eq!(
            clauses("« pierre de Volvic »"),
            [["pierre", "de", "volvic"]]
        );
        // Unclosed: still typing, plain words.
        assert_eq!(clauses("\"maison de"), [["maison"], ["de"]]);
    }

    #[test]
    fn departement_numbers() {
        assert_eq!(clauses("63 pise"), [vec!["dep:63"], vec!["pise"]]);
        assert_eq!(clauses("2a maison"), [vec!["dep:2A"], vec!["maison"]]);
        assert_eq!(clauses("974"), [vec!["dep:974"]]);
        // One digit is the two-digit code without its leading zero: Ardèche either way.
        assert_eq!(clauses("7 ecole"), [vec!["dep:07"], vec!["ecole"]]);
        assert_eq!(clauses("07 ecole"), [vec!["dep:07"], vec!["ecole"]]);
        assert_eq!(clauses("eglise 1"), [vec!["eglise"], vec!["dep:01"]]);
        // Not département codes: too long, or unknown.
        assert_eq!(clauses("2019"), [vec!["2019"]]);
        assert_eq!(clauses("99"), [vec!["99"]]);
        assert_eq!(clauses("0"), [vec!["0"]]);
        assert_eq!(clauses("007"), [vec!["007"]]);
    }

    #[test]
    fn sentences_keep_only_their_content_words() {
        let content = |q: &str| -> Vec<String> {
            parse(q)
                .clauses
                .iter()
                .flat_map(|c| match c {
                    Clause::Words { words, .. } => {
                        words.iter().map(|w| w.word.exact.clone()).collect()
                    }
                    _ => vec![],
                })
                .collect()
        };
        assert_eq!(
            content("comment rénover une maison en pierre ?"),
            ["renover", "maison", "pierre"]
        );
        assert_eq!(
            content("Quelles sont les aides pour isoler ?"),
            ["aides", "isoler"]
        );
        assert_eq!(content("exemples de halles en bois"), ["halles", "bois"]);
        // A keyword query keeps its stop words (optional, scoring).
        assert_eq!(content("maison de santé"), ["maison", "de", "sante"]);
        // Only filler words: kept, so that something is found.
        assert_eq!(content("comment"), ["comment"]);
        // The proximity run of a sentence starts at its first content word.
        let runs = parse("comment rénover une maison").runs;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0][0].word.exact, "renover");
    }

    #[test]
    fn stop_words_are_optional_unless_alone() {
        let p = parse("usine de thiers");
        let optional: Vec<bool> = p.clauses.iter().map(Clause::optional).collect();
        assert_eq!(optional, [false, true, false]);
        let p = parse("de la");
        assert!(p.clauses.iter().all(|c| !c.optional()));
    }

    #[test]
    fn last_word_is_a_prefix_while_typing() {
        let p = parse("ecole ossat");
        let prefixes: Vec<bool> = p
            .clauses
            .iter()
            .map(|c| matches!(c, Clause::Words { words, .. } if words[0].prefix))
            .collect();
        assert_eq!(prefixes, [false, true]);
        let p = parse("ecole ossat ");
        assert!(p
            .clauses
            .iter()
            .all(|c| matches!(c, Clause::Words { words, .. } if !words[0].prefix)));
    }

    #[test]
    fn glossary_groups_words() {
        let p = parse("choisir son maitre d'oeuvre");
        assert_eq!(
            clauses("choisir son maitre d'oeuvre"),
            [vec!["choisir"], vec!["son"], vec!["maitre", "oeuvre"]]
        );
        let Clause::Words { meaning, .. } = &p.clauses[2] else {
            panic!("words expected");
        };
        assert!(meaning.alternatives.iter().any(|a| a.exact == ["moe"]));
    }

    #[test]
    fn long_texts_are_cut() {
        let p = parse(&"mot ".repeat(1_000));
        assert_eq!(p.clauses.len(), MAX_QUERY_WORDS);
        assert!(p.runs.iter().all(|r| r.len() <= MAX_QUERY_WORDS));
    }

    #[test]
    fn typo_distances() {
        assert_eq!(typo_distance("pise"), None);
        assert_eq!(typo_distance("lauzze"), Some(1));
        assert_eq!(typo_distance("rehabilitaton"), Some(2));
        assert_eq!(typo_distance("re2020"), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(crate::fr::edit_distance("lauzze", "lauze"), 1);
        assert_eq!(crate::fr::edit_distance("resaturer", "restaurer"), 1);
        assert_eq!(crate::fr::edit_distance("aurilac", "aurillac"), 1);
        assert_eq!(crate::fr::edit_distance("terrasseme", "terrasses"), 2);
        assert_eq!(crate::fr::edit_distance("", "abc"), 3);
    }

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_upper_bound("oss"), Some(b"ost".to_vec()));
        assert_eq!(prefix_upper_bound(""), None);
    }
}
