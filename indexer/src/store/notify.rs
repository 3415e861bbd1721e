//! Tells readers what a committed batch changed: `pg_notify`s on [`CHANNEL`] inside the
//! batch's transaction (Postgres delivers them at commit, or never), so the appview can drop
//! its cached views without depending on this crate. Each payload is the contract:
//! `{"profiles":[did..],"authors":[did..],"tracks":[uri..],"listed":[uri..],"lists":[uri..],
//! "newest":time}`,
//! or the bare word `changed` when the batch touched too much to list (readers then drop
//! everything). A change set larger than one payload is split over several notifies: a batch at
//! full ingest speed names thousands of tracks, and clearing every reader's cache for each would
//! leave the cache empty exactly when Postgres is busiest. `newest` (absent when no track was
//! written) bounds where the written tracks sort, so a cached feed page whose last row sorts
//! after it keeps its place: catching up on a backlog writes old tracks by the thousand, and none
//! of them can enter the first page of the latest feed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use plyr_lexicons::RecordKind;
use serde::Serialize;
use sqlx::PgConnection;

use super::StoreError;
use crate::fold::{Kind, Plan, Segment};
use crate::record::Row;

/// The channel the appview listens on.
pub(crate) const CHANNEL: &str = "plyr_view_changed";

/// Postgres refuses payloads of 8000 bytes or more; change sets are split below this.
const MAX_PAYLOAD: usize = 7900;

/// Past this many payloads (about 2 MB) one batch sends [`EVERYTHING`] instead.
const MAX_NOTIFIES: usize = 256;

/// The payload of a batch whose change set does not fit.
pub(crate) const EVERYTHING: &str = "changed";

/// What one batch changed, as readers cache it. A like or comment names its subject track
/// and the track's author.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Actors whose profile view changed: counts (any record they wrote or deleted), handle,
    /// status.
    pub profiles: BTreeSet<String>,
    /// Actors whose every view changed (handle, avatar, status): their tracks show them.
    pub authors: BTreeSet<String>,
    /// Tracks whose view changed: written, deleted, or liked or commented on.
    pub tracks: BTreeSet<String>,
    /// Tracks written or deleted (a subset of `tracks`): only these may enter, leave or move
    /// in a feed, so readers keep their cached feed pages when a batch only liked tracks.
    pub listed: BTreeSet<String>,
    /// Lists (albums, playlists) written or deleted: with `listed` and `authors`, all that can
    /// change a search's hits (names and their owners), so readers keep cached searches
    /// through likes and comments.
    pub lists: BTreeSet<String>,
    /// The latest `createdAt` of the tracks written: none sorts after it in a feed, whose
    /// position is `least(created_at, indexed_at)`. Sent in every payload of the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<DateTime<Utc>>,
    /// Too much changed to list: an account's status (its likes and comments count again, or
    /// stop counting, on other actors' tracks) or a whole repo's snapshot.
    #[serde(skip)]
    pub everything: bool,
}

