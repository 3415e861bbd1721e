//! Typed rows extracted from a record that already passed lexicon validation: the columns each
//! fm.plyr table stores, plus the record JSON itself where the table keeps it.

use chrono::{DateTime, Utc};
use plyr_lexicons::RecordKind;
use plyr_lexicons::syntax::parse_datetime;
use serde_json::Value;

/// Why a validated record still cannot be stored. Its kind is the skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowError {
    /// A field the table needs is missing or has the wrong shape (the validator should have
    /// caught it; this keeps extraction total rather than trusting it).
    #[error("field `{field}` missing or malformed")]
    Field {
        /// The record field.
        field: &'static str,
    },
    /// A string holds U+0000, which Postgres text and jsonb cannot store.
    #[error("record contains a NUL character")]
    Nul,
    /// A number does not fit the column.
    #[error("field `{field}` out of range")]
    Range {
        /// The record field.
        field: &'static str,
    },
}

impl RowError {
    /// The skip-counter label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            RowError::Field { .. } | RowError::Range { .. } => "unstorable_record",
            RowError::Nul => "nul_character",
        }
    }
}

/// The typed columns of one record, by collection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Row {
    /// `fm.plyr.track`.
    Track(TrackRow),
    /// `fm.plyr.like`.
    Like(LikeRow),
    /// `fm.plyr.comment`.
    Comment(CommentRow),
    /// `fm.plyr.list`.
    List(ListRow),
    /// `fm.plyr.actor.profile`.
    Profile(ProfileRow),
    /// `app.bsky.actor.profile` (rkey `self`) of an actor the view already holds.
    BskyProfile(BskyProfileRow),
}

/// Columns of `track`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrackRow {
    pub title: String,
    pub artist: String,
    pub album: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The record as JSON text, stored as jsonb.
    pub record: String,
}

/// Columns of `track_like`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikeRow {
    pub subject_uri: String,
    pub subject_cid: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Columns of `comment`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommentRow {
    pub subject_uri: String,
    pub subject_cid: Option<String>,
    pub body: String,
    pub timestamp_ms: i64,
    pub created_at: DateTime<Utc>,
    pub record: String,
}

/// Columns of `list`, and its items in record order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListRow {
    pub name: Option<String>,
    pub list_type: Option<String>,
    pub items: Vec<ListItem>,
    pub created_at: DateTime<Utc>,
    pub record: String,
}

/// One `list_item` (its position is its index in [`ListRow::items`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListItem {
    pub subject_uri: String,
    pub subject_cid: Option<String>,
}

/// Columns of `profile`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProfileRow {
    pub bio: Option<String>,
    pub avatar: Option<String>,
    pub created_at: DateTime<Utc>,
    pub record: String,
}

/// Columns of `bsky_profile`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BskyProfileRow {
    pub display_name: Option<String>,
    /// The avatar blob's CID.
    pub avatar_cid: Option<String>,
}

/// Longest `displayName` kept, in graphemes (the app.bsky lexicon's bound).
const MAX_DISPLAY_NAME_GRAPHEMES: usize = 640;

/// Why an `app.bsky.actor.profile` record is not stored (we hold no lexicon for it, so only
/// the fields we read are checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BskyProfileError {
    /// Not a JSON object, or a `$type` naming another collection.
    #[error("not an app.bsky.actor.profile object")]
    NotProfile,
    /// `displayName` is not a string, holds NUL, or is over 640 graphemes.
    #[error("bad displayName")]
    DisplayName,
    /// `avatar` is not a blob with a valid CID.
    #[error("bad avatar blob")]
    Avatar,
}

impl Row {
    /// Extracts the row of an `app.bsky.actor.profile` record: an object whose `displayName`,
    /// if present, is a string of at most 640 graphemes and whose `avatar`, if present, is a
    /// blob; everything else in it is ignored.
    pub(crate) fn bsky_profile(record: &Value) -> Result<Row, BskyProfileError> {
        use unicode_segmentation::UnicodeSegmentation;
        let object = record.as_object().ok_or(BskyProfileError::NotProfile)?;
        match object.get("$type") {
            None => {}
            Some(Value::String(t)) if t == crate::fold::BSKY_PROFILE => {}
            Some(_) => return Err(BskyProfileError::NotProfile),
        }
        let display_name = match object.get("displayName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name))
                if !name.contains('\0')
                    && name
                        .graphemes(true)
                        .nth(MAX_DISPLAY_NAME_GRAPHEMES)
                        .is_none() =>
            {
                Some(name.clone())
            }
            Some(_) => return Err(BskyProfileError::DisplayName),
        };
        let avatar_cid = match object.get("avatar") {
            None | Some(Value::Null) => None,
            Some(blob) => Some(blob_cid(blob).ok_or(BskyProfileError::Avatar)?),
        };
        Ok(Row::BskyProfile(BskyProfileRow {
            display_name,
            avatar_cid,
        }))
    }

