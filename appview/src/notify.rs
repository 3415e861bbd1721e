//! Follows the indexer's change notifications (Postgres `LISTEN plyr_view_changed`, sent in
//! each batch's transaction) and drops what they name from the [`ViewCache`]. On a lost
//! connection the cache stops serving and empties until the listener is back, since
//! notifications sent meanwhile are gone.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::cache::ViewCache;

/// The channel the indexer notifies (`indexer/src/store/notify.rs`).
const CHANNEL: &str = "plyr_view_changed";

/// First wait before reconnecting; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Keeps `cache` in step with the view until `shutdown`: listens, applies every notification,
/// and reconnects (with backoff) whenever the connection drops. Never fails: while Postgres is
/// unreachable the cache is simply not used.
pub async fn follow_changes(db: PgPool, cache: ViewCache, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    while !shutdown.is_cancelled() {
        match listen(&db).await {
            Ok(mut listener) => {
                backoff = MIN_BACKOFF;
                cache.go_live();
                tracing::info!(channel = CHANNEL, "view cache following changes");
                let lost = follow(&mut listener, &cache, &shutdown).await;
                cache.go_dark();
                match lost {
                    None => return,
                    Some(err) => {
                        tracing::warn!(error = %err, "change listener lost; view cache off")
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, ?backoff, "change listener cannot connect");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn listen(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies notifications until shutdown (`None`) or until the connection is lost (why).
async fn follow(
    listener: &mut PgListener,
    cache: &ViewCache,
    shutdown: &CancellationToken,
) -> Option<String> {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return None,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(notification)) => cache.apply(notification.payload()).await,
            // try_recv reports a dropped connection once as `None`; we reconnect ourselves so
            // that the cache goes live only after LISTEN is in place again.
            Ok(None) => return Some("connection closed".to_owned()),
            Err(err) => return Some(err.to_string()),
        }
    }
}
