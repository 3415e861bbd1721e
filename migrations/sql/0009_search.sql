-- Search, feeds and profiles (issue #4): trigram indexes for ranked search over tracks, actors,
-- albums and lists; the like-time index that windowed top and trending feeds read; and the
-- actors' app.bsky.actor.profile records (display name and avatar).

create extension if not exists pg_trgm;

-- The form names and queries are compared in: lowercase, curly quotes made straight (phones
-- type ’ where titles have ', and the reverse). Immutable, so indexes can be built on it.
create function plyr_search_norm(s text) returns text
    language sql immutable parallel safe strict
    return lower(translate(s, E'\u2018\u2019\u201A\u201B\u201C\u201D\u201E\u201F',
                              E'''''''''""""'));

-- A LIKE pattern matching names that contain `q` (normalized) literally: `\`, `%` and `_` in a
-- query are characters, not wildcards.
create function plyr_search_pattern(q text) returns text
    language sql immutable parallel safe strict
    return '%' || replace(replace(replace(plyr_search_norm(q), '\', '\\'), '%', '\%'), '_', '\_')
        || '%';

-- Rank of a (normalized) name for a query, smaller first: the tier (0 exact, 1 prefix,
-- 2 substring, 3 only similar) times 10^6, plus 10^6 minus the word similarity in millionths,
-- so ties within a tier go to the closer match. One bigint, so pages can be keyset on
-- (rank, key) exactly.
create function plyr_search_rank(name text, q text) returns bigint
    language sql immutable parallel safe strict
    return (case
                when name = plyr_search_norm(q) then 0
                when strpos(name, plyr_search_norm(q)) = 1 then 1
                when strpos(name, plyr_search_norm(q)) > 0 then 2
                else 3
            end)::bigint * 1000000
        + (1000000 - floor(word_similarity(plyr_search_norm(q), name) * 1000000))::bigint;

-- Candidates are found by these indexes: `like plyr_search_pattern(q)` (substring tiers) or
-- `%`/`%>` (trigram and word similarity) on the normalized name.
create index track_title_trgm_idx on track using gin (plyr_search_norm(title) gin_trgm_ops);
create index track_album_trgm_idx on track using gin (plyr_search_norm(album) gin_trgm_ops)
    where album is not null and album <> '';
create index actor_handle_trgm_idx on actor using gin (plyr_search_norm(handle) gin_trgm_ops)
    where handle is not null;
create index list_name_trgm_idx on list using gin (plyr_search_norm(name) gin_trgm_ops)
    where name is not null;

-- Top tracks within a window and trending read the likes created since a time; without this
-- they scan every like.
create index track_like_created_idx on track_like (created_at) include (subject_uri, did);

-- The activity feed merges the newest likes, comments and lists of everyone, by sort_at.
create index track_like_sort_idx on track_like (sort_at desc, uri desc);
create index comment_sort_idx on comment (sort_at desc, uri desc);
create index list_sort_idx on list (sort_at desc, uri desc);

-- app.bsky.actor.profile/self of tracked actors: the display name and avatar the rest of the
-- network shows for them. `avatar_cid` is the avatar blob's CID; the appview turns it into a
-- URL (our /blob/{cid} when we hold it, else the PDS's getBlob, else the Bluesky CDN).
create table bsky_profile (
    did          text collate "C" primary key,
    cid          text        not null,
    rev          text collate "C" not null,
    display_name text,
    avatar_cid   text,
    indexed_at   timestamptz not null default now()
);
create index bsky_profile_name_trgm_idx on bsky_profile
    using gin (plyr_search_norm(display_name) gin_trgm_ops) where display_name is not null;
