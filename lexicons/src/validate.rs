//! The lexicon-driven validator: walks a JSON value alongside its schema, resolving refs and
//! unions through the [`Catalog`], and reports the first violation with its field path.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use unicode_segmentation::UnicodeSegmentation;

use crate::catalog::{Catalog, split_ref};
use crate::schema::{
    ArraySchema, BlobSchema, BytesSchema, IntegerSchema, ObjectSchema, ParamsSchema, Schema,
    StringFormat, StringSchema, UnionSchema,
};
use crate::syntax::{self, SyntaxError};

/// The data model's `$bytes`: standard alphabet, no padding required. Trailing bits are allowed
/// because the official fixtures contain such values (e.g. `"123"`).
const BYTES_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Deepest nesting walked. serde_json already stops parsing at 128 levels; this bounds the
/// stack for values built some other way.
pub(crate) const MAX_DEPTH: usize = 256;

/// A value that does not match its lexicon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ValidationError {
    /// Where: `record.features[0].did`.
    pub path: String,
    /// What.
    pub kind: ValidationErrorKind,
}

/// The rule a value broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationErrorKind {
    /// No document with this NSID in the catalog.
    #[error("no lexicon {nsid} in the catalog")]
    UnknownLexicon {
        /// The NSID looked up.
        nsid: String,
    },
    /// A reference in the schema that does not resolve.
    #[error("reference {reference} does not resolve")]
    UnresolvedRef {
        /// The reference as written.
        reference: String,
    },
    /// The definition exists but is not of a kind that can be used here.
    #[error("{reference} is not a {expected} definition")]
    WrongDef {
        /// The reference.
        reference: String,
        /// What was needed.
        expected: &'static str,
    },
    /// A record whose `$type` is not its collection.
    #[error("$type is {found:?}, expected {expected:?}")]
    RecordType {
        /// The NSID the record should declare.
        expected: String,
        /// What it declared, if a string.
        found: Option<String>,
    },
    /// The JSON type is wrong.
    #[error("expected {expected}")]
    WrongType {
        /// The expected lexicon type.
        expected: &'static str,
    },
    /// A required field is absent.
    #[error("required field is missing")]
    Missing,
    /// A null in a field not listed as nullable.
    #[error("null is not allowed here")]
    Null,
    /// A value different from the schema's `const`.
    #[error("value differs from the required constant")]
    Const,
    /// A value outside the schema's `enum`.
    #[error("value is not one of the allowed values")]
    NotInEnum,
    /// Shorter than the minimum.
    #[error("{actual} {unit} is fewer than the minimum {min}")]
    TooShort {
        /// What was counted.
        unit: &'static str,
        /// The minimum.
        min: u64,
        /// The count.
        actual: u64,
    },
    /// Longer than the maximum.
    #[error("{actual} {unit} is more than the maximum {max}")]
    TooLong {
        /// What was counted.
        unit: &'static str,
        /// The maximum.
        max: u64,
        /// The count.
        actual: u64,
    },
    /// An integer below `minimum`.
    #[error("{actual} is below the minimum {minimum}")]
    BelowMinimum {
        /// The minimum.
        minimum: i64,
        /// The value.
        actual: i128,
    },
    /// An integer above `maximum`.
    #[error("{actual} is above the maximum {maximum}")]
    AboveMaximum {
        /// The maximum.
        maximum: i64,
        /// The value.
        actual: i128,
    },
    /// A string that does not follow its `format`.
    #[error("not a valid {format}")]
    Format {
        /// The format name.
        format: &'static str,
        /// The syntax rule broken.
        #[source]
        source: SyntaxError,
    },
    /// A `$bytes` value that is not base64.
    #[error("$bytes is not valid base64")]
    Base64,
    /// A blob object missing or mistyping a field.
    #[error("malformed blob: {reason}")]
    Blob {
        /// What is wrong.
        reason: &'static str,
    },
    /// A blob larger than `maxSize`.
    #[error("blob of {size} bytes exceeds the maximum {max}")]
    BlobTooLarge {
        /// Maximum size.
        max: u64,
        /// Declared size.
        size: u64,
    },
    /// A blob whose MIME type is not in `accept`.
    #[error("blob mime type {mime_type:?} is not accepted")]
    BlobMimeType {
        /// The declared MIME type.
        mime_type: String,
    },
    /// A union value without a string `$type`.
    #[error("union value has no $type")]
    UnionMissingType,
    /// A closed union value whose `$type` is not one of its refs.
    #[error("$type {found:?} is not allowed in this closed union")]
    UnionClosed {
        /// The `$type` found.
        found: String,
    },
    /// An `unknown` value that is not a plain data object.
    #[error("unknown must be a plain object, not a scalar, bytes, link or blob")]
    Unknown,
    /// A value that breaks the data model (a float, an empty `$type`, a malformed link…).
    #[error("not valid data: {reason}")]
    DataModel {
        /// The rule broken.
        reason: &'static str,
    },
    /// A value nested deeper than the validator walks.
    #[error("nested too deeply")]
    TooDeep,
    /// A method without a JSON output schema.
    #[error("{nsid} has no output schema")]
    NoOutput {
        /// The method NSID.
        nsid: String,
    },
}

