//! Folds a run of record commits: drop deleted accounts' commits, let the `record` ledger pick
//! the winners (new URI or greater rev), then write and delete the winners' typed rows, noting
//! the counter changes they cause; the authors' actor rows are written with those counters.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use plyr_lexicons::RecordKind;
use sqlx::PgConnection;

use super::StoreError;
use super::counts::Effects;
use crate::fold::{ACTOR_DELETED, CommitOp, Kind, Plan, Segment, Skip};
use crate::record::Row;

/// Folds one run of commits (one per URI). Returns how many won.
pub(super) async fn apply_commits(
    tx: &mut PgConnection,
    ops: &[CommitOp],
    extra: &mut Plan,
) -> Result<u64, StoreError> {
    if ops.is_empty() {
        return Ok(0);
    }
    // Commits of deleted accounts are dropped. Every author gets an actor row, written with
    // its counter changes at the end of the segment (an author not stored yet is active).
    let dids: BTreeSet<&str> = ops.iter().map(|op| op.did.as_str()).collect();
    let authors: Vec<&str> = dids.iter().copied().collect();
    let inactive: Vec<(String, Option<String>)> =
        sqlx::query_as("select did, status from actor where did = any($1) and not active")
            .bind(&authors)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::at("finding inactive authors"))?;
    let deleted: HashSet<String> = inactive
        .iter()
        .filter(|(_, status)| status.as_deref() == Some("deleted"))
        .map(|(did, _)| did.clone())
        .collect();
    let inactive: HashSet<String> = inactive.into_iter().map(|(did, _)| did).collect();
    let ops: Vec<&CommitOp> = ops
        .iter()
        .filter(|op| {
            let drop = deleted.contains(&op.did);
            if drop {
                tracing::debug!(uri = %op.uri, "dropped commit of a deleted account");
                extra.add_skip(Skip::new(ACTOR_DELETED, &op.uri));
            }
            !drop
        })
        .collect();
    if ops.is_empty() {
        return Ok(0);
    }

    let (winners, seen) = fold_ledger(tx, &ops).await?;
    let mut effects = Effects::new(inactive, &authors);
    let kinds = RecordKind::ALL.map(Kind::Record);
    for kind in kinds.into_iter().chain([Kind::BskyProfile]) {
        let of_kind: Vec<&CommitOp> = winners
            .iter()
            .copied()
            .filter(|op| op.kind == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let (writes, delete_ops): (Vec<&CommitOp>, Vec<&CommitOp>) =
            of_kind.into_iter().partition(|op| op.write.is_some());
        let deletes: Vec<&str> = delete_ops.iter().map(|op| op.uri.as_str()).collect();
        let Kind::Record(kind) = kind else {
            fold_bsky_profiles(tx, &writes, &delete_ops).await?;
            continue;
        };
        match kind {
            RecordKind::Track => fold_tracks(tx, &writes, &deletes, &seen, &mut effects).await?,
            RecordKind::Like => fold_likes(tx, &writes, &deletes, &seen, &mut effects).await?,
            RecordKind::Comment => {
                fold_comments(tx, &writes, &deletes, &seen, &mut effects).await?
            }
            RecordKind::List => fold_lists(tx, &writes, &deletes, &seen, &mut effects).await?,
            RecordKind::Profile => fold_profiles(tx, &writes, &deletes).await?,
        }
    }
    effects.apply(tx).await?;
    Ok(u64::try_from(winners.len()).unwrap_or(u64::MAX))
}

