//! All of the indexer's SQL: applies a [`Plan`] (record writes, identity and account changes,
//! recounts, skip counts and the cursor) in one Postgres transaction, with bulk `unnest`
//! statements so a batch costs a handful of round trips whatever its size.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use plyr_lexicons::RecordKind;
use sqlx::{PgConnection, PgPool};

use crate::fold::{ACTOR_DELETED, AccountChange, CommitOp, IdentityChange, Plan, Segment, Skip};
use crate::record::Row;

/// A failed statement, with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("store failed while {action}")]
pub struct StoreError {
    action: &'static str,
    #[source]
    source: sqlx::Error,
}

impl StoreError {
    fn at(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError { action, source }
    }

    /// Whether retrying the same batch may succeed (the database was unreachable or busy),
    /// as opposed to Postgres refusing the data.
    pub(crate) fn is_transient(&self) -> bool {
        match &self.source {
            sqlx::Error::Database(db) => {
                // Class 40 (serialization failure, deadlock), 53 (insufficient resources),
                // 57 (operator intervention: shutdown, cancel) and 08 (connection) may pass on retry.
                db.code()
                    .is_some_and(|c| ["40", "53", "57", "08"].iter().any(|p| c.starts_with(p)))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        }
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Record operations that won (new or newer rev) and changed the view.
    pub written: u64,
    /// Events skipped by reason, including commits of deleted actors found here.
    pub skips: BTreeMap<&'static str, i64>,
}

/// The cursor stored for `source`, if any.
pub(crate) async fn last_cursor(pool: &PgPool, source: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("select cursor from consumer_cursor where source = $1")
        .bind(source)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::at("reading the cursor"))
}

/// Applies the plan and moves `source`'s cursor, all in one transaction.
pub(crate) async fn apply(pool: &PgPool, source: &str, plan: &Plan) -> Result<Applied, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a transaction"))?;
    let mut extra = Plan::default();
    let mut written = 0;
    for segment in &plan.segments {
        match segment {
            Segment::Commits(ops) => written += apply_commits(&mut tx, ops, &mut extra).await?,
            Segment::Identities(changes) => apply_identities(&mut tx, changes).await?,
            Segment::Accounts(changes) => apply_accounts(&mut tx, changes).await?,
        }
    }
    let mut skips = plan.skips.clone();
    for (reason, tally) in extra.skips {
        let entry = skips.entry(reason).or_insert(crate::fold::SkipTally {
            count: 0,
            last_detail: String::new(),
        });
        entry.count += tally.count;
        entry.last_detail = tally.last_detail;
    }
    write_skips(&mut tx, &skips).await?;
    if let Some(cursor) = plan.cursor {
        write_cursor(&mut tx, source, cursor).await?;
    }
    tx.commit()
        .await
        .map_err(StoreError::at("committing the batch"))?;
    Ok(Applied {
        written,
        skips: skips.iter().map(|(r, t)| (*r, t.count)).collect(),
    })
}

async fn write_skips(
    tx: &mut PgConnection,
    skips: &BTreeMap<&'static str, crate::fold::SkipTally>,
) -> Result<(), StoreError> {
    if skips.is_empty() {
        return Ok(());
    }
    let reasons: Vec<&str> = skips.keys().copied().collect();
    let counts: Vec<i64> = skips.values().map(|t| t.count).collect();
    let details: Vec<&str> = skips.values().map(|t| t.last_detail.as_str()).collect();
    sqlx::query(
        "insert into indexer_skip (reason, count, last_detail)
         select * from unnest($1::text[], $2::int8[], $3::text[])
         on conflict (reason) do update
         set count = indexer_skip.count + excluded.count,
             last_detail = excluded.last_detail,
             last_at = now()",
    )
    .bind(&reasons)
    .bind(&counts)
    .bind(&details)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("counting skips"))?;
    Ok(())
}

async fn write_cursor(tx: &mut PgConnection, source: &str, cursor: i64) -> Result<(), StoreError> {
    // Never move backwards: a rewound reconnect replays events older than the stored cursor.
    sqlx::query(
        "insert into consumer_cursor (source, cursor) values ($1, $2)
         on conflict (source) do update
         set cursor = greatest(consumer_cursor.cursor, excluded.cursor), updated_at = now()",
    )
    .bind(source)
    .bind(cursor)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("writing the cursor"))?;
    Ok(())
}

