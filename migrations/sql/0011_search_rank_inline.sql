-- 0009's plyr_search_rank was `strict`, and Postgres inlines a strict SQL function only when
-- its body is strict too, which a CASE is not: so every ranked row paid a function call. This
-- one is the same ranking without `strict` (a NULL name still ranks NULL: word_similarity is
-- strict), written so the name is searched once. Inlined, ranking 100k titles takes 255 ms
-- instead of 481 ms on one core, and searchTracks for a word all 100k near-identical titles
-- contain 300-314 ms instead of 490-498 ms (EXPLAIN ANALYZE, load bench data).
create or replace function plyr_search_rank(name text, q text) returns bigint
    language sql immutable parallel safe
    return (case strpos(name, plyr_search_norm(q))
                when 0 then 3
                when 1 then (case when name = plyr_search_norm(q) then 0 else 1 end)
                else 2
            end)::bigint * 1000000
        + (1000000 - floor(word_similarity(plyr_search_norm(q), name) * 1000000))::bigint;
