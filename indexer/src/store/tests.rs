//! The store against real Postgres: each test drives batches of wire-format events through
//! decode, classify, plan and apply, then reads the view tables back.

use chrono::{DateTime, TimeDelta, Utc};
use plyr_lexicons::Namespace;
use sqlx::PgPool;

use super::*;
use crate::event::decode;
use crate::fold::{classify, plan};
use crate::testing::*;

const SOURCE: &str = "jetstream";

fn planned(events: &[String]) -> Plan {
    let ns = Namespace::new("fm.plyr").expect("test namespace");
    plan(
        events
            .iter()
            .map(|e| classify(&ns, decode(e.as_bytes())))
            .collect(),
    )
}

async fn ingest(pool: &PgPool, events: &[String]) -> Applied {
    apply(pool, SOURCE, &planned(events))
        .await
        .expect("batch applies")
}

/// (title, rev, like_count, comment_count) of a track, if present.
async fn track_row(pool: &PgPool, uri: &str) -> Option<(String, String, i32, i32)> {
    sqlx::query_as("select title, rev, like_count, comment_count from track where uri = $1")
        .bind(uri)
        .fetch_optional(pool)
        .await
        .expect("track query")
}

/// (rev, deleted) of a ledger row.
async fn ledger(pool: &PgPool, uri: &str) -> Option<(String, bool)> {
    sqlx::query_as("select rev, deleted from record where uri = $1")
        .bind(uri)
        .fetch_optional(pool)
        .await
        .expect("ledger query")
}

/// (handle, active, status) of an actor.
async fn actor(pool: &PgPool, did: &str) -> Option<(Option<String>, bool, Option<String>)> {
    sqlx::query_as("select handle, active, status from actor where did = $1")
        .bind(did)
        .fetch_optional(pool)
        .await
        .expect("actor query")
}

/// (track, like, comment, album, playlist) counts of an actor.
async fn actor_counts(pool: &PgPool, did: &str) -> (i32, i32, i32, i32, i32) {
    sqlx::query_as(
        "select track_count, like_count, comment_count, album_count, playlist_count
         from actor where did = $1",
    )
    .bind(did)
    .fetch_one(pool)
    .await
    .expect("actor counts")
}

async fn skip_count(pool: &PgPool, reason: &str) -> i64 {
    sqlx::query_scalar("select coalesce(sum(count), 0)::int8 from indexer_skip where reason = $1")
        .bind(reason)
        .fetch_one(pool)
        .await
        .expect("skip query")
}

/// (pending_status, claim taken) of an actor's pending `#account` claim, if it has one.
async fn pending(pool: &PgPool, did: &str) -> Option<(Option<String>, bool)> {
    sqlx::query_as(
        "select pending_status, status_checked_at is not null from actor
         where did = $1 and pending_since is not null",
    )
    .bind(did)
    .fetch_optional(pool)
    .await
    .expect("pending query")
}

