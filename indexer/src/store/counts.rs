//! The denormalized counters. Track counts are recounted from the rows (distinct active likers,
//! comments by active actors), so they self-correct; actor counters move by the row changes a
//! batch made, which costs O(batch) rather than O(the actor's history), and are recounted in
//! full when an account is purged.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgConnection;

use super::StoreError;

/// How one batch changed one actor's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Delta {
    pub tracks: i32,
    /// Distinct tracks liked.
    pub likes: i32,
    pub comments: i32,
    pub albums: i32,
    pub playlists: i32,
}

impl Delta {
    /// Moves the album or playlist counter for a list of this type.
    pub(super) fn list(&mut self, list_type: Option<&str>, by: i32) {
        match list_type {
            Some("album") => self.albums += by,
            Some("playlist") => self.playlists += by,
            _ => {}
        }
    }
}

/// What a commit segment's writes require of the counters.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Tracks whose like and comment counts may have changed.
    pub recount: BTreeSet<String>,
    /// Counter changes by actor.
    pub deltas: BTreeMap<String, Delta>,
}

impl Effects {
    pub(super) fn delta(&mut self, did: &str) -> &mut Delta {
        self.deltas.entry(did.to_owned()).or_default()
    }

    /// Writes the counters.
    pub(super) async fn apply(self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let uris: Vec<String> = self.recount.into_iter().collect();
        recount_tracks(tx, &uris).await?;
        apply_deltas(tx, &self.deltas).await
    }
}

async fn apply_deltas(
    tx: &mut PgConnection,
    deltas: &BTreeMap<String, Delta>,
) -> Result<(), StoreError> {
    let changed: Vec<(&String, &Delta)> = deltas
        .iter()
        .filter(|(_, d)| **d != Delta::default())
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = changed.iter().map(|(did, _)| did.as_str()).collect();
    let column = |f: fn(&Delta) -> i32| changed.iter().map(|(_, d)| f(d)).collect::<Vec<i32>>();
    sqlx::query(
        "update actor a
         set track_count = a.track_count + d.tracks, like_count = a.like_count + d.likes,
             comment_count = a.comment_count + d.comments,
             album_count = a.album_count + d.albums,
             playlist_count = a.playlist_count + d.playlists, updated_at = now()
         from unnest($1::text[], $2::int4[], $3::int4[], $4::int4[], $5::int4[], $6::int4[])
              as d(did, tracks, likes, comments, albums, playlists)
         where a.did = d.did",
    )
    .bind(&dids)
    .bind(column(|d| d.tracks))
    .bind(column(|d| d.likes))
    .bind(column(|d| d.comments))
    .bind(column(|d| d.albums))
    .bind(column(|d| d.playlists))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("moving actor counters"))?;
    Ok(())
}

/// Recomputes like and comment counts of these tracks: distinct active likers, comments by
/// active actors. Idempotent, so replays and reorders self-correct.
pub(super) async fn recount_tracks(
    tx: &mut PgConnection,
    uris: &[String],
) -> Result<(), StoreError> {
    if uris.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "with u as (select distinct uri from unnest($1::text[]) as u(uri)),
         likes as (
           select l.subject_uri as uri, count(distinct l.did) as n
           from track_like l join u on u.uri = l.subject_uri join actor a on a.did = l.did
           where a.active group by l.subject_uri),
         comments as (
           select c.subject_uri as uri, count(*) as n
           from comment c join u on u.uri = c.subject_uri join actor a on a.did = c.did
           where a.active group by c.subject_uri),
         counts as (
           select u.uri, coalesce(likes.n, 0)::int4 as likes,
                  coalesce(comments.n, 0)::int4 as comments
           from u left join likes on likes.uri = u.uri left join comments on comments.uri = u.uri)
         update track t set like_count = counts.likes, comment_count = counts.comments
         from counts
         where t.uri = counts.uri
           and (t.like_count, t.comment_count) is distinct from (counts.likes, counts.comments)",
    )
    .bind(uris)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("recounting tracks"))?;
    Ok(())
}

/// Recomputes every counter of one actor from its rows.
pub(super) async fn recount_actor(tx: &mut PgConnection, did: &str) -> Result<(), StoreError> {
    sqlx::query(
        "update actor set
           track_count = (select count(*) from track where did = $1),
           like_count = (select count(distinct subject_uri) from track_like where did = $1),
           comment_count = (select count(*) from comment where did = $1),
           album_count = (select count(*) from list where did = $1 and list_type = 'album'),
           playlist_count = (select count(*) from list where did = $1 and list_type = 'playlist'),
           updated_at = now()
         where did = $1",
    )
    .bind(did)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("recounting an actor"))?;
    Ok(())
}
