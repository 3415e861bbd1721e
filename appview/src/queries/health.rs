//! The health check's probe of the pool.

use sqlx::PgPool;
use tracing::instrument;

/// Runs a trivial statement, proving a connection can be had and used.
#[instrument(skip(db))]
pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(db).await?;
    Ok(())
}
