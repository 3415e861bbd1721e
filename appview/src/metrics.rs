//! Prometheus metrics at `/metrics`: request latency per method (the NSID, or the route
//! template of the web API: a bounded label set), and at each scrape the indexer's lag, skips
//! by reason and records, read from the tables it writes (the record counts at most once per
//! [`RECORD_COUNT_TTL`]: they scan the whole ledger).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use moka::future::Cache;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use sqlx::PgPool;

use crate::queries;

/// Latency buckets (seconds): the goal is single-digit milliseconds, so most resolution sits
/// there; the tail goes to the request timeout.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Request metrics, shared by every route.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    latency: HistogramVec,
    /// (live, deleted) records: counting them reads every row of the ledger, millions on a
    /// network-wide index, so scrapes (and several scrapers) share one count per TTL.
    records: Cache<(), (i64, i64)>,
}

/// How long a count of the ledger's records is shown before it is taken again.
const RECORD_COUNT_TTL: Duration = Duration::from_secs(60);

/// The metrics could not be registered or encoded (a programming error, reported not panicked).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Registers the request histogram.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "plyr_http_request_duration_seconds",
                "Time to answer a request, by method (NSID or route) and status class.",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "status"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let records = Cache::builder()
            .max_capacity(1)
            .time_to_live(RECORD_COUNT_TTL)
            .build();
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                latency,
                records,
            }),
        })
    }

    /// The request metrics in the text exposition format.
    fn encode_requests(&self, out: &mut Vec<u8>) -> Result<(), MetricsError> {
        TextEncoder::new().encode(&self.inner.registry.gather(), out)?;
        Ok(())
    }
}

/// The middleware timing every routed request. Unrouted paths share one label.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| label(p.as_str()).to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .inner
        .latency
        .with_label_values(&[method.as_str(), status])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// An XRPC route's NSID, or the route template.
fn label(matched: &str) -> &str {
    matched.strip_prefix("/xrpc/").unwrap_or(matched)
}

/// `GET /metrics`: the request metrics, then the indexer's, read now. 404 when the request
/// metrics could not be set up.
pub async fn serve(State(metrics): State<Option<Metrics>>, State(db): State<PgPool>) -> Response {
    let Some(metrics) = metrics else {
        return (StatusCode::NOT_FOUND, "metrics disabled\n").into_response();
    };
    let mut out = Vec::new();
    let encoded = match metrics.encode_requests(&mut out) {
        Ok(()) => indexer_metrics(&metrics, &db, &mut out).await,
        Err(err) => Err(err.to_string()),
    };
    match encoded {
        Ok(()) => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                ),
                // Always read fresh; also keeps the ETag layer off a body that never repeats.
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            out,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics scrape failed");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response()
        }
    }
}

/// Indexer lag, skips and records, in a registry built for this scrape (their values live in
/// Postgres, not here).
async fn indexer_metrics(metrics: &Metrics, db: &PgPool, out: &mut Vec<u8>) -> Result<(), String> {
    let cursors = queries::metrics::cursors(db)
        .await
        .map_err(|e| e.to_string())?;
    let skips = queries::metrics::skips(db)
        .await
        .map_err(|e| e.to_string())?;
    let (live, deleted) = metrics
        .inner
        .records
        .try_get_with((), queries::metrics::records(db))
        .await
        .map_err(|e| e.to_string())?;
    let registry = Registry::new();
    let err = |e: prometheus::Error| e.to_string();
    let since_commit = GaugeVec::new(
        Opts::new(
            "plyr_indexer_seconds_since_commit",
            "Seconds since the indexer last committed a batch of this source.",
        ),
        &["source"],
    )
    .map_err(err)?;
    let event_lag = GaugeVec::new(
        Opts::new(
            "plyr_indexer_event_lag_seconds",
            "Jetstream: seconds between now and the time of the last event indexed.",
        ),
        &["source"],
    )
    .map_err(err)?;
    let cursor = IntGaugeVec::new(
        Opts::new("plyr_indexer_cursor", "The stored cursor of each source."),
        &["source"],
    )
    .map_err(err)?;
    let skipped = IntGaugeVec::new(
        Opts::new(
            "plyr_indexer_events_skipped_total",
            "Events the indexer skipped, by reason, all time.",
        ),
        &["reason"],
    )
    .map_err(err)?;
    let records = IntGaugeVec::new(
        Opts::new(
            "plyr_indexer_records",
            "Records in the view's ledger: live, or deleted (tombstones).",
        ),
        &["state"],
    )
    .map_err(err)?;
    for metric in [since_commit.clone(), event_lag.clone()] {
        registry.register(Box::new(metric)).map_err(err)?;
    }
    for metric in [cursor.clone(), skipped.clone(), records.clone()] {
        registry.register(Box::new(metric)).map_err(err)?;
    }
    let now = Utc::now();
    for row in &cursors {
        let source = row.source.as_str();
        let age = (now - row.updated_at).num_milliseconds();
        since_commit
            .with_label_values(&[source])
            .set(millis_to_secs(age));
        cursor.with_label_values(&[source]).set(row.cursor);
        // Jetstream cursors are event times in microseconds; relay cursors are sequence
        // numbers and have no time.
        if source == "jetstream" {
            let lag_us = now.timestamp_micros().saturating_sub(row.cursor);
            event_lag
                .with_label_values(&[source])
                .set(millis_to_secs(lag_us / 1000));
        }
    }
    for row in &skips {
        skipped
            .with_label_values(&[row.reason.as_str()])
            .set(row.count);
    }
    records.with_label_values(&["live"]).set(live);
    records.with_label_values(&["deleted"]).set(deleted);
    TextEncoder::new()
        .encode(&registry.gather(), out)
        .map_err(err)
}

/// Milliseconds as fractional seconds (lags fit an f64 exactly far beyond any real lag).
fn millis_to_secs(ms: i64) -> f64 {
    // i32 covers 24 days of milliseconds; longer lags are shown in whole seconds.
    match i32::try_from(ms) {
        Ok(ms) => f64::from(ms) / 1000.0,
        Err(_) => i32::try_from(ms / 1000).map_or(f64::MAX, f64::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_nsids_or_templates() {
        assert_eq!(
            label("/xrpc/fm.plyr.feed.getTrack"),
            "fm.plyr.feed.getTrack"
        );
        assert_eq!(label("/tracks/{id}"), "/tracks/{id}");
        assert_eq!(millis_to_secs(1500), 1.5);
        assert_eq!(millis_to_secs(-250), -0.25);
    }
}
