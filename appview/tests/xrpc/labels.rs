//! Moderation: content under a `!takedown`, `!suspend` or `!hide` label in force, or a local
//! takedown, is absent from every XRPC method and the web API's listing and detail; negated and
//! expired labels hide nothing, and lifting a takedown brings everything back.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::support::{self, at, enc, err, ok, request, uris};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";
const LABELER: &str = "did:plc:labeler";

fn listed(body: &Value, key: &str) -> Vec<String> {
    uris(body[key].as_array().expect("array"))
}

/// Stores a label as the indexer's label stream does (the newest per src, uri, val).
async fn label(db: &PgPool, uri: &str, val: &str, neg: bool, cts: i64, exp: Option<DateTime<Utc>>) {
    sqlx::query(
        "insert into label (src, uri, val, neg, cts, exp) values ($1, $2, $3, $4, $5, $6)
         on conflict (src, uri, val) do update
         set neg = excluded.neg, cts = excluded.cts, exp = excluded.exp",
    )
    .bind(LABELER)
    .bind(uri)
    .bind(val)
    .bind(neg)
    .bind(at(cts))
    .bind(exp)
    .execute(db)
    .await
    .expect("insert label");
}

async fn takedown(db: &PgPool, subject: &str, kind: &str) {
    sqlx::query("insert into takedown (subject, kind) values ($1, $2)")
        .bind(subject)
        .bind(kind)
        .execute(db)
        .await
        .expect("insert takedown");
}

async fn lift(db: &PgPool, subject: &str) {
    sqlx::query("delete from takedown where subject = $1")
        .bind(subject)
        .execute(db)
        .await
        .expect("delete takedown");
}

async fn web_id(db: &PgPool, uri: &str) -> i64 {
    sqlx::query_scalar("select web_id from track where uri = $1")
        .bind(uri)
        .fetch_one(db)
        .await
        .expect("web id")
}

/// Track ids of the web API's `/tracks/` feed.
async fn web_feed(db: &PgPool) -> Vec<i64> {
    let (status, body) = request(db, "GET", "/tracks/?limit=50").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["id"].as_i64().expect("id"))
        .collect()
}

struct World {
    ta: String,
    tb: String,
    tc: String,
    like_of_tb: String,
    comment_on_tb: String,
    list: String,
}

/// Alice publishes ta and tb, Bob tc; Bob likes and comments on tb; Bob's playlist holds all.
async fn seed(db: &PgPool) -> World {
    support::actor(db, ALICE, Some("alice.test")).await;
    support::actor(db, BOB, Some("bob.test")).await;
    let ta = support::track(db, ALICE, "ta", 1).await;
    let tb = support::track(db, ALICE, "tb", 2).await;
    let tc = support::track(db, BOB, "tc", 3).await;
    let like_of_tb = support::like(db, BOB, "l1", &tb, 4).await;
    let comment_on_tb = support::comment(db, BOB, "c1", &tb, 100, 5).await;
    let list = support::list(db, BOB, "pl", "mix", "playlist", &[&ta, &tb, &tc], 6).await;
    World {
        ta,
        tb,
        tc,
        like_of_tb,
        comment_on_tb,
        list,
    }
}