    /// Extracts the row of a record of the given kind.
    pub(crate) fn extract(kind: RecordKind, record: &Value) -> Result<Row, RowError> {
        if has_nul(record) {
            return Err(RowError::Nul);
        }
        let created_at = datetime(record, "createdAt")?;
        let row = match kind {
            RecordKind::Track => Row::Track(TrackRow {
                title: string(record, "title")?,
                artist: string(record, "artist")?,
                album: optional_string(record, "album")?,
                created_at,
                record: json_text(record)?,
            }),
            RecordKind::Like => {
                let (subject_uri, subject_cid) = strong_ref(record.get("subject"))?;
                Row::Like(LikeRow {
                    subject_uri,
                    subject_cid,
                    created_at,
                })
            }
            RecordKind::Comment => {
                let (subject_uri, subject_cid) = strong_ref(record.get("subject"))?;
                let timestamp_ms = record
                    .get("timestampMs")
                    .ok_or(RowError::Field {
                        field: "timestampMs",
                    })?
                    .as_i64()
                    .ok_or(RowError::Range {
                        field: "timestampMs",
                    })?;
                Row::Comment(CommentRow {
                    subject_uri,
                    subject_cid,
                    body: string(record, "text")?,
                    timestamp_ms,
                    created_at,
                    record: json_text(record)?,
                })
            }
            RecordKind::List => {
                let items = record
                    .get("items")
                    .and_then(Value::as_array)
                    .ok_or(RowError::Field { field: "items" })?
                    .iter()
                    .map(|item| {
                        let (subject_uri, subject_cid) = strong_ref(item.get("subject"))?;
                        Ok(ListItem {
                            subject_uri,
                            subject_cid,
                        })
                    })
                    .collect::<Result<Vec<_>, RowError>>()?;
                Row::List(ListRow {
                    name: optional_string(record, "name")?,
                    list_type: optional_string(record, "listType")?,
                    items,
                    created_at,
                    record: json_text(record)?,
                })
            }
            RecordKind::Profile => Row::Profile(ProfileRow {
                bio: optional_string(record, "bio")?,
                avatar: optional_string(record, "avatar")?,
                created_at,
                record: json_text(record)?,
            }),
        };
        Ok(row)
    }
}

/// The CID of a blob (`{"$type":"blob","ref":{"$link":cid},"mimeType",..,"size",..}`).
fn blob_cid(blob: &Value) -> Option<String> {
    if blob.get("$type").and_then(Value::as_str) != Some("blob") {
        return None;
    }
    blob.get("mimeType").and_then(Value::as_str)?;
    blob.get("size").and_then(Value::as_u64)?;
    let cid = blob.get("ref")?.get("$link")?.as_str()?;
    plyr_lexicons::syntax::validate_cid(cid).ok()?;
    Some(cid.to_owned())
}

fn string(record: &Value, field: &'static str) -> Result<String, RowError> {
    optional_string(record, field)?.ok_or(RowError::Field { field })
}

fn optional_string(record: &Value, field: &'static str) -> Result<Option<String>, RowError> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RowError::Field { field }),
    }
}

fn datetime(record: &Value, field: &'static str) -> Result<DateTime<Utc>, RowError> {
    let text = string(record, field)?;
    parse_datetime(&text).map_err(|_| RowError::Field { field })
}

/// A `com.atproto.repo.strongRef`: `(uri, cid)`.
fn strong_ref(subject: Option<&Value>) -> Result<(String, Option<String>), RowError> {
    let subject = subject.ok_or(RowError::Field { field: "subject" })?;
    let uri = string(subject, "uri").map_err(|_| RowError::Field {
        field: "subject.uri",
    })?;
    let cid = optional_string(subject, "cid").map_err(|_| RowError::Field {
        field: "subject.cid",
    })?;
    Ok((uri, cid))
}

