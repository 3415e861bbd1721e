//! Runs the official ATProto interop vectors (syntax lines and lexicon fixtures, from
//! `shared/reference/atproto-interop-tests` beside the project) against this crate.

use std::path::PathBuf;

use plyr_lexicons::{Catalog, LexiconError, ValidationErrorKind, syntax};
use serde_json::Value;

type Check = fn(&str) -> bool;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/atproto-interop-tests"
    ))
}

fn read(relative: &str) -> String {
    let path = fixtures().join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read fixture {}: {e}", path.display()),
    }
}

/// The vector lines of a syntax file: `#` lines and blank lines are comments. Lines are kept
/// byte for byte, since leading and trailing whitespace are part of several vectors.
fn vectors(file: &str) -> Vec<String> {
    read(&format!("syntax/{file}"))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

mod syntax_vectors {
    use super::*;

    /// (file stem, syntax check, parse check where one is stricter than syntax).
    const TABLE: &[(&str, Check)] = &[
        ("did", |s| syntax::validate_did(s).is_ok()),
        ("handle", |s| syntax::validate_handle(s).is_ok()),
        ("nsid", |s| syntax::validate_nsid(s).is_ok()),
        ("atidentifier", |s| {
            syntax::validate_at_identifier(s).is_ok()
        }),
        ("aturi", |s| syntax::AtUri::parse(s).is_ok()),
        ("tid", |s| syntax::validate_tid(s).is_ok()),
        ("recordkey", |s| syntax::validate_record_key(s).is_ok()),
        ("cid", |s| syntax::validate_cid(s).is_ok()),
        ("datetime", |s| syntax::validate_datetime(s).is_ok()),
        ("language", |s| syntax::validate_language(s).is_ok()),
        ("uri", |s| syntax::validate_uri(s).is_ok()),
    ];

    const PARSERS: &[(&str, Check)] = &[
        ("datetime", |s| syntax::parse_datetime(s).is_ok()),
        ("language", |s| syntax::validate_language_strict(s).is_ok()),
    ];

    #[test]
    fn every_syntax_file_is_covered() {
        let mut covered: Vec<String> = Vec::new();
        for (stem, _) in TABLE {
            covered.push(format!("{stem}_syntax_valid.txt"));
            covered.push(format!("{stem}_syntax_invalid.txt"));
        }
        for (stem, _) in PARSERS {
            covered.push(format!("{stem}_parse_invalid.txt"));
        }
        let dir = fixtures().join("syntax");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(covered.contains(&name), "syntax fixture {name} has no test");
        }
    }

    #[test]
    fn valid_vectors_are_accepted() {
        let mut failures = Vec::new();
        for (stem, check) in TABLE {
            let lines = vectors(&format!("{stem}_syntax_valid.txt"));
            assert!(!lines.is_empty(), "{stem}: no vectors");
            failures.extend(
                lines
                    .iter()
                    .filter(|l| !check(l))
                    .map(|l| format!("{stem}: {l:?}")),
            );
        }
        assert!(failures.is_empty(), "valid vectors rejected: {failures:#?}");
    }

    #[test]
    fn invalid_vectors_are_rejected() {
        let mut failures = Vec::new();
        for (stem, check) in TABLE {
            let lines = vectors(&format!("{stem}_syntax_invalid.txt"));
            assert!(!lines.is_empty(), "{stem}: no vectors");
            failures.extend(
                lines
                    .iter()
                    .filter(|l| check(l))
                    .map(|l| format!("{stem}: {l:?}")),
            );
        }
        assert!(
            failures.is_empty(),
            "invalid vectors accepted: {failures:#?}"
        );
    }

    #[test]
    fn parsers_accept_valid_and_reject_parse_invalid() {
        let mut failures = Vec::new();
        for (stem, parse) in PARSERS {
            for l in vectors(&format!("{stem}_syntax_valid.txt")) {
                if !parse(&l) {
                    failures.push(format!("{stem} valid but unparsed: {l:?}"));
                }
            }
            let invalid = vectors(&format!("{stem}_parse_invalid.txt"));
            assert!(!invalid.is_empty(), "{stem}: no parse vectors");
            for l in invalid {
                if parse(&l) {
                    failures.push(format!("{stem} parse-invalid but parsed: {l:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

mod lexicon_fixtures {
    use super::*;

    fn json(relative: &str) -> Value {
        serde_json::from_str(&read(relative))
            .unwrap_or_else(|e| panic!("fixture {relative} is not json: {e}"))
    }

    fn fixture_catalog() -> Catalog {
        let mut catalog = Catalog::new();
        let dir = fixtures().join("lexicon/catalog");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no catalog documents");
        for path in paths {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Err(e) = catalog.add_document(value) {
                panic!("{name} does not load: {e:?}");
            }
        }
        catalog
    }

    /// (name, record) pairs; every fixture case is a record of `example.lexicon.record`.
    fn cases(file: &str) -> Vec<(String, Value)> {
        let Value::Array(cases) = json(file) else {
            panic!("{file} is not an array");
        };
        cases
            .into_iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("<unnamed>").to_owned();
                (name, c["data"].clone())
            })
            .collect()
    }

    #[test]
    fn valid_records_are_accepted() {
        let catalog = fixture_catalog();
        let cases = cases("lexicon/record-data-valid.json");
        assert!(!cases.is_empty());
        for (name, data) in cases {
            let nsid = data["$type"].as_str().unwrap_or_default();
            let result = catalog.validate_record(nsid, &data);
            assert_eq!(result, Ok(()), "valid case {name:?} rejected");
        }
    }

    #[test]
    fn invalid_records_are_rejected() {
        let catalog = fixture_catalog();
        let cases = cases("lexicon/record-data-invalid.json");
        assert!(!cases.is_empty());
        for (name, data) in cases {
            let nsid = data["$type"].as_str().unwrap_or_default();
            let Err(err) = catalog.validate_record(nsid, &data) else {
                panic!("invalid case {name:?} accepted");
            };
            // Rejected for the data, not because the fixture schema failed to resolve.
            let schema_problem = matches!(
                err.kind,
                ValidationErrorKind::UnknownLexicon { .. }
                    | ValidationErrorKind::UnresolvedRef { .. }
                    | ValidationErrorKind::WrongDef { .. }
                    | ValidationErrorKind::RecordType { .. }
            );
            assert!(!schema_problem, "invalid case {name:?}: {err}");
            assert!(err.path.starts_with("record"), "case {name:?}: {err}");
        }
    }

    #[test]
    fn valid_lexicon_documents_load() {
        let Value::Array(cases) = json("lexicon/lexicon-valid.json") else {
            panic!("lexicon-valid.json is not an array");
        };
        assert!(!cases.is_empty());
        for case in cases {
            let name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            let result = Catalog::new().add_document(case["lexicon"].clone());
            assert!(result.is_ok(), "case {name:?}: {result:?}");
        }
    }

    #[test]
    fn invalid_lexicon_documents_are_refused_for_their_reason() {
        let Value::Array(cases) = json("lexicon/lexicon-invalid.json") else {
            panic!("lexicon-invalid.json is not an array");
        };
        assert!(!cases.is_empty());
        for case in cases {
            let name = case["name"].as_str().unwrap_or("<unnamed>").to_owned();
            let Err(err) = Catalog::new().add_document(case["lexicon"].clone()) else {
                panic!("invalid lexicon {name:?} accepted");
            };
            let expected = match name.as_str() {
                "invalid NSID" => matches!(err, LexiconError::BadId { .. }),
                "defined unknown" | "defined ref" => {
                    matches!(err, LexiconError::BadTopLevel { .. })
                }
                "non-main primary" => matches!(err, LexiconError::PrimaryNotMain { .. }),
                // Wrong JSON types and a record schema without `type` fail to deserialize.
                _ => matches!(err, LexiconError::Parse { .. }),
            };
            assert!(
                expected,
                "case {name:?} refused for another reason: {err:?}"
            );
        }
    }

    #[test]
    fn query_output_is_validated() {
        let catalog = fixture_catalog();
        let table = [
            (serde_json::json!({"a": 1, "b": 2}), true),
            (serde_json::json!({"a": "one"}), false),
            (serde_json::json!([1]), false),
        ];
        for (output, want_ok) in table {
            let result = catalog.validate_output("example.lexicon.query", &output);
            assert_eq!(result.is_ok(), want_ok, "{output}: {result:?}");
        }
    }
}

mod data_model {
    use super::*;

    fn cases(file: &str) -> Vec<(String, Value)> {
        let text = read(&format!("data-model/{file}"));
        let Ok(Value::Array(cases)) = serde_json::from_str::<Value>(&text) else {
            panic!("{file} is not a json array");
        };
        cases
            .into_iter()
            .map(|c| {
                let note = c["note"].as_str().unwrap_or("<no note>").to_owned();
                (note, c["json"].clone())
            })
            .collect()
    }

    #[test]
    fn valid_data_is_accepted() {
        let cases = cases("data-model-valid.json");
        assert!(!cases.is_empty());
        for (note, value) in cases {
            assert_eq!(plyr_lexicons::validate_data(&value), Ok(()), "{note}");
        }
    }

    #[test]
    fn invalid_data_is_rejected() {
        let cases = cases("data-model-invalid.json");
        assert!(!cases.is_empty());
        for (note, value) in cases {
            let Err(err) = plyr_lexicons::validate_data(&value) else {
                panic!("invalid data {note:?} accepted");
            };
            assert!(
                matches!(
                    err.kind,
                    ValidationErrorKind::DataModel { .. } | ValidationErrorKind::WrongType { .. }
                ),
                "{note}: {err}"
            );
        }
    }
}
