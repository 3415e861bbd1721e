//! The writer task: drains the channel into batches (up to [`MAX_BATCH`] events or
//! [`BATCH_LINGER`] after the first), plans each and commits it in one transaction, retrying
//! while the database is unreachable, and logs throughput and lag periodically.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fold::{self, Classified, Plan, STORE_REJECTED, Segment, Skip, error_chain};
use crate::store::{self, Applied, StoreError};

/// Most events per transaction. Measured on the 200k-event mix (2 cores, release): 2000 gave
/// ~15k events/s, 5000 ~20k/s; after the store's later cuts 5000 gives 21-27k/s and 10000 no
/// more (27.4k vs 27.1k, 61 vs 36 MiB peak RSS). A full batch commits in ~180 ms, well inside
/// the one-second visibility budget.
pub(crate) const MAX_BATCH: usize = 5000;
/// How long a batch waits for more events after its first: keeps writes well inside the
/// "visible within a second" budget while a busy stream still fills batches.
pub(crate) const BATCH_LINGER: Duration = Duration::from_millis(20);
/// First retry delay after a failed transaction; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay while the database is down.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often throughput and lag are logged.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Consumes batches until the channel closes or `shutdown` fires between batches.
pub(crate) async fn run(
    pool: PgPool,
    source: String,
    mut events: mpsc::Receiver<Classified>,
    committed: watch::Sender<Option<i64>>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut batch: Vec<Classified> = Vec::with_capacity(MAX_BATCH);
    let mut metrics = Metrics::new();
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            n = events.recv_many(&mut batch, MAX_BATCH) => n,
        };
        if received == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + BATCH_LINGER;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            let more = tokio::select! {
                n = events.recv_many(&mut batch, room) => n,
                _ = tokio::time::sleep_until(deadline) => 0,
            };
            if more == 0 {
                break;
            }
        }
        let plan = fold::plan(std::mem::take(&mut batch));
        let Some(applied) = commit(&pool, &source, &plan, &shutdown).await? else {
            // Shut down while the database was unreachable: the batch is not committed and
            // will be replayed from the stored cursor.
            return Ok(());
        };
        if let Some(cursor) = plan.cursor {
            // The stored cursor never moves back (a rewound replay commits older times).
            committed.send_if_modified(|c| {
                let newer = c.is_none_or(|c| cursor > c);
                if newer {
                    *c = Some(cursor);
                }
                newer
            });
        }
        metrics.record(&plan, &applied);
    }
}

/// Commits a plan, retrying transient failures with backoff. A plan Postgres refuses is
/// applied piece by piece so one bad event is counted rather than stopping the stream.
/// `None` when shutdown interrupted the retries.
async fn commit(
    pool: &PgPool,
    source: &str,
    plan: &Plan,
    shutdown: &CancellationToken,
) -> Result<Option<Applied>, StoreError> {
    match apply_with_retry(pool, source, plan, shutdown).await {
        Ok(applied) => Ok(applied),
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "batch refused; applying it event by event");
            apply_piecewise(pool, source, plan, shutdown).await
        }
    }
}

