//! getList and getActorLists.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, CID, enc, err, list_record, ok, ts, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn get_list_keeps_record_order_and_drops_missing_items(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let a = support::track(&db, ALICE, "a", 1).await;
    let b = support::track(&db, BOB, "b", 2).await;
    let c = support::track(&db, ALICE, "c", 3).await;
    let missing = support::track_uri(BOB, "missing");
    let items = [c.as_str(), missing.as_str(), a.as_str(), b.as_str()];
    let uri = support::list(&db, ALICE, "l1", "Best of", "album", &items, 50).await;

    let body = ok(&db, "fm.plyr.feed.getList", &format!("uri={}", enc(&uri))).await;
    let list = &body["list"];
    assert_eq!(list["uri"], uri.as_str());
    assert_eq!(list["cid"], CID);
    assert_eq!(
        list["author"],
        json!({"did": ALICE, "handle": "alice.test"})
    );
    assert_eq!(list["name"], "Best of");
    assert_eq!(list["listType"], "album");
    assert_eq!(list["itemCount"], 4);
    assert_eq!(list["record"], list_record("Best of", "album", &items, 50));
    assert_eq!(list["createdAt"], ts(50));
    assert_eq!(list["indexedAt"], ts(51));
    let got = uris(list["items"].as_array().expect("items"));
    assert_eq!(got, [c.clone(), a.clone(), b.clone()]);
    assert_eq!(
        list["items"][2]["author"],
        json!({"did": BOB, "handle": "bob.test"})
    );

    let nope = format!("at://{ALICE}/fm.plyr.list/nope");
    err(
        &db,
        "fm.plyr.feed.getList",
        &format!("uri={}", enc(&nope)),
        404,
        "NotFound",
    )
    .await;
    for query in ["", "uri=at%3A%2F%2Falice.test%2Ffm.plyr.list%2Fl1"] {
        err(&db, "fm.plyr.feed.getList", query, 400, "InvalidRequest").await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn actor_lists_newest_first_filtered_by_type(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let mut albums = Vec::new();
    let mut all = Vec::new();
    for i in 0..6_i64 {
        let list_type = if i % 3 == 0 { "playlist" } else { "album" };
        let uri = support::list(
            &db,
            ALICE,
            &format!("l{i}"),
            "n",
            list_type,
            &[song.as_str()],
            i,
        )
        .await;
        if list_type == "album" {
            albums.push(uri.clone());
        }
        all.push(uri);
    }
    support::list(&db, BOB, "l0", "theirs", "album", &[], 3).await;
    all.reverse();
    albums.reverse();

    let got = walk(
        &db,
        "fm.plyr.feed.getActorLists",
        "actor=alice.test",
        "lists",
        4,
    )
    .await;
    assert_eq!(uris(&got), all);
    let query = format!("actor={ALICE}&listType=album");
    let got = walk(&db, "fm.plyr.feed.getActorLists", &query, "lists", 1).await;
    assert_eq!(uris(&got), albums);

    let body = ok(&db, "fm.plyr.feed.getActorLists", "actor=bob.test").await;
    assert_eq!(
        body,
        json!({
            "lists": [{
                "uri": format!("at://{BOB}/fm.plyr.list/l0"),
                "cid": CID,
                "author": {"did": BOB, "handle": "bob.test"},
                "name": "theirs",
                "listType": "album",
                "itemCount": 0,
                "createdAt": ts(3),
                "indexedAt": ts(4),
            }]
        })
    );
    let body = ok(
        &db,
        "fm.plyr.feed.getActorLists",
        "actor=bob.test&listType=liked",
    )
    .await;
    assert_eq!(body, json!({"lists": []}));

    let long = format!("actor=bob.test&listType={}", "x".repeat(65));
    for query in ["", "actor=nobody.test", long.as_str()] {
        err(
            &db,
            "fm.plyr.feed.getActorLists",
            query,
            400,
            "InvalidRequest",
        )
        .await;
    }
}
