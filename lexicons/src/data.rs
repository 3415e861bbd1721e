//! The ATProto data model rules that hold for any record, whatever its lexicon: no floats,
//! `$type` a non-empty string, and well-formed `$bytes`, `$link` and blob objects.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::syntax;
use crate::validate::{MAX_DEPTH, ValidationError, ValidationErrorKind};

/// Checks a JSON value against the data model. The top level must be an object.
pub fn validate_data(value: &Value) -> Result<(), ValidationError> {
    let mut path = String::from("value");
    if !value.is_object() {
        return Err(ValidationError {
            path,
            kind: ValidationErrorKind::WrongType { expected: "object" },
        });
    }
    walk(value, &mut path, 0)
}

/// The data-model pass over a record, with errors rooted at `root`.
pub(crate) fn check_record(value: &Value, root: &str) -> Result<(), ValidationError> {
    walk(value, &mut root.to_owned(), 0)
}

fn fail(path: &str, reason: &'static str) -> Result<(), ValidationError> {
    Err(ValidationError {
        path: path.to_owned(),
        kind: ValidationErrorKind::DataModel { reason },
    })
}

fn walk(value: &Value, path: &mut String, depth: usize) -> Result<(), ValidationError> {
    if depth > MAX_DEPTH {
        return Err(ValidationError {
            path: path.clone(),
            kind: ValidationErrorKind::TooDeep,
        });
    }
    match value {
        Value::Number(n) if n.is_f64() => {
            // JSON cannot tell 123.0 from 123, so integral floats pass (as the vectors require).
            let integral = n
                .as_f64()
                .is_some_and(|f| f.is_finite() && f.fract() == 0.0);
            if integral {
                Ok(())
            } else {
                fail(path, "floats are not allowed")
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                // Writing to a String cannot fail.
                let _ = write!(path, "[{i}]");
                walk(item, path, depth + 1)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            check_special(map, path)?;
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                walk(item, path, depth + 1)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Rules for objects with a reserved `$` key.
fn check_special(map: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    if let Some(t) = map.get("$type") {
        match t.as_str() {
            Some("") | None => return fail(path, "$type must be a non-empty string"),
            Some("blob") => return check_blob(map, path),
            Some(_) => {}
        }
    }
    if let Some(bytes) = map.get("$bytes") {
        if map.len() != 1 {
            return fail(path, "$bytes objects have no other keys");
        }
        if !bytes.is_string() {
            return fail(path, "$bytes must be a base64 string");
        }
    }
    if let Some(link) = map.get("$link") {
        if map.len() != 1 {
            return fail(path, "$link objects have no other keys");
        }
        if link.as_str().is_none_or(|s| syntax::parse_cid(s).is_err()) {
            return fail(path, "$link must be a cid string");
        }
    }
    Ok(())
}

fn check_blob(map: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    let link_ok = map
        .get("ref")
        .and_then(Value::as_object)
        .filter(|r| r.len() == 1)
        .and_then(|r| r.get("$link"))
        .and_then(Value::as_str)
        .is_some_and(|s| syntax::parse_cid(s).is_ok());
    if !link_ok {
        return fail(path, "blob ref must be {\"$link\": cid}");
    }
    if !map.get("mimeType").is_some_and(Value::is_string) {
        return fail(path, "blob mimeType must be a string");
    }
    if map.get("size").and_then(Value::as_u64).is_none() {
        return fail(path, "blob size must be a non-negative integer");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let mut value = json!({});
        for _ in 0..(MAX_DEPTH + 10) {
            value = json!({ "a": [value] });
        }
        let got = validate_data(&value).map_err(|e| e.kind);
        assert_eq!(got, Err(ValidationErrorKind::TooDeep));
        // Dropping a deep Value recurses too; it is fine at this depth.
    }

    #[test]
    fn error_paths_name_the_field() {
        let value = json!({"a": [1, {"b": 1.5}]});
        let got = validate_data(&value).map_err(|e| e.path);
        assert_eq!(got, Err("value.a[1].b".to_owned()));
    }
}