/// Upserts the ledger; returns the ops that won (a new URI, or a rev greater than the stored
/// one, live or tombstone) and the winners' URIs the ledger already held. Only those can have
/// a typed row, so only they are looked up there: a batch of creates reads nothing back.
async fn fold_ledger<'a>(
    tx: &mut PgConnection,
    ops: &[&'a CommitOp],
) -> Result<(Vec<&'a CommitOp>, HashSet<&'a str>), StoreError> {
    let mut uris = Vec::with_capacity(ops.len());
    let mut revs = Vec::with_capacity(ops.len());
    let mut deletes = Vec::with_capacity(ops.len());
    for op in ops {
        uris.push(op.uri.as_str());
        revs.push(op.rev.as_str());
        deletes.push(op.write.is_none());
    }
    // `xmax <> 0` tells an updated row from an inserted one: an ON CONFLICT update carries
    // this transaction's row lock into the new version's xmax, an insert leaves it 0.
    let won: Vec<(String, bool)> = sqlx::query_as(
        "insert into record (uri, rev, deleted)
         select * from unnest($1::text[], $2::text[], $3::bool[])
         on conflict (uri) do update
         set rev = excluded.rev, deleted = excluded.deleted, updated_at = now()
         where excluded.rev > record.rev
         returning uri, xmax <> 0",
    )
    .bind(&uris)
    .bind(&revs)
    .bind(&deletes)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("folding into the record ledger"))?;
    let won: HashMap<String, bool> = won.into_iter().collect();
    let mut winners = Vec::with_capacity(won.len());
    let mut seen = HashSet::new();
    for op in ops.iter().copied() {
        match won.get(&op.uri) {
            Some(true) => {
                seen.insert(op.uri.as_str());
                winners.push(op);
            }
            Some(false) => winners.push(op),
            None => {}
        }
    }
    Ok((winners, seen))
}

/// The URIs among `writes` that the ledger held before this batch.
fn seen_of<'a>(writes: &[&'a CommitOp], seen: &HashSet<&str>) -> Vec<&'a str> {
    writes
        .iter()
        .map(|op| op.uri.as_str())
        .filter(|uri| seen.contains(uri))
        .collect()
}

async fn fold_tracks(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&str],
    seen: &HashSet<&str>,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    if !deletes.is_empty() {
        let dids: Vec<String> =
            sqlx::query_scalar("delete from track where uri = any($1) returning did")
                .bind(deletes)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::at("deleting tracks"))?;
        for did in dids {
            effects.actor(&did).tracks -= 1;
        }
    }
    let cols = Columns::of(writes);
    if cols.uri.is_empty() {
        return Ok(());
    }
    // `old` reads the table as it was before this statement's upsert.
    let existed: Vec<String> = sqlx::query_scalar(
        "with old as (select uri from track where uri = any($11)),
         up as (
           insert into track (uri, did, rkey, cid, rev, title, artist, album, created_at,
                              sort_at, record)
           select u.uri, u.did, u.rkey, u.cid, u.rev, u.title, u.artist, u.album,
                  u.created_at, least(u.created_at, now()), u.record::jsonb
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])
                as u(uri, did, rkey, cid, rev, title, artist, album, created_at, record)
           on conflict (uri) do update
           set cid = excluded.cid, rev = excluded.rev, title = excluded.title,
               artist = excluded.artist, album = excluded.album,
               created_at = excluded.created_at,
               sort_at = least(excluded.created_at, track.indexed_at),
               record = excluded.record
           where excluded.rev > track.rev)
         select uri from old",
    )
    .bind(&cols.uri)
    .bind(&cols.did)
    .bind(&cols.rkey)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.text_a)
    .bind(&cols.text_b)
    .bind(&cols.opt_a)
    .bind(&cols.created_at)
    .bind(&cols.record)
    .bind(seen_of(writes, seen))
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("upserting tracks"))?;
    let existed: HashSet<String> = existed.into_iter().collect();
    for op in writes {
        if !existed.contains(&op.uri) {
            effects.actor(&op.did).tracks += 1;
            // A new track picks up likes and comments that arrived before it.
            effects.new_tracks.insert(op.uri.clone());
        }
    }
    Ok(())
}

