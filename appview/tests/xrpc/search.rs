//! searchTracks, searchActors and the unified search: ranking tiers, query normalization,
//! pagination, errors and hidden content.

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{self, enc, err, ok, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";
const EVE: &str = "did:plc:eve";

/// A track of `did` titled `title`.
pub async fn titled(db: &PgPool, did: &str, rkey: &str, secs: i64, title: &str) -> String {
    let uri = support::track(db, did, rkey, secs).await;
    sqlx::query(
        "update track set title = $2, record = jsonb_set(record, '{title}', to_jsonb($2::text)) \
         where uri = $1",
    )
    .bind(&uri)
    .bind(title)
    .execute(db)
    .await
    .expect("retitle track");
    uri
}

/// The actor's app.bsky.actor.profile, as the indexer stores it.
pub async fn bsky_profile(db: &PgPool, did: &str, name: Option<&str>, avatar: Option<&str>) {
    sqlx::query(
        "insert into bsky_profile (did, cid, rev, display_name, avatar_cid) \
         values ($1, $2, '3kaaaaaaaaaaa', $3, $4)",
    )
    .bind(did)
    .bind(support::CID)
    .bind(name)
    .bind(avatar)
    .execute(db)
    .await
    .expect("insert bsky profile");
}

/// The key of each unified result: a record's URI or an actor's DID.
fn keys(results: &[Value]) -> Vec<&str> {
    results
        .iter()
        .filter_map(|r| {
            r.get("uri")
                .or_else(|| r.get("did"))
                .and_then(Value::as_str)
        })
        .collect()
}

fn titles(tracks: &[Value]) -> Vec<String> {
    tracks
        .iter()
        .map(|t| t["record"]["title"].as_str().expect("title").to_owned())
        .collect()
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_tracks_ranks_exact_prefix_substring_then_similar(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    // Seeded out of rank order, so the order below is the ranking's.
    titled(&db, ALICE, "a", 1, "Midnight City").await;
    titled(&db, ALICE, "b", 2, "Deep Midnight").await;
    titled(&db, ALICE, "c", 3, "Midnight").await;
    titled(&db, ALICE, "d", 4, "Midnights").await;
    titled(&db, ALICE, "e", 5, "Noon").await;
    titled(&db, ALICE, "f", 6, "Midnite").await;

    let body = ok(&db, "fm.plyr.feed.searchTracks", "q=MIDNIGHT").await;
    let tracks = body["tracks"].as_array().expect("tracks");
    // Exact; two prefixes (whole-word "Midnight City" is the closer word match); substring;
    // then "Midnite", only trigram-similar. "Noon" is no match.
    assert_eq!(
        titles(tracks),
        [
            "Midnight",
            "Midnight City",
            "Midnights",
            "Deep Midnight",
            "Midnite"
        ]
    );
    assert!(body.get("cursor").is_none());

    // Only similar: a misspelling finds what it resembles, the exact spelling first.
    let body = ok(&db, "fm.plyr.feed.searchTracks", "q=midnite").await;
    let got = titles(body["tracks"].as_array().expect("tracks"));
    assert_eq!(got.first().map(String::as_str), Some("Midnite"));
    assert!(got.contains(&"Midnight".to_owned()), "{got:?}");
    assert!(!got.contains(&"Noon".to_owned()), "{got:?}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_normalizes_quotes_and_matches_wildcards_literally(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let dont = titled(&db, ALICE, "a", 1, "Don't Stop").await;
    let pct = titled(&db, ALICE, "b", 2, "100% Pure").await;
    let under = titled(&db, ALICE, "c", 3, "snake_case").await;
    titled(&db, ALICE, "d", 4, "snakeXcase").await;
    titled(&db, ALICE, "e", 5, "1000 Pure").await;

    let curly = ok(
        &db,
        "fm.plyr.feed.searchTracks",
        &format!("q={}", enc("don’t stop")),
    )
    .await;
    assert_eq!(uris(curly["tracks"].as_array().expect("tracks")), [dont]);
    // '%' is a character: "0%" is in "100% Pure" only, never "anything".
    let body = ok(
        &db,
        "fm.plyr.feed.searchTracks",
        &format!("q={}", enc("0% p")),
    )
    .await;
    assert_eq!(uris(body["tracks"].as_array().expect("tracks")), [pct]);
    // '_' is a character, not "any one": snakeXcase is no substring match of "e_c".
    let body = ok(
        &db,
        "fm.plyr.feed.searchTracks",
        &format!("q={}", enc("e_c")),
    )
    .await;
    assert_eq!(uris(body["tracks"].as_array().expect("tracks")), [under]);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_pages_by_rank_without_gaps_or_repeats(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    for i in 0..7_i64 {
        let did = if i % 2 == 0 { ALICE } else { BOB };
        let title = match i % 3 {
            0 => "Echo".to_owned(),
            1 => format!("Echo {i}"),
            _ => format!("The Echo {i}"),
        };
        titled(&db, did, &format!("t{i}"), i, &title).await;
    }
    let all = ok(&db, "fm.plyr.feed.searchTracks", "q=echo&limit=100").await;
    let all = uris(all["tracks"].as_array().expect("tracks"));
    assert_eq!(all.len(), 7);
    for limit in [1, 2, 3] {
        let paged = walk(&db, "fm.plyr.feed.searchTracks", "q=echo", "tracks", limit).await;
        assert_eq!(uris(&paged), all, "limit {limit}");
    }
    let unified = walk(&db, "fm.plyr.unspecced.search", "q=echo", "results", 2).await;
    assert_eq!(uris(&unified), all);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn names_that_start_with_the_query_go_by_name_then_the_ranked_rest(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    bsky_profile(&db, BOB, Some("Echo Chamber"), None).await;
    // Seeded out of order, so the order below is the search's.
    let deep = titled(&db, ALICE, "a", 1, "Deep Echoes").await;
    let park = titled(&db, BOB, "b", 2, "Echo Park").await;
    let the = titled(&db, ALICE, "c", 3, "The Echo").await;
    let echoes = titled(&db, BOB, "d", 4, "Echoes").await;
    let echo_b = titled(&db, BOB, "e", 5, "Echo").await;
    let echo_a = titled(&db, ALICE, "f", 6, "ECHO").await;
    let album = support::list(&db, ALICE, "l", "Echo Sessions", "album", &[&park], 7).await;

    let body = ok(&db, "fm.plyr.unspecced.search", "q=echo&limit=100").await;
    let got = keys(body["results"].as_array().expect("results"));
    // Names that start with "echo" by name, equal names by key (Alice's DID sorts first);
    // then the ranked rest: a whole-word substring before a looser one.
    let want = [
        echo_a.as_str(),
        echo_b.as_str(),
        BOB,
        park.as_str(),
        album.as_str(),
        echoes.as_str(),
        the.as_str(),
        deep.as_str(),
    ];
    assert_eq!(got, want, "{body}");
    // Paged, across the turn from names to ranks at every page size: no gap, no repeat.
    for limit in 1..=4 {
        let paged = walk(&db, "fm.plyr.unspecced.search", "q=echo", "results", limit).await;
        assert_eq!(keys(&paged), want, "limit {limit}");
    }
    // Tracks alone keep the same order.
    let tracks = walk(&db, "fm.plyr.feed.searchTracks", "q=echo", "tracks", 2).await;
    assert_eq!(uris(&tracks), [echo_a, echo_b, park, echoes, the, deep]);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_refuses_bad_queries_and_cursors(db: PgPool) {
    let long = "x".repeat(101);
    for nsid in [
        "fm.plyr.feed.searchTracks",
        "fm.plyr.actor.searchActors",
        "fm.plyr.unspecced.search",
    ] {
        for query in [
            "".to_owned(),
            "q=a".to_owned(),
            "q=%20a%20".to_owned(),
            format!("q={long}"),
            "q=ab&limit=0".to_owned(),
            "q=ab&cursor=bm9wZQ".to_owned(),
        ] {
            err(&db, nsid, &query, 400, "InvalidRequest").await;
        }
        let empty = ok(&db, nsid, &format!("q={}", "x".repeat(100))).await;
        assert!(empty.get("cursor").is_none());
    }
    err(
        &db,
        "fm.plyr.unspecced.search",
        "q=ab&types=tags",
        400,
        "InvalidRequest",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_actors_by_handle_or_display_name_without_hidden_ones(db: PgPool) {
    support::actor(&db, ALICE, Some("aurora.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    support::actor(&db, EVE, Some("aurora-fan.test")).await;
    bsky_profile(&db, BOB, Some("Aurora Borealis"), Some("bafkreiavatar")).await;
    // Alice and Eve match by both names: each is one hit, placed by the first name in byte
    // order (Alice's display name, Eve's handle).
    bsky_profile(&db, ALICE, Some("Aurora Skies"), None).await;
    bsky_profile(&db, EVE, Some("Auroras"), None).await;
    titled(&db, EVE, "e", 1, "Aurora").await;

    let body = ok(&db, "fm.plyr.actor.searchActors", "q=aurora").await;
    let actors = body["actors"].as_array().expect("actors");
    let dids: Vec<&str> = actors.iter().filter_map(|a| a["did"].as_str()).collect();
    // Names that start with the query go in byte order, an actor by the first of its two:
    // "aurora borealis" (Bob), "aurora skies" (Alice, before her "aurora.test"),
    // "aurora-fan.test" (Eve).
    assert_eq!(dids, [BOB, ALICE, EVE], "{body}");
    let bob = actors.iter().find(|a| a["did"] == BOB).expect("bob");
    assert_eq!(bob["displayName"], "Aurora Borealis");
    // No stored PDS and no blob copy: the CDN form.
    assert_eq!(
        bob["avatar"],
        format!("https://cdn.bsky.app/img/avatar/plain/{BOB}/bafkreiavatar@jpeg")
    );
    // Alice is one hit, not two: a full page of two holds her and the next, and a page at a
    // time serves her once.
    let body = ok(&db, "fm.plyr.actor.searchActors", "q=aurora&limit=2").await;
    assert_eq!(body["actors"].as_array().map(Vec::len), Some(2), "{body}");
    let paged = walk(&db, "fm.plyr.actor.searchActors", "q=aurora", "actors", 1).await;
    let paged: Vec<&str> = paged.iter().filter_map(|a| a["did"].as_str()).collect();
    assert_eq!(paged, [BOB, ALICE, EVE]);

    support::hide(&db, EVE, Some("takendown")).await;
    let body = ok(&db, "fm.plyr.actor.searchActors", "q=aurora").await;
    let dids: Vec<&str> = body["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .filter_map(|a| a["did"].as_str())
        .collect();
    assert!(!dids.contains(&EVE), "{body}");
    // A hidden actor's tracks are no hits either.
    let tracks = ok(&db, "fm.plyr.feed.searchTracks", "q=aurora").await;
    assert_eq!(tracks["tracks"], serde_json::json!([]));
    sqlx::query("insert into takedown (subject, kind) values ($1, 'actor')")
        .bind(ALICE)
        .execute(&db)
        .await
        .expect("take down");
    let body = ok(&db, "fm.plyr.actor.searchActors", "q=aurora").await;
    assert_eq!(body["actors"].as_array().map(Vec::len), Some(1), "{body}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn unified_search_types_and_tags_every_result(db: PgPool) {
    support::actor(&db, ALICE, Some("glow.test")).await;
    let song = titled(&db, ALICE, "t", 1, "Glow").await;
    let album = support::list(&db, ALICE, "a", "Glow Sessions", "album", &[&song], 2).await;
    let playlist = support::list(&db, ALICE, "p", "Glowing", "playlist", &[&song], 3).await;
    support::list(&db, ALICE, "l", "Glow likes", "liked", &[&song], 4).await;

    let body = ok(&db, "fm.plyr.unspecced.search", "q=glow").await;
    let results = body["results"].as_array().expect("results");
    let tagged: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            let key = r.get("uri").or_else(|| r.get("did")).expect("key");
            (
                r["$type"].as_str().expect("$type").to_owned(),
                key.as_str().expect("key").to_owned(),
            )
        })
        .collect();
    // The exact title first; then the other names that start with "glow", in byte order, so
    // a whole word ("glow sessions", "glow.test") before a longer one ("glowing"). The liked
    // list is no album or playlist.
    assert_eq!(
        tagged,
        [
            ("fm.plyr.feed.defs#trackView".to_owned(), song.clone()),
            ("fm.plyr.feed.defs#listView".to_owned(), album.clone()),
            (
                "fm.plyr.actor.defs#profileViewDetailed".to_owned(),
                ALICE.to_owned()
            ),
            ("fm.plyr.feed.defs#listView".to_owned(), playlist.clone()),
        ]
    );
    let only = ok(
        &db,
        "fm.plyr.unspecced.search",
        "q=glow&types=albums&types=playlists",
    )
    .await;
    assert_eq!(
        uris(only["results"].as_array().expect("results")),
        [album, playlist]
    );
}
