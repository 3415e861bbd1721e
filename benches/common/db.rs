//! A fresh migrated database for a bench: shared by the root benches and, through `#[path]`,
//! the indexer's (another package, so not through a crate).

use anyhow::{Context, Result};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

/// Drops and re-creates database `name` on DATABASE_URL's server, migrated.
pub async fn fresh_database(name: &str) -> Result<(String, PgPool)> {
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let mut url = url::Url::parse(&base).context("DATABASE_URL")?;
    url.set_path(name);
    let url = url.to_string();
    if Postgres::database_exists(&url).await? {
        Postgres::drop_database(&url).await?;
    }
    Postgres::create_database(&url).await?;
    let pool = PgPool::connect(&url).await?;
    plyr_migrations::MIGRATOR.run(&pool).await?;
    Ok((url, pool))
}
