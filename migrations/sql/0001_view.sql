-- The view of fm.plyr.* records that the indexer writes and the appview reads.
--
-- Revs are TIDs, which sort correctly as bytes: every rev column uses the "C" collation so
-- `>` compares them the way the protocol orders them. Identifiers (AT-URIs, DIDs) use "C" too:
-- they are ASCII keys, and byte comparison is what makes their many btree inserts cheap (a
-- locale collation costs a strcoll per comparison and disables abbreviated keys). Columns
-- joined to each other must share the collation.

-- Every DID the indexer has seen. `handle` is null until known (served as handle.invalid).
-- `active` follows #account events; inactive actors' content is never served.
-- `identity_checked_at` is when the handle was last verified both ways against the DID
-- document (null: never, or an #identity event asked for a new check).
create table actor (
    did            text collate "C" primary key,
    handle         text,
    active         boolean     not null default true,
    status         text,
    track_count    integer     not null default 0,
    like_count     integer     not null default 0,
    comment_count  integer     not null default 0,
    album_count    integer     not null default 0,
    playlist_count integer     not null default 0,
    first_seen_at  timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    identity_checked_at timestamptz
) with (fillfactor = 80);
create index actor_handle_idx on actor (handle) where handle is not null;
-- The few inactive actors: each commit batch looks its authors up here.
create index actor_inactive_idx on actor (did) where not active;
-- The handle resolver's queue: never-checked actors first, then the stalest.
create index actor_identity_due_idx on actor (identity_checked_at nulls first);

-- The folding ledger: the newest rev seen for every record URI, live or deleted. A write wins
-- only when its rev is greater than the stored one, so replays and stale updates change nothing
-- and a delete's tombstone (deleted = true) keeps an older create from resurrecting the record.
-- Every event writes a row here, so it holds only what folding needs (the DID, collection and
-- rkey are parts of the URI). No index on the DID: an account purge finds a DID's rows as the
-- primary key range ['at://<did>/', 'at://<did>0') ('0' follows '/' in byte order).
create table record (
    uri        text collate "C" primary key,
    rev        text collate "C" not null,
    deleted    boolean     not null default false,
    updated_at timestamptz not null default now()
);

-- fm.plyr.track. `sort_at` = least(created_at, indexed_at): a future-dated record cannot jump
-- the queue. Counts are maintained by the indexer so reads never count rows.
create table track (
    uri           text collate "C" primary key,
    did           text collate "C" not null,
    rkey          text        not null,
    cid           text        not null,
    rev           text collate "C" not null,
    title         text        not null,
    artist        text        not null,
    album         text,
    created_at    timestamptz not null,
    indexed_at    timestamptz not null default now(),
    sort_at       timestamptz not null,
    record        jsonb       not null,
    like_count    integer     not null default 0,
    comment_count integer     not null default 0
) with (fillfactor = 70);
create index track_sort_idx on track (sort_at desc, uri desc);
create index track_did_sort_idx on track (did, sort_at desc, uri desc);

-- fm.plyr.like. A like may arrive before its track; counts join on subject_uri when the track
-- lands. Two likes of one track by one actor count once.
create table track_like (
    uri         text collate "C" primary key,
    did         text collate "C" not null,
    rkey        text        not null,
    cid         text        not null,
    rev         text collate "C" not null,
    subject_uri text collate "C" not null,
    subject_cid text,
    created_at  timestamptz not null,
    indexed_at  timestamptz not null default now(),
    sort_at     timestamptz not null
);
create index track_like_subject_idx on track_like (subject_uri, sort_at desc, uri desc) include (did);
create index track_like_did_idx on track_like (did, sort_at desc, uri desc);
-- Finds an actor's other likes of the same track: duplicates count and list once. A pair
-- has one or a few likes, so the key stops at the pair.
create index track_like_pair_idx on track_like (did, subject_uri);

-- fm.plyr.comment: timed comments, read in playback order.
create table comment (
    uri          text collate "C" primary key,
    did          text collate "C" not null,
    rkey         text        not null,
    cid          text        not null,
    rev          text collate "C" not null,
    subject_uri  text collate "C" not null,
    subject_cid  text,
    body         text        not null,
    timestamp_ms bigint      not null,
    created_at   timestamptz not null,
    indexed_at   timestamptz not null default now(),
    sort_at      timestamptz not null,
    record       jsonb       not null
);
create index comment_subject_idx on comment (subject_uri, timestamp_ms, uri) include (did);
create index comment_did_idx on comment (did);

-- fm.plyr.list: albums, playlists and "liked" lists; items keep record order.
create table list (
    uri        text collate "C" primary key,
    did        text collate "C" not null,
    rkey       text        not null,
    cid        text        not null,
    rev        text collate "C" not null,
    name       text,
    list_type  text,
    item_count integer     not null,
    created_at timestamptz not null,
    indexed_at timestamptz not null default now(),
    sort_at    timestamptz not null,
    record     jsonb       not null
);
create index list_did_sort_idx on list (did, sort_at desc, uri desc);
create index list_did_type_sort_idx on list (did, list_type, sort_at desc, uri desc);

create table list_item (
    list_uri    text collate "C" not null references list (uri) on delete cascade,
    position    integer not null,
    subject_uri text collate "C" not null,
    subject_cid text,
    primary key (list_uri, position)
);
create index list_item_subject_idx on list_item (subject_uri);

-- fm.plyr.actor.profile (rkey "self"): one per actor.
create table profile (
    did        text collate "C" primary key,
    uri        text collate "C" not null unique,
    cid        text        not null,
    rev        text collate "C" not null,
    bio        text,
    avatar     text,
    created_at timestamptz not null,
    indexed_at timestamptz not null default now(),
    record     jsonb       not null
);

-- Where each event source resumes. Written in the same transaction as the effects of the events
-- it covers, so a crash never loses or double-applies an event.
create table consumer_cursor (
    source     text primary key,
    cursor     bigint      not null,
    updated_at timestamptz not null default now()
);

-- Events the indexer skipped, by reason (invalid record, malformed event, ...), counted in the
-- same transaction as the batch they came in.
create table indexer_skip (
    reason     text primary key,
    count      bigint      not null default 0,
    last_at    timestamptz not null default now(),
    last_detail text
);
