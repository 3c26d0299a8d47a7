//! French text analysis: tokenizer with elision, case, accent and ligature folding, and stemming.
//!
//! Two analyzers share one tokenizer, so a query is cut exactly like the documents:
//!
//! - [`EXACT`] (`fr_exact`): words split on anything that is not a letter or a digit (hyphens
//!   and apostrophes included), French elisions dropped (`l'`, `d’`, `qu'`…, straight or
//!   typographic apostrophe), lowercased, accents removed and ligatures expanded
//!   (`Œuvre` → `oeuvre`). « pise » and « pisé » give the same term.
//! - [`STEM`] (`fr_stem`): the same terms through the French Snowball stemmer, then a small
//!   plural fix Snowball lacks (`matériaux`/`matériau`). Stemming runs on folded text so that a
//!   query typed without accents stems like the accented document text.
//!
//! Stop words are kept in the index (phrases need them); the query side decides what to do
//! with them ([`is_stop_word`]).

pub use crate::fr::fold;
use crate::fr::{is_combining_mark, push_folded};
use std::collections::HashMap;
use tantivy::tokenizer::{TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// Name under which the exact-folded analyzer is registered in the index.
pub const EXACT: &str = "fr_exact";
/// Name under which the stemmed analyzer is registered in the index.
pub const STEM: &str = "fr_stem";

/// Longest token kept, in bytes. Longer "words" are base64 blobs, URLs without separators or
/// runs of digits: nobody searches them, and they would bloat the term dictionary.
pub const MAX_TOKEN_BYTES: usize = 64;

/// Distinct words one stemming filter remembers with their stem. An index build stems every
/// word of every resource, and Snowball was a fifth of it; French descriptions use a few tens
/// of thousands of distinct words. Past this many the filter forgets them all and starts again.
const STEM_CACHE_WORDS: usize = 32_768;

/// Builds the exact-folded analyzer.
pub fn exact_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(FrenchTokenizer).build()
}

/// Builds the stemmed analyzer.
pub fn stem_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(FrenchTokenizer)
        .filter(FrenchStem)
        .build()
}

/// One word of analyzed text: where it is in the source and its two normalized forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Byte range in the analyzed text.
    pub from: usize,
    /// End of the byte range (exclusive).
    pub to: usize,
    /// Exact-folded form, as indexed in the `*_exact` fields.
    pub exact: String,
    /// Stemmed form, as indexed in the `*_stem` fields.
    pub stem: String,
}

/// Analyzes `text` into words with both forms; used for queries.
pub fn words(text: &str) -> Vec<Word> {
    let mut out = exact_words(text);
    let mut stem = stem_analyzer();
    for w in &mut out {
        w.stem = stem_word(&mut stem, &w.exact);
    }
    out
}

/// Analyzes `text` into words with their exact form only (`stem` left empty).
pub fn exact_words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    for_each_word(text, |from, to, folded| {
        out.push(Word {
            from,
            to,
            exact: std::mem::take(folded),
            stem: String::new(),
        });
    });
    out
}

/// Stems one already folded word.
pub fn stem_word(stem_analyzer: &mut TextAnalyzer, folded: &str) -> String {
    let mut stream = stem_analyzer.token_stream(folded);
    match stream.next() {
        Some(t) => t.text.clone(),
        None => folded.to_string(),
    }
}

/// The other number of a folded word, by the regular French plural rules: `batiments` →
/// `batiment`, `batiment` → `batiments`, `materiaux` → `materiau`/`material`, `chateau` →
/// `chateaux`, `local` → `locaux`. Some variants are not words; looking them up costs nothing.
pub fn plural_variants(folded: &str) -> Vec<String> {
    let mut out = Vec::new();
    if folded.chars().count() < 3 || folded.chars().any(|c| c.is_ascii_digit()) {
        return out;
    }
    if let Some(stem) = folded.strip_suffix("aux") {
        out.push(format!("{stem}au"));
        out.push(format!("{stem}al"));
    } else if let Some(singular) = folded.strip_suffix(['s', 'x']) {
        out.push(singular.to_string());
    } else {
        out.push(format!("{folded}s"));
        if folded.ends_with("au") || folded.ends_with("eu") || folded.ends_with("ou") {
            out.push(format!("{folded}x"));
        }
        if let Some(stem) = folded.strip_suffix("al") {
            out.push(format!("{stem}aux"));
        }
    }
    out
}

