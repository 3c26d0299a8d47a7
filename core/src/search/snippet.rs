//! Snippets: the passage of a hit that best shows why it matched, with the matches marked.
//!
//! Two renderings of the same passage:
//! - `text`: plain text (Markdown syntax and HTML tags removed) with each match wrapped in
//!   [`MARK_OPEN`] `⟦` and [`MARK_CLOSE`] `⟧` (U+27E6, U+27E7). These brackets do not occur in
//!   French prose; any in the source are dropped, so the markers are unambiguous.
//! - `html`: the same text HTML-escaped, each match in `<mark>…</mark>`.

use std::collections::HashSet;

use super::analysis::{self, is_stop_word};
use super::query::Highlight;

/// Opening marker of a match in the plain-text snippet.
pub const MARK_OPEN: char = '⟦';
/// Closing marker of a match in the plain-text snippet.
pub const MARK_CLOSE: char = '⟧';
/// Length of a snippet in characters, without the ellipses: two lines of a result list.
pub const SNIPPET_CHARS: usize = 200;
/// Characters of context kept before the first match of the passage.
const LEAD_CHARS: usize = 40;

/// A passage in its two renderings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    pub html: String,
}

/// The best passage of the summary or the description (Markdown) for these highlights.
pub fn snippet(summary: &str, description: &str, hl: &Highlight) -> Snippet {
    let candidates = [plain_text(summary), plain_text(description)];
    // The text with the most matches; the summary when tied (it is written to be shown).
    let best = candidates
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| (t, matches(t, hl)))
        .reduce(|best, next| {
            if next.1.len() > best.1.len() {
                next
            } else {
                best
            }
        });
    match best {
        Some((text, matches)) => render(text, &matches),
        None => Snippet::default(),
    }
}

/// Byte spans of the highlighted words of `text`.
fn matches(text: &str, hl: &Highlight) -> Vec<(usize, usize)> {
    // Stemming every word of a long description is the costly part: only words that start
    // like one of the highlighted stems are stemmed (a French stem keeps the first letters).
    let n = hl
        .stem
        .iter()
        .map(|s| s.chars().count())
        .min()
        .unwrap_or(0)
        .min(HEAD_CHARS);
    let heads: HashSet<&str> = hl.stem.iter().map(|s| head(s, n)).collect();
    let mut stemmer = None;
    let mut out = Vec::new();
    analysis::for_each_word(text, |from, to, exact| {
        let found = hl.exact.contains(exact.as_str())
            || (heads.contains(head(exact, n)) && {
                let stemmer = stemmer.get_or_insert_with(analysis::stem_analyzer);
                hl.stem.contains(&analysis::stem_word(stemmer, exact))
            });
        if found && !is_stop_word(exact) {
            out.push((from, to));
        }
    });
    out
}

/// Letters of a word compared before stemming it.
const HEAD_CHARS: usize = 3;

/// The first `n` characters of a word.
fn head(word: &str, n: usize) -> &str {
    match word.char_indices().nth(n) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

/// Cuts the window with the most matches and marks them.
fn render(text: &str, matches: &[(usize, usize)]) -> Snippet {
    let (start, end) = window(text, matches);
    let mut out = Snippet::default();
    if start > 0 {
        out.text.push('…');
        out.html.push('…');
    }
    let mut at = start;
    for &(from, to) in matches.iter().filter(|&&(f, t)| f >= start && t <= end) {
        push_plain(&mut out, &text[at..from]);
        out.text.push(MARK_OPEN);
        out.text.push_str(&text[from..to]);
        out.text.push(MARK_CLOSE);
        out.html.push_str("<mark>");
        escape_into(&text[from..to], &mut out.html);
        out.html.push_str("</mark>");
        at = to;
    }
    push_plain(&mut out, &text[at..end]);
    if end < text.len() {
        out.text.push('…');
        out.html.push('…');
    }
    out
}

fn push_plain(out: &mut Snippet, s: &str) {
    out.text.push_str(s);
    escape_into(s, &mut out.html);
}

/// Byte range of the passage: [`SNIPPET_CHARS`] characters around the densest run of matches,
/// cut at spaces.
fn window(text: &str, matches: &[(usize, usize)]) -> (usize, usize) {
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    if chars.len() <= SNIPPET_CHARS {
        return (0, text.len());
    }
    let char_at = |byte: usize| chars.partition_point(|&b| b < byte);
    let byte_at = |ch: usize| chars.get(ch).copied().unwrap_or(text.len());
    let mut best = (0usize, 0usize);
    for &(from, _) in matches {
        let first = char_at(from).saturating_sub(LEAD_CHARS);
        let last = byte_at(first + SNIPPET_CHARS);
        let count = matches
            .iter()
            .filter(|&&(f, t)| f >= byte_at(first) && t <= last)
            .count();
        if count > best.1 {
            best = (first, count);
        }
    }
    let first = best.0.min(chars.len().saturating_sub(SNIPPET_CHARS));
    let mut start = byte_at(first);
    let mut end = byte_at(first + SNIPPET_CHARS);
    if start > 0 {
        if let Some(space) = text[start..end].find(' ') {
            let cut = start + space + 1;
            if matches.iter().all(|&(f, _)| f < start || f >= cut) {
                start = cut;
            }
        }
    }
    if end < text.len() {
        if let Some(space) = text[start..end].rfind(' ') {
            let cut = start + space;
            if matches.iter().all(|&(_, t)| t <= cut || t > end) {
                end = cut;
            }
        }
    }
    (start, end)
}

/// Markdown (or plain text) to one line of plain text: no headings, list or quote markers,
/// emphasis, code ticks, link targets or HTML tags.
pub fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for line in markdown.lines() {
        let line = strip_block_marker(line.trim());
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        strip_inline(line, &mut out);
    }
    let mut collapsed = String::with_capacity(out.len());
    for word in out.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(word);
    }
    collapsed
}