impl Catalog {
    /// Validates a record against the `main` record definition of `nsid`, including that its
    /// `$type` is `nsid`.
    pub fn validate_record(
        &self,
        nsid: &str,
        record: &serde_json::Value,
    ) -> Result<(), ValidationError> {
        let found = record.get("$type").and_then(Value::as_str);
        if found != Some(nsid) {
            return Err(ValidationError {
                path: "record.$type".to_owned(),
                kind: ValidationErrorKind::RecordType {
                    expected: nsid.to_owned(),
                    found: found.map(str::to_owned),
                },
            });
        }
        self.validate_record_body(nsid, record)
    }

    /// Validates a record's fields against the `main` record definition of `nsid` without
    /// looking at `$type` (plyr's staging namespaces reuse the production shapes).
    pub(crate) fn validate_record_body(
        &self,
        nsid: &str,
        record: &Value,
    ) -> Result<(), ValidationError> {
        let mut walk = Walk::new(self, "record");
        let Some(doc) = self.get(nsid) else {
            return Err(walk.fail(ValidationErrorKind::UnknownLexicon {
                nsid: nsid.to_owned(),
            }));
        };
        let Some(object) = doc.record().and_then(|r| r.object()) else {
            return Err(walk.fail(ValidationErrorKind::WrongDef {
                reference: nsid.to_owned(),
                expected: "record",
            }));
        };
        walk.object(&doc.id, object, record)?;
        // Then the lexicon-independent rules, which reach fields the lexicon does not name.
        crate::data::check_record(record, "record")
    }

    /// Validates a value against any data definition: `nsid#def`, or `nsid` for `main`.
    pub fn validate_def(&self, reference: &str, value: &Value) -> Result<(), ValidationError> {
        let mut walk = Walk::new(self, "value");
        let (nsid, _) = split_ref("", reference);
        walk.reference(nsid, reference, value)
    }

    /// Validates an XRPC response body against the output schema of a query or procedure.
    pub fn validate_output(&self, method_nsid: &str, value: &Value) -> Result<(), ValidationError> {
        let mut walk = Walk::new(self, "output");
        let output = match self.get(method_nsid).and_then(|d| d.defs.get("main")) {
            Some(Schema::Query(q)) => q.output.as_ref(),
            Some(Schema::Procedure(p)) => p.output.as_ref(),
            Some(_) => {
                return Err(walk.fail(ValidationErrorKind::WrongDef {
                    reference: method_nsid.to_owned(),
                    expected: "query or procedure",
                }));
            }
            None => {
                return Err(walk.fail(ValidationErrorKind::UnknownLexicon {
                    nsid: method_nsid.to_owned(),
                }));
            }
        };
        let Some(schema) = output.and_then(|o| o.schema.as_deref()) else {
            return Err(walk.fail(ValidationErrorKind::NoOutput {
                nsid: method_nsid.to_owned(),
            }));
        };
        walk.schema(method_nsid, schema, value)
    }
}

/// One validation pass: the catalog and the path of the value being looked at. The path is a
/// single buffer pushed and truncated as the walk descends, so success allocates nothing more.
struct Walk<'a> {
    catalog: &'a Catalog,
    path: String,
    depth: usize,
}

type Checked = Result<(), ValidationError>;

impl<'a> Walk<'a> {
    fn new(catalog: &'a Catalog, root: &str) -> Walk<'a> {
        Walk {
            catalog,
            path: root.to_owned(),
            depth: 0,
        }
    }

    fn fail(&self, kind: ValidationErrorKind) -> ValidationError {
        ValidationError {
            path: self.path.clone(),
            kind,
        }
    }

    fn wrong_type(&self, expected: &'static str) -> ValidationError {
        self.fail(ValidationErrorKind::WrongType { expected })
    }

    /// Runs `f` with `.key` appended to the path.
    fn field<T>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.path.len();
        self.path.push('.');
        self.path.push_str(key);
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        self.path.truncate(len);
        out
    }