/// Likes count per distinct (liker, track) pair, so the counters move by how many pairs
/// started or stopped existing. One statement reads the pairs the batch may change (the likes'
/// old subjects and their new ones) as they were, deletes and upserts; a pair with a new like
/// exists afterwards, and the rest (old subjects of deleted or moved likes, rare) are re-read.
async fn fold_likes(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&str],
    seen: &HashSet<&str>,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    let cols = Columns::of(writes);
    let touched: Vec<&str> = seen_of(writes, seen)
        .into_iter()
        .chain(deletes.iter().copied())
        .collect();
    // Every CTE reads the table as it was before the statement.
    let before: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "with pairs as (
           select did, subject_uri, bool_or(is_new) as is_new from (
             select did, subject_uri, false as is_new from track_like where uri = any($1)
             union all
             select did, subject_uri, true from unnest($2::text[], $3::text[])
               as n(did, subject_uri)) p
           group by did, subject_uri),
         gone as (delete from track_like where uri = any($4)),
         up as (
           insert into track_like (uri, did, rkey, cid, rev, subject_uri, subject_cid,
                                   created_at, sort_at)
           select u.uri, u.did, u.rkey, u.cid, u.rev, u.subject_uri, u.subject_cid,
                  u.created_at, least(u.created_at, now())
           from unnest($5::text[], $2::text[], $6::text[], $7::text[], $8::text[],
                       $3::text[], $9::text[], $10::timestamptz[])
                as u(uri, did, rkey, cid, rev, subject_uri, subject_cid, created_at)
           on conflict (uri) do update
           set cid = excluded.cid, rev = excluded.rev,
               subject_uri = excluded.subject_uri, subject_cid = excluded.subject_cid,
               created_at = excluded.created_at,
               sort_at = least(excluded.created_at, track_like.indexed_at)
           where excluded.rev > track_like.rev)
         select p.did, p.subject_uri, p.is_new,
                exists(select 1 from track_like l
                       where l.subject_uri = p.subject_uri and l.did = p.did)
         from pairs p",
    )
    .bind(&touched)
    .bind(&cols.did)
    .bind(&cols.text_a)
    .bind(deletes)
    .bind(&cols.uri)
    .bind(&cols.rkey)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.opt_a)
    .bind(&cols.created_at)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("folding likes"))?;

    let (new, old): (Vec<_>, Vec<_>) = before.into_iter().partition(|(_, _, is_new, _)| *is_new);
    let mut changes: Vec<(String, String, i32)> = new
        .into_iter()
        .map(|(did, subject, _, existed)| (did, subject, 1 - i32::from(existed)))
        .collect();
    if !old.is_empty() {
        let dids: Vec<&str> = old.iter().map(|(did, ..)| did.as_str()).collect();
        let subjects: Vec<&str> = old.iter().map(|(_, s, ..)| s.as_str()).collect();
        let after: Vec<bool> = sqlx::query_scalar(
            "select exists(select 1 from track_like l
                           where l.subject_uri = p.subject_uri and l.did = p.did)
             from unnest($1::text[], $2::text[]) with ordinality as p(did, subject_uri, i)
             order by p.i",
        )
        .bind(&dids)
        .bind(&subjects)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("re-reading like pairs"))?;
        changes.extend(
            old.into_iter()
                .zip(after)
                .map(|((did, subject, _, was), is)| (did, subject, i32::from(is) - i32::from(was))),
        );
    }
    for (did, subject, change) in changes {
        if change != 0 {
            effects.actor(&did).likes += change;
            effects.track(&did, &subject, |t| t.likes += change);
        }
    }
    Ok(())
}

async fn fold_comments(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&str],
    seen: &HashSet<&str>,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    if !deletes.is_empty() {
        let gone: Vec<(String, String)> =
            sqlx::query_as("delete from comment where uri = any($1) returning did, subject_uri")
                .bind(deletes)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::at("deleting comments"))?;
        for (did, subject) in gone {
            effects.actor(&did).comments -= 1;
            effects.track(&did, &subject, |t| t.comments -= 1);
        }
    }
    let cols = Columns::of(writes);
    if cols.uri.is_empty() {
        return Ok(());
    }
    let old: Vec<(String, String)> = sqlx::query_as(
        "with old as (select uri, subject_uri from comment where uri = any($12)),
         up as (
           insert into comment (uri, did, rkey, cid, rev, subject_uri, subject_cid, body,
                                timestamp_ms, created_at, sort_at, record)
           select u.uri, u.did, u.rkey, u.cid, u.rev, u.subject_uri, u.subject_cid,
                  u.body, u.timestamp_ms, u.created_at, least(u.created_at, now()),
                  u.record::jsonb
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::text[], $9::int8[],
                       $10::timestamptz[], $11::text[])
                as u(uri, did, rkey, cid, rev, subject_uri, subject_cid, body,
                     timestamp_ms, created_at, record)
           on conflict (uri) do update
           set cid = excluded.cid, rev = excluded.rev,
               subject_uri = excluded.subject_uri, subject_cid = excluded.subject_cid,
               body = excluded.body, timestamp_ms = excluded.timestamp_ms,
               created_at = excluded.created_at,
               sort_at = least(excluded.created_at, comment.indexed_at),
               record = excluded.record
           where excluded.rev > comment.rev)
         select uri, subject_uri from old",
    )
    .bind(&cols.uri)
    .bind(&cols.did)
    .bind(&cols.rkey)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.text_a)
    .bind(&cols.opt_a)
    .bind(&cols.text_b)
    .bind(&cols.int8)
    .bind(&cols.created_at)
    .bind(&cols.record)
    .bind(seen_of(writes, seen))
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("upserting comments"))?;
    let old: HashMap<String, String> = old.into_iter().collect();
    for (op, subject) in writes.iter().zip(&cols.text_a) {
        match old.get(&op.uri) {
            Some(previous) if previous == subject => continue,
            // Moved to another track.
            Some(previous) => effects.track(&op.did, previous, |t| t.comments -= 1),
            None => effects.actor(&op.did).comments += 1,
        }
        effects.track(&op.did, subject, |t| t.comments += 1);
    }
    Ok(())
}

