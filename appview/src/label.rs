//! Labels on views (`com.atproto.label.defs#label`): a track's self-labels from its record,
//! and the labels of the labelers this AppView follows (on tracks and accounts). The
//! `atproto-accept-labelers` request header picks which of those labelers' labels are
//! hydrated (all of them without it); `atproto-content-labelers` answers which were applied.
//! Hiding (`!takedown`, `!suspend`, `!hide`) is not done here: the queries never return
//! hidden content (`queries/mod.rs`, `not_hidden!`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use moka::future::Cache;
use sqlx::PgPool;

use crate::queries;
use crate::views::{LabelView, ProfileViewDetailed, TrackView};

/// The request header naming the labelers a client wants (spec: `did[;redact], ...`).
pub const ACCEPT_LABELERS: &str = "atproto-accept-labelers";
/// The response header naming the labelers whose labels were applied.
pub const CONTENT_LABELERS: &str = "atproto-content-labelers";
/// Most labelers one request may ask for; the rest are ignored.
const MAX_ACCEPTED: usize = 20;
/// How long the list of followed labelers is reused: it changes when an operator adds a
/// `--labeler`, and a request should not pay a query for it.
const KNOWN_TTL: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// The labelers applied to the request being served (set by [`layer`]).
    static APPLIED: Arc<Vec<String>>;
}

/// The labelers this AppView follows (those with a stored `labeler:<did>` cursor), cached
/// for [`KNOWN_TTL`]. When the list expires, one request reads it again and the requests
/// arriving meanwhile wait for that read instead of each sending their own (at thousands of
/// requests a second, an expiry otherwise sent a burst of identical queries).
#[derive(Debug, Clone)]
pub(crate) struct Labelers {
    db: PgPool,
    known: Cache<(), Arc<Vec<String>>>,
}

impl Labelers {
    pub(crate) fn new(db: PgPool) -> Labelers {
        Labelers {
            db,
            known: Cache::builder()
                .max_capacity(1)
                .time_to_live(KNOWN_TTL)
                .build(),
        }
    }

    async fn known(&self) -> Result<Arc<Vec<String>>, Arc<sqlx::Error>> {
        self.known
            .try_get_with((), async {
                queries::label::labelers(&self.db).await.map(Arc::new)
            })
            .await
    }
}

/// The DIDs of an `atproto-accept-labelers` value, in order, without parameters (`;redact`)
/// and repeats; `None` when the header is absent.
pub(crate) fn accepted(value: Option<&HeaderValue>) -> Option<Vec<String>> {
    let value = value?.to_str().unwrap_or_default();
    let mut dids: Vec<String> = Vec::new();
    for item in value.split(',') {
        let did = item.split(';').next().unwrap_or_default().trim();
        if did.starts_with("did:") && !dids.iter().any(|d| d == did) {
            dids.push(did.to_owned());
        }
        if dids.len() == MAX_ACCEPTED {
            break;
        }
    }
    Some(dids)
}

/// Middleware: decides the labelers applied to the request (those it accepts that we follow,
/// else every one we follow), serves the request with them, and names them in
/// `atproto-content-labelers`.
pub(crate) async fn layer(State(labelers): State<Labelers>, req: Request, next: Next) -> Response {
    let known = labelers.known().await.unwrap_or_else(|e| {
        // Labels are an addition to the view: serve without them rather than fail.
        tracing::warn!(error = %e, "reading the followed labelers");
        Arc::default()
    });
    let applied = match accepted(req.headers().get(ACCEPT_LABELERS)) {
        Some(dids) => Arc::new(dids.into_iter().filter(|d| known.contains(d)).collect()),
        None => known,
    };
    let mut response = APPLIED.scope(Arc::clone(&applied), next.run(req)).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&applied.join(", ")) {
        headers.insert(CONTENT_LABELERS, value);
    }
    // Shared caches must key on the header: it changes the labels in the body.
    headers.append(header::VARY, HeaderValue::from_static(ACCEPT_LABELERS));
    response
}

/// The labelers applied to the current request; none outside [`layer`].
fn applied() -> Arc<Vec<String>> {
    APPLIED.try_with(Arc::clone).unwrap_or_default()
}

/// Adds the applied labelers' labels in force to `tracks` (self-labels are already there).
pub(crate) async fn hydrate_tracks(
    db: &PgPool,
    tracks: &mut [TrackView],
) -> Result<(), sqlx::Error> {
    let labelers = applied();
    if labelers.is_empty() || tracks.is_empty() {
        return Ok(());
    }
    let uris: Vec<String> = tracks.iter().map(|t| t.uri().to_owned()).collect();
    let mut by_uri: HashMap<String, Vec<LabelView>> = HashMap::new();
    for row in queries::label::of_subjects(db, &uris, &labelers).await? {
        by_uri
            .entry(row.uri.clone())
            .or_default()
            .push(LabelView::from(row));
    }
    for track in tracks {
        if let Some(labels) = by_uri.remove(track.uri()) {
            track.add_labels(labels);
        }
    }
    Ok(())
}

/// Adds the applied labelers' labels in force on each account to `profiles`.
pub(crate) async fn hydrate_profiles(
    db: &PgPool,
    profiles: &mut [ProfileViewDetailed],
) -> Result<(), sqlx::Error> {
    let labelers = applied();
    if labelers.is_empty() || profiles.is_empty() {
        return Ok(());
    }
    let dids: Vec<String> = profiles.iter().map(|p| p.did().to_owned()).collect();
    let mut by_did: HashMap<String, Vec<LabelView>> = HashMap::new();
    for row in queries::label::of_subjects(db, &dids, &labelers).await? {
        by_did
            .entry(row.uri.clone())
            .or_default()
            .push(LabelView::from(row));
    }
    for profile in profiles {
        if let Some(labels) = by_did.remove(profile.did()) {
            profile.add_labels(labels);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_labelers_header() {
        let parse = |s: &str| accepted(Some(&HeaderValue::from_str(s).expect("header")));
        assert_eq!(accepted(None), None);
        assert_eq!(
            parse("did:plc:a;redact, did:web:b.example ,did:plc:a, nonsense"),
            Some(vec!["did:plc:a".to_owned(), "did:web:b.example".to_owned()])
        );
        assert_eq!(parse(""), Some(Vec::new()));
        let many: Vec<String> = (0..30).map(|i| format!("did:plc:{i}")).collect();
        assert_eq!(parse(&many.join(",")).map(|d| d.len()), Some(MAX_ACCEPTED));
    }
}
