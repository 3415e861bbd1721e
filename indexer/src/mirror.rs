//! The blob mirror, beside the stream: for each indexed track with an `audioBlob`, fetch the
//! blob from its author's PDS (`com.atproto.sync.getBlob`, size-capped, SSRF-guarded by
//! plyr-identity), check that the bytes hash to the record's CID and decode as the audio they
//! claim, store them and mark the track's audio verified. `audioUrl`-only tracks are fetched
//! only from allow-listed origins and recorded as unverified. Failures are recorded per track
//! and retried a bounded number of times; an outage of our own store is retried until it ends.

use std::time::Duration;

use futures_util::StreamExt;
use plyr_blobstore::{BlobCid, BlobStore, MediaDetails, PutError, PutLimits};
use plyr_identity::{Did, Download, IdentityError, Resolver, SyncClient};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::fold::error_chain;
use crate::store::{self, AudioState, DueAudio, MirroredBlob};

/// How the mirror runs.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Largest blob fetched: the lexicon's `audioBlob` cap (100 MiB) by default.
    pub max_bytes: u64,
    /// Budget of one download, body included.
    pub fetch_timeout: Duration,
    /// Origins (`https://host[:port]`) whose `audioUrl`s may be fetched; empty: none. Tracks
    /// with only an `audioUrl` elsewhere are not due at all: trying them would record a
    /// failure per track, over and over, for what is configuration.
    pub url_origins: Vec<String>,
    /// Tracks taken per pass.
    pub batch: i64,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Attempts per track before it is left alone (until its record changes). Failures of our
    /// own store or database do not spend attempts.
    pub max_attempts: i32,
    /// Wait before retrying a failed track.
    pub retry_after: Duration,
    /// Pause when a pass found nothing to do.
    pub idle: Duration,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            max_bytes: 100 << 20,
            fetch_timeout: Duration::from_secs(600),
            url_origins: Vec::new(),
            batch: 64,
            concurrency: 4,
            max_attempts: 5,
            retry_after: Duration::from_secs(600),
            idle: Duration::from_secs(30),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// Tracks whose audio blob is now held and verified.
    pub verified: u64,
    /// `audioUrl` tracks fetched (unverified).
    pub unverified: u64,
    /// Tracks whose attempt failed (recorded, retried later).
    pub failed: u64,
}

/// Why a pass could not run at all (per-track failures are recorded, not returned).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A query failed.
    #[error("mirror query failed")]
    Database(#[from] sqlx::Error),
}

/// The parts a pass needs.
#[derive(Debug, Clone)]
pub struct Mirror {
    db: PgPool,
    store: BlobStore,
    resolver: Resolver,
    sync: SyncClient,
    config: MirrorConfig,
}

/// One track's outcome.
enum Outcome {
    Verified,
    Unverified,
    Failed,
}

impl Mirror {
    /// A mirror writing to `db` and `store`, finding PDSes with `resolver` and fetching with
    /// `sync`.
    pub fn new(
        db: PgPool,
        store: BlobStore,
        resolver: Resolver,
        sync: SyncClient,
        config: MirrorConfig,
    ) -> Mirror {
        Mirror {
            db,
            store,
            resolver,
            sync,
            config,
        }
    }