async fn fold_lists(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&str],
    seen: &HashSet<&str>,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    if !deletes.is_empty() {
        let gone: Vec<(String, Option<String>)> =
            sqlx::query_as("delete from list where uri = any($1) returning did, list_type")
                .bind(deletes)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::at("deleting lists"))?;
        for (did, list_type) in gone {
            effects.actor(&did).list(list_type.as_deref(), -1);
        }
    }
    let cols = Columns::of(writes);
    if cols.uri.is_empty() {
        return Ok(());
    }
    let old: Vec<(String, Option<String>)> = sqlx::query_as(
        "with old as (select uri, list_type from list where uri = any($11)),
         up as (
           insert into list (uri, did, rkey, cid, rev, name, list_type, item_count,
                             created_at, sort_at, record)
           select u.uri, u.did, u.rkey, u.cid, u.rev, u.name, u.list_type, u.item_count,
                  u.created_at, least(u.created_at, now()), u.record::jsonb
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::int4[], $9::timestamptz[], $10::text[])
                as u(uri, did, rkey, cid, rev, name, list_type, item_count, created_at,
                     record)
           on conflict (uri) do update
           set cid = excluded.cid, rev = excluded.rev, name = excluded.name,
               list_type = excluded.list_type, item_count = excluded.item_count,
               created_at = excluded.created_at,
               sort_at = least(excluded.created_at, list.indexed_at),
               record = excluded.record
           where excluded.rev > list.rev)
         select uri, list_type from old",
    )
    .bind(&cols.uri)
    .bind(&cols.did)
    .bind(&cols.rkey)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.opt_a)
    .bind(&cols.opt_b)
    .bind(&cols.int4)
    .bind(&cols.created_at)
    .bind(&cols.record)
    .bind(seen_of(writes, seen))
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("upserting lists"))?;
    let old: HashMap<String, Option<String>> = old.into_iter().collect();
    for (op, list_type) in writes.iter().zip(&cols.opt_b) {
        let delta = effects.actor(&op.did);
        if let Some(previous) = old.get(&op.uri) {
            delta.list(previous.as_deref(), -1);
        }
        delta.list(*list_type, 1);
    }
    replace_list_items(tx, writes).await
}

/// Replaces the items of the lists just written, in record order.
async fn replace_list_items(tx: &mut PgConnection, writes: &[&CommitOp]) -> Result<(), StoreError> {
    let mut written = Vec::new();
    let mut list_uris = Vec::new();
    let mut positions = Vec::new();
    let mut subjects = Vec::new();
    let mut subject_cids = Vec::new();
    for op in writes {
        let Some(write) = &op.write else { continue };
        let Row::List(list) = &write.row else {
            continue;
        };
        written.push(op.uri.as_str());
        for (position, item) in (0_i32..).zip(&list.items) {
            list_uris.push(op.uri.as_str());
            positions.push(position);
            subjects.push(item.subject_uri.as_str());
            subject_cids.push(item.subject_cid.as_deref());
        }
    }
    sqlx::query("delete from list_item where list_uri = any($1)")
        .bind(&written)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("clearing list items"))?;
    if list_uris.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into list_item (list_uri, position, subject_uri, subject_cid)
         select * from unnest($1::text[], $2::int4[], $3::text[], $4::text[])",
    )
    .bind(&list_uris)
    .bind(&positions)
    .bind(&subjects)
    .bind(&subject_cids)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("inserting list items"))?;
    Ok(())
}

