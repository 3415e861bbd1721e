//! `GET /xrpc/_health`: the version, once the pool answers a trivial query.

use axum::Json;
use axum::extract::State;
use sqlx::PgPool;

use crate::error::XrpcError;
use crate::queries;
use crate::views::HealthOutput;

/// Answers `{"version"}`, or 503 ServiceUnavailable when the database does not respond.
pub async fn health(State(db): State<PgPool>) -> Result<Json<HealthOutput>, XrpcError> {
    queries::health::ping(&db)
        .await
        .map_err(XrpcError::Unavailable)?;
    Ok(Json(HealthOutput {
        version: env!("CARGO_PKG_VERSION"),
    }))
}