/// French function words, and the elided articles typed without their apostrophe
/// (« clermont l herault »): a query does not require them (« usine de Thiers » is found by
/// « usine thiers » and the other way round), but phrases still use them.
pub fn is_stop_word(folded: &str) -> bool {
    STOP_WORDS.binary_search(&folded).is_ok()
}

/// Sorted, folded.
const STOP_WORDS: &[&str] = &[
    "a", "au", "aux", "avec", "c", "ce", "ces", "cet", "cette", "d", "dans", "de", "des", "du",
    "en", "et", "j", "l", "la", "le", "les", "leur", "leurs", "m", "n", "ou", "par", "pour", "qu",
    "s", "sa", "ses", "son", "sur", "t", "un", "une", "y",
];

/// Question and filler words of queries typed as sentences (« comment rénover une maison en
/// pierre ? », « exemples de halles en bois »): a query that has other words neither requires
/// nor scores them, nor the stop words around them (see `query::parse`).
pub fn is_filler_word(folded: &str) -> bool {
    FILLER_WORDS.binary_search(&folded).is_ok()
}

/// Sorted, folded. Only words that say how the question is asked, never what it is about: no
/// word here is a subject a CAUE resource could be about (« faire » is, in « savoir-faire »,
/// but only typed alone, when it is kept).
const FILLER_WORDS: &[&str] = &[
    "ai",
    "as",
    "avez",
    "avons",
    "besoin",
    "cherche",
    "combien",
    "comment",
    "connaitre",
    "donner",
    "elle",
    "elles",
    "est",
    "etre",
    "exemple",
    "exemples",
    "existe",
    "existent",
    "faire",
    "faut",
    "il",
    "ils",
    "je",
    "laquelle",
    "lequel",
    "lesquelles",
    "lesquels",
    "me",
    "moi",
    "montrer",
    "montrez",
    "nous",
    "on",
    "peut",
    "peuvent",
    "peux",
    "pourquoi",
    "puis",
    "quand",
    "que",
    "quel",
    "quelle",
    "quelles",
    "quels",
    "qui",
    "quoi",
    "sont",
    "svp",
    "trouver",
    "veux",
    "voir",
    "voudrais",
    "vous",
];

/// Words that French elides before a vowel; dropped when an apostrophe follows them.
const ELISIONS: &[&str] = &[
    "c", "d", "j", "jusqu", "l", "lorsqu", "m", "n", "puisqu", "qu", "quoiqu", "s", "t",
];

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | 'ʼ' | '‘' | '`' | '´' | '′')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Splits on non-alphanumeric characters, drops elided articles and folds each word.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrenchTokenizer;

/// Token stream of [`FrenchTokenizer`]: one word at a time into one reused token, so indexing
/// allocates nothing per word (it did, and the allocator was a third of an index build).
pub struct FrenchTokenStream<'a> {
    words: Words<'a>,
    token: Token,
}

impl Tokenizer for FrenchTokenizer {
    type TokenStream<'a> = FrenchTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FrenchTokenStream<'a> {
        FrenchTokenStream {
            words: Words::new(text),
            token: Token::default(),
        }
    }
}

impl TokenStream for FrenchTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let token = &mut self.token;
        match self.words.next_into(&mut token.text) {
            Some((from, to)) => {
                token.offset_from = from;
                token.offset_to = to;
                // `Token::default()` starts at `usize::MAX`: the first word is position 0.
                token.position = token.position.wrapping_add(1);
                token.position_length = 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// Calls `f` with the byte range and the folded form of each word of `text`, as the analyzers
/// cut it, without allocating a string per word (snippets scan whole descriptions). `f` may
/// take the folded word.
pub fn for_each_word(text: &str, mut f: impl FnMut(usize, usize, &mut String)) {
    let mut words = Words::new(text);
    let mut folded = String::new();
    while let Some((from, to)) = words.next_into(&mut folded) {
        f(from, to, &mut folded);
    }
}

/// The words of a text as the analyzers cut them, one at a time.
struct Words<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.char_indices().peekable(),
        }
    }

    /// The next word's byte range, its folded form written into `folded` (cleared first).
    fn next_into(&mut self, folded: &mut String) -> Option<(usize, usize)> {
        while let Some(&(start, c)) = self.chars.peek() {
            if !is_word_char(c) {
                self.chars.next();
                continue;
            }
            let mut end = start;
            folded.clear();
            while let Some(&(i, c)) = self.chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                push_folded(c, folded);
                end = i + c.len_utf8();
                self.chars.next();
            }
            // An elided article is a word glued to the next one by an apostrophe: « l'église ».
            let elided = matches!(self.chars.peek(), Some(&(_, c)) if is_apostrophe(c))
                && self.text[end..]
                    .chars()
                    .nth(1)
                    .is_some_and(|next| next.is_alphabetic())
                && ELISIONS.contains(&folded.as_str());
            if elided || folded.is_empty() || folded.len() > MAX_TOKEN_BYTES {
                continue;
            }
            return Some((start, end));
        }
        folded.clear();
        None
    }
}