fn strip_block_marker(line: &str) -> &str {
    let line = line.trim_start_matches(['#', '>']).trim_start();
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            return rest;
        }
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        if let Some(rest) = line[digits..].strip_prefix(". ") {
            return rest;
        }
    }
    line
}

fn strip_inline(line: &str, out: &mut String) {
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '*' | '`' | MARK_OPEN | MARK_CLOSE => {}
            '_' if line[i + 1..].starts_with('_') || line[..i].ends_with('_') => {}
            '!' if line[i + 1..].starts_with('[') => {}
            ']' if line[i + 1..].starts_with('(') => {
                // Drop the link target: « [texte](https://…) » keeps « texte ».
                let rest = &line[i + 1..];
                let close = rest.find(')').map_or(rest.len(), |p| p + 1);
                while chars.peek().is_some_and(|&(j, _)| j < i + 1 + close) {
                    chars.next();
                }
            }
            '[' => {}
            '<' if line[i + 1..].find('>').is_some() => {
                let close = i + 1 + line[i + 1..].find('>').unwrap_or(0);
                while chars.peek().is_some_and(|&(j, _)| j <= close) {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hl(words: &[&str]) -> Highlight {
        let mut hl = Highlight::default();
        for w in analysis::words(&words.join(" ")) {
            hl.exact.insert(w.exact);
            hl.stem.insert(w.stem);
        }
        hl
    }

    #[test]
    fn marks_matches_in_both_renderings() {
        let s = snippet("Une école en pisé & bois <b>", "", &hl(&["pise"]));
        assert_eq!(s.text, "Une école en ⟦pisé⟧ & bois");
        assert_eq!(s.html, "Une école en <mark>pisé</mark> &amp; bois");
    }

    #[test]
    fn escapes_html_and_drops_tags() {
        let s = snippet(
            "Le \"cœur\" <script>x</script> d'un bourg",
            "",
            &hl(&["coeur"]),
        );
        assert_eq!(s.text, "Le \"⟦cœur⟧\" x d'un bourg");
        assert_eq!(s.html, "Le &quot;<mark>cœur</mark>&quot; x d&#39;un bourg");
        assert!(!s.html.contains("<script>"));
    }

    #[test]
    fn stems_and_source_markers() {
        let s = snippet("Des granges ⟦rénovées⟧", "", &hl(&["grange"]));
        assert_eq!(s.text, "Des ⟦granges⟧ rénovées");
    }

    #[test]
    fn picks_the_field_and_window_with_matches() {
        let long = format!(
            "{} Le chantier de la halle en bois a duré un an. {}",
            "Texte sans rapport. ".repeat(20),
            "Encore du texte. ".repeat(20)
        );
        let s = snippet("Un résumé sans le mot.", &long, &hl(&["halle"]));
        assert!(s.text.contains("⟦halle⟧"), "{}", s.text);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'));
        assert!(s.text.chars().count() <= SNIPPET_CHARS + 4);
    }

    #[test]
    fn markdown_is_flattened() {
        assert_eq!(
            plain_text("## Titre\n\n- un **point** [lien](https://example.org/a)\n1. `code`"),
            "Titre un point lien code"
        );
    }

    #[test]
    fn no_match_gives_the_summary() {
        let s = snippet("Résumé.", "Description.", &hl(&["zzz"]));
        assert_eq!(s.text, "Résumé.");
    }
}
