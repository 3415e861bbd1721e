//! Serde types for the Lexicon schema language (lexicon version 1), plus the structural checks
//! a document must pass before it joins a [`crate::Catalog`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::syntax::{SyntaxError, validate_nsid, validate_record_key};

/// One lexicon document: an NSID and its named definitions.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    /// Lexicon language version; only 1 exists.
    pub lexicon: u32,
    /// The document's NSID.
    pub id: String,
    /// Free-text description.
    #[serde(default)]
    pub description: Option<String>,
    /// Definitions by name; `main` is the one an unqualified reference means.
    pub defs: BTreeMap<String, Schema>,
}

/// Any schema node: a top-level definition or a field type.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Schema {
    /// A repository record type (primary; only as `main`).
    Record(RecordSchema),
    /// An XRPC query (primary).
    Query(QuerySchema),
    /// An XRPC procedure (primary).
    Procedure(ProcedureSchema),
    /// An event-stream subscription (primary).
    Subscription(SubscriptionSchema),
    /// An OAuth permission set (primary). Parsed for completeness; its contents are ignored.
    PermissionSet {},
    /// XRPC query-string parameters.
    Params(ParamsSchema),
    /// A named symbol with no data of its own.
    Token {},
    /// A JSON object with typed properties.
    Object(ObjectSchema),
    /// A string, optionally with a format and limits.
    String(StringSchema),
    /// A 64-bit signed integer.
    Integer(IntegerSchema),
    /// A boolean.
    Boolean(BooleanSchema),
    /// Raw bytes, `{"$bytes": base64}` in JSON.
    Bytes(BytesSchema),
    /// A CID link, `{"$link": cid}` in JSON.
    CidLink {},
    /// A blob reference.
    Blob(BlobSchema),
    /// An array of one item type.
    Array(ArraySchema),
    /// A reference to another definition.
    Ref(RefSchema),
    /// One of several object definitions, picked by `$type`.
    Union(UnionSchema),
    /// Any data object.
    Unknown {},
    /// JSON null.
    Null {},
}

impl Schema {
    /// The lexicon `type` name of this node.
    pub fn type_name(&self) -> &'static str {
        match self {
            Schema::Record(_) => "record",
            Schema::Query(_) => "query",
            Schema::Procedure(_) => "procedure",
            Schema::Subscription(_) => "subscription",
            Schema::PermissionSet {} => "permission-set",
            Schema::Params(_) => "params",
            Schema::Token {} => "token",
            Schema::Object(_) => "object",
            Schema::String(_) => "string",
            Schema::Integer(_) => "integer",
            Schema::Boolean(_) => "boolean",
            Schema::Bytes(_) => "bytes",
            Schema::CidLink {} => "cid-link",
            Schema::Blob(_) => "blob",
            Schema::Array(_) => "array",
            Schema::Ref(_) => "ref",
            Schema::Union(_) => "union",
            Schema::Unknown {} => "unknown",
            Schema::Null {} => "null",
        }
    }

    fn is_primary(&self) -> bool {
        matches!(
            self,
            Schema::Record(_)
                | Schema::Query(_)
                | Schema::Procedure(_)
                | Schema::Subscription(_)
                | Schema::PermissionSet {}
        )
    }
}

/// A `record` definition.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordSchema {
    /// Record key type: `tid`, `nsid`, `any` or `literal:<value>`.
    pub key: String,
    /// The record's object schema (checked to be an `object` when the document is added).
    pub record: Box<Schema>,
}

impl RecordSchema {
    /// The object schema of the record body.
    pub fn object(&self) -> Option<&ObjectSchema> {
        match self.record.as_ref() {
            Schema::Object(o) => Some(o),
            _ => None,
        }
    }
}

/// A `query` definition.
#[derive(Debug, Clone, Deserialize)]
pub struct QuerySchema {
    /// Query-string parameters.
    #[serde(default)]
    pub parameters: Option<Box<Schema>>,
    /// Response body.
    #[serde(default)]
    pub output: Option<Body>,
}

/// A `procedure` definition.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcedureSchema {
    /// Query-string parameters.
    #[serde(default)]
    pub parameters: Option<Box<Schema>>,
    /// Request body.
    #[serde(default)]
    pub input: Option<Body>,
    /// Response body.
    #[serde(default)]
    pub output: Option<Body>,
}

