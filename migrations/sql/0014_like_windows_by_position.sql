-- Top tracks within a window (getTopTracks `since`) and trending read the likes of a time
-- window. They read each like's `created_at`, which the liker writes: a like dated years ahead
-- fell in every window, and trending, which weighs a like by how late in the window it came,
-- gave it the top weight (2^40 times a like at the window's start). They now read `sort_at`,
-- least(createdAt, indexedAt), the position feeds already use: never later than when this
-- view first saw the like. The window index moves with them.
--
-- Folding it into `track_like_sort_idx` (sort_at desc, uri desc), which the activity feed
-- reads, was tried: one index fewer per like, but no ingest gain that showed (Postgres 69.4
-- and 66.3 us per event against 71.6 and 62.3, `cargo bench --bench ingest`, 600k events),
-- and the window read got slower (median 73.7 -> 78.9 ms for 56k likes on the load bench's
-- data), the uri in its key making it wider. So the two stay apart.
drop index track_like_created_idx;
create index track_like_window_idx on track_like (sort_at) include (subject_uri, did);
