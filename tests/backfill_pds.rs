//! Backfill against the reference PDS: `plyr-appview backfill --all` into an empty database,
//! with no live source, gives the same XRPC answers as the relay path over the same history.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use sqlx::{Connection, PgPool};

use crate::relay_pds::{INDEXED, relay_indexer, skip_rows};
use crate::support::appview::{Appview, run_binary};
use crate::support::database_url;
use crate::support::pds::{Pds, wait_until_synced};
use crate::support::scenario::Scenario;

/// Discovery (listRepos), two getRepo downloads and the writes; generous for a loaded box.
const BACKFILL: Duration = Duration::from_secs(120);

/// A second, migrated database beside the test's own, dropped by [`Sibling::drop_now`].
struct Sibling {
    pool: PgPool,
    admin: String,
    name: String,
}

impl Sibling {
    async fn create(of: &PgPool, suffix: &str) -> Sibling {
        let own = database_url(of);
        let base = own
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("database URL path");
        // Postgres truncates names to 63 bytes, and sqlx's test names are about that long: a
        // suffixed one would silently name the test's own database. A short random one instead.
        let salt = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let name = format!("plyr_e2e_{suffix}_{salt:016x}");
        let admin = format!("{base}/postgres");
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#)))
            .execute(&mut conn)
            .await
            .expect("create sibling");
        let pool = PgPool::connect(&format!("{base}/{name}"))
            .await
            .expect("connect sibling");
        plyr_migrations::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate sibling");
        Sibling { pool, admin, name }
    }

    async fn drop_now(self) {
        self.pool.close().await;
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"drop database "{}" with (force)"#,
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drop sibling");
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn backfill_gives_the_relay_answers(pool: PgPool) {
    let pds = Pds::start().await.expect("start the PDS");
    let scenario = Scenario::write(&pds).await.expect("write the scenario");

    // The test's empty database, filled by backfill alone (a single PDS has no
    // listReposByCollection: discovery falls back to listRepos).
    run_binary(
        &[
            "backfill",
            "--all",
            "--relay-url",
            &pds.url,
            "--plc-url",
            &pds.plc,
            "--allow-loopback",
            "--database-url",
            &database_url(&pool),
        ],
        BACKFILL,
    )
    .await
    .expect("backfill");
    wait_until_synced(&pool, &pds, &scenario.dids(), None, Duration::ZERO).await;
    let states: Vec<(String, String)> =
        sqlx::query_as("select did, state from backfill_repo order by did")
            .fetch_all(&pool)
            .await
            .expect("backfill_repo");
    for did in scenario.dids() {
        assert!(
            states.iter().any(|(d, s)| d == did && s == "done"),
            "{did} backfilled: {states:?}"
        );
    }
    assert_eq!(skip_rows(&pool).await, [], "nothing rejected");
    let backfilled = Appview::start(pool.clone()).await;
    scenario.assert_answers(&backfilled).await;

    // The reference answers: the relay path into its own database.
    let relayed = Sibling::create(&pool, "relay").await;
    let mut indexer = relay_indexer(&database_url(&relayed.pool), &pds.url, &pds.plc);
    wait_until_synced(
        &relayed.pool,
        &pds,
        &scenario.dids(),
        Some(&mut indexer),
        INDEXED,
    )
    .await;
    indexer.start_kill().expect("stop the indexer");
    indexer.wait().await.expect("reap the indexer");

    let reference = Appview::start(relayed.pool.clone()).await;
    let want = scenario.snapshot(&reference).await;
    let got = scenario.snapshot(&backfilled).await;
    for (want, got) in want.iter().zip(&got) {
        assert_eq!(got, want, "backfill and relay answer alike");
    }
    assert_eq!(got.len(), want.len());

    backfilled.stop().await;
    reference.stop().await;
    relayed.drop_now().await;
    pds.stop().await.expect("stop the PDS");
}