/// Folds a run of commits (one per URI). Returns how many won.
async fn apply_commits(
    tx: &mut PgConnection,
    ops: &[CommitOp],
    extra: &mut Plan,
) -> Result<u64, StoreError> {
    if ops.is_empty() {
        return Ok(0);
    }
    // Every author gets an actor row; commits of deleted accounts are dropped.
    let dids: Vec<&str> = ops
        .iter()
        .map(|op| op.did.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let deleted: Vec<String> = sqlx::query_scalar(
        "with ensured as (insert into actor (did) select unnest($1::text[]) on conflict do nothing)
         select did from actor where did = any($1) and status = 'deleted'",
    )
    .bind(&dids)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("ensuring actors"))?;
    let deleted: HashSet<String> = deleted.into_iter().collect();
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

    // The ledger decides: only a new URI or a greater rev comes back.
    let mut uris = Vec::with_capacity(ops.len());
    let mut op_dids = Vec::with_capacity(ops.len());
    let mut collections = Vec::with_capacity(ops.len());
    let mut rkeys = Vec::with_capacity(ops.len());
    let mut revs = Vec::with_capacity(ops.len());
    let mut cids = Vec::with_capacity(ops.len());
    let mut deletes = Vec::with_capacity(ops.len());
    for op in &ops {
        uris.push(op.uri.as_str());
        op_dids.push(op.did.as_str());
        collections.push(op.collection.as_str());
        rkeys.push(op.rkey.as_str());
        revs.push(op.rev.as_str());
        cids.push(op.write.as_ref().map(|w| w.cid.as_str()));
        deletes.push(op.write.is_none());
    }
    let won: Vec<String> = sqlx::query_scalar(
        "insert into record (uri, did, collection, rkey, rev, cid, deleted)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bool[])
         on conflict (uri) do update
         set rev = excluded.rev, cid = excluded.cid, deleted = excluded.deleted,
             updated_at = now()
         where excluded.rev > record.rev
         returning uri",
    )
    .bind(&uris)
    .bind(&op_dids)
    .bind(&collections)
    .bind(&rkeys)
    .bind(&revs)
    .bind(&cids)
    .bind(&deletes)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("folding into the record ledger"))?;
    let won: HashSet<String> = won.into_iter().collect();
    let winners: Vec<&CommitOp> = ops.into_iter().filter(|op| won.contains(&op.uri)).collect();

    let mut touched_tracks: BTreeSet<String> = BTreeSet::new();
    let mut touched_actors: BTreeSet<&str> = BTreeSet::new();
    for kind in [
        RecordKind::Track,
        RecordKind::Like,
        RecordKind::Comment,
        RecordKind::List,
        RecordKind::Profile,
    ] {
        let of_kind: Vec<&CommitOp> = winners
            .iter()
            .copied()
            .filter(|op| op.kind == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        if kind != RecordKind::Profile {
            touched_actors.extend(of_kind.iter().map(|op| op.did.as_str()));
        }
        let deleted: Vec<&str> = of_kind
            .iter()
            .filter(|op| op.write.is_none())
            .map(|op| op.uri.as_str())
            .collect();
        let subjects = delete_rows(tx, kind, &deleted).await?;
        touched_tracks.extend(subjects);
        let written = upsert_rows(tx, kind, &of_kind).await?;
        touched_tracks.extend(written);
    }
    let tracks: Vec<String> = touched_tracks.into_iter().collect();
    recount_tracks(tx, &tracks).await?;
    let actors: Vec<&str> = touched_actors.into_iter().collect();
    recount_actors(tx, &actors).await?;
    Ok(u64::try_from(winners.len()).unwrap_or(u64::MAX))
}

/// Deletes rows of one kind; returns the tracks whose counts may change (subjects of deleted
/// likes and comments).
async fn delete_rows(
    tx: &mut PgConnection,
    kind: RecordKind,
    uris: &[&str],
) -> Result<Vec<String>, StoreError> {
    if uris.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, action) = match kind {
        RecordKind::Track => (
            "delete from track where uri = any($1) returning uri",
            "deleting tracks",
        ),
        RecordKind::Like => (
            "delete from track_like where uri = any($1) returning subject_uri",
            "deleting likes",
        ),
        RecordKind::Comment => (
            "delete from comment where uri = any($1) returning subject_uri",
            "deleting comments",
        ),
        RecordKind::List => (
            "delete from list where uri = any($1) returning uri",
            "deleting lists",
        ),
        RecordKind::Profile => (
            "delete from profile where uri = any($1) returning uri",
            "deleting profiles",
        ),
    };
    let returned: Vec<String> = sqlx::query_scalar(sql)
        .bind(uris)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at(action))?;
    Ok(match kind {
        RecordKind::Like | RecordKind::Comment => returned,
        _ => Vec::new(),
    })
}

