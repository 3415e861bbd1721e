use serde_json::Value;
use sqlx::PgPool;

use crate::schema;
use crate::support::{invalid, ok, send, track_with, web_id};
use crate::xrpc_support::{actor, list};

const ALICE: &str = "did:plc:alice";

fn check_results(body: &Value) {
    schema::check(&body["counts"], &schema::search_counts());
    let results = body["results"].as_array().expect("results");
    for r in results {
        schema::check(r, &schema::search_result(r["type"].as_str().expect("type")));
    }
    let relevances: Vec<f64> = results
        .iter()
        .filter_map(|r| r["relevance"].as_f64())
        .collect();
    assert!(
        relevances.windows(2).all(|w| w[0] >= w[1]),
        "sorted by relevance: {relevances:?}"
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_finds_every_type_by_relevance(db: PgPool) {
    actor(&db, ALICE, Some("blue.test")).await;
    let exact = track_with(
        &db,
        ALICE,
        "t1",
        1,
        serde_json::json!({"title": "Blue", "album": "Blue Period"}),
    )
    .await;
    track_with(
        &db,
        ALICE,
        "t2",
        2,
        serde_json::json!({"title": "Deep blue"}),
    )
    .await;
    track_with(&db, ALICE, "t3", 3, serde_json::json!({"title": "Red"})).await;
    list(&db, ALICE, "p1", "Blue mix", "playlist", &[&exact], 4).await;
    let body = ok(&db, "/search/?q=blue&limit=10", &schema::S::AnyObj).await;
    check_results(&body);
    assert_eq!(body["counts"]["tracks"], 2);
    assert_eq!(body["counts"]["artists"], 1);
    assert_eq!(body["counts"]["albums"], 1);
    assert_eq!(body["counts"]["playlists"], 1);
    assert_eq!(body["counts"]["tags"], 0);
    // The exact title ranks first.
    assert_eq!(body["results"][0]["type"], "track");
    assert_eq!(body["results"][0]["id"], web_id(&db, &exact).await);
    let album = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["type"] == "album")
        .expect("album");
    assert_eq!(album["slug"], "blue-period");
    assert_eq!(album["artist_handle"], "blue.test");
    // `type` narrows; the other spelling of the path works.
    let tracks_only = ok(&db, "/search?q=blue&type=tracks", &schema::S::AnyObj).await;
    check_results(&tracks_only);
    assert!(
        tracks_only["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["type"] == "track")
    );
    assert_eq!(tracks_only["counts"]["artists"], 0);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_validates_its_query(db: PgPool) {
    invalid(&db, "/search/?q=a", "q").await;
    invalid(&db, &format!("/search/?q={}", "x".repeat(101)), "q").await;
    invalid(&db, "/search/", "q").await;
    invalid(&db, "/search/?q=ab&limit=51", "limit").await;
    let reply = send(&db, "GET", "/search/?q=a", &[]).await;
    assert_eq!(reply.body["detail"][0]["type"], "string_too_short");
    let empty = ok(&db, "/search/?q=zz", &schema::S::AnyObj).await;
    check_results(&empty);
    assert_eq!(empty["results"], serde_json::json!([]));
}
