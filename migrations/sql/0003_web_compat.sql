-- What the plyr.fm web client's REST API (appview/src/web) needs beyond the view: integer track
-- ids and UUID-shaped list ids derived from the AT-URI, and the play counts that listeners send.
--
-- Ids are a pure function of the URI (sha256), so a rebuild from backfill gives every record the
-- id it had before, and an update never changes it. `decode(replace(uri, '\', '\\'), 'escape')`
-- is the URI's bytes (immutable, and exact even for a backslash, which `uri::bytea` would
-- misread); the appview computes the same ids in Rust (web/id.rs) and a test checks they agree.

-- The first 52 bits of sha256(uri): below 2^53, so a JavaScript number holds it exactly.
alter table track add column web_id bigint generated always as (
    ('x' || substr(encode(sha256(decode(replace(uri, '\', '\\'), 'escape')), 'hex'), 1, 13))::bit(52)::bigint
) stored;
create index track_web_id_idx on track (web_id);
-- `/audio/{file_id}`: the file id of a track we hold no blob copy of is its rkey.
create index track_rkey_idx on track (rkey);
-- `/tracks/top` of all time ranks the (few) liked tracks.
create index track_like_count_idx on track (like_count desc, sort_at desc) where like_count > 0;

-- The first 16 bytes of sha256(uri), shown as a UUID: upstream's playlist and album ids are UUIDs.
alter table list add column web_id uuid generated always as (
    encode(substring(sha256(decode(replace(uri, '\', '\\'), 'escape')) from 1 for 16), 'hex')::uuid
) stored;
create index list_web_id_idx on list (web_id);

-- Plays reported by listeners (`POST /tracks/{id}/play`). One row per (track, listener), where
-- the listener is a hash of the play cookie or, without one, of the client address; a play
-- counts only when the listener's previous one is older than the dedup window. Rows older than
-- the longest window (1 h) are pruned as plays arrive.
create table web_play (
    track_uri  text collate "C" not null,
    listener   bytea       not null,
    played_at  timestamptz not null,
    primary key (track_uri, listener)
);
create index web_play_played_at_idx on web_play (played_at);

-- Counted plays per track. Kept apart from `track`, which the indexer rewrites: a count must
-- survive an update of the record, and a deleted-then-recreated record is a new URI anyway.
create table web_play_count (
    track_uri text collate "C" primary key,
    did       text collate "C" not null,
    plays     bigint      not null default 0
);
create index web_play_count_did_idx on web_play_count (did);