async fn fold_profiles(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&str],
) -> Result<(), StoreError> {
    if !deletes.is_empty() {
        sqlx::query("delete from profile where uri = any($1)")
            .bind(deletes)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("deleting profiles"))?;
    }
    let cols = Columns::of(writes);
    if cols.uri.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into profile (did, uri, cid, rev, bio, avatar, created_at, record)
         select u.did, u.uri, u.cid, u.rev, u.bio, u.avatar, u.created_at, u.record::jsonb
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::timestamptz[], $8::text[])
              as u(did, uri, cid, rev, bio, avatar, created_at, record)
         on conflict (did) do update
         set uri = excluded.uri, cid = excluded.cid, rev = excluded.rev,
             bio = excluded.bio, avatar = excluded.avatar,
             created_at = excluded.created_at, record = excluded.record
         where excluded.rev > profile.rev",
    )
    .bind(&cols.did)
    .bind(&cols.uri)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.opt_a)
    .bind(&cols.opt_b)
    .bind(&cols.created_at)
    .bind(&cols.record)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("upserting profiles"))?;
    Ok(())
}

/// Drops the `app.bsky.actor.profile` ops of actors the view does not hold (no `actor` row,
/// and no namespace record among `ops` to create one): the firehose carries millions of
/// Bluesky profiles and only our actors' are kept. Returns how many were dropped.
pub(super) async fn drop_unknown_bsky_profiles(
    tx: &mut PgConnection,
    ops: &mut Vec<CommitOp>,
) -> Result<usize, StoreError> {
    let unknown = unknown_bsky_authors(tx, ops.iter()).await?;
    let before = ops.len();
    ops.retain(|op| op.kind != Kind::BskyProfile || !unknown.contains(op.did.as_str()));
    Ok(before - ops.len())
}

/// [`drop_unknown_bsky_profiles`] over a live batch's plan: `None` when it keeps every op.
pub(super) async fn known_bsky_profiles(
    tx: &mut PgConnection,
    plan: &Plan,
) -> Result<Option<Plan>, StoreError> {
    let ops = plan.segments.iter().flat_map(|segment| match segment {
        Segment::Commits(ops) => ops.as_slice(),
        Segment::Accounts(_) => &[],
    });
    let unknown = unknown_bsky_authors(tx, ops).await?;
    if unknown.is_empty() {
        return Ok(None);
    }
    let mut plan = plan.clone();
    for segment in &mut plan.segments {
        if let Segment::Commits(ops) = segment {
            ops.retain(|op| op.kind != Kind::BskyProfile || !unknown.contains(op.did.as_str()));
        }
    }
    Ok(Some(plan))
}

/// The authors of Bluesky profile ops among `ops` that have no `actor` row and no namespace
/// op among `ops`.
async fn unknown_bsky_authors<'a>(
    tx: &mut PgConnection,
    ops: impl Iterator<Item = &'a CommitOp>,
) -> Result<HashSet<String>, StoreError> {
    let mut ours = HashSet::new();
    let mut bsky = BTreeSet::new();
    for op in ops {
        match op.kind {
            Kind::BskyProfile => bsky.insert(op.did.as_str()),
            Kind::Record(_) => ours.insert(op.did.as_str()),
        };
    }
    let candidates: Vec<&str> = bsky.into_iter().filter(|did| !ours.contains(did)).collect();
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let known: Vec<String> = sqlx::query_scalar("select did from actor where did = any($1)")
        .bind(&candidates)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("finding the actors of bluesky profiles"))?;
    let known: HashSet<String> = known.into_iter().collect();
    Ok(candidates
        .into_iter()
        .filter(|did| !known.contains(*did))
        .map(str::to_owned)
        .collect())
}