/// Upserts the written rows of one kind (second rev guard in the table itself); returns the
/// tracks whose counts may change.
async fn upsert_rows(
    tx: &mut PgConnection,
    kind: RecordKind,
    ops: &[&CommitOp],
) -> Result<Vec<String>, StoreError> {
    let mut cols = Columns::default();
    for op in ops {
        if let Some(write) = &op.write {
            cols.push(op, &write.cid, &write.row);
        }
    }
    if cols.uri.is_empty() {
        return Ok(Vec::new());
    }
    match kind {
        RecordKind::Track => {
            sqlx::query(
                "insert into track (uri, did, rkey, cid, rev, title, artist, album, created_at,
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
                 where excluded.rev > track.rev",
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
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("upserting tracks"))?;
            // A new track picks up likes and comments that arrived before it.
            Ok(cols.uri.iter().map(|u| (*u).to_owned()).collect())
        }
        RecordKind::Like => {
            // `old` sees the rows before the upsert, so a like moved to another track
            // recounts both.
            let old: Vec<String> = sqlx::query_scalar(
                "with old as (select subject_uri from track_like where uri = any($1)),
                 up as (
                   insert into track_like (uri, did, rkey, cid, rev, subject_uri, subject_cid,
                                           created_at, sort_at)
                   select u.uri, u.did, u.rkey, u.cid, u.rev, u.subject_uri, u.subject_cid,
                          u.created_at, least(u.created_at, now())
                   from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                               $6::text[], $7::text[], $8::timestamptz[])
                        as u(uri, did, rkey, cid, rev, subject_uri, subject_cid, created_at)
                   on conflict (uri) do update
                   set cid = excluded.cid, rev = excluded.rev,
                       subject_uri = excluded.subject_uri, subject_cid = excluded.subject_cid,
                       created_at = excluded.created_at,
                       sort_at = least(excluded.created_at, track_like.indexed_at)
                   where excluded.rev > track_like.rev)
                 select subject_uri from old",
            )
            .bind(&cols.uri)
            .bind(&cols.did)
            .bind(&cols.rkey)
            .bind(&cols.cid)
            .bind(&cols.rev)
            .bind(&cols.text_a)
            .bind(&cols.opt_a)
            .bind(&cols.created_at)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::at("upserting likes"))?;
            Ok(old
                .into_iter()
                .chain(cols.text_a.iter().map(|s| (*s).to_owned()))
                .collect())
        }
        RecordKind::Comment => {
            let old: Vec<String> = sqlx::query_scalar(
                "with old as (select subject_uri from comment where uri = any($1)),
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
                 select subject_uri from old",
            )
            .bind(&cols.uri)
            .bind(&cols.did)
            .bind(&cols.rkey)
            .bind(&cols.cid)
            .bind(&cols.rev)
            .bind(&cols.text_a)
            .bind(&cols.opt_a)
            .bind(&cols.text_b)
            .bind(&cols.int)
            .bind(&cols.created_at)
            .bind(&cols.record)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::at("upserting comments"))?;
            Ok(old
                .into_iter()
                .chain(cols.text_a.iter().map(|s| (*s).to_owned()))
                .collect())
        }
        RecordKind::List => {
            let written: Vec<String> = sqlx::query_scalar(
                "insert into list (uri, did, rkey, cid, rev, name, list_type, item_count,
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
                 where excluded.rev > list.rev
                 returning uri",
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
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::at("upserting lists"))?;
            replace_list_items(tx, ops, &written).await?;
            Ok(Vec::new())
        }
        RecordKind::Profile => {
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
            Ok(Vec::new())
        }
    }
}

/// Replaces the items of the lists just written.
async fn replace_list_items(
    tx: &mut PgConnection,
    ops: &[&CommitOp],
    written: &[String],
) -> Result<(), StoreError> {
    if written.is_empty() {
        return Ok(());
    }
    let written: HashSet<&str> = written.iter().map(String::as_str).collect();
    let mut list_uris = Vec::new();
    let mut positions = Vec::new();
    let mut subjects = Vec::new();
    let mut subject_cids = Vec::new();
    for op in ops {
        let Some(write) = &op.write else { continue };
        let Row::List(list) = &write.row else {
            continue;
        };
        if !written.contains(op.uri.as_str()) {
            continue;
        }
        for (position, item) in (0_i32..).zip(&list.items) {
            list_uris.push(op.uri.as_str());
            positions.push(position);
            subjects.push(item.subject_uri.as_str());
            subject_cids.push(item.subject_cid.as_deref());
        }
    }
    let written: Vec<&str> = written.into_iter().collect();
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

/// Parallel column arrays for one `unnest` upsert. The `text_*`/`opt_*` columns mean what the
/// row kind says (title/artist/album for tracks, subject/body for comments, ...).
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
    int: Vec<i64>,
    int4: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
    record: Vec<&'a str>,
}

impl<'a> Columns<'a> {
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
                self.int.push(c.timestamp_ms);
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
            Row::Profile(p) => {
                self.opt_a.push(p.bio.as_deref());
                self.opt_b.push(p.avatar.as_deref());
                self.created_at.push(p.created_at);
                self.record.push(&p.record);
            }
        }
    }
}