/// Whether `tb` is served by every method that could show it.
async fn tb_everywhere(db: &PgPool, w: &World) -> bool {
    let latest = listed(&ok(db, "fm.plyr.feed.getLatestTracks", "").await, "tracks");
    let (status, _) = request(
        db,
        "GET",
        &format!("/xrpc/fm.plyr.feed.getTrack?uri={}", enc(&w.tb)),
    )
    .await;
    let some = listed(
        &ok(
            db,
            "fm.plyr.feed.getTracks",
            &format!("uris={}&uris={}", enc(&w.tb), enc(&w.ta)),
        )
        .await,
        "tracks",
    );
    let artist = listed(
        &ok(
            db,
            "fm.plyr.feed.getArtistTracks",
            &format!("actor={ALICE}"),
        )
        .await,
        "tracks",
    );
    let liked = listed(
        &ok(db, "fm.plyr.feed.getActorLikes", &format!("actor={BOB}")).await,
        "tracks",
    );
    let likes = listed(
        &ok(db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&w.tb))).await,
        "likes",
    );
    let comments = listed(
        &ok(
            db,
            "fm.plyr.feed.getComments",
            &format!("uri={}", enc(&w.tb)),
        )
        .await,
        "comments",
    );
    let items = uris(
        ok(db, "fm.plyr.feed.getList", &format!("uri={}", enc(&w.list))).await["list"]["items"]
            .as_array()
            .expect("items"),
    );
    let id = web_id(db, &w.tb).await;
    let in_feed = web_feed(db).await.contains(&id);
    let (detail, _) = request(db, "GET", &format!("/tracks/{id}")).await;
    let shown = [
        latest.contains(&w.tb),
        status == StatusCode::OK,
        some.contains(&w.tb),
        artist.contains(&w.tb),
        liked.contains(&w.tb),
        likes.contains(&w.like_of_tb),
        comments.contains(&w.comment_on_tb),
        items.contains(&w.tb),
        in_feed,
        detail == StatusCode::OK,
    ];
    assert!(
        shown.iter().all(|s| *s) || shown.iter().all(|s| !*s),
        "tb shown by some methods only: {shown:?}"
    );
    // The rest of the view is untouched either way.
    assert!(
        latest.contains(&w.ta) && latest.contains(&w.tc),
        "{latest:?}"
    );
    assert!(items.contains(&w.ta) && items.contains(&w.tc), "{items:?}");
    shown[0]
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn takedown_label_on_a_track_hides_it_from_every_method(db: PgPool) {
    let w = seed(&db).await;
    assert!(tb_everywhere(&db, &w).await);

    label(&db, &w.tb, "!takedown", false, 10, None).await;
    assert!(!tb_everywhere(&db, &w).await, "!takedown hides");
    err(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&w.tb)),
        404,
        "NotFound",
    )
    .await;

    // A later negation lifts it (the label stream's store keeps the newest by cts).
    label(&db, &w.tb, "!takedown", true, 20, None).await;
    assert!(tb_everywhere(&db, &w).await, "negated");

    // !hide and !suspend hide too; an expired one does not.
    label(&db, &w.tb, "!hide", false, 30, None).await;
    assert!(!tb_everywhere(&db, &w).await, "!hide hides");
    label(
        &db,
        &w.tb,
        "!hide",
        false,
        31,
        Some(Utc::now() - chrono::TimeDelta::hours(1)),
    )
    .await;
    assert!(tb_everywhere(&db, &w).await, "expired");
    label(
        &db,
        &w.tb,
        "!suspend",
        false,
        32,
        Some(Utc::now() + chrono::TimeDelta::hours(1)),
    )
    .await;
    assert!(!tb_everywhere(&db, &w).await, "!suspend not yet expired");

    // Other values hide nothing (they are shown as labels, not filtered).
    sqlx::query("delete from label")
        .execute(&db)
        .await
        .expect("clear");
    label(&db, &w.tb, "porn", false, 40, None).await;
    assert!(tb_everywhere(&db, &w).await, "porn is not a takedown");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn local_record_takedown_hides_and_reverse_restores(db: PgPool) {
    let w = seed(&db).await;
    takedown(&db, &w.tb, "record").await;
    assert!(!tb_everywhere(&db, &w).await);
    // A taken-down list is gone, its tracks are not.
    takedown(&db, &w.list, "record").await;
    err(
        &db,
        "fm.plyr.feed.getList",
        &format!("uri={}", enc(&w.list)),
        404,
        "NotFound",
    )
    .await;
    let lists = ok(&db, "fm.plyr.feed.getActorLists", &format!("actor={BOB}")).await;
    assert_eq!(listed(&lists, "lists"), Vec::<String>::new());
    lift(&db, &w.list).await;
    lift(&db, &w.tb).await;
    assert!(tb_everywhere(&db, &w).await);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn actor_takedown_hides_all_their_content(db: PgPool) {
    let w = seed(&db).await;
    for how in ["local", "label"] {
        match how {
            "local" => takedown(&db, BOB, "actor").await,
            _ => label(&db, BOB, "!takedown", false, 10, None).await,
        }
        let latest = listed(&ok(&db, "fm.plyr.feed.getLatestTracks", "").await, "tracks");
        assert_eq!(latest, [w.tb.clone(), w.ta.clone()], "{how}");
        let likes = ok(&db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&w.tb))).await;
        assert_eq!(listed(&likes, "likes"), Vec::<String>::new(), "{how}");
        let comments = ok(
            &db,
            "fm.plyr.feed.getComments",
            &format!("uri={}", enc(&w.tb)),
        )
        .await;
        assert_eq!(listed(&comments, "comments"), Vec::<String>::new(), "{how}");
        err(
            &db,
            "fm.plyr.feed.getList",
            &format!("uri={}", enc(&w.list)),
            404,
            "NotFound",
        )
        .await;
        for nsid in [
            "fm.plyr.feed.getArtistTracks",
            "fm.plyr.feed.getActorLikes",
            "fm.plyr.feed.getActorLists",
        ] {
            for actor in [BOB, "bob.test"] {
                err(&db, nsid, &format!("actor={actor}"), 400, "InvalidRequest").await;
            }
        }
        err(
            &db,
            "fm.plyr.actor.getProfile",
            "actor=bob.test",
            400,
            "AccountTakedown",
        )
        .await;
        let id = web_id(&db, &w.tc).await;
        assert!(!web_feed(&db).await.contains(&id), "{how}");
        let (detail, _) = request(&db, "GET", &format!("/tracks/{id}")).await;
        assert_eq!(detail, StatusCode::NOT_FOUND, "{how}");
        let (artist, _) = request(&db, "GET", &format!("/artists/{BOB}")).await;
        assert_eq!(artist, StatusCode::NOT_FOUND, "{how}");

        // Lifted: everything is back.
        lift(&db, BOB).await;
        sqlx::query("delete from label")
            .execute(&db)
            .await
            .expect("clear");
        let latest = listed(&ok(&db, "fm.plyr.feed.getLatestTracks", "").await, "tracks");
        assert_eq!(latest, [w.tc.clone(), w.tb.clone(), w.ta.clone()], "{how}");
        ok(&db, "fm.plyr.actor.getProfile", "actor=bob.test").await;
        assert!(tb_everywhere(&db, &w).await, "{how}");
    }
}

