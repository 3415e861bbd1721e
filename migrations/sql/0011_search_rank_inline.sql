-- Search, cheaper per candidate (0009 made it work). A search for a word that many names share
-- ranks every one of them; two costs per row are cut here.
--
-- 1. 0009's plyr_search_rank was `strict`, and Postgres inlines a strict SQL function only when
--    its body is strict too, which a CASE is not: so every ranked row paid a function call. This
--    is the same ranking without `strict` (a NULL name still ranks NULL: word_similarity is
--    strict), written so the name is searched once.
create or replace function plyr_search_rank(name text, q text) returns bigint
    language sql immutable parallel safe
    return (case strpos(name, plyr_search_norm(q))
                when 0 then 3
                when 1 then (case when name = plyr_search_norm(q) then 0 else 1 end)
                else 2
            end)::bigint * 1000000
        + (1000000 - floor(word_similarity(plyr_search_norm(q), name) * 1000000))::bigint;

-- 2. The normalized names are stored, so matching and ranking read them instead of normalizing
--    each name up to four times per query; the trigram indexes move onto them. Searching for a
--    word all of the load bench's 100k titles contain: 522-572 ms with 0009, see BENCHMARKS.md.
alter table track
    add column title_norm text generated always as (plyr_search_norm(title)) stored,
    add column album_norm text generated always as (plyr_search_norm(album)) stored;
alter table actor add column handle_norm text generated always as (plyr_search_norm(handle)) stored;
alter table list add column name_norm text generated always as (plyr_search_norm(name)) stored;
alter table bsky_profile
    add column display_name_norm text generated always as (plyr_search_norm(display_name)) stored;

drop index track_title_trgm_idx;
drop index track_album_trgm_idx;
drop index actor_handle_trgm_idx;
drop index list_name_trgm_idx;
drop index bsky_profile_name_trgm_idx;
create index track_title_trgm_idx on track using gin (title_norm gin_trgm_ops);
create index track_album_trgm_idx on track using gin (album_norm gin_trgm_ops)
    where album is not null and album <> '';
create index actor_handle_trgm_idx on actor using gin (handle_norm gin_trgm_ops)
    where handle is not null;
create index list_name_trgm_idx on list using gin (name_norm gin_trgm_ops) where name is not null;
create index bsky_profile_name_trgm_idx on bsky_profile using gin (display_name_norm gin_trgm_ops)
    where display_name is not null;