fn json_text(record: &Value) -> Result<String, RowError> {
    serde_json::to_string(record).map_err(|_| RowError::Field { field: "$" })
}

/// Whether any string or key in the value holds U+0000.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        parse_datetime(s).expect("test datetimes are valid")
    }

    #[test]
    fn extracts_each_kind() {
        let subject = json!({"uri": "at://did:plc:a/fm.plyr.track/3lbp5n4wxqk2c", "cid": "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"});
        let track = json!({"$type":"fm.plyr.track","title":"T","artist":"A","album":"Al","fileType":"mp3","createdAt":"2024-01-01T00:00:00Z"});
        let like =
            json!({"$type":"fm.plyr.like","subject": subject,"createdAt":"2024-01-02T00:00:00Z"});
        let comment = json!({"$type":"fm.plyr.comment","subject": subject,"text":"nice","timestampMs": 61000,"createdAt":"2024-01-03T00:00:00Z"});
        let list = json!({"$type":"fm.plyr.list","name":"L","listType":"album","items":[{"subject": subject}],"createdAt":"2024-01-04T00:00:00Z"});
        let profile =
            json!({"$type":"fm.plyr.actor.profile","bio":"hi","createdAt":"2024-01-05T00:00:00Z"});
        let uri = "at://did:plc:a/fm.plyr.track/3lbp5n4wxqk2c".to_owned();
        let cid = Some("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".to_owned());
        let cases = [
            (
                RecordKind::Track,
                &track,
                Row::Track(TrackRow {
                    title: "T".into(),
                    artist: "A".into(),
                    album: Some("Al".into()),
                    created_at: at("2024-01-01T00:00:00Z"),
                    record: track.to_string(),
                }),
            ),
            (
                RecordKind::Like,
                &like,
                Row::Like(LikeRow {
                    subject_uri: uri.clone(),
                    subject_cid: cid.clone(),
                    created_at: at("2024-01-02T00:00:00Z"),
                }),
            ),
            (
                RecordKind::Comment,
                &comment,
                Row::Comment(CommentRow {
                    subject_uri: uri.clone(),
                    subject_cid: cid.clone(),
                    body: "nice".into(),
                    timestamp_ms: 61000,
                    created_at: at("2024-01-03T00:00:00Z"),
                    record: comment.to_string(),
                }),
            ),
            (
                RecordKind::List,
                &list,
                Row::List(ListRow {
                    name: Some("L".into()),
                    list_type: Some("album".into()),
                    items: vec![ListItem {
                        subject_uri: uri.clone(),
                        subject_cid: cid.clone(),
                    }],
                    created_at: at("2024-01-04T00:00:00Z"),
                    record: list.to_string(),
                }),
            ),
            (
                RecordKind::Profile,
                &profile,
                Row::Profile(ProfileRow {
                    bio: Some("hi".into()),
                    avatar: None,
                    created_at: at("2024-01-05T00:00:00Z"),
                    record: profile.to_string(),
                }),
            ),
        ];
        for (kind, record, want) in cases {
            assert_eq!(Row::extract(kind, record), Ok(want), "{kind:?}");
        }
    }

    #[test]
    fn unstorable_records_are_refused() {
        let cases = [
            (
                RecordKind::Track,
                json!({"title":"a\u{0}b","artist":"A","createdAt":"2024-01-01T00:00:00Z"}),
                "nul_character",
            ),
            (
                RecordKind::Profile,
                json!({"createdAt":"2024-01-01T00:00:00Z","x":{"k\u{0}":1}}),
                "nul_character",
            ),
            (
                RecordKind::Track,
                json!({"artist":"A","createdAt":"2024-01-01T00:00:00Z"}),
                "unstorable_record",
            ),
            (
                RecordKind::Comment,
                json!({"subject":{"uri":"at://did:plc:a/fm.plyr.track/x"},"text":"t","timestampMs":18446744073709551615u64,"createdAt":"2024-01-01T00:00:00Z"}),
                "unstorable_record",
            ),
            (
                RecordKind::Like,
                json!({"createdAt":"not a date","subject":{"uri":"at://did:plc:a/fm.plyr.track/x"}}),
                "unstorable_record",
            ),
        ];
        for (kind, record, reason) in cases {
            assert_eq!(
                Row::extract(kind, &record).map_err(|e| e.reason()),
                Err(reason),
                "{record}"
            );
        }
    }
}
