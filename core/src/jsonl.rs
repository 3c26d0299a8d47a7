//! The JSON Lines interchange format (FORMAT.md): whole-file validation with line numbers.

use std::io::BufRead;

use thiserror::Error;

use crate::resource::{FieldError, Resource};

/// Longest line accepted: a resource with a 20 KB description is ~25 KB of JSON; 4 MB leaves
/// room for very long texts while refusing a file that is not JSON Lines at all.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Problems of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub errors: Vec<FieldError>,
}

/// Why a file was refused; nothing of it was applied.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("lecture impossible : {0}")]
    Io(#[from] std::io::Error),
    #[error("{} ligne(s) invalide(s), rien n'a été importé :\n{}", .0.len(), describe(.0))]
    Invalid(Vec<LineError>),
    #[error("la référence « {reference} » apparaît deux fois (lignes {first} et {second}), rien n'a été importé")]
    DuplicateRef {
        reference: String,
        first: usize,
        second: usize,
    },
}

fn describe(errors: &[LineError]) -> String {
    errors
        .iter()
        .take(50)
        .map(|e| {
            let parts: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            format!("  ligne {} : {}", e.line, parts.join(" ; "))
        })
        .chain((errors.len() > 50).then(|| format!("  … et {} autres lignes", errors.len() - 50)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates every line; returns all resources, or every problem found.
pub fn parse(input: impl BufRead) -> Result<Vec<Resource>, ImportError> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    let mut refs: std::collections::HashMap<String, usize> = Default::default();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            errors.push(one(
                n,
                "(ligne)",
                &format!(
                    "ligne trop longue ({} octets, {MAX_LINE_BYTES} au plus)",
                    line.len()
                ),
            ));
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                errors.push(one(n, "(ligne)", &format!("JSON invalide : {e}")));
                continue;
            }
        };
        match Resource::from_json(&value) {
            Ok(r) => {
                if let Some(reference) = &r.ref_ {
                    if let Some(first) = refs.insert(reference.clone(), n) {
                        return Err(ImportError::DuplicateRef {
                            reference: reference.clone(),
                            first,
                            second: n,
                        });
                    }
                }
                resources.push(r);
            }
            Err(e) => errors.push(LineError {
                line: n,
                errors: e.0,
            }),
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(ImportError::Invalid(errors))
    }
}

fn one(line: usize, field: &str, message: &str) -> LineError {
    LineError {
        line,
        errors: vec![FieldError {
            field: field.into(),
            message: message.into(),
        }],
    }
}

/// One FORMAT.md line per resource.
pub fn write(out: &mut impl std::io::Write, items: &[serde_json::Value]) -> std::io::Result<()> {
    items.iter().try_for_each(|item| write_line(out, item))
}

/// Writes one JSON Lines record.
pub fn write_line(out: &mut impl std::io::Write, item: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, item)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_bad_line_by_number() {
        let input = "{\"kind\":\"outil\",\"title\":\"A\",\"office\":\"caue-63\"}\n\nnot json\n{\"kind\":\"x\",\"title\":\"B\",\"office\":\"caue-63\"}\n";
        match parse(input.as_bytes()) {
            Err(ImportError::Invalid(errs)) => {
                assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
                let msg = ImportError::Invalid(errs).to_string();
                assert!(
                    msg.contains("ligne 3") && msg.contains("ligne 4 : champ « kind »"),
                    "{msg}"
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_refs_in_one_file_are_refused() {
        let l = "{\"ref\":\"r1\",\"kind\":\"outil\",\"title\":\"A\",\"office\":\"caue-63\"}\n";
        assert!(matches!(
            parse(format!("{l}{l}").as_bytes()),
            Err(ImportError::DuplicateRef {
                first: 1,
                second: 2,
                ..
            })
        ));
    }

    proptest::proptest! {
        /// Fuzz campaign, in the test suite: any file given to `atelier import` parses to
        /// resources or to a report of its bad lines, never a panic.
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes[..]);
        }

        /// Lines shaped like resources, with arbitrary values, go through validation too.
        #[test]
        fn any_resource_like_lines_parse_or_fail_without_panicking(
            lines in proptest::collection::vec(
                "\\{\"kind\":\"(outil|projet|[a-z]{0,6})\",\"title\":\"[ -~]{0,12}\",\"office\":\"(caue-63|caue-[0-9A-Z]{0,3}|[a-z]{0,4})\"(,\"[a-z_]{1,10}\":(\"[ -~]{0,10}\"|[0-9]{1,4}|null|\\[\\]|\\{\\}|true))*\\}",
                0..6,
            ),
        ) {
            let _ = parse(lines.join("\n").as_bytes());
        }
    }
}