    /// Runs passes until `shutdown`, pausing `idle` when nothing is due or a pass failed.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let busy = tokio::select! {
                () = shutdown.cancelled() => return,
                report = self.pass() => match report {
                    Ok(report) => report != MirrorReport::default(),
                    Err(e) => {
                        tracing::warn!(error = %e, "mirror pass failed");
                        false
                    }
                },
            };
            if !busy {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.config.idle) => {}
                }
            }
        }
    }

    /// One pass over the due tracks, `concurrency` at a time.
    pub async fn pass(&self) -> Result<MirrorReport, MirrorError> {
        let due = store::due_audio(
            &self.db,
            self.config.batch,
            self.config.max_attempts,
            self.config.retry_after.as_secs_f64(),
            &self.config.url_origins,
        )
        .await?;
        let outcomes: Vec<Result<Outcome, sqlx::Error>> = futures_util::stream::iter(due)
            .map(|track| self.mirror_track(track))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut report = MirrorReport::default();
        for outcome in outcomes {
            match outcome? {
                Outcome::Verified => report.verified += 1,
                Outcome::Unverified => report.unverified += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
        if report != MirrorReport::default() {
            tracing::info!(?report, "mirror pass");
        }
        Ok(report)
    }

    async fn mirror_track(&self, track: DueAudio) -> Result<Outcome, sqlx::Error> {
        let result = match (&track.cid, &track.url) {
            (Some(cid), _) => self.mirror_blob(&track, cid).await,
            (None, Some(url)) => self.mirror_url(&track, url).await,
            (None, None) => Err(Failure::Record("no audioBlob or audioUrl".into())),
        };
        let (source, verified) = if track.cid.is_some() {
            ("blob", true)
        } else {
            ("url", false)
        };
        let mut conn = self.db.acquire().await?;
        match result {
            Ok(cid) => {
                store::record_audio(
                    &mut conn,
                    &AudioState {
                        track_uri: &track.uri,
                        cid: Some(&cid),
                        source,
                        verified,
                        error: None,
                        spends_attempt: false,
                    },
                )
                .await?;
                Ok(if verified {
                    Outcome::Verified
                } else {
                    Outcome::Unverified
                })
            }
            Err(failure) => {
                let reason = error_chain(&failure);
                let spends_attempt = failure.spends_attempt();
                if spends_attempt {
                    tracing::debug!(uri = %track.uri, reason = %reason, "mirror failed");
                } else {
                    tracing::warn!(uri = %track.uri, reason = %reason,
                        "mirror failed on our side; retried without spending an attempt");
                }
                store::record_audio(
                    &mut conn,
                    &AudioState {
                        track_uri: &track.uri,
                        cid: track.cid.as_deref(),
                        source,
                        verified: false,
                        error: Some(&reason),
                        spends_attempt,
                    },
                )
                .await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// Fetches `cid` from the author's PDS unless held; returns the CID.
    async fn mirror_blob(&self, track: &DueAudio, cid: &str) -> Result<String, Failure> {
        let expected: BlobCid = cid
            .parse()
            .map_err(|e| Failure::Record(format!("audioBlob cid: {e}")))?;
        if track.held {
            // Stored under its content address, so its bytes hash to the CID by construction.
            return Ok(cid.to_owned());
        }
        let did = Did::new(&track.did).map_err(|e| Failure::Record(format!("did: {e}")))?;
        let doc = self.resolver.resolve_did(&did).await?;
        let pds = doc
            .pds_endpoint()
            .ok_or_else(|| Failure::Record("DID document names no PDS".into()))?;
        let download = self
            .sync
            .get_blob(
                &pds,
                &did,
                cid,
                self.config.max_bytes,
                self.config.fetch_timeout,
            )
            .await?;
        let limits = PutLimits::max_bytes(self.config.max_bytes).expecting(expected);
        self.store_download(download, limits, track.mime.as_deref())
            .await
    }

    /// Fetches an allow-listed `audioUrl`; returns the CID of what was fetched.
    async fn mirror_url(&self, _track: &DueAudio, url: &str) -> Result<String, Failure> {
        let url: Url = url
            .parse()
            .map_err(|e| Failure::Record(format!("audioUrl: {e}")))?;
        let origin = url.origin().ascii_serialization();
        if !self.config.url_origins.contains(&origin) {
            return Err(Failure::Record(format!(
                "audioUrl origin {origin} is not allow-listed"
            )));
        }
        let download = self
            .sync
            .get_file(&url, self.config.max_bytes, self.config.fetch_timeout)
            .await?;
        self.store_download(download, PutLimits::max_bytes(self.config.max_bytes), None)
            .await
    }

    /// Streams a download into the store (validated as media, CID checked when `limits` expect
    /// one), recording the blob row and promoting under its lock.
    async fn store_download(
        &self,
        download: Download,
        limits: PutLimits,
        declared: Option<&str>,
    ) -> Result<String, Failure> {
        let body = futures_util::stream::unfold(Some(download), |state| async move {
            let mut download = state?;
            match download.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(download))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        });
        let pending = self.store.receive_media(body, limits, declared).await?;
        let cid = pending.cid().to_string();
        let media = pending.media().clone();
        let mut row = MirroredBlob {
            cid: &cid,
            mime: media.mime(),
            size: i64::try_from(pending.size()).unwrap_or(i64::MAX),
            codec: None,
            duration_ms: None,
            sample_rate: None,
            channels: None,
            bitrate: None,
        };
        if let MediaDetails::Audio(audio) = &media.details {
            row.codec = Some(&audio.codec);
            row.duration_ms = audio.duration_ms.and_then(|v| i64::try_from(v).ok());
            row.sample_rate = audio.sample_rate.and_then(|v| i32::try_from(v).ok());
            row.channels = audio.channels.and_then(|v| i16::try_from(v).ok());
            row.bitrate = audio.bitrate.and_then(|v| i32::try_from(v).ok());
        } else {
            pending.abort().await;
            return Err(Failure::Record("audio is an image".into()));
        }
        let mut tx = match self.db.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                pending.abort().await;
                return Err(e.into());
            }
        };
        if let Err(e) = store::record_mirrored(&mut tx, &row).await {
            pending.abort().await;
            return Err(e.into());
        }
        pending.promote().await?;
        tx.commit().await?;
        Ok(cid)
    }
}

/// Why one track's audio could not be mirrored: recorded on the track, never fatal.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Record(String),
    #[error("fetch")]
    Fetch(#[from] IdentityError),
    #[error("store")]
    Put(#[from] PutError),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

impl Failure {
    /// Whether the failure is the track's (its record, its PDS, its bytes). Our blob store or
    /// database being down is not (issue #6): such a track is retried after `retry_after` for
    /// as long as the outage lasts, instead of running out of attempts.
    fn spends_attempt(&self) -> bool {
        !matches!(
            self,
            Failure::Put(PutError::Store(_)) | Failure::Database(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use plyr_blobstore::FsBackend;
    use plyr_identity::SyncConfig;
    use serde_json::json;

    use super::*;
    use crate::loopback::{KEY_A, Loopback};
    use crate::media_fixtures as fx;
    use crate::s3_harness;

    const DID: &str = "did:plc:mirrormirrormirrormirror";

    struct Env {
        mirror: Mirror,
        store: BlobStore,
        pds: Loopback,
        _dir: Option<tempfile::TempDir>,
    }

    async fn env(db: &PgPool, config: MirrorConfig) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::new(FsBackend::open(dir.path()).await.expect("fs store"));
        env_on(db, config, store, Some(dir)).await
    }

    /// A mirror writing to `store`; `dir` is kept while the test runs.
    async fn env_on(
        db: &PgPool,
        config: MirrorConfig,
        store: BlobStore,
        dir: Option<tempfile::TempDir>,
    ) -> Env {
        let pds = Loopback::start().await;
        pds.set_doc(DID, KEY_A, pds.pds());
        let sync = SyncClient::new(SyncConfig {
            allow_loopback: true,
            ..SyncConfig::default()
        })
        .expect("sync client");
        let mirror = Mirror::new(db.clone(), store.clone(), pds.resolver(), sync, config);
        sqlx::query("insert into actor (did, handle) values ($1, 'mirror.test')")
            .bind(DID)
            .execute(db)
            .await
            .expect("actor");
        Env {
            mirror,
            store,
            pds,
            _dir: dir,
        }
    }

    /// Indexes a track of DID whose record carries `audio` (audioBlob and/or audioUrl).
    async fn track(db: &PgPool, rkey: &str, audio: serde_json::Value) -> String {
        let uri = format!("at://{DID}/fm.plyr.track/{rkey}");
        let mut record = json!({"$type": "fm.plyr.track", "title": "t", "artist": "a",
                                "fileType": "wav", "createdAt": "2024-01-01T00:00:00Z"});
        if let (Some(record), Some(audio)) = (record.as_object_mut(), audio.as_object()) {
            record.extend(audio.clone());
        }
        sqlx::query(
            "insert into track (uri, did, rkey, cid, rev, title, artist, created_at, sort_at, \
               record) \
             values ($1, $2, $3, 'bafyreib', '3kaaaaaaaaaa2', 't', 'a', now(), now(), $4)",
        )
        .bind(&uri)
        .bind(DID)
        .bind(rkey)
        .bind(&record)
        .execute(db)
        .await
        .expect("track");
        uri
    }

    fn blob_ref(bytes: &[u8]) -> serde_json::Value {
        json!({"audioBlob": {"$type": "blob", "ref": {"$link": BlobCid::of(bytes).to_string()},
                             "mimeType": "audio/wav", "size": bytes.len()}})
    }

    async fn audio_state(db: &PgPool, uri: &str) -> (String, bool, Option<String>) {
        sqlx::query_as("select source, verified, error from track_audio where track_uri = $1")
            .bind(uri)
            .fetch_one(db)
            .await
            .expect("track_audio row")
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn audio_blobs_are_fetched_checked_and_marked_verified(db: PgPool) {
        let env = env(&db, MirrorConfig::default()).await;
        let wav: Bytes = fx::wav(fx::RATE / 4);
        let cid = BlobCid::of(&wav);
        env.pds.set_blob(DID, &cid.to_string(), &wav);
        let first = track(&db, "3kaaaaaaaaaa2", blob_ref(&wav)).await;
        // A second track using the same audio: no second fetch, verified all the same.
        let second = track(&db, "3kaaaaaaaaab2", blob_ref(&wav)).await;
        env.mirror.batch_of_one_then_rest().await;
        assert_eq!(env.pds.blob_hits(), 1);
        for uri in [&first, &second] {
            assert_eq!(
                audio_state(&db, uri).await,
                ("blob".to_owned(), true, None),
                "{uri}"
            );
        }
        assert!(env.store.exists(cid).await.expect("exists"));
        let (origin, codec): (String, Option<String>) =
            sqlx::query_as("select origin, codec from blob where cid = $1")
                .bind(cid.to_string())
                .fetch_one(&db)
                .await
                .expect("blob row");
        assert_eq!(
            (origin.as_str(), codec.as_deref()),
            ("mirror", Some("pcm_s16le"))
        );
        // Nothing is due any more.
        let report = env.mirror.pass().await.expect("pass");
        assert_eq!(report, MirrorReport::default());
        env.pds.stop().await;
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn a_pds_serving_other_bytes_or_too_many_stores_nothing(db: PgPool) {
        let config = MirrorConfig {
            max_bytes: 64 << 10,
            ..MirrorConfig::default()
        };
        let env = env(&db, config).await;
        let wav = fx::wav(fx::RATE / 4);
        let other = fx::wav(fx::RATE / 5);
        let big = fx::wav(fx::RATE * 2);
        // The PDS answers the declared CID with different (valid) audio.
        env.pds
            .set_blob(DID, &BlobCid::of(&wav).to_string(), &other);
        env.pds.set_blob(DID, &BlobCid::of(&big).to_string(), &big);
        let lying = track(&db, "3kaaaaaaaaaa2", blob_ref(&wav)).await;
        let huge = track(&db, "3kaaaaaaaaab2", blob_ref(&big)).await;
        let missing = track(&db, "3kaaaaaaaaac2", blob_ref(b"never served")).await;
        let report = env.mirror.pass().await.expect("pass");
        assert_eq!(report.failed, 3);
        for uri in [&lying, &huge, &missing] {
            let (source, verified, error) = audio_state(&db, uri).await;
            assert_eq!((source.as_str(), verified), ("blob", false), "{uri}");
            assert!(error.is_some(), "{uri}");
        }
        let rows: i64 = sqlx::query_scalar("select count(*) from blob")
            .fetch_one(&db)
            .await
            .expect("count");
        assert_eq!(rows, 0);
        for bytes in [&wav, &other, &big] {
            assert!(!env.store.exists(BlobCid::of(bytes)).await.expect("exists"));
        }
        // Failures wait for their retry time.
        assert_eq!(
            env.mirror.pass().await.expect("pass"),
            MirrorReport::default()
        );
        env.pds.stop().await;
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn audio_urls_only_from_allow_listed_origins_and_unverified(db: PgPool) {
        let env = env(&db, MirrorConfig::default()).await;
        let origin = env.pds.url.origin().ascii_serialization();
        let mut mirror = env.mirror.clone();
        mirror.config.url_origins = vec![origin.clone()];
        let wav = fx::wav(fx::RATE / 4);
        env.pds.set_file("a.wav", &wav);
        let allowed = track(
            &db,
            "3kaaaaaaaaaa2",
            json!({"audioUrl": format!("{origin}/files/a.wav")}),
        )
        .await;
        let refused = track(
            &db,
            "3kaaaaaaaaab2",
            json!({"audioUrl": "https://cdn.elsewhere.example/a.wav"}),
        )
        .await;
        let report = mirror.pass().await.expect("pass");
        assert_eq!((report.unverified, report.failed), (1, 0));
        assert_eq!(
            audio_state(&db, &allowed).await,
            ("url".to_owned(), false, None)
        );
        // Not due at all: no attempt, no failure recorded (one per pass, for configuration).
        let refused_rows: i64 =
            sqlx::query_scalar("select count(*) from track_audio where track_uri = $1")
                .bind(&refused)
                .fetch_one(&db)
                .await
                .expect("count");
        assert_eq!(refused_rows, 0);
        assert_eq!(mirror.pass().await.expect("pass"), MirrorReport::default());
        // Only the allow-listed URL was requested.
        assert_eq!(env.pds.blob_hits(), 1);
        assert!(env.store.exists(BlobCid::of(&wav)).await.expect("exists"));
        env.pds.stop().await;
    }

    async fn attempts(db: &PgPool, uri: &str) -> i32 {
        sqlx::query_scalar("select attempts from track_audio where track_uri = $1")
            .bind(uri)
            .fetch_one(db)
            .await
            .expect("track_audio row")
    }

    /// Issue #6: the store (S3 on a real s3s-fs) is down during a pass. The pass still
    /// completes; the track is recorded as failed, unverified, with nothing stored, and, unlike
    /// a track whose PDS lacks the blob, without spending an attempt. Once s3s-fs is back on the
    /// same port and folder, the next pass stores the blob and verifies the track.
    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn issue_6_a_store_outage_is_retried_without_spending_attempts(db: PgPool) {
        let mut s3 = s3_harness::Env::new(s3_harness::Kind::S3)
            .await
            .expect("s3s-fs (scripts/test installs it)");
        let config = MirrorConfig {
            // One attempt: a failure that spent it would never be retried.
            max_attempts: 1,
            retry_after: Duration::ZERO,
            ..MirrorConfig::default()
        };
        let env = env_on(&db, config, s3.store.clone(), None).await;
        let wav = fx::wav(fx::RATE / 4);
        let cid = BlobCid::of(&wav);
        env.pds.set_blob(DID, &cid.to_string(), &wav);
        let served = track(&db, "3kaaaaaaaaaa2", blob_ref(&wav)).await;
        let missing = track(&db, "3kaaaaaaaaab2", blob_ref(b"never served")).await;

        s3.stop_s3().await.expect("stop s3s-fs");
        let started = std::time::Instant::now();
        let report = env.mirror.pass().await.expect("a pass survives the outage");
        eprintln!(
            "pass with the store down: {report:?} in {:?}",
            started.elapsed()
        );
        assert_eq!(report.failed, 2);
        let (source, verified, error) = audio_state(&db, &served).await;
        assert_eq!((source.as_str(), verified), ("blob", false));
        assert!(error.is_some_and(|e| e.contains("store")));
        assert_eq!(
            attempts(&db, &served).await,
            0,
            "the outage spends no attempt"
        );
        assert_eq!(
            attempts(&db, &missing).await,
            1,
            "a PDS without the blob does"
        );
        let rows: i64 = sqlx::query_scalar("select count(*) from blob")
            .fetch_one(&db)
            .await
            .expect("count");
        assert_eq!(rows, 0, "nothing recorded as stored");

        // Still down: retried, still no attempt spent; the PDS failure is not retried.
        let report = env.mirror.pass().await.expect("pass");
        assert_eq!((report.failed, report.verified), (1, 0));
        assert_eq!(attempts(&db, &served).await, 0);

        s3.restart_s3().await.expect("restart s3s-fs");
        let report = env.mirror.pass().await.expect("pass");
        assert_eq!((report.verified, report.failed), (1, 0));
        assert_eq!(
            audio_state(&db, &served).await,
            ("blob".to_owned(), true, None)
        );
        let read = env
            .store
            .get_range(cid, None)
            .await
            .expect("read")
            .expect("stored");
        let bytes = s3_harness::collect(read).await.expect("read body");
        assert_eq!(BlobCid::of(&bytes), cid);
        assert_eq!(bytes, wav.to_vec());
        // Done: the verified track is not due, the PDS failure used its one attempt.
        assert_eq!(
            env.mirror.pass().await.expect("pass"),
            MirrorReport::default()
        );
        env.pds.stop().await;
    }

    impl Mirror {
        /// Two passes of one track each: the second finds the blob held.
        async fn batch_of_one_then_rest(&self) {
            let mut one = self.clone();
            one.config.batch = 1;
            let first = one.pass().await.expect("pass");
            let second = one.pass().await.expect("pass");
            assert_eq!(first.verified + second.verified, 2);
        }
    }
}
