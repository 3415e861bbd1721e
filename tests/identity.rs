//! Handles are shown only once verified both ways: the handle resolver reads DID documents from
//! a PLC directory (here a loopback server) and keeps a handle only if it resolves back.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::support::events::{T0, create, identity, rev, rkey, track_record};
use crate::support::plc::{LoopbackPlc, plc_did};
use crate::support::{CATCH_UP, Harness};

async fn handle_of(pool: &PgPool, did: &str) -> (Option<String>, bool) {
    sqlx::query_as("select handle, identity_checked_at is not null from actor where did = $1")
        .bind(did)
        .fetch_one(pool)
        .await
        .expect("actor row")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn handles_are_shown_only_when_they_resolve_back(pool: PgPool) {
    // did:plc identifiers are 24 base32 characters; a directory holds nothing else.
    let (alice, mallory) = (plc_did("alice"), plc_did("mallory"));
    let plc = LoopbackPlc::start().await;
    plc.set_handle_doc(&alice, "alice.test", Some("https://pds.example.com"));
    // Mallory's document claims alice's handle, which names alice: not verified.
    plc.set_handle_doc(&mallory, "alice.test", Some("https://pds.example.com"));
    plc.set_handle_did("alice.test", &alice);
    let stop = CancellationToken::new();

    let frames = vec![
        create(
            T0 + 1,
            &alice,
            "fm.plyr.track",
            &rkey(1),
            &rev(1),
            track_record("fm.plyr", "a", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 2,
            &mallory,
            "fm.plyr.track",
            &rkey(2),
            &rev(1),
            track_record("fm.plyr", "m", "2026-01-01T00:00:00Z"),
        ),
        // The stream says mallory is alice.test: shown only until the check refutes it.
        identity(T0 + 3, &mallory, Some("alice.test")),
    ];
    let h = Harness::start(pool, "fm.plyr", frames).await;
    h.wait_for_cursor(T0 + 3).await;

    let resolver = plyr_identity::Resolver::new(plyr_identity::ResolverConfig {
        plc_url: plc.url.clone(),
        allow_loopback: true,
        handle_resolution_base: Some(plc.url.clone()),
        // Nothing listens here: DNS TXT answers fail fast and the HTTPS method decides.
        dns_nameserver: Some("127.0.0.1:9".parse().expect("addr")),
        dns_timeout: Duration::from_millis(200),
        ..plyr_identity::ResolverConfig::default()
    })
    .expect("resolver");
    let resolving = {
        let pool = h.pool.clone();
        let stop = stop.clone();
        tokio::spawn(plyr_indexer::resolve_handles(pool, resolver, stop))
    };

    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let (a, a_checked) = handle_of(&h.pool, &alice).await;
        let (m, m_checked) = handle_of(&h.pool, &mallory).await;
        if a_checked && m_checked {
            assert_eq!(a.as_deref(), Some("alice.test"));
            assert_eq!(m, None, "a handle that names another DID is not shown");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "handles not checked: {a:?} {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The checks stored the documents they fetched: a restart starts from them.
    let stored: i64 = sqlx::query_scalar("select count(*) from did_doc where did = any($1)")
        .bind([alice.as_str(), mallory.as_str()])
        .fetch_one(&h.pool)
        .await
        .expect("did_doc count");
    assert_eq!(stored, 2);
    let (_, profile) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", "alice.test")])
        .await;
    assert_eq!(profile["did"], alice.as_str(), "{profile}");
    let (_, profile) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", &mallory)])
        .await;
    assert_eq!(profile["handle"], "handle.invalid", "{profile}");

    stop.cancel();
    resolving.await.expect("join").expect("resolver task");
    plc.stop().await;
    h.stop().await;
}
