-- Verified ingestion (relay firehose and backfill): the chain of verified commits per tracked
-- repo, DID documents as last resolved, #account events awaiting confirmation from the
-- account's current PDS, and the progress of a backfill so an interrupted one resumes.

-- One row per tracked repo: a DID becomes tracked when it publishes a record in our namespace
-- (seen on the relay, or found by a backfill). `rev` and `data_cid` are those of the last
-- verified commit applied: the next commit must have a greater rev, and its `prevData` must
-- equal `data_cid`, or the repo is desynchronized and resynced from getRepo.
create table repo_state (
    did        text collate "C" primary key,
    rev        text collate "C" not null,
    data_cid   text        not null,
    status     text        not null default 'synced'
               check (status in ('synced', 'desynchronized')),
    -- Why the repo was last desynchronized (a broken chain, a #sync event, a failed resync).
    reason     text,
    updated_at timestamptz not null default now()
);
-- The resync queue: few rows, scanned oldest first.
create index repo_state_desynchronized_idx on repo_state (updated_at)
    where status = 'desynchronized';

-- DID documents as last resolved, so a restart does not re-resolve every tracked repo before
-- it can verify a signature. `doc` is the document as served; the resolver's cache sits in
-- front of this table.
create table did_doc (
    did         text collate "C" primary key,
    doc         jsonb       not null,
    resolved_at timestamptz not null default now()
);

-- An #account event that would hide or purge an actor is not applied until the actor's current
-- PDS confirms it (com.atproto.sync.getRepoStatus): old hosts keep sending stale events after
-- a migration. `pending_*` hold the event's claim; the checker clears them when it settles.
alter table actor
    add column pending_active boolean,
    add column pending_status text,
    add column pending_since  timestamptz,
    add column status_checked_at timestamptz;
create index actor_pending_status_idx on actor (pending_since) where pending_since is not null;

-- Backfill progress. Discovery pages through listReposByCollection (one row per collection)
-- or listRepos (collection ''), keeping the cursor of the next page; every DID found is queued
-- in backfill_repo and marked done or failed once its snapshot is applied.
create table backfill_discovery (
    host       text        not null,
    collection text        not null,
    cursor     text,
    done       boolean     not null default false,
    updated_at timestamptz not null default now(),
    primary key (host, collection)
);
create table backfill_repo (
    did        text collate "C" primary key,
    state      text        not null default 'queued'
               check (state in ('queued', 'done', 'failed')),
    attempts   integer     not null default 0,
    records    integer,
    error      text,
    updated_at timestamptz not null default now()
);
create index backfill_repo_queued_idx on backfill_repo (did) where state = 'queued';
