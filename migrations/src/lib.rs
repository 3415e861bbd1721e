//! The Postgres schema shared by the indexer (which writes it) and the appview (which reads it).
//!
//! The schema is the only contract between those two crates. Migrations are numbered `.sql`
//! files under `sql/`, embedded at build time and applied at start by `plyr-appview run`.

/// Every migration of the view, in order. `MIGRATOR.run(&pool)` brings a database up to date.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");
