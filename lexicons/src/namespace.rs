//! plyr's record namespaces (`fm.plyr`, `fm.plyr.stg`, `fm.plyr.dev`) and the full acceptance
//! check for an incoming record: collection, record key, `$type`, lexicon, then app rules.

use serde_json::Value;

use crate::catalog::Catalog;
use crate::syntax::{self, AtUri, SyntaxError};
use crate::validate::{ValidationError, ValidationErrorKind};

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
    pub fn lexicon_nsid(self) -> &'static str {
        match self {
            RecordKind::Track => "fm.plyr.track",
            RecordKind::Like => "fm.plyr.like",
            RecordKind::Comment => "fm.plyr.comment",
            RecordKind::List => "fm.plyr.list",
            RecordKind::Profile => "fm.plyr.actor.profile",
        }
    }

    /// Position in [`RecordKind::ALL`].
    fn index(self) -> usize {
        match self {
            RecordKind::Track => 0,
            RecordKind::Like => 1,
            RecordKind::Comment => 2,
            RecordKind::List => 3,
            RecordKind::Profile => 4,
        }
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
        &self.collections[kind.index()]
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
            source: Box::new(source),
        };
        let Some(record_def) = catalog.get(lexicon).and_then(|d| d.record()) else {
            return Err(lexicon_err(ValidationError {
                path: "record".to_owned(),
                kind: ValidationErrorKind::UnknownLexicon {
                    nsid: lexicon.to_owned(),
                },
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
            .validate_record_body(lexicon, record)
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
        /// Where and how it failed (boxed: it is large and rejections are common).
        #[source]
        source: Box<ValidationError>,
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

#[cfg(test)]
mod tests {
    use std::mem::discriminant;

    use serde_json::{Value, json};

    use super::*;

    const TID: &str = "3jzfcijpj2z2a";
    const BLOB_CID: &str = "bafkreigynhnjmf4r5cmlti6wff2mpkqia3a6sk225wcjcikloyph2mikiq";
    const RECORD_CID: &str = "bafyreidbw3bgehdrabnlgsdxvjmppgago5qw3lyeqomvqn7clpr3qjibma";
    const ARTIST: &str = "did:plc:7iza6de2dwap2sbkpav7c6c6";

    fn track(ns: &str) -> Value {
        json!({
            "$type": format!("{ns}.track"),
            "title": "Night Drive",
            "artist": "Ada Lune",
            "fileType": "mp3",
            "album": "Roads",
            "duration": 245,
            "imageUrl": "https://cdn.plyr.fm/images/night-drive.jpg",
            "createdAt": "2026-08-20T12:34:56.789Z",
            "description": "Recorded live in one take.",
            "features": [
                {"did": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "handle": "bob.bsky.social", "displayName": "Bob"},
                {"did": "did:web:carol.example.com"}
            ],
            "labels": {
                "$type": "com.atproto.label.defs#selfLabels",
                "values": [{"val": "nudity"}]
            },
            "supportGate": {"type": "any"},
            "audioBlob": {
                "$type": "blob",
                "ref": {"$link": BLOB_CID},
                "mimeType": "audio/mpeg",
                "size": 5_242_880
            }
        })
    }

    fn subject(uri: &str) -> Value {
        json!({"uri": uri, "cid": RECORD_CID})
    }

    fn like(ns: &str, uri: &str) -> Value {
        json!({"$type": format!("{ns}.like"), "subject": subject(uri), "createdAt": "2026-08-20T12:00:00Z"})
    }

    fn comment(text: &str, timestamp_ms: i64) -> Value {
        json!({
            "$type": "fm.plyr.comment",
            "subject": subject(&format!("at://{ARTIST}/fm.plyr.track/{TID}")),
            "text": text,
            "timestampMs": timestamp_ms,
            "createdAt": "2026-08-20T12:00:00Z"
        })
    }

    fn list(name: &str, items: Value) -> Value {
        json!({
            "$type": "fm.plyr.list",
            "name": name,
            "listType": "album",
            "items": items,
            "createdAt": "2026-08-20T12:00:00Z"
        })
    }

    fn profile() -> Value {
        json!({
            "$type": "fm.plyr.actor.profile",
            "bio": "Synths and field recordings.",
            "avatar": "https://cdn.plyr.fm/avatars/ada.png",
            "createdAt": "2026-08-20T12:00:00Z"
        })
    }

    /// `record` with the field at JSON pointer `at` replaced, or removed when `new` is None.
    fn edit(mut record: Value, at: &str, new: Option<Value>) -> Value {
        let (parent, key) = at.rsplit_once('/').unwrap_or(("", at));
        if let Some(Value::Object(map)) = record.pointer_mut(parent) {
            match new {
                Some(v) => map.insert(key.to_owned(), v),
                None => map.remove(key),
            };
        }
        record
    }

    enum Expect {
        Accept(RecordKind),
        Reject(RejectionKind),
        /// A lexicon failure at this path, of this kind.
        Lexicon(&'static str, ValidationErrorKind),
        App(AppRule),
    }

    #[test]
    fn plyr_records() {
        use Expect::*;
        use ValidationErrorKind as V;
        let track_uri = format!("at://{ARTIST}/fm.plyr.track/{TID}");
        let too_long = |unit| V::TooLong {
            unit,
            max: 0,
            actual: 0,
        };
        let too_short = |unit| V::TooShort {
            unit,
            min: 0,
            actual: 0,
        };
        let format = V::Format {
            format: "",
            source: SyntaxError::new(syntax::SyntaxKind::Did, ""),
        };
        let app_uri = String::new();
        let eleven_features: Vec<Value> = (0..11).map(|_| json!({"did": ARTIST})).collect();
        let eleven_labels: Vec<Value> = (0..11).map(|i| json!({"val": format!("l{i}")})).collect();
        let blob = |mime: &str, size: u64| json!({"$type": "blob", "ref": {"$link": BLOB_CID}, "mimeType": mime, "size": size});

        let cases: Vec<(&str, &str, &str, &str, Value, Expect)> = vec![
            (
                "valid track",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                track("fm.plyr"),
                Accept(RecordKind::Track),
            ),
            (
                "track with audioUrl only",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    edit(track("fm.plyr"), "/audioBlob", None),
                    "/audioUrl",
                    Some(json!("https://cdn.plyr.fm/audio/night-drive.mp3")),
                ),
                Accept(RecordKind::Track),
            ),
            (
                "legacy blob form",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/audioBlob",
                    Some(json!({"cid": BLOB_CID, "mimeType": "audio/flac"})),
                ),
                Accept(RecordKind::Track),
            ),
            (
                "missing title",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/title", None),
                Lexicon("record.title", V::Missing),
            ),
            (
                "title too long",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/title", Some(json!("x".repeat(257)))),
                Lexicon("record.title", too_long("utf-8 bytes")),
            ),
            (
                "title empty",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/title", Some(json!(""))),
                Lexicon("record.title", too_short("utf-8 bytes")),
            ),
            (
                "bad datetime",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/createdAt",
                    Some(json!("2026-13-01T00:00:00Z")),
                ),
                Lexicon("record.createdAt", format.clone()),
            ),
            (
                "datetime without timezone",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/createdAt",
                    Some(json!("2026-08-20T12:34:56")),
                ),
                Lexicon("record.createdAt", format.clone()),
            ),
            (
                "more than 10 features",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/features", Some(json!(eleven_features))),
                Lexicon("record.features", too_long("items")),
            ),
            (
                "bad featured did",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/features/1/did",
                    Some(json!("carol.example.com")),
                ),
                Lexicon("record.features[1].did", format.clone()),
            ),
            (
                "audio blob that is an image",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/audioBlob",
                    Some(blob("image/png", 1024)),
                ),
                Lexicon(
                    "record.audioBlob",
                    V::BlobMimeType {
                        mime_type: app_uri.clone(),
                    },
                ),
            ),
            (
                "audio blob over 100 MiB",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/audioBlob",
                    Some(blob("audio/wav", 104_857_601)),
                ),
                Lexicon("record.audioBlob", V::BlobTooLarge { max: 0, size: 0 }),
            ),
            (
                "duration as a float",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/duration", Some(json!(245.5))),
                Lexicon("record.duration", V::WrongType { expected: "" }),
            ),
            (
                "more than 10 self labels",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(
                    track("fm.plyr"),
                    "/labels/values",
                    Some(json!(eleven_labels)),
                ),
                Lexicon("record.labels.values", too_long("items")),
            ),
            (
                "float in a field the lexicon does not name",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/bpm", Some(json!(120.5))),
                Lexicon("record.bpm", V::DataModel { reason: "" }),
            ),
            (
                "no audio",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/audioBlob", None),
                App(AppRule::NoAudio),
            ),
            (
                "$type of another namespace",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                track("fm.plyr.stg"),
                Reject(RejectionKind::TypeMismatch),
            ),
            (
                "$type missing",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                edit(track("fm.plyr"), "/$type", None),
                Reject(RejectionKind::TypeMismatch),
            ),
            (
                "record not an object",
                "fm.plyr",
                "fm.plyr.track",
                TID,
                json!(["fm.plyr.track"]),
                Reject(RejectionKind::TypeMismatch),
            ),
            (
                "stg track under stg",
                "fm.plyr.stg",
                "fm.plyr.stg.track",
                TID,
                track("fm.plyr.stg"),
                Accept(RecordKind::Track),
            ),
            (
                "stg track under prod",
                "fm.plyr",
                "fm.plyr.stg.track",
                TID,
                track("fm.plyr.stg"),
                Reject(RejectionKind::NotOurCollection),
            ),
            (
                "bsky post",
                "fm.plyr",
                "app.bsky.feed.post",
                TID,
                json!({"$type": "app.bsky.feed.post"}),
                Reject(RejectionKind::NotOurCollection),
            ),
            (
                "track rkey not a tid",
                "fm.plyr",
                "fm.plyr.track",
                "self",
                track("fm.plyr"),
                Reject(RejectionKind::BadRecordKey),
            ),
            (
                "rkey syntax",
                "fm.plyr",
                "fm.plyr.track",
                "..",
                track("fm.plyr"),
                Reject(RejectionKind::BadRecordKey),
            ),
            (
                "profile at self",
                "fm.plyr",
                "fm.plyr.actor.profile",
                "self",
                profile(),
                Accept(RecordKind::Profile),
            ),
            (
                "profile rkey not self",
                "fm.plyr",
                "fm.plyr.actor.profile",
                TID,
                profile(),
                Reject(RejectionKind::BadRecordKey),
            ),
            (
                "profile bio over 256 graphemes",
                "fm.plyr",
                "fm.plyr.actor.profile",
                "self",
                edit(profile(), "/bio", Some(json!("é".repeat(257)))),
                Lexicon("record.bio", too_long("graphemes")),
            ),
            (
                "valid list",
                "fm.plyr",
                "fm.plyr.list",
                TID,
                list("Summer 2026", json!([{"subject": subject(&track_uri)}])),
                Accept(RecordKind::List),
            ),
            (
                "list name over 64 graphemes",
                "fm.plyr",
                "fm.plyr.list",
                TID,
                list(&"a".repeat(65), json!([])),
                Lexicon("record.name", too_long("graphemes")),
            ),
            (
                "list item without subject",
                "fm.plyr",
                "fm.plyr.list",
                TID,
                list("Mix", json!([{"subject": subject(&track_uri)}, {}])),
                Lexicon("record.items[1].subject", V::Missing),
            ),
            (
                "valid like",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", &track_uri),
                Accept(RecordKind::Like),
            ),
            (
                "like of a list",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", &format!("at://{ARTIST}/fm.plyr.list/{TID}")),
                App(AppRule::SubjectNotTrack {
                    uri: app_uri.clone(),
                    expected: app_uri.clone(),
                }),
            ),
            (
                "like of a stg track from prod",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", &format!("at://{ARTIST}/fm.plyr.stg.track/{TID}")),
                App(AppRule::SubjectNotTrack {
                    uri: app_uri.clone(),
                    expected: app_uri.clone(),
                }),
            ),
            (
                "like of a collection, not a record",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", &format!("at://{ARTIST}/fm.plyr.track")),
                App(AppRule::SubjectNotTrack {
                    uri: app_uri.clone(),
                    expected: app_uri.clone(),
                }),
            ),
            (
                "like subject not an at-uri",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", "https://plyr.fm/track/42"),
                Lexicon("record.subject.uri", format.clone()),
            ),
            (
                "like subject by handle",
                "fm.plyr",
                "fm.plyr.like",
                TID,
                like("fm.plyr", &format!("at://ada.plyr.fm/fm.plyr.track/{TID}")),
                App(AppRule::SubjectAuthorityNotDid {
                    uri: app_uri.clone(),
                }),
            ),
            (
                "like in stg of a stg track",
                "fm.plyr.stg",
                "fm.plyr.stg.like",
                TID,
                like(
                    "fm.plyr.stg",
                    &format!("at://{ARTIST}/fm.plyr.stg.track/{TID}"),
                ),
                Accept(RecordKind::Like),
            ),
            (
                "valid comment",
                "fm.plyr",
                "fm.plyr.comment",
                TID,
                comment("that drop at 1:02", 62_000),
                Accept(RecordKind::Comment),
            ),
            (
                "comment timestamp negative",
                "fm.plyr",
                "fm.plyr.comment",
                TID,
                comment("early", -1),
                Lexicon(
                    "record.timestampMs",
                    V::BelowMinimum {
                        minimum: 0,
                        actual: 0,
                    },
                ),
            ),
            (
                "comment text empty",
                "fm.plyr",
                "fm.plyr.comment",
                TID,
                comment("", 0),
                Lexicon("record.text", too_short("utf-8 bytes")),
            ),
        ];

        for (name, prefix, collection, rkey, record, expect) in cases {
            let ns = Namespace::new(prefix);
            let Ok(ns) = ns else {
                panic!("{name}: bad namespace {prefix}: {ns:?}");
            };
            let got = ns.validate(collection, rkey, &record);
            match (expect, &got) {
                (Accept(kind), Ok(k)) => assert_eq!(*k, kind, "{name}"),
                (Reject(kind), Err(r)) => assert_eq!(r.kind(), kind, "{name}: {r}"),
                (Lexicon(path, want), Err(Rejection::Lexicon { source, .. })) => {
                    assert_eq!(source.path, path, "{name}: {source}");
                    assert_eq!(
                        discriminant(&source.kind),
                        discriminant(&want),
                        "{name}: {source}"
                    );
                    if let (
                        V::TooLong { unit, .. } | V::TooShort { unit, .. },
                        V::TooLong { unit: w, .. } | V::TooShort { unit: w, .. },
                    ) = (&source.kind, &want)
                    {
                        assert_eq!(unit, w, "{name}: {source}");
                    }
                }
                (App(want), Err(Rejection::AppRule { rule, .. })) => {
                    assert_eq!(discriminant(rule), discriminant(&want), "{name}: {rule}");
                }
                (_, got) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn namespace_names() {
        let cases = [
            ("fm.plyr", RecordKind::Track, "fm.plyr.track"),
            (
                "fm.plyr.stg",
                RecordKind::Profile,
                "fm.plyr.stg.actor.profile",
            ),
            ("fm.plyr.dev", RecordKind::Like, "fm.plyr.dev.like"),
        ];
        for (prefix, kind, collection) in cases {
            let Ok(ns) = Namespace::new(prefix) else {
                panic!("{prefix} should be a namespace");
            };
            assert_eq!(ns.as_str(), prefix);
            assert_eq!(ns.collection(kind), collection);
            assert_eq!(ns.kind_of(collection), Some(kind));
            assert_eq!(ns.collections().len(), 5);
            assert!(ns.collections().contains(&collection.to_owned()));
        }
        for bad in ["", "fm", "fm..plyr", "-fm.plyr", "fm.plyr."] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kind_of_is_exact() {
        let Ok(ns) = Namespace::new("fm.plyr") else {
            panic!("fm.plyr should be a namespace");
        };
        for collection in [
            "fm.plyr.stg.track",
            "fm.plyr.Track",
            "fm.plyr.track.x",
            "fm.plyr.profile",
        ] {
            assert_eq!(ns.kind_of(collection), None, "{collection}");
        }
    }

    #[test]
    fn rejection_labels_are_stable() {
        let cases = [
            (RejectionKind::NotOurCollection, "not_our_collection"),
            (RejectionKind::BadRecordKey, "bad_record_key"),
            (RejectionKind::TypeMismatch, "type_mismatch"),
            (RejectionKind::Lexicon, "lexicon"),
            (RejectionKind::AppRule, "app_rule"),
        ];
        for (kind, label) in cases {
            assert_eq!(kind.as_str(), label);
            assert_eq!(kind.to_string(), label);
        }
    }

    #[test]
    fn suffixes() {
        let got: Vec<_> = RecordKind::ALL.map(RecordKind::lexicon_nsid).to_vec();
        for (i, k) in RecordKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(format!("fm.plyr.{}", k.lexicon_suffix()), k.lexicon_nsid());
        }
        assert_eq!(
            got,
            [
                "fm.plyr.track",
                "fm.plyr.like",
                "fm.plyr.comment",
                "fm.plyr.list",
                "fm.plyr.actor.profile"
            ]
        );
    }
}