    /// Runs `f` with `[i]` appended to the path.
    fn index<T>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        use std::fmt::Write as _;
        let len = self.path.len();
        // Writing to a String cannot fail.
        let _ = write!(self.path, "[{i}]");
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        self.path.truncate(len);
        out
    }

    /// `base` is the NSID of the document the schema was written in, for `#local` refs.
    fn schema(&mut self, base: &str, schema: &Schema, value: &Value) -> Checked {
        if self.depth > MAX_DEPTH {
            return Err(self.fail(ValidationErrorKind::TooDeep));
        }
        match schema {
            Schema::Object(o) => self.object(base, o, value),
            Schema::Params(p) => self.params(base, p, value),
            Schema::Record(r) => match r.object() {
                Some(o) => self.object(base, o, value),
                None => Err(self.wrong_type("object")),
            },
            Schema::String(s) => self.string(s, value),
            Schema::Integer(i) => self.integer(i, value),
            Schema::Boolean(b) => match value.as_bool() {
                None => Err(self.wrong_type("boolean")),
                Some(v) if b.const_value.is_some_and(|c| c != v) => {
                    Err(self.fail(ValidationErrorKind::Const))
                }
                Some(_) => Ok(()),
            },
            Schema::Bytes(b) => self.bytes(b, value),
            Schema::CidLink {} => self.cid_link(value),
            Schema::Blob(b) => self.blob(b, value),
            Schema::Array(a) => self.array(base, a, value),
            Schema::Ref(r) => self.reference(base, &r.reference, value),
            Schema::Union(u) => self.union(base, u, value),
            Schema::Unknown {} => self.unknown(value),
            Schema::Null {} => match value {
                Value::Null => Ok(()),
                _ => Err(self.wrong_type("null")),
            },
            Schema::Token {} => Err(self.wrong_type("data, not a token")),
            Schema::Query(_)
            | Schema::Procedure(_)
            | Schema::Subscription(_)
            | Schema::PermissionSet {} => Err(self.wrong_type("data, not a method definition")),
        }
    }

    fn reference(&mut self, base: &str, reference: &str, value: &Value) -> Checked {
        let Some((doc, def)) = self.catalog.resolve(base, reference) else {
            return Err(self.fail(ValidationErrorKind::UnresolvedRef {
                reference: reference.to_owned(),
            }));
        };
        if let Schema::Token {} = def {
            // A ref to a token is satisfied by the token's own name.
            let (nsid, name) = split_ref(base, reference);
            let matches = value.as_str().is_some_and(|s| {
                let (vn, vd) = split_ref(nsid, s);
                vn == nsid && vd == name
            });
            return if matches {
                Ok(())
            } else {
                Err(self.fail(ValidationErrorKind::Const))
            };
        }
        self.schema(&doc.id, def, value)
    }

    fn object(&mut self, base: &str, schema: &ObjectSchema, value: &Value) -> Checked {
        let Some(map) = value.as_object() else {
            return Err(self.wrong_type("object"));
        };
        self.properties(
            base,
            &schema.required,
            &schema.nullable,
            &schema.properties,
            map,
        )
    }

    fn params(&mut self, base: &str, schema: &ParamsSchema, value: &Value) -> Checked {
        let Some(map) = value.as_object() else {
            return Err(self.wrong_type("object"));
        };
        self.properties(base, &schema.required, &[], &schema.properties, map)
    }

    fn properties(
        &mut self,
        base: &str,
        required: &[String],
        nullable: &[String],
        properties: &std::collections::BTreeMap<String, Schema>,
        map: &Map<String, Value>,
    ) -> Checked {
        for name in required {
            let present = match map.get(name) {
                None => false,
                // A null in a required, non-nullable field counts as missing.
                Some(Value::Null) => nullable.contains(name),
                Some(_) => true,
            };
            if !present {
                return Err(self.field(name, |w| w.fail(ValidationErrorKind::Missing)));
            }
        }
        for (name, schema) in properties {
            let Some(value) = map.get(name) else {
                continue;
            };
            self.field(name, |w| {
                if value.is_null() {
                    return if nullable.contains(name) {
                        Ok(())
                    } else {
                        Err(w.fail(ValidationErrorKind::Null))
                    };
                }
                w.schema(base, schema, value)
            })?;
        }
        Ok(())
    }

    fn string(&mut self, schema: &StringSchema, value: &Value) -> Checked {
        let Some(s) = value.as_str() else {
            return Err(self.wrong_type("string"));
        };
        if let Some(c) = &schema.const_value
            && c != s
        {
            return Err(self.fail(ValidationErrorKind::Const));
        }
        if let Some(allowed) = &schema.enum_values
            && !allowed.iter().any(|a| a == s)
        {
            return Err(self.fail(ValidationErrorKind::NotInEnum));
        }
        let bytes = u64::try_from(s.len()).unwrap_or(u64::MAX);
        self.bounds("utf-8 bytes", bytes, schema.min_length, schema.max_length)?;
        if schema.min_graphemes.is_some() || schema.max_graphemes.is_some() {
            // Graphemes never outnumber bytes, so a short string skips the segmentation.
            let skip = schema.min_graphemes.is_none()
                && schema.max_graphemes.is_some_and(|max| bytes <= max);
            if !skip {
                let graphemes = u64::try_from(s.graphemes(true).count()).unwrap_or(u64::MAX);
                self.bounds(
                    "graphemes",
                    graphemes,
                    schema.min_graphemes,
                    schema.max_graphemes,
                )?;
            }
        }
        if let Some(format) = schema.format {
            check_format(format, s).map_err(|(format, source)| {
                self.fail(ValidationErrorKind::Format { format, source })
            })?;
        }
        Ok(())
    }

    fn bounds(
        &self,
        unit: &'static str,
        actual: u64,
        min: Option<u64>,
        max: Option<u64>,
    ) -> Checked {
        if let Some(min) = min
            && actual < min
        {
            return Err(self.fail(ValidationErrorKind::TooShort { unit, min, actual }));
        }
        if let Some(max) = max
            && actual > max
        {
            return Err(self.fail(ValidationErrorKind::TooLong { unit, max, actual }));
        }
        Ok(())
    }

    fn integer(&mut self, schema: &IntegerSchema, value: &Value) -> Checked {
        let n = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        };
        // Floats (including 1.0) are not integers in the data model.
        let Some(n) = n else {
            return Err(self.wrong_type("integer"));
        };
        if let Some(c) = schema.const_value
            && i128::from(c) != n
        {
            return Err(self.fail(ValidationErrorKind::Const));
        }
        if let Some(allowed) = &schema.enum_values
            && !allowed.iter().any(|a| i128::from(*a) == n)
        {
            return Err(self.fail(ValidationErrorKind::NotInEnum));
        }
        if let Some(minimum) = schema.minimum
            && n < i128::from(minimum)
        {
            return Err(self.fail(ValidationErrorKind::BelowMinimum { minimum, actual: n }));
        }
        if let Some(maximum) = schema.maximum
            && n > i128::from(maximum)
        {
            return Err(self.fail(ValidationErrorKind::AboveMaximum { maximum, actual: n }));
        }
        Ok(())
    }

    fn bytes(&mut self, schema: &BytesSchema, value: &Value) -> Checked {
        let Some(encoded) = single_key(value, "$bytes").and_then(Value::as_str) else {
            return Err(self.wrong_type("bytes ({\"$bytes\": base64})"));
        };
        let Ok(decoded) = BYTES_BASE64.decode(encoded) else {
            return Err(self.fail(ValidationErrorKind::Base64));
        };
        let len = u64::try_from(decoded.len()).unwrap_or(u64::MAX);
        self.bounds("bytes", len, schema.min_length, schema.max_length)
    }

    fn cid_link(&mut self, value: &Value) -> Checked {
        let Some(link) = single_key(value, "$link").and_then(Value::as_str) else {
            return Err(self.wrong_type("cid-link ({\"$link\": cid})"));
        };
        syntax::parse_cid(link).map(|_| ()).map_err(|source| {
            self.fail(ValidationErrorKind::Format {
                format: "cid",
                source,
            })
        })
    }

    fn blob(&mut self, schema: &BlobSchema, value: &Value) -> Checked {
        let Some(map) = value.as_object() else {
            return Err(self.wrong_type("blob"));
        };
        let blob_err = |w: &Self, reason| w.fail(ValidationErrorKind::Blob { reason });
        let (mime_type, size) = match map.get("$type") {
            Some(Value::String(t)) if t == "blob" => {
                let Some(link) = map
                    .get("ref")
                    .and_then(|r| single_key(r, "$link"))
                    .and_then(Value::as_str)
                else {
                    return Err(blob_err(self, "ref must be {\"$link\": cid}"));
                };
                if syntax::parse_cid(link).is_err() {
                    return Err(blob_err(self, "ref is not a valid cid"));
                }
                let Some(size) = map.get("size").and_then(Value::as_u64) else {
                    return Err(blob_err(self, "size must be a non-negative integer"));
                };
                (map.get("mimeType"), Some(size))
            }
            Some(_) => return Err(blob_err(self, "$type must be \"blob\"")),
            None => {
                // The legacy form: {cid, mimeType}, with no size.
                let Some(cid) = map.get("cid").and_then(Value::as_str) else {
                    return Err(blob_err(self, "missing $type or legacy cid"));
                };
                if syntax::validate_cid(cid).is_err() {
                    return Err(blob_err(self, "cid is not a valid cid"));
                }
                (map.get("mimeType"), None)
            }
        };
        let Some(mime_type) = mime_type.and_then(Value::as_str) else {
            return Err(blob_err(self, "mimeType must be a string"));
        };
        if let (Some(max), Some(size)) = (schema.max_size, size)
            && size > max
        {
            return Err(self.fail(ValidationErrorKind::BlobTooLarge { max, size }));
        }
        if let Some(accept) = &schema.accept
            && !accept.iter().any(|a| mime_matches(a, mime_type))
        {
            return Err(self.fail(ValidationErrorKind::BlobMimeType {
                mime_type: mime_type.to_owned(),
            }));
        }
        Ok(())
    }

    fn array(&mut self, base: &str, schema: &ArraySchema, value: &Value) -> Checked {
        let Some(items) = value.as_array() else {
            return Err(self.wrong_type("array"));
        };
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        self.bounds("items", len, schema.min_length, schema.max_length)?;
        for (i, item) in items.iter().enumerate() {
            self.index(i, |w| w.schema(base, &schema.items, item))?;
        }
        Ok(())
    }

    fn union(&mut self, base: &str, schema: &UnionSchema, value: &Value) -> Checked {
        let Some(map) = value.as_object() else {
            return Err(self.wrong_type("object"));
        };
        let Some(found) = map.get("$type").and_then(Value::as_str) else {
            return Err(self.fail(ValidationErrorKind::UnionMissingType));
        };
        // `$type` is always absolute; a `#main` suffix means the same as none.
        let wanted = if found.starts_with('#') {
            None
        } else {
            Some(split_ref("", found))
        };
        let matched = schema
            .refs
            .iter()
            .find(|r| wanted == Some(split_ref(base, r)));
        match matched {
            Some(reference) => self.reference(base, reference, value),
            None if schema.closed => Err(self.fail(ValidationErrorKind::UnionClosed {
                found: found.to_owned(),
            })),
            // Open unions accept types they do not know; there is no schema to check them by.
            None => Ok(()),
        }
    }

    fn unknown(&mut self, value: &Value) -> Checked {
        let Some(map) = value.as_object() else {
            return Err(self.fail(ValidationErrorKind::Unknown));
        };
        let special = map.contains_key("$bytes")
            || map.contains_key("$link")
            || map.get("$type").and_then(Value::as_str) == Some("blob");
        if special {
            return Err(self.fail(ValidationErrorKind::Unknown));
        }
        Ok(())
    }
}