const OTHER_LABELER: &str = "did:plc:otherlabeler";

/// GET `path` with headers; the status, the `atproto-content-labelers` header and the body.
async fn get_with(
    db: &PgPool,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Value) {
    use tower::ServiceExt;
    let app = plyr_appview_xrpc::router(plyr_appview_xrpc::AppState::new(db.clone()));
    let mut req = axum::http::Request::builder().uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = app
        .oneshot(req.body(axum::body::Body::empty()).expect("request"))
        .await
        .expect("router is infallible");
    let status = resp.status();
    let labelers = resp
        .headers()
        .get("atproto-content-labelers")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        labelers,
        serde_json::from_slice(&bytes).expect("json"),
    )
}

/// (src, val) of each label of a view.
fn labels_of(view: &Value) -> Vec<(String, String)> {
    view["labels"]
        .as_array()
        .map(|labels| {
            labels
                .iter()
                .map(|l| {
                    (
                        l["src"].as_str().expect("src").to_owned(),
                        l["val"].as_str().expect("val").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn views_carry_self_labels_and_accepted_labelers_labels(db: PgPool) {
    let w = seed(&db).await;
    sqlx::query(
        "update track set record = jsonb_set(record, '{labels}', \
           '{\"$type\": \"com.atproto.label.defs#selfLabels\", \
             \"values\": [{\"val\": \"explicit\"}]}') where uri = $1",
    )
    .bind(&w.ta)
    .execute(&db)
    .await
    .expect("self-label");
    // Both labelers are followed (the indexer stored their cursors).
    for (source, cursor) in [(LABELER, 3), (OTHER_LABELER, 9)] {
        sqlx::query("insert into consumer_cursor (source, cursor) values ($1, $2)")
            .bind(format!("labeler:{source}"))
            .bind(cursor)
            .execute(&db)
            .await
            .expect("cursor");
    }
    label(&db, &w.ta, "porn", false, 10, None).await;
    label(&db, &w.tc, "graphic-media", false, 10, None).await;
    // Negated and expired labels are not shown.
    label(&db, &w.ta, "nudity", true, 11, None).await;
    label(
        &db,
        &w.ta,
        "sexual",
        false,
        12,
        Some(Utc::now() - chrono::TimeDelta::hours(1)),
    )
    .await;
    sqlx::query("insert into label (src, uri, val, cts) values ($1, $2, 'bot', now())")
        .bind(OTHER_LABELER)
        .bind(&w.ta)
        .execute(&db)
        .await
        .expect("other labeler's label");

    let one = format!("/xrpc/fm.plyr.feed.getTrack?uri={}", enc(&w.ta));
    let (status, applied, body) = get_with(&db, &one, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    plyr_lexicons::Catalog::plyr()
        .validate_output("fm.plyr.feed.getTrack", &body)
        .expect("labels match the lexicon");
    assert_eq!(
        applied.as_deref(),
        Some("did:plc:labeler, did:plc:otherlabeler"),
        "without the header every followed labeler applies"
    );
    assert_eq!(
        labels_of(&body["track"]),
        [
            (ALICE.to_owned(), "explicit".to_owned()),
            (LABELER.to_owned(), "porn".to_owned()),
            (OTHER_LABELER.to_owned(), "bot".to_owned()),
        ]
    );
    assert_eq!(body["track"]["labels"][0]["uri"], w.ta.as_str());
    assert_eq!(body["track"]["labels"][0]["cid"], support::CID);

    // The header narrows the labelers (unknown ones are ignored); self-labels stay.
    let accept = [(
        "atproto-accept-labelers",
        "did:plc:otherlabeler;redact, did:plc:unknown",
    )];
    let (_, applied, body) = get_with(&db, &one, &accept).await;
    assert_eq!(applied.as_deref(), Some("did:plc:otherlabeler"));
    assert_eq!(
        labels_of(&body["track"]),
        [
            (ALICE.to_owned(), "explicit".to_owned()),
            (OTHER_LABELER.to_owned(), "bot".to_owned()),
        ]
    );
    let (_, applied, body) = get_with(&db, &one, &[("atproto-accept-labelers", "")]).await;
    assert_eq!(applied.as_deref(), Some(""));
    assert_eq!(
        labels_of(&body["track"]),
        [(ALICE.to_owned(), "explicit".to_owned())]
    );

    // Lists of tracks are hydrated too, each track with its own labels.
    let (_, _, body) = get_with(&db, "/xrpc/fm.plyr.feed.getLatestTracks", &[]).await;
    plyr_lexicons::Catalog::plyr()
        .validate_output("fm.plyr.feed.getLatestTracks", &body)
        .expect("lexicon");
    let tracks = body["tracks"].as_array().expect("tracks");
    let labelled: Vec<(String, Vec<(String, String)>)> = tracks
        .iter()
        .map(|t| (t["uri"].as_str().expect("uri").to_owned(), labels_of(t)))
        .collect();
    assert_eq!(
        labelled,
        [
            (
                w.tc.clone(),
                vec![(LABELER.to_owned(), "graphic-media".to_owned())]
            ),
            (w.tb.clone(), vec![]),
            (
                w.ta.clone(),
                vec![
                    (ALICE.to_owned(), "explicit".to_owned()),
                    (LABELER.to_owned(), "porn".to_owned()),
                    (OTHER_LABELER.to_owned(), "bot".to_owned()),
                ]
            ),
        ]
    );
    assert!(tracks[1].get("labels").is_none(), "no empty labels array");

    // Account labels (on the DID) show on profiles, filtered the same way.
    label(&db, ALICE, "bot", false, 13, None).await;
    let (_, _, body) = get_with(&db, "/xrpc/fm.plyr.actor.getProfile?actor=alice.test", &[]).await;
    plyr_lexicons::Catalog::plyr()
        .validate_output("fm.plyr.actor.getProfile", &body)
        .expect("lexicon");
    assert_eq!(labels_of(&body), [(LABELER.to_owned(), "bot".to_owned())]);
    let (_, _, body) = get_with(
        &db,
        &format!("/xrpc/fm.plyr.actor.getProfiles?actors={ALICE}&actors={BOB}"),
        &[("atproto-accept-labelers", OTHER_LABELER)],
    )
    .await;
    let profiles = body["profiles"].as_array().expect("profiles");
    assert_eq!(profiles.len(), 2);
    assert!(profiles.iter().all(|p| p.get("labels").is_none()), "{body}");
}