/// A `subscription` definition.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionSchema {
    /// Query-string parameters.
    #[serde(default)]
    pub parameters: Option<Box<Schema>>,
    /// The message union.
    #[serde(default)]
    pub message: Option<Message>,
}

/// An XRPC request or response body.
#[derive(Debug, Clone, Deserialize)]
pub struct Body {
    /// MIME type, e.g. `application/json`.
    pub encoding: String,
    /// JSON schema of the body (an object, ref or union), when the encoding is JSON.
    #[serde(default)]
    pub schema: Option<Box<Schema>>,
}

/// A subscription message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Usually a union of event objects.
    #[serde(default)]
    pub schema: Option<Box<Schema>>,
}

/// A `params` definition: flat query-string properties.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParamsSchema {
    /// Properties that must be present.
    #[serde(default)]
    pub required: Vec<String>,
    /// Property schemas by name.
    #[serde(default)]
    pub properties: BTreeMap<String, Schema>,
}

/// An `object` schema. Properties not listed are allowed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ObjectSchema {
    /// Properties that must be present.
    #[serde(default)]
    pub required: Vec<String>,
    /// Properties that may be JSON null.
    #[serde(default)]
    pub nullable: Vec<String>,
    /// Property schemas by name.
    #[serde(default)]
    pub properties: BTreeMap<String, Schema>,
}

/// A `string` schema. Lengths count UTF-8 bytes; graphemes count extended grapheme clusters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StringSchema {
    /// A syntax the value must follow.
    #[serde(default)]
    pub format: Option<StringFormat>,
    /// Minimum length in UTF-8 bytes.
    #[serde(default)]
    pub min_length: Option<u64>,
    /// Maximum length in UTF-8 bytes.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Minimum length in grapheme clusters.
    #[serde(default)]
    pub min_graphemes: Option<u64>,
    /// Maximum length in grapheme clusters.
    #[serde(default)]
    pub max_graphemes: Option<u64>,
    /// A closed set of allowed values.
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    /// The only allowed value.
    #[serde(default, rename = "const")]
    pub const_value: Option<String>,
    /// Suggested values; an open set, so never enforced.
    #[serde(default)]
    pub known_values: Option<Vec<String>>,
    /// Default for absent values; documentation only here.
    #[serde(default)]
    pub default: Option<String>,
}

/// The `format` of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StringFormat {
    /// DID or handle.
    AtIdentifier,
    /// Strict AT-URI.
    AtUri,
    /// CID string.
    Cid,
    /// RFC 3339 datetime.
    Datetime,
    /// DID.
    Did,
    /// Handle.
    Handle,
    /// NSID.
    Nsid,
    /// TID.
    Tid,
    /// Record key.
    RecordKey,
    /// Generic URI.
    Uri,
    /// BCP-47 language tag.
    Language,
}

/// An `integer` schema.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IntegerSchema {
    /// Inclusive lower bound.
    #[serde(default)]
    pub minimum: Option<i64>,
    /// Inclusive upper bound.
    #[serde(default)]
    pub maximum: Option<i64>,
    /// A closed set of allowed values.
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<i64>>,
    /// The only allowed value.
    #[serde(default, rename = "const")]
    pub const_value: Option<i64>,
    /// Default for absent values; documentation only here.
    #[serde(default)]
    pub default: Option<i64>,
}

/// A `boolean` schema.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BooleanSchema {
    /// The only allowed value.
    #[serde(default, rename = "const")]
    pub const_value: Option<bool>,
    /// Default for absent values; documentation only here.
    #[serde(default)]
    pub default: Option<bool>,
}

/// A `bytes` schema; lengths count decoded bytes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BytesSchema {
    /// Minimum decoded length.
    #[serde(default)]
    pub min_length: Option<u64>,
    /// Maximum decoded length.
    #[serde(default)]
    pub max_length: Option<u64>,
}

/// A `blob` schema.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobSchema {
    /// Accepted MIME types; `type/*` and `*/*` are globs.
    #[serde(default)]
    pub accept: Option<Vec<String>>,
    /// Maximum size in bytes.
    #[serde(default)]
    pub max_size: Option<u64>,
}

/// An `array` schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArraySchema {
    /// Schema of every element.
    pub items: Box<Schema>,
    /// Minimum element count.
    #[serde(default)]
    pub min_length: Option<u64>,
    /// Maximum element count.
    #[serde(default)]
    pub max_length: Option<u64>,
}