/// Retries while the error is transient; returns the first permanent error.
async fn apply_with_retry(
    pool: &PgPool,
    source: &str,
    plan: &Plan,
    shutdown: &CancellationToken,
) -> Result<Option<Applied>, StoreError> {
    let mut delay = RETRY_MIN;
    loop {
        match store::apply(pool, source, plan).await {
            Ok(applied) => return Ok(Some(applied)),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %error_chain(&e), retry_in = ?delay, "batch failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Applies each operation of a refused plan in its own transaction; those Postgres refuses
/// alone are counted as [`STORE_REJECTED`]. The cursor (and the repos' chain state) moves only
/// with the last piece.
async fn apply_piecewise(
    pool: &PgPool,
    source: &str,
    plan: &Plan,
    shutdown: &CancellationToken,
) -> Result<Option<Applied>, StoreError> {
    let mut written = 0;
    // The chain advances and desynchronized marks go with the cursor: a refused record is
    // counted, but the commit that carried it is still the chain's latest.
    let mut last = Plan {
        repos: plan.repos.clone(),
        desyncs: plan.desyncs.clone(),
        skips: plan.skips.clone(),
        cursor: plan.cursor,
        events: plan.events,
        ..Plan::default()
    };
    for piece in singletons(plan) {
        let (uri_or_did, piece) = piece;
        match apply_with_retry(pool, source, &piece, shutdown).await {
            Ok(Some(applied)) => written += applied.written,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!(subject = %uri_or_did, error = %error_chain(&e), "event refused by the database");
                last.add_skip(Skip::new(STORE_REJECTED, uri_or_did));
            }
        }
    }
    match apply_with_retry(pool, source, &last, shutdown).await? {
        Some(applied) => Ok(Some(Applied {
            written,
            skips: applied.skips,
        })),
        None => Ok(None),
    }
}

/// Splits a plan into one-operation plans (without cursor or skips), each named by the record
/// URI or DID it touches, in the order the plan applies them.
fn singletons(plan: &Plan) -> Vec<(String, Plan)> {
    let one = |name: String, segment: Segment| {
        (
            name,
            Plan {
                segments: vec![segment],
                ..Plan::default()
            },
        )
    };
    let mut pieces = Vec::new();
    for segment in plan.segments.iter().cloned() {
        match segment {
            Segment::Commits(ops) => pieces.extend(
                ops.into_iter()
                    .map(|op| one(op.uri.clone(), Segment::Commits(vec![op]))),
            ),
            Segment::Accounts(changes) => pieces.extend(
                changes
                    .into_iter()
                    .map(|c| one(c.did.clone(), Segment::Accounts(vec![c]))),
            ),
        }
    }
    pieces.extend(plan.identities.iter().map(|c| {
        (
            c.did.clone(),
            Plan {
                identities: vec![c.clone()],
                ..Plan::default()
            },
        )
    }));
    pieces
}

/// Running totals logged every [`REPORT_EVERY`].
struct Metrics {
    since: Instant,
    events: usize,
    written: u64,
    skips: BTreeMap<&'static str, i64>,
    batches: u64,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            since: Instant::now(),
            events: 0,
            written: 0,
            skips: BTreeMap::new(),
            batches: 0,
        }
    }

    fn record(&mut self, plan: &Plan, applied: &Applied) {
        self.events += plan.events;
        self.written += applied.written;
        for (reason, count) in &applied.skips {
            *self.skips.entry(reason).or_insert(0) += count;
        }
        self.batches += 1;
        let elapsed = self.since.elapsed();
        if elapsed < REPORT_EVERY {
            return;
        }
        let now_us = chrono::Utc::now().timestamp_micros();
        // Jetstream cursors are unix µs (above 1e15 since 2001); a relay's seq is a counter far
        // below that and says nothing about lag.
        let lag_ms = plan
            .cursor
            .filter(|c| *c > 1_000_000_000_000_000)
            .map(|c| now_us.saturating_sub(c) / 1000);
        let per_second = usize_per_second(self.events, elapsed);
        tracing::info!(
            events = self.events,
            events_per_second = per_second,
            written = self.written,
            skipped = %skip_summary(&self.skips),
            batches = self.batches,
            lag_ms,
            "indexer progress"
        );
        *self = Metrics::new();
    }
}

/// `reason=count reason=count`, for the progress log.
fn skip_summary(skips: &BTreeMap<&'static str, i64>) -> String {
    let parts: Vec<String> = skips.iter().map(|(r, c)| format!("{r}={c}")).collect();
    parts.join(" ")
}

fn usize_per_second(count: usize, elapsed: Duration) -> u64 {
    let millis = elapsed.as_millis().max(1);
    u64::try_from(u128::try_from(count).unwrap_or(u128::MAX) * 1000 / millis).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode;
    use crate::testing::*;
    use plyr_lexicons::Namespace;

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn a_refused_event_is_counted_and_the_rest_commits(pool: PgPool) {
        // A constraint that only this comment breaks, standing in for data Postgres refuses.
        sqlx::query("alter table comment add constraint no_x check (body <> 'x')")
            .execute(&pool)
            .await
            .expect("rename");
        let ns = Namespace::new("fm.plyr").expect("namespace");
        let track_uri = uri(ALICE, "track", &tid(100));
        let events = [
            track(5, ALICE, &tid(100), &tid(1), "T"),
            write(
                6,
                BOB,
                "fm.plyr.comment",
                &tid(200),
                &tid(2),
                CID,
                comment_record(&track_uri, "x"),
            ),
            like(7, BOB, &tid(201), &tid(3), &track_uri),
            "not json".to_owned(),
        ];
        let plan = fold::plan(
            events
                .iter()
                .map(|e| fold::classify(&ns, decode(e.as_bytes())))
                .collect(),
        );
        let applied = commit(&pool, "jetstream", &plan, &CancellationToken::new())
            .await
            .expect("commit")
            .expect("not shut down");
        assert_eq!(applied.written, 2, "{applied:?}");
        assert_eq!(applied.skips.get(STORE_REJECTED), Some(&1));
        assert_eq!(applied.skips.get(fold::MALFORMED_EVENT), Some(&1));
        let likes: i32 = sqlx::query_scalar("select like_count from track where uri = $1")
            .bind(&track_uri)
            .fetch_one(&pool)
            .await
            .expect("track");
        assert_eq!(likes, 1);
        let cursor = store::last_cursor(&pool, "jetstream")
            .await
            .expect("cursor");
        assert_eq!(cursor, Some(7));
        let detail: String = sqlx::query_scalar(
            "select last_detail from indexer_skip where reason = 'store_rejected'",
        )
        .fetch_one(&pool)
        .await
        .expect("skip row");
        assert_eq!(detail, uri(BOB, "comment", &tid(200)));
    }

    #[test]
    fn rates_are_computed_without_overflow() {
        let cases = [
            (0, Duration::ZERO, 0),
            (1000, Duration::from_secs(2), 500),
            (usize::MAX, Duration::from_millis(1), u64::MAX),
        ];
        for (count, elapsed, want) in cases {
            assert_eq!(usize_per_second(count, elapsed), want);
        }
    }
}