/// Recomputes like and comment counts of these tracks: distinct active likers, comments by
/// active actors. Idempotent, so replays and reorders self-correct.
async fn recount_tracks(tx: &mut PgConnection, uris: &[String]) -> Result<(), StoreError> {
    if uris.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update track t
         set like_count = c.likes, comment_count = c.comments
         from (
           select u.uri,
             (select count(distinct l.did) from track_like l join actor a on a.did = l.did
              where l.subject_uri = u.uri and a.active)::int4 as likes,
             (select count(*) from comment c join actor a on a.did = c.did
              where c.subject_uri = u.uri and a.active)::int4 as comments
           from unnest($1::text[]) as u(uri)
         ) c
         where t.uri = c.uri
           and (t.like_count, t.comment_count) is distinct from (c.likes, c.comments)",
    )
    .bind(uris)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("recounting tracks"))?;
    Ok(())
}

/// Recomputes the per-actor counters of these DIDs.
async fn recount_actors(tx: &mut PgConnection, dids: &[&str]) -> Result<(), StoreError> {
    if dids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update actor a
         set track_count = c.tracks, like_count = c.likes, comment_count = c.comments,
             album_count = c.albums, playlist_count = c.playlists, updated_at = now()
         from (
           select d.did,
             (select count(*) from track where did = d.did)::int4 as tracks,
             (select count(distinct subject_uri) from track_like where did = d.did)::int4
               as likes,
             (select count(*) from comment where did = d.did)::int4 as comments,
             (select count(*) from list where did = d.did and list_type = 'album')::int4
               as albums,
             (select count(*) from list where did = d.did and list_type = 'playlist')::int4
               as playlists
           from unnest($1::text[]) as d(did)
         ) c
         where a.did = c.did
           and (a.track_count, a.like_count, a.comment_count, a.album_count, a.playlist_count)
               is distinct from (c.tracks, c.likes, c.comments, c.albums, c.playlists)",
    )
    .bind(dids)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("recounting actors"))?;
    Ok(())
}

/// Sets handles of actors already known. DIDs never seen in a commit are ignored: Jetstream
/// sends `#identity` for the whole network, and the view only tracks plyr actors.
async fn apply_identities(
    tx: &mut PgConnection,
    changes: &[IdentityChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = changes.iter().map(|c| c.did.as_str()).collect();
    let handles: Vec<Option<&str>> = changes.iter().map(|c| c.handle.as_deref()).collect();
    sqlx::query(
        "update actor a set handle = c.handle, updated_at = now()
         from unnest($1::text[], $2::text[]) as c(did, handle)
         where a.did = c.did and a.handle is distinct from c.handle",
    )
    .bind(&dids)
    .bind(&handles)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("updating handles"))?;
    Ok(())
}

/// Applies status changes of known actors, in order: hide, restore or purge, then recount what
/// their likes and comments counted towards.
async fn apply_accounts(
    tx: &mut PgConnection,
    changes: &[AccountChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = changes.iter().map(|c| c.did.as_str()).collect();
    let known: Vec<String> = sqlx::query_scalar("select did from actor where did = any($1)")
        .bind(&dids)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("looking up account actors"))?;
    let known: HashSet<String> = known.into_iter().collect();
    for change in changes.iter().filter(|c| known.contains(&c.did)) {
        // The tracks this actor's likes and comments count towards, before any purge.
        let subjects: Vec<String> = sqlx::query_scalar(
            "select subject_uri from track_like where did = $1
             union select subject_uri from comment where did = $1",
        )
        .bind(&change.did)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("finding an account's subjects"))?;
        sqlx::query("update actor set active = $2, status = $3, updated_at = now() where did = $1")
            .bind(&change.did)
            .bind(change.active)
            .bind(change.status.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("updating account status"))?;
        if change.is_deletion() {
            purge(tx, &change.did).await?;
            recount_actors(tx, &[change.did.as_str()]).await?;
        }
        recount_tracks(tx, &subjects).await?;
        tracing::info!(did = %change.did, active = change.active, status = ?change.status,
                       "account status applied");
    }
    Ok(())
}

/// Removes a deleted account's content; its ledger rows stay, marked deleted, so replays of
/// older commits cannot bring anything back.
async fn purge(tx: &mut PgConnection, did: &str) -> Result<(), StoreError> {
    sqlx::query(
        "with l as (delete from track_like where did = $1),
              c as (delete from comment where did = $1),
              t as (delete from track where did = $1),
              li as (delete from list where did = $1),
              p as (delete from profile where did = $1)
         update record set deleted = true, updated_at = now() where did = $1 and not deleted",
    )
    .bind(did)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("purging a deleted account"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