/// Claims every due `#account` claim and settles `did`'s as the account checker does once the
/// PDS has answered.
async fn settle(pool: &PgPool, did: &str, settlement: Settlement) {
    let claims = claim_pending_accounts(pool, TimeDelta::zero(), TimeDelta::zero(), 100)
        .await
        .expect("claim");
    let claim = claims
        .iter()
        .find(|c| c.did == did)
        .expect("a pending claim");
    assert!(
        settle_account(pool, claim, &settlement)
            .await
            .expect("settle")
    );
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    // `table` is a constant from the test itself.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// Every view table as text, minus the bookkeeping `updated_at` columns.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    let queries = [
        "select did, handle, active, status, track_count, like_count, comment_count,
                album_count, playlist_count, first_seen_at from actor order by did",
        "select uri, rev, deleted from record order by uri",
        "select * from track order by uri",
        "select * from track_like order by uri",
        "select * from comment order by uri",
        "select * from list order by uri",
        "select * from list_item order by list_uri, position",
        "select * from profile order by did",
        "select source, cursor from consumer_cursor order by source",
        "select reason, count, last_detail from indexer_skip order by reason",
    ];
    let mut out = Vec::new();
    for q in queries {
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select json_agg(row_to_json(t))::text from ({q}) t"
        )))
        .fetch_one(pool)
        .await
        .expect("snapshot query");
        out.push(text.unwrap_or_default());
    }
    out
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn create_update_and_stale_update(pool: PgPool) {
    let k = tid(100);
    let u = uri(ALICE, "track", &k);
    let applied = ingest(&pool, &[track(10, ALICE, &k, &tid(1), "One")]).await;
    assert_eq!(applied.written, 1);
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("One".into(), tid(1), 0, 0))
    );
    assert_eq!(actor(&pool, ALICE).await, Some((None, true, None)));
    assert_eq!(actor_counts(&pool, ALICE).await, (1, 0, 0, 0, 0));
    let (indexed_at, sort_at): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select indexed_at, sort_at from track where uri = $1")
            .bind(&u)
            .fetch_one(&pool)
            .await
            .expect("times");

    ingest(&pool, &[track(11, ALICE, &k, &tid(3), "Three")]).await;
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("Three".into(), tid(3), 0, 0))
    );
    let (indexed_after, sort_after): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select indexed_at, sort_at from track where uri = $1")
            .bind(&u)
            .fetch_one(&pool)
            .await
            .expect("times");
    assert_eq!(indexed_after, indexed_at, "an update keeps indexed_at");
    assert_eq!(sort_after, sort_at);

    // A stale update (older rev) arriving late changes nothing.
    let applied = ingest(&pool, &[track(12, ALICE, &k, &tid(2), "Two")]).await;
    assert_eq!(applied.written, 0);
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("Three".into(), tid(3), 0, 0))
    );
    assert_eq!(ledger(&pool, &u).await, Some((tid(3), false)));
    assert_eq!(last_cursor(&pool, SOURCE).await.expect("cursor"), Some(12));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn delete_leaves_a_tombstone_that_stops_replays(pool: PgPool) {
    let k = tid(100);
    let u = uri(ALICE, "track", &k);
    ingest(&pool, &[track(1, ALICE, &k, &tid(1), "One")]).await;
    ingest(&pool, &[delete(2, ALICE, "fm.plyr.track", &k, &tid(2))]).await;
    assert_eq!(track_row(&pool, &u).await, None);
    assert_eq!(ledger(&pool, &u).await, Some((tid(2), true)));
    assert_eq!(actor_counts(&pool, ALICE).await, (0, 0, 0, 0, 0));

    // Deleting again is a no-op, and a replayed older create does not resurrect it.
    let applied = ingest(
        &pool,
        &[
            delete(3, ALICE, "fm.plyr.track", &k, &tid(2)),
            track(3, ALICE, &k, &tid(1), "One"),
        ],
    )
    .await;
    assert_eq!(applied.written, 0);
    assert_eq!(track_row(&pool, &u).await, None);
    assert_eq!(ledger(&pool, &u).await, Some((tid(2), true)));

    // A genuinely newer create brings it back.
    ingest(&pool, &[track(4, ALICE, &k, &tid(5), "Back")]).await;
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("Back".into(), tid(5), 0, 0))
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_like_before_its_track_counts_once_the_track_arrives(pool: PgPool) {
    let k = tid(100);
    let u = uri(ALICE, "track", &k);
    ingest(&pool, &[like(1, BOB, &tid(200), &tid(1), &u)]).await;
    assert_eq!(track_row(&pool, &u).await, None);
    assert_eq!(count(&pool, "track_like").await, 1);
    ingest(&pool, &[track(2, ALICE, &k, &tid(2), "Late")]).await;
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("Late".into(), tid(2), 1, 0))
    );
    assert_eq!(actor_counts(&pool, BOB).await, (0, 1, 0, 0, 0));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn duplicate_likes_count_once(pool: PgPool) {
    let k = tid(100);
    let u = uri(ALICE, "track", &k);
    let (l1, l2) = (tid(201), tid(202));
    ingest(
        &pool,
        &[
            track(1, ALICE, &k, &tid(1), "T"),
            like(2, BOB, &l1, &tid(2), &u),
            like(3, BOB, &l2, &tid(3), &u),
        ],
    )
    .await;
    assert_eq!(track_row(&pool, &u).await.map(|t| t.2), Some(1));
    assert_eq!(actor_counts(&pool, BOB).await.1, 1);

    // Deleting one of the two leaves the like standing.
    ingest(&pool, &[delete(4, BOB, "fm.plyr.like", &l1, &tid(4))]).await;
    assert_eq!(track_row(&pool, &u).await.map(|t| t.2), Some(1));
    ingest(&pool, &[delete(5, BOB, "fm.plyr.like", &l2, &tid(5))]).await;
    assert_eq!(track_row(&pool, &u).await.map(|t| t.2), Some(0));
    assert_eq!(actor_counts(&pool, BOB).await.1, 0);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn comments_lists_and_profiles(pool: PgPool) {
    let (t1, t2) = (
        uri(ALICE, "track", &tid(101)),
        uri(ALICE, "track", &tid(102)),
    );
    let list_key = tid(300);
    let list_uri = uri(ALICE, "list", &list_key);
    ingest(
        &pool,
        &[
            track(1, ALICE, &tid(101), &tid(1), "A"),
            track(1, ALICE, &tid(102), &tid(2), "B"),
            write(
                2,
                BOB,
                "fm.plyr.comment",
                &tid(400),
                &tid(3),
                CID,
                comment_record(&t1, "nice"),
            ),
            write(
                2,
                ALICE,
                "fm.plyr.list",
                &list_key,
                &tid(4),
                CID,
                list_record("album", &[&t1, &t2]),
            ),
            write(
                2,
                ALICE,
                "fm.plyr.actor.profile",
                "self",
                &tid(5),
                CID,
                profile_record("hello"),
            ),
        ],
    )
    .await;
    assert_eq!(track_row(&pool, &t1).await.map(|t| t.3), Some(1));
    assert_eq!(actor_counts(&pool, ALICE).await, (2, 0, 0, 1, 0));
    assert_eq!(actor_counts(&pool, BOB).await, (0, 0, 1, 0, 0));
    let items: Vec<(i32, String)> = sqlx::query_as(
        "select position, subject_uri from list_item where list_uri = $1 order by position",
    )
    .bind(&list_uri)
    .fetch_all(&pool)
    .await
    .expect("items");
    assert_eq!(items, vec![(0, t1.clone()), (1, t2.clone())]);
    let bio: Option<String> = sqlx::query_scalar("select bio from profile where did = $1")
        .bind(ALICE)
        .fetch_one(&pool)
        .await
        .expect("profile");
    assert_eq!(bio.as_deref(), Some("hello"));

    // Updating the list to a playlist of one track replaces its items.
    ingest(
        &pool,
        &[
            write(
                3,
                ALICE,
                "fm.plyr.list",
                &list_key,
                &tid(6),
                CID2,
                list_record("playlist", &[&t2]),
            ),
            write(
                3,
                ALICE,
                "fm.plyr.actor.profile",
                "self",
                &tid(7),
                CID2,
                profile_record("bye"),
            ),
            delete(3, BOB, "fm.plyr.comment", &tid(400), &tid(8)),
        ],
    )
    .await;
    let items: Vec<(i32, String)> = sqlx::query_as(
        "select position, subject_uri from list_item where list_uri = $1 order by position",
    )
    .bind(&list_uri)
    .fetch_all(&pool)
    .await
    .expect("items");
    assert_eq!(items, vec![(0, t2.clone())]);
    assert_eq!(actor_counts(&pool, ALICE).await, (2, 0, 0, 0, 1));
    assert_eq!(actor_counts(&pool, BOB).await, (0, 0, 0, 0, 0));
    assert_eq!(track_row(&pool, &t1).await.map(|t| t.3), Some(0));
    let (bio, cid): (Option<String>, String) =
        sqlx::query_as("select bio, cid from profile where did = $1")
            .bind(ALICE)
            .fetch_one(&pool)
            .await
            .expect("profile");
    assert_eq!((bio.as_deref(), cid.as_str()), (Some("bye"), CID2));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn invalid_and_foreign_records_are_counted_not_stored(pool: PgPool) {
    let k = tid(100);
    let u = uri(ALICE, "track", &k);
    ingest(&pool, &[track(1, ALICE, &k, &tid(1), "Good")]).await;
    let mut no_audio = track_record("Bad");
    if let Some(map) = no_audio.as_object_mut() {
        map.remove("audioUrl");
    }
    let applied = ingest(
        &pool,
        &[
            // An invalid update leaves the previous valid version in place.
            write(2, ALICE, "fm.plyr.track", &k, &tid(2), CID2, no_audio),
            write(
                3,
                ALICE,
                "fm.plyr.stg.track",
                &k,
                &tid(3),
                CID,
                track_record("Staging"),
            ),
            "{not json".to_owned(),
            r#"{"did":"did:plc:x","time_us":4,"kind":"sync"}"#.to_owned(),
        ],
    )
    .await;
    assert_eq!(applied.written, 0);
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("Good".into(), tid(1), 0, 0))
    );
    assert_eq!(ledger(&pool, &u).await, Some((tid(1), false)));
    assert_eq!(skip_count(&pool, "app_rule").await, 1);
    assert_eq!(skip_count(&pool, "foreign_collection").await, 1);
    assert_eq!(skip_count(&pool, "malformed_event").await, 1);
    assert_eq!(skip_count(&pool, "unknown_kind").await, 1);
    assert_eq!(count(&pool, "track").await, 1);
    // The unknown kind moved the cursor; the malformed event could not.
    assert_eq!(last_cursor(&pool, SOURCE).await.expect("cursor"), Some(4));
    let detail: Option<String> =
        sqlx::query_scalar("select last_detail from indexer_skip where reason = 'app_rule'")
            .fetch_one(&pool)
            .await
            .expect("detail");
    assert!(detail.is_some_and(|d| d.contains(&u)));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn identity_sets_the_handle_of_known_actors(pool: PgPool) {
    ingest(&pool, &[track(1, ALICE, &tid(100), &tid(1), "T")]).await;
    let cases = [
        (Some("Alice.Example.COM"), Some("alice.example.com")),
        (Some("handle.invalid"), None),
        (Some("alice.example.com"), Some("alice.example.com")),
        (Some("-bad-.example"), None),
        (None, None),
    ];
    for (i, (sent, want)) in (2..).zip(cases) {
        ingest(&pool, &[identity(i, ALICE, sent)]).await;
        assert_eq!(
            actor(&pool, ALICE).await.and_then(|a| a.0).as_deref(),
            want,
            "{sent:?}"
        );
    }
    // DIDs that never committed to plyr are not tracked.
    ingest(&pool, &[identity(10, BOB, Some("bob.example.com"))]).await;
    assert_eq!(actor(&pool, BOB).await, None);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn deactivation_hides_and_activation_restores(pool: PgPool) {
    let u = uri(ALICE, "track", &tid(100));
    ingest(
        &pool,
        &[
            track(1, ALICE, &tid(100), &tid(1), "T"),
            like(2, BOB, &tid(200), &tid(2), &u),
            write(
                3,
                BOB,
                "fm.plyr.comment",
                &tid(201),
                &tid(3),
                CID,
                comment_record(&u, "hey"),
            ),
        ],
    )
    .await;
    assert_eq!(track_row(&pool, &u).await.map(|t| (t.2, t.3)), Some((1, 1)));

    // Held until the account's PDS confirms it: nothing is hidden yet.
    ingest(&pool, &[account(4, BOB, false, Some("deactivated"))]).await;
    assert_eq!(actor(&pool, BOB).await, Some((None, true, None)));
    assert_eq!(
        pending(&pool, BOB).await,
        Some((Some("deactivated".into()), false))
    );
    assert_eq!(track_row(&pool, &u).await.map(|t| (t.2, t.3)), Some((1, 1)));
    settle(&pool, BOB, Settlement::Apply("deactivated".into())).await;
    assert_eq!(pending(&pool, BOB).await, None);
    assert_eq!(
        actor(&pool, BOB).await,
        Some((None, false, Some("deactivated".into())))
    );
    assert_eq!(track_row(&pool, &u).await.map(|t| (t.2, t.3)), Some((0, 0)));
    // Hidden, not deleted: the rows stay.
    assert_eq!(count(&pool, "track_like").await, 1);

    // What a hidden actor writes meanwhile is stored but does not count either.
    let u2 = uri(ALICE, "track", &tid(101));
    ingest(
        &pool,
        &[
            track(5, ALICE, &tid(101), &tid(4), "T2"),
            like(5, BOB, &tid(202), &tid(5), &u2),
            write(
                5,
                BOB,
                "fm.plyr.comment",
                &tid(203),
                &tid(6),
                CID,
                comment_record(&u2, "psst"),
            ),
        ],
    )
    .await;
    assert_eq!(
        track_row(&pool, &u2).await.map(|t| (t.2, t.3)),
        Some((0, 0))
    );
    assert_eq!(actor_counts(&pool, BOB).await, (0, 2, 2, 0, 0));

    ingest(&pool, &[account(6, BOB, true, None)]).await;
    assert_eq!(actor(&pool, BOB).await, Some((None, true, None)));
    assert_eq!(track_row(&pool, &u).await.map(|t| (t.2, t.3)), Some((1, 1)));
    assert_eq!(
        track_row(&pool, &u2).await.map(|t| (t.2, t.3)),
        Some((1, 1))
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn deletion_purges_and_replays_stay_purged(pool: PgPool) {
    let alice_track = uri(ALICE, "track", &tid(100));
    let bob_track = uri(BOB, "track", &tid(101));
    let history = vec![
        track(1, ALICE, &tid(100), &tid(1), "Alice's"),
        track(1, BOB, &tid(101), &tid(2), "Bob's"),
        like(2, BOB, &tid(200), &tid(3), &alice_track),
        like(2, ALICE, &tid(201), &tid(4), &bob_track),
        write(
            2,
            BOB,
            "fm.plyr.actor.profile",
            "self",
            &tid(5),
            CID,
            profile_record("bob"),
        ),
    ];
    ingest(&pool, &history).await;
    assert_eq!(track_row(&pool, &alice_track).await.map(|t| t.2), Some(1));

    // A deletion is held until confirmed: a commit in the same batch still lands, and the
    // confirmed purge takes it too.
    let after = uri(BOB, "track", &tid(102));
    let applied = ingest(
        &pool,
        &[
            account(3, BOB, false, Some("deleted")),
            track(4, BOB, &tid(102), &tid(9), "after"),
        ],
    )
    .await;
    assert_eq!(applied.skips.get("actor_deleted"), None);
    assert_eq!(
        track_row(&pool, &after).await.map(|t| t.0),
        Some("after".into())
    );
    settle(&pool, BOB, Settlement::Apply("deleted".into())).await;
    assert_eq!(track_row(&pool, &after).await, None);
    assert_eq!(ledger(&pool, &after).await, Some((tid(9), true)));
    // Once deleted, the DID's commits are dropped.
    let applied = ingest(&pool, &[track(5, BOB, &tid(103), &tid(10), "later")]).await;
    assert_eq!(applied.skips.get("actor_deleted"), Some(&1));
    assert_eq!(
        actor(&pool, BOB).await,
        Some((None, false, Some("deleted".into())))
    );
    assert_eq!(track_row(&pool, &bob_track).await, None);
    assert_eq!(track_row(&pool, &alice_track).await.map(|t| t.2), Some(0));
    let bob_rows: i64 = sqlx::query_scalar(
        "select (select count(*) from track where did = $1) + (select count(*) from track_like where did = $1)
              + (select count(*) from profile where did = $1) + (select count(*) from list where did = $1)
              + (select count(*) from comment where did = $1)",
    )
    .bind(BOB)
    .fetch_one(&pool)
    .await
    .expect("bob rows");
    assert_eq!(bob_rows, 0);
    assert_eq!(ledger(&pool, &bob_track).await, Some((tid(2), true)));
    assert_eq!(actor_counts(&pool, BOB).await, (0, 0, 0, 0, 0));

    // A replay of the whole history changes nothing.
    let before = snapshot(&pool).await;
    let applied = ingest(&pool, &history).await;
    assert_eq!(applied.written, 0);
    let after = snapshot(&pool).await;
    assert_eq!(before[..8], after[..8]);

    // Reactivated later: older replays stay purged (the ledger remembers), new writes land.
    ingest(&pool, &[account(6, BOB, true, None)]).await;
    ingest(&pool, &history).await;
    assert_eq!(track_row(&pool, &bob_track).await, None);
    ingest(&pool, &[track(7, BOB, &tid(101), &tid(20), "New")]).await;
    assert_eq!(
        track_row(&pool, &bob_track).await.map(|t| t.0),
        Some("New".into())
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn the_same_batch_twice_changes_nothing(pool: PgPool) {
    let u = uri(ALICE, "track", &tid(100));
    let batch = vec![
        track(1, ALICE, &tid(100), &tid(1), "T"),
        like(2, BOB, &tid(200), &tid(2), &u),
        like(2, BOB, &tid(201), &tid(3), &u),
        write(
            3,
            ALICE,
            "fm.plyr.list",
            &tid(300),
            &tid(4),
            CID,
            list_record("album", &[&u]),
        ),
        identity(4, ALICE, Some("alice.example.com")),
        account(5, BOB, false, Some("takendown")),
        track(6, ALICE, &tid(100), &tid(5), "T2"),
        delete(7, BOB, "fm.plyr.like", &tid(201), &tid(6)),
    ];
    ingest(&pool, &batch).await;
    settle(&pool, BOB, Settlement::Apply("takendown".into())).await;
    let before = snapshot(&pool).await;
    let applied = ingest(&pool, &batch).await;
    assert_eq!(applied.written, 0);
    // The replayed takedown matches the applied status: no new claim.
    assert_eq!(pending(&pool, BOB).await, None);
    let after = snapshot(&pool).await;
    // Skip counts aside (none here), the view and the cursor are unchanged.
    assert_eq!(before, after);
    assert_eq!(
        track_row(&pool, &u).await,
        Some(("T2".into(), tid(5), 0, 0))
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_failed_batch_moves_neither_view_nor_cursor(pool: PgPool) {
    let u = uri(ALICE, "track", &tid(100));
    ingest(&pool, &[identity(1, ALICE, None)]).await;
    assert_eq!(last_cursor(&pool, SOURCE).await.expect("cursor"), Some(1));
    // Break the comment table so the batch fails after the track was written.
    sqlx::query("alter table comment rename to comment_gone")
        .execute(&pool)
        .await
        .expect("rename");
    let plan = planned(&[
        track(5, ALICE, &tid(100), &tid(1), "T"),
        write(
            6,
            BOB,
            "fm.plyr.comment",
            &tid(200),
            &tid(2),
            CID,
            comment_record(&u, "x"),
        ),
    ]);
    let err = apply(&pool, SOURCE, &plan).await.err();
    assert!(err.is_some_and(|e| !e.is_transient()));
    assert_eq!(track_row(&pool, &u).await, None);
    assert_eq!(count(&pool, "record").await, 0);
    assert_eq!(last_cursor(&pool, SOURCE).await.expect("cursor"), Some(1));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn counters_match_a_full_recount(pool: PgPool) {
    let t: Vec<String> = (0..3).map(|i| uri(ALICE, "track", &tid(100 + i))).collect();
    let batches = vec![
        vec![
            track(1, ALICE, &tid(100), &tid(1), "A"),
            track(1, ALICE, &tid(101), &tid(2), "B"),
            like(1, BOB, &tid(200), &tid(3), &t[0]),
            like(1, BOB, &tid(201), &tid(4), &t[0]),
            like(1, BOB, &tid(202), &tid(5), &t[2]),
            like(1, ALICE, &tid(203), &tid(6), &t[0]),
            write(
                1,
                BOB,
                "fm.plyr.comment",
                &tid(300),
                &tid(7),
                CID,
                comment_record(&t[1], "c"),
            ),
            write(
                1,
                ALICE,
                "fm.plyr.list",
                &tid(400),
                &tid(8),
                CID,
                list_record("album", &[&t[0]]),
            ),
        ],
        vec![
            // Move a duplicate like to another track, delete the other duplicate, add the
            // missing track, retype the list, move the comment.
            like(2, BOB, &tid(200), &tid(10), &t[1]),
            delete(2, BOB, "fm.plyr.like", &tid(201), &tid(11)),
            track(2, ALICE, &tid(102), &tid(12), "C"),
            write(
                2,
                ALICE,
                "fm.plyr.list",
                &tid(400),
                &tid(13),
                CID,
                list_record("playlist", &[&t[0], &t[1]]),
            ),
            write(
                2,
                BOB,
                "fm.plyr.comment",
                &tid(300),
                &tid(14),
                CID,
                comment_record(&t[2], "moved"),
            ),
        ],
        vec![
            delete(3, ALICE, "fm.plyr.track", &tid(101), &tid(20)),
            delete(3, ALICE, "fm.plyr.list", &tid(400), &tid(21)),
            like(3, ALICE, &tid(204), &tid(22), &t[0]),
        ],
    ];
    for batch in &batches {
        ingest(&pool, batch).await;
        for did in [ALICE, BOB] {
            let stored = actor_counts(&pool, did).await;
            let recounted: (i32, i32, i32, i32, i32) = sqlx::query_as(
                "select (select count(*) from track where did = $1)::int4,
                        (select count(distinct subject_uri) from track_like where did = $1)::int4,
                        (select count(*) from comment where did = $1)::int4,
                        (select count(*) from list where did = $1 and list_type = 'album')::int4,
                        (select count(*) from list where did = $1 and list_type = 'playlist')::int4",
            )
            .bind(did)
            .fetch_one(&pool)
            .await
            .expect("recount");
            assert_eq!(stored, recounted, "{did}");
        }
        let drift: i64 = sqlx::query_scalar(
            "select count(*) from track t where t.like_count <>
               (select count(distinct l.did) from track_like l where l.subject_uri = t.uri)
             or t.comment_count <> (select count(*) from comment c where c.subject_uri = t.uri)",
        )
        .fetch_one(&pool)
        .await
        .expect("track drift");
        assert_eq!(drift, 0);
        assert_eq!(rank_drift(&pool).await, 0);
    }
    // Spot-check the end state: Alice likes t0 twice (counts once), Bob likes t1 and t2.
    assert_eq!(actor_counts(&pool, ALICE).await, (2, 1, 0, 0, 0));
    assert_eq!(actor_counts(&pool, BOB).await, (0, 2, 1, 0, 0));
    assert_eq!(track_row(&pool, &t[0]).await.map(|r| r.2), Some(1));
    assert_eq!(
        track_row(&pool, &t[2]).await.map(|r| (r.2, r.3)),
        Some((1, 1))
    );
}

/// A deterministic pseudo-random source (an LCG), so the test needs no extra dependency.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn random_histories_fold_to_the_newest_rev_in_any_order(pool: PgPool) {
    for seed in [7, 11, 23, 42, 99] {
        sqlx::query(
            "truncate actor, record, track, track_like, comment, list, list_item, profile,
                      consumer_cursor, indexer_skip",
        )
        .execute(&pool)
        .await
        .expect("truncate");
        random_history(&pool, seed).await;
    }
}

/// 300 random writes and deletes of tracks, likes and comments, delivered shuffled in uneven
/// batches, must leave exactly the URIs whose newest event is a write, with exact counters.
async fn random_history(pool: &PgPool, seed: u64) {
    const CAROL: &str = "did:plc:carol2gjmksahdcvelwfyzu";
    let dids = [ALICE, BOB, CAROL];
    let tracks: Vec<(usize, String)> = (0..4u64)
        .map(|i| (usize::try_from(i % 2).unwrap_or(0), tid(100 + i)))
        .collect();
    let track_uris: Vec<String> = tracks
        .iter()
        .map(|(d, k)| uri(dids[*d], "track", k))
        .collect();
    let mut rng = Lcg(seed);
    // (uri, event) with a unique rev per event, so the newest per URI is unambiguous.
    let mut history: Vec<(String, u64, String)> = Vec::new();
    for n in 1..=300u64 {
        let rev = tid(1000 + n);
        let time = i64::try_from(n).unwrap_or(0);
        let delete_it = rng.below(10) < 3;
        let (u, event) = match rng.below(3) {
            0 => {
                let (d, k) = &tracks[usize::try_from(rng.below(4)).unwrap_or(0)];
                let u = uri(dids[*d], "track", k);
                let e = if delete_it {
                    delete(time, dids[*d], "fm.plyr.track", k, &rev)
                } else {
                    track(time, dids[*d], k, &rev, &format!("t{n}"))
                };
                (u, e)
            }
            1 => {
                let did = dids[usize::try_from(rng.below(3)).unwrap_or(0)];
                let k = tid(200 + rng.below(6));
                let subject = &track_uris[usize::try_from(rng.below(4)).unwrap_or(0)];
                let e = if delete_it {
                    delete(time, did, "fm.plyr.like", &k, &rev)
                } else {
                    like(time, did, &k, &rev, subject)
                };
                (uri(did, "like", &k), e)
            }
            _ => {
                let did = dids[usize::try_from(rng.below(3)).unwrap_or(0)];
                let k = tid(300 + rng.below(3));
                let subject = &track_uris[usize::try_from(rng.below(4)).unwrap_or(0)];
                let e = if delete_it {
                    delete(time, did, "fm.plyr.comment", &k, &rev)
                } else {
                    write(
                        time,
                        did,
                        "fm.plyr.comment",
                        &k,
                        &rev,
                        CID,
                        comment_record(subject, "c"),
                    )
                };
                (uri(did, "comment", &k), e)
            }
        };
        history.push((u, 1000 + n, event));
    }
    // Expected: a URI is live iff its newest event is a write.
    let mut newest: std::collections::BTreeMap<&str, (u64, bool)> = Default::default();
    for (u, rev, event) in &history {
        let live = !event.contains(r#""operation":"delete""#);
        let entry = newest.entry(u.as_str()).or_insert((*rev, live));
        if *rev > entry.0 {
            *entry = (*rev, live);
        }
    }
    let expected: Vec<&str> = newest
        .iter()
        .filter(|(_, (_, live))| *live)
        .map(|(u, _)| *u)
        .collect();

    // Deliver in a shuffled order, in uneven batches.
    let mut order: Vec<&String> = history.iter().map(|(_, _, e)| e).collect();
    for i in (1..order.len()).rev() {
        let j = usize::try_from(rng.below(u64::try_from(i + 1).unwrap_or(1))).unwrap_or(0);
        order.swap(i, j);
    }
    let mut rest: &[&String] = &order;
    while !rest.is_empty() {
        let take = usize::try_from(1 + rng.below(40))
            .unwrap_or(1)
            .min(rest.len());
        let (batch, tail) = rest.split_at(take);
        let batch: Vec<String> = batch.iter().map(|e| (*e).clone()).collect();
        ingest(pool, &batch).await;
        rest = tail;
    }

    let live: Vec<String> = sqlx::query_scalar(
        "select uri from track union all select uri from track_like
         union all select uri from comment order by 1",
    )
    .fetch_all(pool)
    .await
    .expect("live rows");
    assert!(
        expected.len() >= 5,
        "seed {seed}: too few live records to mean much"
    );
    let mut expected_sorted: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected_sorted.sort();
    assert_eq!(live, expected_sorted, "seed {seed}");

    // Counters equal a full recount, and replaying everything in one batch changes nothing.
    let drift = || async {
        let actors: i64 = sqlx::query_scalar(
            "select count(*) from actor a where (a.track_count, a.like_count, a.comment_count) <>
               ((select count(*) from track where did = a.did)::int4,
                (select count(distinct subject_uri) from track_like where did = a.did)::int4,
                (select count(*) from comment where did = a.did)::int4)",
        )
        .fetch_one(pool)
        .await
        .expect("actor drift");
        let tracks: i64 = sqlx::query_scalar(
            "select count(*) from track t where (t.like_count, t.comment_count) <>
               ((select count(distinct did) from track_like where subject_uri = t.uri)::int4,
                (select count(*) from comment where subject_uri = t.uri)::int4)",
        )
        .fetch_one(pool)
        .await
        .expect("track drift");
        (actors, tracks + rank_drift(pool).await)
    };
    assert_eq!(drift().await, (0, 0), "seed {seed}");
    let before = snapshot(pool).await;
    let everything: Vec<String> = order.iter().rev().map(|e| (*e).clone()).collect();
    let applied = ingest(pool, &everything).await;
    assert_eq!(applied.written, 0);
    assert_eq!(snapshot(pool).await[..8], before[..8]);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn account_claims_wait_for_confirmation(pool: PgPool) {
    let u = uri(ALICE, "track", &tid(100));
    ingest(
        &pool,
        &[
            track(1, ALICE, &tid(100), &tid(1), "T"),
            like(2, BOB, &tid(200), &tid(2), &u),
        ],
    )
    .await;

    // A stale deactivation (the current PDS says active) is dropped: nothing changes.
    ingest(&pool, &[account(3, BOB, false, Some("deactivated"))]).await;
    settle(&pool, BOB, Settlement::Drop).await;
    assert_eq!(pending(&pool, BOB).await, None);
    assert_eq!(actor(&pool, BOB).await, Some((None, true, None)));
    assert_eq!(track_row(&pool, &u).await.map(|t| t.2), Some(1));

    // A claimed row is not due again before its backoff, so a second checker skips it.
    ingest(&pool, &[account(4, BOB, false, Some("takendown"))]).await;
    let claims = claim_pending_accounts(&pool, TimeDelta::hours(1), TimeDelta::hours(1), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].status.as_deref(), Some("takendown"));
    let again = claim_pending_accounts(&pool, TimeDelta::hours(1), TimeDelta::hours(1), 10)
        .await
        .expect("claim");
    assert!(again.is_empty());
    assert_eq!(
        pending(&pool, BOB).await,
        Some((Some("takendown".into()), true))
    );

    // An event that arrives while the check runs supersedes it: the check writes nothing.
    ingest(&pool, &[account(5, BOB, false, Some("suspended"))]).await;
    let written = settle_account(&pool, &claims[0], &Settlement::Apply("takendown".into()))
        .await
        .expect("settle");
    assert!(!written);
    assert_eq!(actor(&pool, BOB).await, Some((None, true, None)));
    assert_eq!(
        pending(&pool, BOB).await,
        Some((Some("suspended".into()), false))
    );

    // An active event applies at once and clears the claim.
    ingest(&pool, &[account(6, BOB, true, None)]).await;
    assert_eq!(pending(&pool, BOB).await, None);
    let claims = claim_pending_accounts(&pool, TimeDelta::zero(), TimeDelta::zero(), 10)
        .await
        .expect("claim");
    assert!(claims.is_empty());

    // Events of actors the view does not know are ignored, as before.
    ingest(
        &pool,
        &[account(
            7,
            "did:plc:carol2ggjmksahdcvelwfyzu",
            false,
            Some("deleted"),
        )],
    )
    .await;
    assert_eq!(actor(&pool, "did:plc:carol2ggjmksahdcvelwfyzu").await, None);
}

/// Tracks whose row in `track_rank` (migration 0012's triggers) disagrees with their
/// `like_count`: a liked track must have one with its count, an unliked one none.
async fn rank_drift(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from track t full join track_rank r on r.uri = t.uri
         where (case when t.like_count > 0 then t.like_count end) is distinct from r.like_count",
    )
    .fetch_one(pool)
    .await
    .expect("rank drift")
}

/// Migration 0012's triggers keep `track_rank` right whoever writes `track`: a like counted, the
/// track deleted, the table truncated.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn the_rank_follows_track_counts_through_deletes_and_truncates(pool: PgPool) {
    let ranked = || async {
        sqlx::query_as::<_, (String, i32)>("select uri, like_count from track_rank")
            .fetch_all(&pool)
            .await
            .expect("rank")
    };
    let one = uri(ALICE, "track", &tid(100));
    let two = uri(ALICE, "track", &tid(101));
    ingest(&pool, &[track(1, ALICE, &tid(100), &tid(1), "One")]).await;
    ingest(&pool, &[like(2, BOB, &tid(200), &tid(2), &one)]).await;
    assert_eq!(ranked().await, [(one.clone(), 1)]);
    ingest(
        &pool,
        &[delete(3, ALICE, "fm.plyr.track", &tid(100), &tid(3))],
    )
    .await;
    assert_eq!(ranked().await, []);

    ingest(&pool, &[track(4, ALICE, &tid(101), &tid(4), "Two")]).await;
    ingest(&pool, &[like(5, BOB, &tid(201), &tid(5), &two)]).await;
    assert_eq!(ranked().await, [(two, 1)]);
    sqlx::query("truncate track")
        .execute(&pool)
        .await
        .expect("truncate");
    assert_eq!(ranked().await, []);
}

/// Issue #4: a committed batch notifies readers of the views it changed, a like and its
/// delete naming the liked track, so the appview's caches never serve stale counts.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn batches_notify_the_views_they_change(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener.listen(notify::CHANNEL).await.expect("listen");
    let track_uri = uri(ALICE, "track", &tid(100));
    let like_key = tid(200);
    ingest(&pool, &[track(1, ALICE, &tid(100), &tid(1), "One")]).await;
    ingest(&pool, &[like(2, BOB, &like_key, &tid(2), &track_uri)]).await;
    ingest(&pool, &[delete(3, BOB, "fm.plyr.like", &like_key, &tid(3))]).await;
    ingest(
        &pool,
        &[delete(4, ALICE, "fm.plyr.track", &tid(100), &tid(4))],
    )
    .await;
    let list_key = tid(300);
    let list_uri = uri(ALICE, "list", &list_key);
    let album = list_record("album", &[&track_uri]);
    ingest(
        &pool,
        &[write(
            5,
            ALICE,
            "fm.plyr.list",
            &list_key,
            &tid(5),
            CID,
            album,
        )],
    )
    .await;
    ingest(
        &pool,
        &[delete(6, ALICE, "fm.plyr.list", &list_key, &tid(6))],
    )
    .await;
    let mut payloads = Vec::new();
    for _ in 0..6 {
        let n = listener.recv().await.expect("notification");
        let changes: serde_json::Value = serde_json::from_str(n.payload()).expect("json");
        payloads.push(changes);
    }
    assert_eq!(payloads[0]["tracks"], serde_json::json!([track_uri]));
    assert_eq!(payloads[0]["profiles"], serde_json::json!([ALICE]));
    assert_eq!(payloads[1]["tracks"], serde_json::json!([track_uri]));
    // The liker's counts changed, and so did the author's (likes received).
    assert_eq!(payloads[1]["profiles"], serde_json::json!([ALICE, BOB]));
    let deleted = payloads[2]["tracks"].as_array().expect("tracks");
    assert!(
        deleted.contains(&serde_json::json!(track_uri)),
        "the deleted like's subject is named: {deleted:?}"
    );
    // Only a track's write or delete can move it in a feed: likes list nothing.
    let listed: Vec<_> = payloads.iter().map(|p| p["listed"].clone()).collect();
    assert_eq!(
        listed,
        [
            serde_json::json!([track_uri]),
            serde_json::json!([]),
            serde_json::json!([]),
            serde_json::json!([track_uri]),
            serde_json::json!([]),
            serde_json::json!([]),
        ]
    );
    // Names change search hits: a list's write and delete name it, nothing else does.
    let lists: Vec<_> = payloads.iter().map(|p| p["lists"].clone()).collect();
    let none = serde_json::json!([]);
    let named = serde_json::json!([list_uri]);
    assert_eq!(
        lists,
        [&none, &none, &none, &none, &named, &named].map(Clone::clone)
    );
    // A written track bounds where the batch's tracks sort (its createdAt); a delete or a like
    // writes none, so their payloads carry no bound.
    let newest: Vec<Option<chrono::DateTime<chrono::Utc>>> = payloads
        .iter()
        .map(|p| serde_json::from_value(p["newest"].clone()).expect("a time or nothing"))
        .collect();
    let created = "2024-11-19T12:00:00Z".parse().expect("time");
    assert_eq!(newest, [Some(created), None, None, None, None, None]);
}

/// An `app.bsky.actor.profile/self` write with this display name and avatar blob CID.
fn bsky_profile(time_us: i64, did: &str, rev: u64, name: &str, avatar: Option<&str>) -> String {
    let mut record = serde_json::json!({
        "$type": "app.bsky.actor.profile",
        "displayName": name,
        "description": "ignored",
    });
    if let Some(cid) = avatar {
        record["avatar"] = serde_json::json!({
            "$type": "blob", "ref": {"$link": cid}, "mimeType": "image/jpeg", "size": 1234,
        });
    }
    write(
        time_us,
        did,
        crate::fold::BSKY_PROFILE,
        "self",
        &tid(rev),
        CID2,
        record,
    )
}

/// (display_name, avatar_cid, rev) of an actor's Bluesky profile, if stored.
async fn bsky_row(pool: &PgPool, did: &str) -> Option<(Option<String>, Option<String>, String)> {
    sqlx::query_as("select display_name, avatar_cid, rev from bsky_profile where did = $1")
        .bind(did)
        .fetch_optional(pool)
        .await
        .expect("bsky_profile query")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn bluesky_profiles_of_known_actors_are_kept_rev_guarded(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener.listen(notify::CHANNEL).await.expect("listen");
    // Alice is ours (a track); Bob is not, and his Bluesky profile creates nothing.
    ingest(&pool, &[track(1, ALICE, &tid(100), &tid(1), "One")]).await;
    let _ = listener.recv().await.expect("track notification");
    ingest(
        &pool,
        &[
            bsky_profile(2, ALICE, 5, "Alice A.", Some(CID)),
            bsky_profile(3, BOB, 5, "Bob", None),
        ],
    )
    .await;
    assert_eq!(
        bsky_row(&pool, ALICE).await,
        Some((Some("Alice A.".into()), Some(CID.into()), tid(5)))
    );
    assert_eq!(bsky_row(&pool, BOB).await, None);
    assert_eq!(
        actor(&pool, BOB).await,
        None,
        "no actor from a bsky profile"
    );
    assert_eq!(
        ledger(&pool, &format!("at://{BOB}/app.bsky.actor.profile/self")).await,
        None,
        "unknown actors' profiles stay out of the ledger"
    );
    // The batch names Alice (her views show the name and avatar), not Bob.
    let n = listener.recv().await.expect("profile notification");
    let changes: serde_json::Value = serde_json::from_str(n.payload()).expect("json");
    assert_eq!(changes["authors"], serde_json::json!([ALICE]));
    assert_eq!(changes["profiles"], serde_json::json!([ALICE]));

    // A stale rev does not overwrite; a newer one does.
    ingest(&pool, &[bsky_profile(4, ALICE, 4, "Old", None)]).await;
    assert_eq!(
        bsky_row(&pool, ALICE).await.map(|r| r.0),
        Some(Some("Alice A.".into()))
    );
    ingest(&pool, &[bsky_profile(5, ALICE, 6, "Alice B.", None)]).await;
    assert_eq!(
        bsky_row(&pool, ALICE).await,
        Some((Some("Alice B.".into()), None, tid(6)))
    );
    // A delete clears it, and a replay of an older write stays deleted.
    let profile = crate::fold::BSKY_PROFILE;
    ingest(&pool, &[delete(6, ALICE, profile, "self", &tid(7))]).await;
    assert_eq!(bsky_row(&pool, ALICE).await, None);
    ingest(&pool, &[bsky_profile(7, ALICE, 6, "Alice B.", None)]).await;
    assert_eq!(bsky_row(&pool, ALICE).await, None);
    // A track's counts are untouched by all this.
    assert_eq!(actor_counts(&pool, ALICE).await.0, 1);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn bluesky_profiles_in_the_batch_that_creates_the_actor_are_kept(pool: PgPool) {
    ingest(
        &pool,
        &[
            bsky_profile(1, ALICE, 1, "Alice", None),
            track(2, ALICE, &tid(100), &tid(2), "One"),
        ],
    )
    .await;
    assert_eq!(
        bsky_row(&pool, ALICE).await.map(|r| r.0),
        Some(Some("Alice".into()))
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn invalid_bluesky_profiles_are_counted(pool: PgPool) {
    ingest(&pool, &[track(1, ALICE, &tid(100), &tid(1), "One")]).await;
    let profile = crate::fold::BSKY_PROFILE;
    let blob = |link: &str| {
        serde_json::json!({"$type": "blob", "ref": {"$link": link}, "mimeType": "image/png",
                           "size": 1})
    };
    let bad = [
        serde_json::json!({"displayName": 42}),
        serde_json::json!({"displayName": "x".repeat(641)}),
        serde_json::json!({"displayName": "nul\u{0}"}),
        serde_json::json!({"avatar": "https://cdn.example/a.jpg"}),
        serde_json::json!({"avatar": blob("not-a-cid")}),
        serde_json::json!({"$type": "app.bsky.feed.post", "displayName": "x"}),
        serde_json::json!(["not an object"]),
    ];
    let events: Vec<String> = bad
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let n = u64::try_from(i).unwrap_or(0) + 2;
            write(2, ALICE, profile, "self", &tid(n), CID, record)
        })
        .collect();
    ingest(&pool, &events).await;
    assert_eq!(skip_count(&pool, "invalid_record").await, 7);
    // Another record key is not the profile.
    ingest(
        &pool,
        &[write(
            3,
            ALICE,
            profile,
            "other",
            &tid(20),
            CID,
            serde_json::json!({}),
        )],
    )
    .await;
    assert_eq!(skip_count(&pool, "bad_record_key").await, 1);
    assert_eq!(bsky_row(&pool, ALICE).await, None);
    // 640 graphemes (of several code points each) is within bounds.
    let name = "e\u{301}".repeat(640);
    let ok = write(
        4,
        ALICE,
        profile,
        "self",
        &tid(21),
        CID,
        serde_json::json!({
            "displayName": name, "avatar": blob(CID2),
        }),
    );
    ingest(&pool, &[ok]).await;
    assert_eq!(
        bsky_row(&pool, ALICE).await,
        Some((Some(name), Some(CID2.into()), tid(21)))
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn account_deletion_purges_the_bluesky_profile(pool: PgPool) {
    ingest(
        &pool,
        &[
            track(1, ALICE, &tid(100), &tid(1), "One"),
            bsky_profile(2, ALICE, 2, "Alice", None),
        ],
    )
    .await;
    assert!(bsky_row(&pool, ALICE).await.is_some());
    ingest(&pool, &[account(3, ALICE, false, Some("deleted"))]).await;
    settle(&pool, ALICE, Settlement::Apply("deleted".into())).await;
    assert_eq!(bsky_row(&pool, ALICE).await, None);
}
