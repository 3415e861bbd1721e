//! All SQL of the appview: one function per query, typed args in, `FromRow` rows or
//! `sqlx::Error` out. Content is served only when its author's actor row is active (inner join
//! on `actor ... and a.active`) and moderation hides neither it nor its author (`not_hidden!`:
//! labels and local takedowns, migration 0008). Pages are keyset: the first page binds a null cursor, which the
//! SQL turns into "before everything" so the same index-friendly row comparison serves all pages.

/// True unless moderation hides the record `$uri` or its author `$did`: a `!takedown`,
/// `!suspend` or `!hide` label in force (not negated, not expired) from a subscribed labeler,
/// or a local takedown (migration 0008's `hidden_subject`). A condition, for `concat!`.
macro_rules! not_hidden {
    ($uri:literal, $did:literal) => {
        concat!(
            " not exists (select 1 from hidden_subject h where h.subject in (",
            $uri,
            ", ",
            $did,
            ")) "
        )
    };
}

/// True unless moderation hides the actor `$did` (and with it all their content). A
/// condition, for `concat!`.
macro_rules! actor_not_hidden {
    ($did:literal) => {
        concat!(
            " not exists (select 1 from hidden_subject h where h.subject = ",
            $did,
            ") "
        )
    };
}

/// Columns of [`track::TrackRow`], for `concat!` into the queries that return tracks.
macro_rules! track_columns {
    () => {
        "t.uri, t.cid, t.did, a.handle, p.avatar, t.record, t.like_count, t.comment_count, \
         t.indexed_at, t.sort_at, t.web_id, ta.source as audio_source, \
         ta.verified as audio_verified, ta.cid as audio_cid, ab.mime as audio_mime, \
         ab.web_rendition as audio_web_rendition"
    };
}

/// Joins `track t` to its (active) author (neither hidden by moderation), the author's profile and the mirror's copy of its
/// audio (`track_audio ta`, `blob ab`: migration 0007), for `concat!`.
macro_rules! track_joins {
    () => {
        concat!(
            " join actor a on a.did = t.did and a.active and ",
            not_hidden!("t.uri", "t.did"),
            " left join profile p on p.did = t.did \
              left join track_audio ta on ta.track_uri = t.uri and ta.error is null \
              left join blob ab on ab.cid = ta.cid "
        )
    };
}

/// `select` of [`track::TrackRow`] from `track t` of active authors, for `concat!` before a
/// `where`.
macro_rules! visible_tracks {
    () => {
        concat!("select ", track_columns!(), " from track t", track_joins!())
    };
}

/// Drops track `t` when its self-labels hold any value of the `text[]` parameter `$p` (an empty
/// array drops nothing). For `concat!` after a `where` clause.
macro_rules! without_labels {
    ($p:literal) => {
        concat!(
            " and (cardinality(",
            $p,
            "::text[]) = 0 or not (jsonb_path_query_array(t.record, '$.labels.values[*].val') ?| ",
            $p,
            "::text[])) "
        )
    };
}

/// Keeps like `l` only if it is its actor's newest like of that track: two likes of one track by
/// one actor list once, as they count once. For `concat!` after a `where`.
macro_rules! newest_like_of_pair {
    () => {
        " and not exists (select 1 from track_like d where d.did = l.did \
           and d.subject_uri = l.subject_uri and (d.sort_at, d.uri) > (l.sort_at, l.uri)) "
    };
}

/// True when `$norm`, a normalized name (a stored `*_norm` column, migration 0011), contains
/// the query `$1` literally or is similar to it (trigram or word similarity): each arm is served
/// by the column's trigram index. For `concat!`.
macro_rules! search_match {
    ($norm:literal) => {
        concat!(
            " (",
            $norm,
            " like plyr_search_pattern($1) or ",
            $norm,
            " % plyr_search_norm($1) or ",
            $norm,
            " %> plyr_search_norm($1)) "
        )
    };
}

/// True when the normalized name `$norm` starts with the query `$1` (`plyr_search_rank`'s
/// exact and prefix tiers), in byte order so that the column's `collate "C"` name index
/// (migration 0013) serves it as a range. For `concat!`.
macro_rules! starts_with_query {
    ($norm:literal) => {
        concat!(" (", $norm, " collate \"C\" ^@ plyr_search_norm($1)) ")
    };
}

/// `plyr_search_rank` of the normalized name `$norm` for the query `$1`. For `concat!`.
macro_rules! search_rank {
    ($norm:literal) => {
        concat!(" plyr_search_rank(", $norm, ", $1) ")
    };
}

pub mod activity;
pub mod actor;
pub mod album;
pub mod blob;
pub mod comment;
pub mod health;
pub mod label;
pub mod like;
pub mod list;
pub mod metrics;
pub mod play;
pub mod search;
pub mod stats;
pub mod track;

/// A read transaction that runs without parallel workers. For a page whose LIMIT stops after a
/// few index rows, the planner can still expect a long scan (its estimates for semi-joins are
/// pessimistic) and launch workers, which costs more than the whole query: getActivity's first
/// page took 7.0 ms with them and 0.9 ms without (load bench data).
async fn serial(db: &sqlx::PgPool) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    with_setting(db, "set local max_parallel_workers_per_gather = 0").await
}

/// A read transaction planned for its actual parameters. The server's connections use generic
/// plans (one plan per prepared statement: right for keyset pages, which walk an index from the
/// cursor whatever it is), but a search's best plan depends on the query text (which trigram
/// indexes pay off, how selective a pattern is), so searches are re-planned on every call.
async fn custom_plans(
    db: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    with_setting(db, "set local plan_cache_mode = force_custom_plan").await
}

/// A transaction whose queries run under one planner `set local`.
async fn with_setting(
    db: &sqlx::PgPool,
    set_local: &'static str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(set_local).execute(&mut *tx).await?;
    Ok(tx)
}