/// The value of `key` if `value` is an object with exactly that one key.
fn single_key<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.get(key)
}

/// Whether a MIME type matches an `accept` entry: exact, `type/*` or `*/*`.
fn mime_matches(pattern: &str, mime_type: &str) -> bool {
    if pattern == "*/*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(major) => mime_type
            .split_once('/')
            .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
        None => pattern.eq_ignore_ascii_case(mime_type),
    }
}

fn check_format(format: StringFormat, s: &str) -> Result<(), (&'static str, SyntaxError)> {
    let (name, result) = match format {
        StringFormat::AtIdentifier => ("at-identifier", syntax::validate_at_identifier(s)),
        StringFormat::AtUri => ("at-uri", syntax::validate_at_uri(s)),
        StringFormat::Cid => ("cid", syntax::validate_cid(s)),
        StringFormat::Datetime => ("datetime", syntax::parse_datetime(s).map(|_| ())),
        StringFormat::Did => ("did", syntax::validate_did(s)),
        StringFormat::Handle => ("handle", syntax::validate_handle(s)),
        StringFormat::Nsid => ("nsid", syntax::validate_nsid(s)),
        StringFormat::Tid => ("tid", syntax::validate_tid(s)),
        StringFormat::RecordKey => ("record-key", syntax::validate_record_key(s)),
        StringFormat::Uri => ("uri", syntax::validate_uri(s)),
        StringFormat::Language => ("language", syntax::validate_language_strict(s)),
    };
    result.map_err(|e| (name, e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tree_catalog() -> Catalog {
        let mut catalog = Catalog::new();
        let doc = json!({
            "lexicon": 1,
            "id": "com.example.tree",
            "defs": {
                "main": {
                    "type": "query",
                    "output": {"encoding": "application/json", "schema": {"type": "ref", "ref": "#node"}}
                },
                "node": {
                    "type": "object",
                    "required": ["name"],
                    "nullable": ["parent"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 8},
                        "parent": {"type": "string"},
                        "kind": {"type": "ref", "ref": "#leaf"},
                        "child": {"type": "ref", "ref": "#node"}
                    }
                },
                "leaf": {"type": "token"},
                "noBody": {"type": "string"}
            }
        });
        if let Err(e) = catalog.add_document(doc) {
            panic!("tree lexicon should load: {e}");
        }
        catalog
    }

    #[test]
    fn recursive_schemas_stop_at_max_depth() {
        let catalog = tree_catalog();
        let mut value = json!({"name": "leaf"});
        for _ in 0..(MAX_DEPTH + 5) {
            value = json!({"name": "n", "child": value});
        }
        let got = catalog.validate_def("com.example.tree#node", &value);
        assert_eq!(got.map_err(|e| e.kind), Err(ValidationErrorKind::TooDeep));
    }

    #[test]
    fn defs_outputs_and_tokens() {
        let catalog = tree_catalog();
        let cases = [
            (
                "com.example.tree#node",
                json!({"name": "a", "parent": null}),
                Ok(()),
            ),
            (
                "com.example.tree#node",
                json!({"name": "a", "kind": "com.example.tree#leaf"}),
                Ok(()),
            ),
            (
                "com.example.tree#node",
                json!({"name": "a", "kind": "com.example.tree#other"}),
                Err(("value.kind", ValidationErrorKind::Const)),
            ),
            (
                "com.example.tree#node",
                json!({"name": null}),
                Err(("value.name", ValidationErrorKind::Missing)),
            ),
            (
                "com.example.tree#node",
                json!({"name": "a", "child": {"name": "much too long"}}),
                Err((
                    "value.child.name",
                    ValidationErrorKind::TooLong {
                        unit: "utf-8 bytes",
                        max: 8,
                        actual: 13,
                    },
                )),
            ),
            (
                "com.example.tree#missing",
                json!({}),
                Err((
                    "value",
                    ValidationErrorKind::UnresolvedRef {
                        reference: "com.example.tree#missing".to_owned(),
                    },
                )),
            ),
        ];
        for (reference, value, want) in cases {
            let got = catalog.validate_def(reference, &value);
            let got = got.map_err(|e| (e.path, e.kind));
            let want = want.map_err(|(p, k)| (p.to_owned(), k));
            assert_eq!(got, want, "{reference} {value}");
        }

        let output = catalog.validate_output("com.example.tree", &json!({"name": 3}));
        assert_eq!(
            output.map_err(|e| (e.path, e.kind)),
            Err((
                "output.name".to_owned(),
                ValidationErrorKind::WrongType { expected: "string" }
            ))
        );
        let missing = catalog.validate_output("com.example.nothing", &json!({}));
        assert!(matches!(
            missing.map_err(|e| e.kind),
            Err(ValidationErrorKind::UnknownLexicon { .. })
        ));
    }

    #[test]
    fn mime_globs() {
        let cases = [
            ("audio/*", "audio/mpeg", true),
            ("audio/*", "image/png", false),
            ("*/*", "anything/at-all", true),
            ("image/png", "image/png", true),
            ("image/png", "image/jpeg", false),
            ("audio/*", "audio", false),
        ];
        for (pattern, mime, want) in cases {
            assert_eq!(mime_matches(pattern, mime), want, "{pattern} vs {mime}");
        }
    }
}
