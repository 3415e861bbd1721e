-- Labels and takedowns (issue #4): labels from the labelers this AppView subscribes to
-- (com.atproto.label.subscribeLabels; each labeler's seq is a consumer_cursor row
-- 'labeler:<did>', written in the same transaction as its labels), local admin takedowns, and
-- the one view every read filters content through.

-- The newest label per (src, uri, val): a later label (by cts) replaces an earlier one, so a
-- negation (neg) replaces the label it negates and a re-applied label replaces the negation.
-- `cid` pins the label to one version of a record; filtering treats it as the whole URI (a
-- takedown of one version hides the record).
create table label (
    src        text collate "C" not null,
    uri        text collate "C" not null,
    val        text        not null,
    cid        text,
    neg        boolean     not null default false,
    cts        timestamptz not null,
    exp        timestamptz,
    ver        bigint,
    sig        bytea,
    indexed_at timestamptz not null default now(),
    primary key (src, uri, val)
);
-- Hydration: the labels of a page of subjects.
create index label_uri_idx on label (uri);
-- Filtering: one probe per served row, over the few labels that hide content.
create index label_hiding_idx on label (uri)
    where val in ('!takedown', '!suspend', '!hide') and not neg;

-- Local takedowns (`plyr-appview takedown`): an actor by DID, a record by AT-URI, a blob by CID.
-- `--reverse` deletes the row.
create table takedown (
    subject    text collate "C" primary key,
    kind       text        not null check (kind in ('actor', 'record', 'blob')),
    created_at timestamptz not null default now()
);

-- Every subject whose content is not served: DIDs (the actor and all their content), AT-URIs
-- (one record) and blob CIDs. A label counts while it is not negated and not expired.
create view hidden_subject as
    select uri as subject from label
    where val in ('!takedown', '!suspend', '!hide') and not neg
      and (exp is null or exp > now())
    union all
    select subject from takedown;
