-- getTopTracks (all time) pages by (like_count desc, uri desc). 0003's partial index orders
-- ties by sort_at for the web API's /tracks/top, so the XRPC feed sorted every liked track for
-- each page: 400 ms at 100k tracks, against 0.3 ms walking this index.
create index track_top_idx on track (like_count desc, uri desc) where like_count > 0;