/// Upserts and deletes `bsky_profile` rows (the ledger already picked these ops; the table's
/// own rev guards again, as every typed table does).
async fn fold_bsky_profiles(
    tx: &mut PgConnection,
    writes: &[&CommitOp],
    deletes: &[&CommitOp],
) -> Result<(), StoreError> {
    if !deletes.is_empty() {
        let dids: Vec<&str> = deletes.iter().map(|op| op.did.as_str()).collect();
        let revs: Vec<&str> = deletes.iter().map(|op| op.rev.as_str()).collect();
        sqlx::query(
            "delete from bsky_profile b
             using unnest($1::text[], $2::text[]) as d(did, rev)
             where b.did = d.did and b.rev < d.rev",
        )
        .bind(&dids)
        .bind(&revs)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("deleting bluesky profiles"))?;
    }
    let cols = Columns::of(writes);
    if cols.uri.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into bsky_profile (did, cid, rev, display_name, avatar_cid)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
         on conflict (did) do update
         set cid = excluded.cid, rev = excluded.rev, display_name = excluded.display_name,
             avatar_cid = excluded.avatar_cid, indexed_at = now()
         where excluded.rev > bsky_profile.rev",
    )
    .bind(&cols.did)
    .bind(&cols.cid)
    .bind(&cols.rev)
    .bind(&cols.opt_a)
    .bind(&cols.opt_b)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("upserting bluesky profiles"))?;
    Ok(())
}

/// Parallel column arrays for one `unnest` upsert, in the order of the writes. The `text_*`,
/// `opt_*` and int columns mean what the row kind says: title/artist/album for tracks,
/// subject/subject cid for likes, subject/subject cid/body/timestamp for comments,
/// name/type/item count for lists, bio/avatar for profiles, display name/avatar CID for
/// Bluesky profiles.
#[derive(Default)]
struct Columns<'a> {
    uri: Vec<&'a str>,
    did: Vec<&'a str>,
    rkey: Vec<&'a str>,
    cid: Vec<&'a str>,
    rev: Vec<&'a str>,
    text_a: Vec<&'a str>,
    text_b: Vec<&'a str>,
    opt_a: Vec<Option<&'a str>>,
    opt_b: Vec<Option<&'a str>>,
    int8: Vec<i64>,
    int4: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
    record: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    /// The columns of every write (deletes carry no row and are skipped).
    fn of(writes: &[&'a CommitOp]) -> Columns<'a> {
        let mut cols = Columns::default();
        for op in writes {
            if let Some(write) = &op.write {
                cols.push(op, &write.cid, &write.row);
            }
        }
        cols
    }

    fn push(&mut self, op: &'a CommitOp, cid: &'a str, row: &'a Row) {
        self.uri.push(&op.uri);
        self.did.push(&op.did);
        self.rkey.push(&op.rkey);
        self.cid.push(cid);
        self.rev.push(&op.rev);
        match row {
            Row::Track(t) => {
                self.text_a.push(&t.title);
                self.text_b.push(&t.artist);
                self.opt_a.push(t.album.as_deref());
                self.created_at.push(t.created_at);
                self.record.push(&t.record);
            }
            Row::Like(l) => {
                self.text_a.push(&l.subject_uri);
                self.opt_a.push(l.subject_cid.as_deref());
                self.created_at.push(l.created_at);
            }
            Row::Comment(c) => {
                self.text_a.push(&c.subject_uri);
                self.opt_a.push(c.subject_cid.as_deref());
                self.text_b.push(&c.body);
                self.int8.push(c.timestamp_ms);
                self.created_at.push(c.created_at);
                self.record.push(&c.record);
            }
            Row::List(l) => {
                self.opt_a.push(l.name.as_deref());
                self.opt_b.push(l.list_type.as_deref());
                // The lexicon caps items at 500, so this never saturates in practice.
                self.int4
                    .push(i32::try_from(l.items.len()).unwrap_or(i32::MAX));
                self.created_at.push(l.created_at);
                self.record.push(&l.record);
            }
            Row::BskyProfile(p) => {
                self.opt_a.push(p.display_name.as_deref());
                self.opt_b.push(p.avatar_cid.as_deref());
            }
            Row::Profile(p) => {
                self.opt_a.push(p.bio.as_deref());
                self.opt_b.push(p.avatar.as_deref());
                self.created_at.push(p.created_at);
                self.record.push(&p.record);
            }
        }
    }
}
