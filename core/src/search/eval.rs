//! Relevance evaluation with the protocol of the search corpus (`corpus/README.md`).
//!
//! A query passes when every relevant ref is within its `top` first results; the reciprocal
//! rank of the first relevant ref within the first [`MRR_DEPTH`] results is averaged into the
//! MRR. The search under test is a closure, so any engine (or a baseline) can be scored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Filters, SearchError};

/// Results looked at for the reciprocal rank.
pub const MRR_DEPTH: usize = 20;

/// One evaluation query, as in `dev-queries.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalQuery {
    /// The text as typed.
    pub q: String,
    /// Facet filters: key → value (or list of values).
    #[serde(default)]
    pub filters: BTreeMap<String, serde_json::Value>,
    /// Refs that must all be within the first `top` results.
    pub relevant: Vec<String>,
    pub top: usize,
    /// Category of the query (`accents`, `typo`, …).
    #[serde(default)]
    pub tests: String,
}

impl EvalQuery {
    /// The query's filters as search filters. Unknown keys are an error: a filter silently
    /// ignored would make the query look easier than it is.
    pub fn search_filters(&self) -> Result<Filters, String> {
        let mut f = Filters::default();
        for (key, value) in &self.filters {
            let values: Vec<String> = match value {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or("filter values are strings")
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("filter {key} is not a string or a list")),
            };
            let slot = match key.as_str() {
                "kind" => &mut f.kind,
                "office" => &mut f.office,
                "departement" => &mut f.departement,
                "region" => &mut f.region,
                "axe" | "axes" => &mut f.axe,
                "theme" | "themes" => &mut f.theme,
                "sector" | "sectors" => &mut f.sector,
                "audience" | "audiences" => &mut f.audience,
                "status" => &mut f.status,
                other => return Err(format!("unknown filter {other}")),
            };
            slot.extend(values);
        }
        Ok(f)
    }
}

/// Parses a JSON Lines query file; blank lines are skipped.
pub fn parse_queries(jsonl: &str) -> Result<Vec<EvalQuery>, SearchError> {
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| SearchError::EvalQuery {
            line: i + 1,
            message,
        };
        let q: EvalQuery = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        q.search_filters().map_err(bad)?;
        out.push(q);
    }
    Ok(out)
}

/// Scores of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvalReport {
    pub queries: usize,
    pub passed: usize,
    /// Mean reciprocal rank over all queries.
    pub mrr: f64,
    /// Category → (queries, passed).
    pub categories: BTreeMap<String, (usize, usize)>,
    pub failures: Vec<Failure>,
}

/// A query that did not pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub q: String,
    pub tests: String,
    pub top: usize,
    /// Relevant refs outside the `top` first results, with their rank (from 1) if found.
    pub missing: Vec<(String, Option<usize>)>,
}

impl EvalReport {
    /// Failures grouped by category.
    pub fn failures_by_category(&self) -> BTreeMap<&str, Vec<&Failure>> {
        let mut out: BTreeMap<&str, Vec<&Failure>> = BTreeMap::new();
        for f in &self.failures {
            out.entry(f.tests.as_str()).or_default().push(f);
        }
        out
    }
}

/// Runs every query through `search` (text, filters → ranked refs) and scores the results.
pub fn evaluate(
    queries: &[EvalQuery],
    mut search: impl FnMut(&str, &Filters) -> Vec<String>,
) -> EvalReport {
    let mut report = EvalReport {
        queries: queries.len(),
        ..EvalReport::default()
    };
    let mut rr_sum = 0.0;
    for x in queries {
        // `parse_queries` has checked the filters; a hand-built query with bad ones runs unfiltered.
        let filters = x.search_filters().unwrap_or_default();
        let results = search(&x.q, &filters);
        let rank = |r: &String| results.iter().position(|h| h == r).map(|p| p + 1);
        let missing: Vec<(String, Option<usize>)> = x
            .relevant
            .iter()
            .map(|r| (r.clone(), rank(r)))
            .filter(|(_, rank)| rank.is_none_or(|k| k > x.top))
            .collect();
        let best = x
            .relevant
            .iter()
            .filter_map(rank)
            .filter(|&k| k <= MRR_DEPTH)
            .min();
        rr_sum += best.map_or(0.0, |k| 1.0 / k as f64);
        let category = report.categories.entry(x.tests.clone()).or_default();
        category.0 += 1;
        if missing.is_empty() {
            report.passed += 1;
            category.1 += 1;
        } else {
            report.failures.push(Failure {
                q: x.q.clone(),
                tests: x.tests.clone(),
                top: x.top,
                missing,
            });
        }
    }
    if !queries.is_empty() {
        report.mrr = rr_sum / queries.len() as f64;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_like_the_readme() {
        let queries = parse_queries(concat!(
            r#"{"q": "a", "relevant": ["r1"], "top": 3, "tests": "x"}"#,
            "\n\n",
            r#"{"q": "b", "filters": {"kind": "action"}, "relevant": ["r2", "r3"], "top": 2, "tests": "y"}"#,
            "\n",
            r#"{"q": "c", "relevant": ["r4"], "top": 3, "tests": "y"}"#,
        ))
        .unwrap();
        let report = evaluate(&queries, |q, f| match q {
            "a" => vec!["x".into(), "r1".into()],
            "b" => {
                assert_eq!(f.kind, ["action"]);
                vec!["r2".into(), "x".into(), "r3".into()]
            }
            _ => vec![],
        });
        assert_eq!(report.passed, 1);
        assert!((report.mrr - (0.5 + 1.0 + 0.0) / 3.0).abs() < 1e-9);
        assert_eq!(report.categories["y"], (2, 0));
        assert_eq!(report.failures[0].missing, [("r3".to_string(), Some(3))]);
        assert_eq!(report.failures_by_category()["y"].len(), 2);
    }

    #[test]
    fn rejects_unknown_filters() {
        let err =
            parse_queries(r#"{"q": "a", "filters": {"colour": "red"}, "relevant": [], "top": 1}"#);
        assert!(matches!(err, Err(SearchError::EvalQuery { line: 1, .. })));
    }
}
