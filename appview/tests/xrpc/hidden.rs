//! A hidden (inactive) actor's content is absent from every method, and returns when the
//! actor is active again.

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{self, enc, err, ok, uris};

const ALICE: &str = "did:plc:alice";
const HIDDEN: &str = "did:plc:hidden";

fn listed(body: &Value, key: &str) -> Vec<String> {
    uris(body[key].as_array().expect("array"))
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn hidden_actor_content_appears_nowhere(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, HIDDEN, Some("hidden.test")).await;
    support::profile(&db, HIDDEN, "bio", "https://img.example/h.png", 0).await;
    let ta = support::track(&db, ALICE, "ta", 1).await;
    let th = support::track(&db, HIDDEN, "th", 2).await;
    let like_a_own = support::like(&db, ALICE, "l1", &ta, 3).await;
    support::like(&db, ALICE, "l2", &th, 4).await;
    support::like(&db, HIDDEN, "l3", &ta, 5).await;
    let comment_a = support::comment(&db, ALICE, "c1", &ta, 100, 6).await;
    support::comment(&db, ALICE, "c2", &th, 100, 7).await;
    support::comment(&db, HIDDEN, "c3", &ta, 50, 8).await;
    let la = support::list(&db, ALICE, "la", "mix", "playlist", &[&th, &ta], 9).await;
    let lh = support::list(&db, HIDDEN, "lh", "mine", "album", &[&ta], 10).await;
    support::hide(&db, HIDDEN, Some("takendown")).await;

    let latest = ok(&db, "fm.plyr.feed.getLatestTracks", "").await;
    assert_eq!(listed(&latest, "tracks"), [ta.as_str()]);
    err(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&th)),
        404,
        "NotFound",
    )
    .await;
    let query = format!("uris={}&uris={}", enc(&th), enc(&ta));
    let some = ok(&db, "fm.plyr.feed.getTracks", &query).await;
    assert_eq!(listed(&some, "tracks"), [ta.as_str()]);

    let likes = ok(&db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&ta))).await;
    assert_eq!(listed(&likes, "likes"), [like_a_own.as_str()]);
    let likes = ok(&db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&th))).await;
    assert_eq!(listed(&likes, "likes"), Vec::<String>::new());
    let liked = ok(&db, "fm.plyr.feed.getActorLikes", &format!("actor={ALICE}")).await;
    assert_eq!(listed(&liked, "tracks"), [ta.as_str()]);

    let comments = ok(
        &db,
        "fm.plyr.feed.getComments",
        &format!("uri={}", enc(&ta)),
    )
    .await;
    assert_eq!(listed(&comments, "comments"), [comment_a.as_str()]);
    let comments = ok(
        &db,
        "fm.plyr.feed.getComments",
        &format!("uri={}", enc(&th)),
    )
    .await;
    assert_eq!(listed(&comments, "comments"), Vec::<String>::new());

    let list = ok(&db, "fm.plyr.feed.getList", &format!("uri={}", enc(&la))).await;
    assert_eq!(
        uris(list["list"]["items"].as_array().expect("items")),
        [ta.as_str()]
    );
    err(
        &db,
        "fm.plyr.feed.getList",
        &format!("uri={}", enc(&lh)),
        404,
        "NotFound",
    )
    .await;
    let lists = ok(&db, "fm.plyr.feed.getActorLists", &format!("actor={ALICE}")).await;
    assert_eq!(listed(&lists, "lists"), [la.as_str()]);

    for nsid in [
        "fm.plyr.feed.getArtistTracks",
        "fm.plyr.feed.getActorLikes",
        "fm.plyr.feed.getActorLists",
    ] {
        for actor in [HIDDEN, "hidden.test"] {
            let message = err(&db, nsid, &format!("actor={actor}"), 400, "InvalidRequest").await;
            assert_eq!(message, "actor not found", "{nsid} {actor}");
        }
    }
    err(
        &db,
        "fm.plyr.actor.getProfile",
        &format!("actor={HIDDEN}"),
        400,
        "AccountTakedown",
    )
    .await;

    // Reactivated: everything is back, so the filter is the active flag and nothing was lost.
    sqlx::query("update actor set active = true, status = null where did = $1")
        .bind(HIDDEN)
        .execute(&db)
        .await
        .expect("reactivate");
    let latest = ok(&db, "fm.plyr.feed.getLatestTracks", "").await;
    assert_eq!(listed(&latest, "tracks"), [th.clone(), ta.clone()]);
    let likes = ok(&db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&ta))).await;
    assert_eq!(listed(&likes, "likes").len(), 2);
    let comments = ok(
        &db,
        "fm.plyr.feed.getComments",
        &format!("uri={}", enc(&ta)),
    )
    .await;
    assert_eq!(listed(&comments, "comments").len(), 2);
    let list = ok(&db, "fm.plyr.feed.getList", &format!("uri={}", enc(&la))).await;
    assert_eq!(
        uris(list["list"]["items"].as_array().expect("items")),
        [th, ta]
    );
    ok(&db, "fm.plyr.feed.getList", &format!("uri={}", enc(&lh))).await;
    ok(&db, "fm.plyr.actor.getProfile", "actor=hidden.test").await;
}
