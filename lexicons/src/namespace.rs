//! plyr's record namespaces (`fm.plyr`, `fm.plyr.stg`, `fm.plyr.dev`) and the full acceptance
//! check for an incoming record: collection, record key, `$type`, lexicon, then app rules.

use serde_json::Value;

use crate::catalog::Catalog;
use crate::syntax::{self, AtUri, SyntaxError};
use crate::validate::{ValidationError, ValidationErrorKind};

/// Every lexicon shape lives under this prefix upstream; other namespaces reuse the shapes.
const UPSTREAM_PREFIX: &str = "fm.plyr";

/// The kinds of record plyr indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `<ns>.track`: an uploaded track.
    Track,
    /// `<ns>.like`: a like of a track.
    Like,
    /// `<ns>.comment`: a timed comment on a track.
    Comment,
    /// `<ns>.list`: an album, playlist or liked list.
    List,
    /// `<ns>.actor.profile`: an artist profile.
    Profile,
}

impl RecordKind {
    /// Every kind, in a fixed order.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Track,
        RecordKind::Like,
        RecordKind::Comment,
        RecordKind::List,
        RecordKind::Profile,
    ];

    /// The collection name after the namespace prefix.
    pub fn lexicon_suffix(self) -> &'static str {
        match self {
            RecordKind::Track => "track",
            RecordKind::Like => "like",
            RecordKind::Comment => "comment",
            RecordKind::List => "list",
            RecordKind::Profile => "actor.profile",
        }
    }

    /// The upstream lexicon NSID that defines this kind's shape, e.g. `fm.plyr.track`.
    pub fn lexicon_nsid(self) -> String {
        format!("{UPSTREAM_PREFIX}.{}", self.lexicon_suffix())
    }
}

/// A namespace prefix such as `fm.plyr` or `fm.plyr.stg`, with its collection names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
    /// Collection NSIDs in [`RecordKind::ALL`] order.
    collections: [String; 5],
}

impl Namespace {
    /// A namespace whose collections (`<prefix>.track`, …) are all valid NSIDs.
    pub fn new(prefix: &str) -> Result<Namespace, SyntaxError> {
        let collections = RecordKind::ALL.map(|k| format!("{prefix}.{}", k.lexicon_suffix()));
        for c in &collections {
            syntax::validate_nsid(c)?;
        }
        Ok(Namespace {
            prefix: prefix.to_owned(),
            collections,
        })
    }

    /// The prefix, e.g. `fm.plyr.stg`.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The collection NSID for a kind, e.g. `fm.plyr.stg.track`.
    pub fn collection(&self, kind: RecordKind) -> String {
        self.collection_str(kind).to_owned()
    }

    fn collection_str(&self, kind: RecordKind) -> &str {
        let i = RecordKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.collections[i]
    }

    /// The kind of one of our collections, by exact match: under `fm.plyr`,
    /// `fm.plyr.stg.track` is not ours.
    pub fn kind_of(&self, collection: &str) -> Option<RecordKind> {
        RecordKind::ALL
            .into_iter()
            .zip(&self.collections)
            .find_map(|(k, c)| (c == collection).then_some(k))
    }

    /// All five collection NSIDs (e.g. for a Jetstream `wantedCollections` filter).
    pub fn collections(&self) -> Vec<String> {
        self.collections.to_vec()
    }

    /// Accepts or rejects one record: the collection must be ours, the rkey valid for the
    /// lexicon's key type, `$type` equal to the collection, the body valid against the
    /// upstream lexicon, and plyr's app rules must hold.
    pub fn validate(
        &self,
        collection: &str,
        rkey: &str,
        record: &Value,
    ) -> Result<RecordKind, Rejection> {
        let Some(kind) = self.kind_of(collection) else {
            return Err(Rejection::NotOurCollection {
                collection: collection.to_owned(),
            });
        };
        let catalog = Catalog::plyr();
        let lexicon = kind.lexicon_nsid();
        let lexicon_err = |source| Rejection::Lexicon {
            collection: collection.to_owned(),
            rkey: rkey.to_owned(),
            source,
        };
        let Some(record_def) = catalog.get(&lexicon).and_then(|d| d.record()) else {
            return Err(lexicon_err(ValidationError {
                path: "record".to_owned(),
                kind: ValidationErrorKind::UnknownLexicon { nsid: lexicon },
            }));
        };
        check_rkey(&record_def.key, rkey).map_err(|reason| Rejection::BadRecordKey {
            collection: collection.to_owned(),
            rkey: rkey.to_owned(),
            reason,
        })?;
        let found = record.get("$type").and_then(Value::as_str);
        if !record.is_object() || found != Some(collection) {
            return Err(Rejection::TypeMismatch {
                collection: collection.to_owned(),
                found: found.map(str::to_owned),
            });
        }
        catalog
            .validate_record_body(&lexicon, record)
            .map_err(lexicon_err)?;
        self.app_rules(kind, record)
            .map_err(|rule| Rejection::AppRule {
                collection: collection.to_owned(),
                rkey: rkey.to_owned(),
                rule,
            })?;
        Ok(kind)
    }

