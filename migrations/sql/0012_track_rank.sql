-- Top-tracks order, kept apart from `track`. With `like_count` indexed on `track`, a like could
-- not update its track's row in place (HOT): each one rewrote the row's entries in every index
-- of `track`, two trigram GIN among them. Ingest bench, Postgres per event: 52.5 us before,
-- 35 us with those indexes simply gone, 40.7-42.8 us with this table kept in their place.
-- `track.like_count` stays the count that views show; this table holds the liked tracks'
-- counts for ordering, kept in step by the triggers below in the same transaction, whoever
-- writes `track`. Triggers rather than a foreign key for deletes too: with the key's check on
-- each first like of a track it was 44.6-47.8 us.
create table track_rank (
    uri        text collate "C" primary key,
    like_count integer not null check (like_count > 0)
);
create index track_rank_top_idx on track_rank (like_count desc, uri desc);

create function track_rank_sync() returns trigger
    language plpgsql
as $$
begin
    if tg_op = 'TRUNCATE' then
        -- Not `truncate`: that fails when the same statement truncates `track_rank` too.
        delete from track_rank;
    elsif tg_op = 'DELETE' then
        delete from track_rank where uri = old.uri;
    elsif new.like_count > 0 then
        insert into track_rank (uri, like_count) values (new.uri, new.like_count)
        on conflict (uri) do update set like_count = excluded.like_count;
    else
        delete from track_rank where uri = new.uri;
    end if;
    return null;
end
$$;

create trigger track_rank_on_insert after insert on track
    for each row when (new.like_count > 0) execute function track_rank_sync();
create trigger track_rank_on_update after update of like_count on track
    for each row when (old.like_count is distinct from new.like_count)
    execute function track_rank_sync();
create trigger track_rank_on_delete after delete on track
    for each row when (old.like_count > 0) execute function track_rank_sync();
create trigger track_rank_on_truncate after truncate on track
    for each statement execute function track_rank_sync();

insert into track_rank (uri, like_count) select uri, like_count from track where like_count > 0;

drop index track_top_idx;
drop index track_like_count_idx;
