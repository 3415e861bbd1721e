//! Tells readers what a committed batch changed: one `pg_notify` on [`CHANNEL`] inside the
//! batch's transaction (Postgres delivers it at commit, or never), so the appview can drop its
//! cached views without depending on this crate. The payload is the contract:
//! `{"profiles":[did..],"authors":[did..],"tracks":[uri..]}`, or the bare word `changed` when
//! the batch touched too much to list (readers then drop everything).

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::PgConnection;

use super::StoreError;
use crate::fold::{Kind, Plan, Segment};
use crate::record::Row;

/// The channel the appview listens on.
pub(crate) const CHANNEL: &str = "plyr_view_changed";

/// Postgres refuses payloads of 8000 bytes or more; past this the batch sends [`EVERYTHING`].
const MAX_PAYLOAD: usize = 7900;

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
                            Some(Row::Track(_)) => {
                                changes.tracks.insert(op.uri.clone());
                            }
                            Some(Row::List(_)) => {}
                            // The display name and avatar show on every view of the actor.
                            None if op.kind == Kind::BskyProfile => {
                                changes.authors.insert(op.did.clone());
                            }
                            // A delete: a track's URI is its view; a like's or comment's
                            // subject is looked up before the row goes.
                            None => {
                                changes.tracks.insert(op.uri.clone());
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

    /// The notify payload: the JSON change set, or [`EVERYTHING`] past [`MAX_PAYLOAD`].
    pub(crate) fn payload(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) if !self.everything && json.len() <= MAX_PAYLOAD => json,
            _ => EVERYTHING.to_owned(),
        }
    }

    /// Whether the batch changed no view.
    pub(crate) fn is_empty(&self) -> bool {
        !self.everything
            && self.profiles.is_empty()
            && self.authors.is_empty()
            && self.tracks.is_empty()
    }

    /// A change readers cannot narrow down: they drop every cached view.
    pub(crate) fn everything() -> Changes {
        Changes {
            everything: true,
            ..Changes::default()
        }
    }
}

/// Queues the notify in `tx`; Postgres sends it when (and only if) `tx` commits.
pub(crate) async fn send(tx: &mut PgConnection, changes: &Changes) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(changes.payload())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("notifying readers"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_change_sets_become_everything() {
        let mut changes = Changes::default();
        changes
            .tracks
            .insert("at://did:plc:a/fm.plyr.track/1".into());
        let small = changes.payload();
        assert!(small.starts_with('{'), "{small}");
        let parsed: serde_json::Value = serde_json::from_str(&small).expect("json payload");
        assert_eq!(parsed["tracks"][0], "at://did:plc:a/fm.plyr.track/1");
        for i in 0..500 {
            changes
                .tracks
                .insert(format!("at://did:plc:a/fm.plyr.track/{i:020}"));
        }
        assert_eq!(changes.payload(), EVERYTHING);
    }
}