/// The French Snowball stemmer, then a plural fix Snowball lacks: it leaves `materiaux` and
/// `materiau` apart (and `chevaux`/`cheval`, `locaux`/`local`), so `-aux` and `-au` both end in
/// `-al`. Each filter remembers the stems it computed ([`STEM_CACHE_WORDS`]).
#[derive(Clone, Copy, Debug)]
struct FrenchStem;

#[derive(Clone)]
struct FrenchStemFilter<T> {
    inner: T,
    stems: HashMap<Box<str>, Box<str>>,
}

struct FrenchStemStream<'a, S> {
    tail: S,
    stems: &'a mut HashMap<Box<str>, Box<str>>,
}

impl TokenFilter for FrenchStem {
    type Tokenizer<T: Tokenizer> = FrenchStemFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> FrenchStemFilter<T> {
        FrenchStemFilter {
            inner: tokenizer,
            stems: HashMap::new(),
        }
    }
}

impl<T: Tokenizer> Tokenizer for FrenchStemFilter<T> {
    type TokenStream<'a> = FrenchStemStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        FrenchStemStream {
            tail: self.inner.token_stream(text),
            stems: &mut self.stems,
        }
    }
}

impl<S: TokenStream> TokenStream for FrenchStemStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let text = &mut self.tail.token_mut().text;
        if let Some(stem) = self.stems.get(text.as_str()) {
            text.clear();
            text.push_str(stem);
            return true;
        }
        let stem = french_stem(text);
        if self.stems.len() >= STEM_CACHE_WORDS {
            self.stems.clear();
        }
        self.stems
            .insert(text.as_str().into(), stem.as_str().into());
        *text = stem;
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// The stem of one folded word: Snowball's, with `-aux` and `-au` turned into `-al`.
fn french_stem(folded: &str) -> String {
    let mut stem = frostem::Stemmer::new(frostem::Algorithm::French)
        .stem(folded)
        .into_owned();
    if stem.len() > 4 {
        if stem.ends_with("aux") {
            stem.truncate(stem.len() - 2);
            stem.push('l');
        } else if stem.ends_with("au") {
            stem.truncate(stem.len() - 1);
            stem.push('l');
        }
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.exact).collect()
    }

    fn stems(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.stem).collect()
    }

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(exact("Pisé"), exact("pise"));
        assert_eq!(
            exact("ÉGLISE Église église"),
            ["eglise", "eglise", "eglise"]
        );
        assert_eq!(
            exact("Mâcon Châtaigneraie Lozère"),
            ["macon", "chataigneraie", "lozere"]
        );
        // Decomposed accents (e + U+0301) fold like precomposed ones.
        assert_eq!(exact("pise\u{0301}"), ["pise"]);
    }

    #[test]
    fn expands_ligatures() {
        assert_eq!(exact("Œuvre cœur sœurs"), ["oeuvre", "coeur", "soeurs"]);
        assert_eq!(exact("oeuvre"), exact("œuvre"));
        assert_eq!(exact("ex æquo"), ["ex", "aequo"]);
    }

    #[test]
    fn drops_elisions_with_any_apostrophe() {
        assert_eq!(exact("l'église"), ["eglise"]);
        assert_eq!(exact("maître d’œuvre"), ["maitre", "oeuvre"]);
        assert_eq!(exact("l’Hermitage"), ["hermitage"]);
        assert_eq!(exact("qu'elle jusqu'à"), ["elle", "a"]);
        // Not an elision: the apostrophe ends the text, or the word is not an article.
        assert_eq!(exact("aujourd'hui"), ["aujourd", "hui"]);
        assert_eq!(exact("l'"), ["l"]);
    }

    #[test]
    fn splits_hyphens_with_consecutive_positions() {
        let toks = words("Saint-Flour, Clermont-l'Hérault");
        let exact: Vec<_> = toks.iter().map(|w| w.exact.as_str()).collect();
        assert_eq!(exact, ["saint", "flour", "clermont", "herault"]);
        let mut analyzer = exact_analyzer();
        let mut stream = analyzer.token_stream("Saint-Flour l'église");
        let mut positions = Vec::new();
        while let Some(t) = stream.next() {
            positions.push(t.position);
        }
        assert_eq!(positions, [0, 1, 2]);
    }

    #[test]
    fn offsets_point_into_the_source() {
        let text = "Le cœur de l’église";
        let toks = words(text);
        let spans: Vec<_> = toks.iter().map(|w| &text[w.from..w.to]).collect();
        assert_eq!(spans, ["Le", "cœur", "de", "église"]);
    }

    #[test]
    fn stems_plurals() {
        assert_eq!(stems("bâtiments"), stems("batiment"));
        assert_eq!(stems("matériaux"), stems("matériau"));
        assert_eq!(stems("halles"), stems("halle"));
        assert_eq!(stems("granges"), stems("grange"));
        assert_eq!(stems("agricoles"), stems("agricole"));
        assert_eq!(stems("locaux"), stems("local"));
        assert_eq!(stems("logements"), stems("logement"));
        // Exact forms stay apart.
        assert_ne!(exact("bâtiments"), exact("bâtiment"));
    }

    #[test]
    fn plural_variants_both_ways() {
        assert_eq!(plural_variants("batiments"), ["batiment"]);
        assert_eq!(plural_variants("batiment"), ["batiments"]);
        assert_eq!(plural_variants("materiaux"), ["materiau", "material"]);
        assert_eq!(plural_variants("chateau"), ["chateaus", "chateaux"]);
        assert_eq!(plural_variants("local"), ["locals", "locaux"]);
        assert!(plural_variants("63").is_empty());
    }

    #[test]
    fn drops_overlong_tokens() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(exact(&format!("mot {long} fin")), ["mot", "fin"]);
    }

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(FILLER_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(FILLER_WORDS
            .iter()
            .all(|w| !is_stop_word(w) && crate::fr::fold(w) == *w));
        assert!(is_stop_word("de") && !is_stop_word("bois"));
    }

    /// The stems one analyzer gives a whole text, as an index build runs it.
    fn stream_stems(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(t) = stream.next() {
            out.push((t.position, t.text.clone()));
        }
        out
    }

    #[test]
    fn remembered_stems_are_the_stems() {
        let text = "Matériaux biosourcés : les matériaux, le matériau ; maisons, maison, chevaux.";
        let mut analyzer = stem_analyzer();
        let first = stream_stems(&mut analyzer, text);
        // The second pass answers every word from the filter's memory.
        assert_eq!(stream_stems(&mut analyzer, text), first);
        let fresh: Vec<_> = words(text).into_iter().map(|w| w.stem).collect();
        assert_eq!(
            first.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            fresh
        );
        assert_eq!(first[0], (0, "material".to_string()));
        assert_eq!(first[3].1, first[5].1, "matériaux and matériau meet");
        assert_eq!(first[6].1, first[7].1, "maisons and maison meet");
    }

    #[test]
    fn a_full_stem_memory_starts_again_with_the_same_stems() {
        let mut analyzer = stem_analyzer();
        let many: String = (0..STEM_CACHE_WORDS + 10)
            .map(|i| format!("constructions{i}x "))
            .collect();
        assert_eq!(
            stream_stems(&mut analyzer, &many).len(),
            STEM_CACHE_WORDS + 10
        );
        let text = "constructions bâtiments";
        assert_eq!(
            stream_stems(&mut analyzer, text),
            stream_stems(&mut stem_analyzer(), text)
        );
        assert_eq!(stems(text)[0], "construct");
    }
}