impl Changes {
    /// The change set of `plan`, except the subjects of deleted likes and comments (the
    /// plan does not carry them: see [`Changes::add_deleted_subjects`]).
    pub(crate) fn of(plan: &Plan) -> Changes {
        let mut changes = Changes::default();
        for segment in &plan.segments {
            match segment {
                Segment::Commits(ops) => {
                    for op in ops {
                        changes.profiles.insert(op.did.clone());
                        match op.write.as_ref().map(|w| &w.row) {
                            Some(Row::Like(like)) => changes.subject(&like.subject_uri),
                            Some(Row::Comment(comment)) => changes.subject(&comment.subject_uri),
                            Some(Row::Profile(_) | Row::BskyProfile(_)) => {
                                changes.authors.insert(op.did.clone());
                            }
                            Some(Row::Track(track)) => {
                                changes.tracks.insert(op.uri.clone());
                                changes.listed.insert(op.uri.clone());
                                changes.newest = changes.newest.max(Some(track.created_at));
                            }
                            Some(Row::List(_)) => {
                                changes.lists.insert(op.uri.clone());
                            }
                            // The display name and avatar show on every view of the actor.
                            None if op.kind == Kind::BskyProfile => {
                                changes.authors.insert(op.did.clone());
                            }
                            // A delete: a track's URI is its view; a like's or comment's
                            // subject is looked up before the row goes.
                            None => {
                                changes.tracks.insert(op.uri.clone());
                                match op.kind {
                                    Kind::Record(RecordKind::Track) => {
                                        changes.listed.insert(op.uri.clone());
                                    }
                                    Kind::Record(RecordKind::List) => {
                                        changes.lists.insert(op.uri.clone());
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                Segment::Accounts(accounts) => {
                    changes.everything |= !accounts.is_empty();
                }
            }
        }
        for identity in &plan.identities {
            changes.profiles.insert(identity.did.clone());
            changes.authors.insert(identity.did.clone());
        }
        changes
    }

    /// Adds the tracks that the plan's deletes of likes and comments uncount. Runs before the
    /// plan is applied, while the rows still name their subjects.
    pub(crate) async fn add_deleted_subjects(
        &mut self,
        tx: &mut PgConnection,
        plan: &Plan,
    ) -> Result<(), StoreError> {
        let deleted: Vec<&str> = plan
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Commits(ops) => Some(ops),
                Segment::Accounts(_) => None,
            })
            .flatten()
            .filter(|op| op.write.is_none())
            .map(|op| op.uri.as_str())
            .collect();
        if deleted.is_empty() {
            return Ok(());
        }
        let subjects: Vec<String> = sqlx::query_scalar(
            "select subject_uri from track_like where uri = any($1::text[])
             union select subject_uri from comment where uri = any($1::text[])",
        )
        .bind(&deleted)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("reading the subjects of deleted records"))?;
        for subject in &subjects {
            self.subject(subject);
        }
        Ok(())
    }

    /// A like or comment of `uri` changed: the track's counts, and its author's counts of
    /// what they received.
    fn subject(&mut self, uri: &str) {
        if let Some(did) = uri
            .strip_prefix("at://")
            .and_then(|rest| rest.split('/').next())
            .filter(|did| did.starts_with("did:"))
        {
            self.profiles.insert(did.to_owned());
        }
        self.tracks.insert(uri.to_owned());
    }

    /// The notify payloads: the change set as JSON, split so that each stays under
    /// [`MAX_PAYLOAD`] bytes, or the single [`EVERYTHING`] past [`MAX_NOTIFIES`] of them.
    pub(crate) fn payloads(&self) -> Vec<String> {
        if self.everything {
            return vec![EVERYTHING.to_owned()];
        }
        let entries = (self.profiles.iter().map(|d| (Field::Profiles, d)))
            .chain(self.authors.iter().map(|d| (Field::Authors, d)))
            .chain(self.tracks.iter().map(|u| (Field::Tracks, u)))
            .chain(self.listed.iter().map(|u| (Field::Listed, u)))
            .chain(self.lists.iter().map(|u| (Field::Lists, u)));
        let mut payloads = Vec::new();
        // Every payload carries `newest`: a reader may apply any one of them alone.
        let blank = || Changes {
            newest: self.newest,
            ..Changes::default()
        };
        let mut chunk = blank();
        // The JSON of an empty change set, then each entry's quoted string and comma.
        let empty = serialize(&chunk).len();
        let mut size = empty;
        for (field, value) in entries {
            let cost = serde_json::to_string(value).map_or(usize::MAX, |s| s.len() + 1);
            if size.saturating_add(cost) > MAX_PAYLOAD && !chunk.is_empty() {
                payloads.push(serialize(&std::mem::replace(&mut chunk, blank())));
                size = empty;
                if payloads.len() == MAX_NOTIFIES {
                    return vec![EVERYTHING.to_owned()];
                }
            }
            size = size.saturating_add(cost);
            chunk.field(field).insert(value.clone());
        }
        if !chunk.is_empty() {
            payloads.push(serialize(&chunk));
        }
        // One entry alone over the limit (no valid DID or AT-URI is that long): be safe.
        if payloads.iter().any(|p| p.len() > MAX_PAYLOAD) || payloads.len() > MAX_NOTIFIES {
            return vec![EVERYTHING.to_owned()];
        }
        payloads
    }

    fn field(&mut self, field: Field) -> &mut BTreeSet<String> {
        match field {
            Field::Profiles => &mut self.profiles,
            Field::Authors => &mut self.authors,
            Field::Tracks => &mut self.tracks,
            Field::Listed => &mut self.listed,
            Field::Lists => &mut self.lists,
        }
    }

    /// Whether the batch changed no view.
    pub(crate) fn is_empty(&self) -> bool {
        !self.everything
            && self.profiles.is_empty()
            && self.authors.is_empty()
            && self.tracks.is_empty()
            && self.listed.is_empty()
            && self.lists.is_empty()
    }

    /// A change readers cannot narrow down: they drop every cached view.
    pub(crate) fn everything() -> Changes {
        Changes {
            everything: true,
            ..Changes::default()
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Profiles,
    Authors,
    Tracks,
    Listed,
    Lists,
}

fn serialize(changes: &Changes) -> String {
    // Sets of strings always serialize.
    serde_json::to_string(changes).unwrap_or_else(|_| EVERYTHING.to_owned())
}

/// Queues the notifies in `tx` (one round trip); Postgres sends them when (and only if) `tx`
/// commits. Each payload is a complete invalidation, so their order does not matter.
pub(crate) async fn send(tx: &mut PgConnection, changes: &Changes) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query("select pg_notify($1, payload) from unnest($2::text[]) as p(payload)")
        .bind(CHANNEL)
        .bind(changes.payloads())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("notifying readers"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &str) -> Changes {
        #[derive(serde::Deserialize)]
        struct Wire {
            profiles: BTreeSet<String>,
            authors: BTreeSet<String>,
            tracks: BTreeSet<String>,
            listed: BTreeSet<String>,
            lists: BTreeSet<String>,
            #[serde(default)]
            newest: Option<DateTime<Utc>>,
        }
        let wire: Wire = serde_json::from_str(payload).expect("json payload");
        Changes {
            profiles: wire.profiles,
            authors: wire.authors,
            tracks: wire.tracks,
            listed: wire.listed,
            lists: wire.lists,
            newest: wire.newest,
            everything: false,
        }
    }

    #[test]
    fn large_change_sets_are_split_into_payloads_that_cover_them() {
        let mut changes = Changes::default();
        changes
            .tracks
            .insert("at://did:plc:a/fm.plyr.track/1".into());
        let small = changes.payloads();
        assert_eq!(small.len(), 1);
        assert_eq!(parse(&small[0]), changes);

        for i in 0..2_000 {
            changes
                .tracks
                .insert(format!("at://did:plc:a{i}/fm.plyr.track/{i:020}"));
            changes.profiles.insert(format!("did:plc:a{i}"));
            if i % 10 == 0 {
                changes
                    .listed
                    .insert(format!("at://did:plc:a{i}/fm.plyr.track/{i:020}"));
                changes
                    .lists
                    .insert(format!("at://did:plc:a{i}/fm.plyr.list/{i:020}"));
            }
        }
        changes.authors.insert("did:plc:author".into());
        changes.newest = Some("2026-03-04T05:06:07.123456Z".parse().expect("time"));
        let payloads = changes.payloads();
        assert!(payloads.len() > 1, "{} payloads", payloads.len());
        let mut union = Changes {
            newest: changes.newest,
            ..Changes::default()
        };
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD, "{} bytes", payload.len());
            let part = parse(payload);
            // Each payload stands alone: each carries the bound.
            assert_eq!(part.newest, changes.newest, "{payload}");
            union.profiles.extend(part.profiles);
            union.authors.extend(part.authors);
            union.tracks.extend(part.tracks);
            union.listed.extend(part.listed);
            union.lists.extend(part.lists);
        }
        assert_eq!(union, changes, "the payloads name exactly the change set");
        // Full chunks: no more payloads than the bytes need (plus one partial).
        let bytes: usize = payloads.iter().map(String::len).sum();
        assert!(payloads.len() <= bytes / (MAX_PAYLOAD / 2) + 1);
    }

    #[test]
    fn huge_change_sets_and_account_changes_become_everything() {
        let mut changes = Changes::default();
        for i in 0..60_000 {
            changes
                .tracks
                .insert(format!("at://did:plc:a/fm.plyr.track/{i:020}"));
        }
        assert_eq!(changes.payloads(), vec![EVERYTHING.to_owned()]);
        assert_eq!(
            Changes::everything().payloads(),
            vec![EVERYTHING.to_owned()]
        );
    }
}
