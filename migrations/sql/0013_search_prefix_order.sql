-- Names that start with the query (the exact and prefix tiers of `plyr_search_rank`) are served
-- in name order, then key, straight from these indexes: a page of a query that starts most
-- names (`tr`, `track` over the load bench's 100k titles) reads its rows and stops, where it
-- used to rank every match first (192 ms). `collate "C"` because a prefix is a byte range only
-- in byte order; the queries say `collate "C"` too. The key columns are `collate "C"` already.
-- Likes update `track` without touching these columns, so they stay HOT updates (0012).
create index track_title_prefix_idx on track (title_norm collate "C", uri);
create index actor_handle_prefix_idx on actor (handle_norm collate "C", did)
    where handle is not null;
create index bsky_profile_name_prefix_idx on bsky_profile (display_name_norm collate "C", did)
    where display_name is not null;
create index list_name_prefix_idx on list (name_norm collate "C", uri) where name is not null;
