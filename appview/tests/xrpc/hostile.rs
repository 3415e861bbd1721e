//! Hostile parameters on real routes: AT-URI tricks, SQL-looking strings, limits past any
//! integer type, forged cursors and invalid UTF-8 are 400 InvalidRequest; SQL-looking search
//! text is only text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::PgPool;

use crate::support::{actor, enc, err, ok, track};

const ALICE: &str = "did:plc:alice";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn hostile_params_are_invalid_requests(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let song = track(&db, ALICE, "song", 10).await;
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let uri = |raw: &str| format!("uri={}", enc(raw));
    let overlong = format!("at://{ALICE}/fm.plyr.track/{}", "a".repeat(9 * 1024));
    let cases: Vec<(&str, String)> = vec![
        ("fm.plyr.feed.getTrack", uri("at://did:plc:alice/../")),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did:plc:alice/fm.plyr.track/.."),
        ),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did:plc:alice/fm.plyr.track/song/../x"),
        ),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did:plc:alice/fm.plyr.track/so%6Eg"),
        ),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did%3Aplc%3Aalice/fm.plyr.track/song"),
        ),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did:plc:\u{0430}lice/fm.plyr.track/song"),
        ),
        (
            "fm.plyr.feed.getTrack",
            uri("at://did:plc:alice/fm.plyr.track/s\u{f6}ng"),
        ),
        ("fm.plyr.feed.getTrack", uri(&format!("{song}' or '1'='1"))),
        (
            "fm.plyr.feed.getTrack",
            uri(&format!("{song}; drop table track; --")),
        ),
        ("fm.plyr.feed.getTrack", uri(&overlong)),
        ("fm.plyr.feed.getTrack", "uri=%FF%FE".to_owned()),
        ("fm.plyr.feed.getTrack", format!("uri={}%00", enc(&song))),
        (
            "fm.plyr.feed.getTracks",
            (0..26).map(|_| uri(&song)).collect::<Vec<_>>().join("&"),
        ),
        (
            "fm.plyr.actor.getProfile",
            format!("actor={}", enc("alice.test' or 1=1 --")),
        ),
        (
            "fm.plyr.actor.getProfile",
            format!("actor={}", enc("did:plc:alice'--")),
        ),
        (
            "fm.plyr.actor.getProfile",
            format!("actor={}", enc("\u{0430}lice.test")),
        ),
        (
            "fm.plyr.feed.getArtistTracks",
            format!("actor={ALICE}&limit=99999999999999999999999999"),
        ),
        (
            "fm.plyr.feed.getArtistTracks",
            format!("actor={ALICE}&limit=18446744073709551617"),
        ),
        (
            "fm.plyr.feed.getArtistTracks",
            format!("actor={ALICE}&limit=-1"),
        ),
        (
            "fm.plyr.feed.getArtistTracks",
            format!("actor={ALICE}&limit=1e2"),
        ),
        (
            "fm.plyr.feed.getArtistTracks",
            format!("actor={ALICE}&limit={}", enc("5 or 1=1")),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!("cursor={}", enc(&b64(&format!("1::{song}' or '1'='1")))),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!("cursor={}", enc(&b64("1::at://did:plc:alice/../"))),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!(
                "cursor={}",
                enc(&b64("99999999999999999999::at://did:plc:a/fm.plyr.track/a"))
            ),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!("cursor={}", enc(&b64(&"\u{0}garbage".repeat(2000)))),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!("cursor={}", enc(&b64("\u{ff}\u{fe}"))),
        ),
        (
            "fm.plyr.feed.getLatestTracks",
            format!(
                "cursor={}",
                enc(&URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x3a, 0x3a]))
            ),
        ),
    ];
    for (nsid, query) in cases {
        err(&db, nsid, &query, 400, "InvalidRequest").await;
    }
    // The track is still there and served.
    ok(&db, "fm.plyr.feed.getTrack", &uri(&song)).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn sql_looking_search_text_is_only_text(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let song = track(&db, ALICE, "song", 10).await;
    for q in [
        "'; drop table track; --",
        "%' or 1=1 --",
        "\\' union select * from actor --",
        "$1",
    ] {
        let body = ok(&db, "fm.plyr.feed.searchTracks", &format!("q={}", enc(q))).await;
        assert_eq!(body["tracks"], serde_json::json!([]), "{q:?}: {body}");
    }
    let tracks: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&db)
        .await
        .expect("count tracks");
    assert_eq!(tracks, 1, "the track table is intact");
    ok(&db, "fm.plyr.feed.getTrack", &format!("uri={}", enc(&song))).await;
}