    fn app_rules(&self, kind: RecordKind, record: &Value) -> Result<(), AppRule> {
        match kind {
            RecordKind::Track => {
                if record.get("audioUrl").is_none() && record.get("audioBlob").is_none() {
                    return Err(AppRule::NoAudio);
                }
                Ok(())
            }
            RecordKind::Like | RecordKind::Comment => {
                // The lexicon already required subject.uri to be a string.
                let uri = record
                    .get("subject")
                    .and_then(|s| s.get("uri"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.check_track_subject(uri)
            }
            RecordKind::List | RecordKind::Profile => Ok(()),
        }
    }

    fn check_track_subject(&self, uri: &str) -> Result<(), AppRule> {
        let Ok(parsed) = AtUri::parse(uri) else {
            return Err(AppRule::SubjectNotAtUri {
                uri: uri.to_owned(),
            });
        };
        if !parsed.authority_is_did() {
            return Err(AppRule::SubjectAuthorityNotDid {
                uri: uri.to_owned(),
            });
        }
        let track = self.collection_str(RecordKind::Track);
        if parsed.collection() != Some(track) || parsed.rkey().is_none() {
            return Err(AppRule::SubjectNotTrack {
                uri: uri.to_owned(),
                expected: track.to_owned(),
            });
        }
        Ok(())
    }
}

/// Checks a record key against a lexicon key type (`tid`, `nsid`, `any`, `literal:<v>`).
fn check_rkey(key_type: &str, rkey: &str) -> Result<(), &'static str> {
    syntax::validate_record_key(rkey).map_err(|e| e.reason)?;
    match key_type {
        "tid" => syntax::validate_tid(rkey).map_err(|_| "record key must be a tid"),
        "nsid" => syntax::validate_nsid(rkey).map_err(|_| "record key must be an nsid"),
        "any" => Ok(()),
        other => match other.strip_prefix("literal:") {
            Some(literal) if literal == rkey => Ok(()),
            Some(_) => Err("record key must be the lexicon's literal value"),
            // Document checks only admit the key types above.
            None => Err("lexicon has an unknown record key type"),
        },
    }
}

/// Why a record was not indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The collection is not one of this namespace's five. Expected for foreign traffic.
    #[error("collection {collection} is not in this namespace")]
    NotOurCollection {
        /// The collection seen.
        collection: String,
    },
    /// The record key is malformed or not of the lexicon's key type.
    #[error("{collection}: bad record key {rkey:?}: {reason}")]
    BadRecordKey {
        /// The collection.
        collection: String,
        /// The record key seen.
        rkey: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// The record is not an object or its `$type` is not the collection.
    #[error("{collection}: record $type is {found:?}")]
    TypeMismatch {
        /// The collection.
        collection: String,
        /// The `$type` found, if a string.
        found: Option<String>,
    },
    /// The record does not match the lexicon.
    #[error("{collection}/{rkey}: does not match the lexicon")]
    Lexicon {
        /// The collection.
        collection: String,
        /// The record key.
        rkey: String,
        /// Where and how it failed.
        #[source]
        source: ValidationError,
    },
    /// The record matches the lexicon but breaks one of plyr's rules.
    #[error("{collection}/{rkey}: breaks an app rule")]
    AppRule {
        /// The collection.
        collection: String,
        /// The record key.
        rkey: String,
        /// The rule broken.
        #[source]
        rule: AppRule,
    },
}

/// plyr's rules beyond the lexicon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppRule {
    /// A track with neither `audioUrl` nor `audioBlob` cannot be played.
    #[error("track has neither audioUrl nor audioBlob")]
    NoAudio,
    /// A like or comment subject that is not an AT-URI.
    #[error("subject {uri:?} is not an at-uri")]
    SubjectNotAtUri {
        /// The subject URI.
        uri: String,
    },
    /// A subject addressed by handle, which can change hands; strong refs must use DIDs.
    #[error("subject {uri:?} must name its repo by did")]
    SubjectAuthorityNotDid {
        /// The subject URI.
        uri: String,
    },
    /// A subject that is not a track record of this namespace.
    #[error("subject {uri:?} is not a {expected} record")]
    SubjectNotTrack {
        /// The subject URI.
        uri: String,
        /// This namespace's track collection.
        expected: String,
    },
}

/// A stable, bounded label for a [`Rejection`], for metrics and the skip counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// See [`Rejection::NotOurCollection`].
    NotOurCollection,
    /// See [`Rejection::BadRecordKey`].
    BadRecordKey,
    /// See [`Rejection::TypeMismatch`].
    TypeMismatch,
    /// See [`Rejection::Lexicon`].
    Lexicon,
    /// See [`Rejection::AppRule`].
    AppRule,
}

impl RejectionKind {
    /// The snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::NotOurCollection => "not_our_collection",
            RejectionKind::BadRecordKey => "bad_record_key",
            RejectionKind::TypeMismatch => "type_mismatch",
            RejectionKind::Lexicon => "lexicon",
            RejectionKind::AppRule => "app_rule",
        }
    }
}

impl std::fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Rejection {
    /// The bounded label for this rejection.
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::NotOurCollection { .. } => RejectionKind::NotOurCollection,
            Rejection::BadRecordKey { .. } => RejectionKind::BadRecordKey,
            Rejection::TypeMismatch { .. } => RejectionKind::TypeMismatch,
            Rejection::Lexicon { .. } => RejectionKind::Lexicon,
            Rejection::AppRule { .. } => RejectionKind::AppRule,
        }
    }
}
