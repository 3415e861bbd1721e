-- The blob service (issue #5): blobs this AppView stores (uploaded or mirrored from a PDS), what
-- validation found in them, the per-track audio verification state, and what garbage collection
-- needs to never delete a referenced blob.

-- One row per stored original, keyed by its CIDv1 (raw, sha2-256). Written when the object is
-- promoted, under this row's lock (see `state`), so a GC cannot delete an object an upload is
-- re-storing. Media details are null where they don't apply (images have no codec, audio no
-- dimensions) or are unknown.
create table blob (
    cid          text collate "C" primary key,
    mime         text        not null,
    size         bigint      not null check (size >= 0),
    codec        text,
    duration_ms  bigint,
    sample_rate  integer,
    channels     smallint,
    bitrate      integer,
    width        integer,
    height       integer,
    -- 'upload' (fm.plyr.blob.uploadBlob) or 'mirror' (fetched from the author's PDS).
    origin       text        not null check (origin in ('upload', 'mirror')),
    -- The DID of the first uploader; null for mirrored blobs.
    uploaded_by  text collate "C",
    -- When the blob was last (re-)stored: the start of its GC grace period.
    stored_at    timestamptz not null default now(),
    -- When a GC pass first found nothing referencing the blob; cleared when a pass finds a
    -- reference again. A blob is deleted only when this and stored_at are both older than the
    -- grace period and still nothing references it.
    unreferenced_since timestamptz,
    -- The web rendition (e.g. 'web.flac') for formats browsers can't play, once transcoded.
    web_rendition text,
    -- Set when a transcode failed, so the worker does not retry forever; the original stays.
    transcode_error text
);
create index blob_unreferenced_idx on blob (unreferenced_since) where unreferenced_since is not null;
-- The transcoder's queue.
create index blob_transcode_due_idx on blob (cid)
    where web_rendition is null and transcode_error is null and mime in ('audio/aiff');

-- References from indexed records, found through expression indexes instead of counters the
-- indexer would have to keep: a track's audioBlob, and a cover imageUrl that points at our
-- /blob/<cid>. A record edit that drops a blob drops the reference with it.
-- Not partial: a query on the expression alone must be able to use them.
create index track_audio_blob_idx on track ((record -> 'audioBlob' -> 'ref' ->> '$link'));
create index track_image_blob_idx on track ((substring(record ->> 'imageUrl' from '/blob/([a-z2-7]+)$')));

-- What the mirror found for each track: where its audio came from and whether our copy is
-- proven. 'blob': fetched from the author's PDS by audioBlob and checked against its CID
-- (verified). 'url': an audioUrl-only track fetched from an allow-listed origin (unverified).
-- `cid` is the record's audio CID the row was made for: when the record changes its audio, the
-- row no longer matches and the track is mirrored again.
create table track_audio (
    track_uri   text collate "C" primary key,
    cid         text collate "C",
    source      text        not null check (source in ('blob', 'url')),
    verified    boolean     not null,
    -- Null while mirrored; the reason of the last failure otherwise.
    error       text,
    attempts    integer     not null default 0,
    checked_at  timestamptz not null default now()
);