/// A `ref` schema.
#[derive(Debug, Clone, Deserialize)]
pub struct RefSchema {
    /// `#local`, `nsid#def` or `nsid` (meaning `nsid#main`).
    #[serde(rename = "ref")]
    pub reference: String,
}

/// A `union` schema.
#[derive(Debug, Clone, Deserialize)]
pub struct UnionSchema {
    /// The allowed definitions, as references.
    pub refs: Vec<String>,
    /// Closed unions refuse a `$type` outside `refs`; open ones accept it unchecked.
    #[serde(default)]
    pub closed: bool,
}

/// Why a lexicon document was refused by [`crate::Catalog::add_document`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LexiconError {
    /// The JSON does not have the shape of a lexicon document.
    #[error("lexicon document {} does not parse", .id.as_deref().unwrap_or("without an id"))]
    Parse {
        /// The `id` field, if there was a string one.
        id: Option<String>,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The `lexicon` version is not 1.
    #[error("lexicon {id}: unsupported lexicon version {version}")]
    Version {
        /// Document NSID.
        id: String,
        /// The version found.
        version: u32,
    },
    /// The `id` is not an NSID.
    #[error("lexicon id {id:?} is not an nsid")]
    BadId {
        /// The id found.
        id: String,
        /// The NSID syntax error.
        #[source]
        source: SyntaxError,
    },
    /// A primary type (record, query, …) defined under a name other than `main`.
    #[error("lexicon {id}: {kind} definition {def:?} must be named main")]
    PrimaryNotMain {
        /// Document NSID.
        id: String,
        /// Definition name.
        def: String,
        /// Its type.
        kind: &'static str,
    },
    /// A `ref`, `union` or `unknown` as a named definition, which the language forbids.
    #[error("lexicon {id}: {kind} is not allowed as the definition {def:?}")]
    BadTopLevel {
        /// Document NSID.
        id: String,
        /// Definition name.
        def: String,
        /// Its type.
        kind: &'static str,
    },
    /// A record whose `record` is not an object schema.
    #[error("lexicon {id}: record definition must have an object schema")]
    RecordNotObject {
        /// Document NSID.
        id: String,
    },
    /// A record `key` that is not `tid`, `nsid`, `any` or `literal:<rkey>`.
    #[error("lexicon {id}: invalid record key type {key:?}")]
    BadKey {
        /// Document NSID.
        id: String,
        /// The key type found.
        key: String,
    },
    /// A second document with the same NSID.
    #[error("lexicon {id} is already in the catalog")]
    Duplicate {
        /// Document NSID.
        id: String,
    },
}

impl Document {
    /// Parses a document from JSON and checks its structure.
    pub fn from_json(value: serde_json::Value) -> Result<Document, LexiconError> {
        let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        let doc: Document =
            serde_json::from_value(value).map_err(|source| LexiconError::Parse { id, source })?;
        doc.check()?;
        Ok(doc)
    }

    fn check(&self) -> Result<(), LexiconError> {
        let id = &self.id;
        validate_nsid(id).map_err(|source| LexiconError::BadId {
            id: id.clone(),
            source,
        })?;
        if self.lexicon != 1 {
            return Err(LexiconError::Version {
                id: id.clone(),
                version: self.lexicon,
            });
        }
        for (name, def) in &self.defs {
            if def.is_primary() && name != "main" {
                return Err(LexiconError::PrimaryNotMain {
                    id: id.clone(),
                    def: name.clone(),
                    kind: def.type_name(),
                });
            }
            if matches!(def, Schema::Ref(_) | Schema::Union(_) | Schema::Unknown {}) {
                return Err(LexiconError::BadTopLevel {
                    id: id.clone(),
                    def: name.clone(),
                    kind: def.type_name(),
                });
            }
            if let Schema::Record(record) = def {
                if record.object().is_none() {
                    return Err(LexiconError::RecordNotObject { id: id.clone() });
                }
                if !is_valid_key_type(&record.key) {
                    return Err(LexiconError::BadKey {
                        id: id.clone(),
                        key: record.key.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The record schema, if `main` is a record definition.
    pub fn record(&self) -> Option<&RecordSchema> {
        match self.defs.get("main") {
            Some(Schema::Record(r)) => Some(r),
            _ => None,
        }
    }
}

fn is_valid_key_type(key: &str) -> bool {
    match key.strip_prefix("literal:") {
        Some(literal) => validate_record_key(literal).is_ok(),
        None => matches!(key, "tid" | "nsid" | "any"),
    }
}
