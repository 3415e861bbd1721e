//! Forged and tampered commits between the reference PDS and our indexer: a stand-in relay
//! re-serves the PDS's real firehose with bad commits spliced in just before the real ones they
//! imitate. Each is rejected and counted by reason; the real commits are all indexed.

use plyr_repo::{ErrorKind, PublicKey, verify_commit};
use serde_json::json;
use sqlx::PgPool;

use crate::relay_pds::{INDEXED, relay_indexer, skip_rows};
use crate::support::appview::{Appview, wait_for};
use crate::support::database_url;
use crate::support::events::rkey;
use crate::support::pds::{Pds, wait_until_synced};
use crate::support::relay::{
    ScriptedRelay, block_not_matching_its_cid, capture, commit_of, foreign_signature,
    ops_off_the_tree, renumber,
};
use crate::support::scenario::{COMMENT, Scenario, TRACK, titles};

/// One bad commit, the real commit it imitates (whose DID it claims), and why it must fail.
struct Forgery {
    frame: Vec<u8>,
    victim: Vec<u8>,
    kind: ErrorKind,
}

/// The real firehose with the forgeries spliced in, renumbered 1.. in order.
struct Splice {
    script: Vec<Vec<u8>>,
    forgeries: Vec<Forgery>,
    /// The track the foreign-signed commit would create.
    forged_uri: String,
    /// Where the moved op would put bob's comment.
    moved_uri: String,
}

/// Captures the PDS's firehose and splices in: before alice's first fm.plyr commit, a
/// well-formed commit for her DID creating a track, signed with a key her DID document does not
/// name; before bob's real comment commit, two copies of it (same rev, so an accepted copy
/// would shadow the real one): one with a block edited, one with its op moved off the tree.
async fn splice(pds: &Pds, scenario: &Scenario) -> Splice {
    let mut until = Vec::new();
    for did in scenario.dids() {
        let (cid, _) = pds.latest_commit(did).await.expect("getLatestCommit");
        until.push((did.to_owned(), cid));
    }
    let real = capture(&pds.url, &until)
        .await
        .expect("capture the firehose");

    let alice = scenario.alice.did.as_str();
    let bob = scenario.bob.did.as_str();
    let forged_path = format!("{TRACK}/{}", rkey(999));
    let comment_path = format!("{COMMENT}/{}", scenario.comment.rkey());
    let moved_path = format!("{COMMENT}/{}", rkey(998));

    let mut script = Vec::new();
    let mut forgeries = Vec::new();
    for frame in &real {
        let commit = commit_of(frame);
        let writes = |did: &str, path: &str| {
            commit
                .as_ref()
                .is_some_and(|c| c.repo == did && c.ops.iter().any(|op| op.path.starts_with(path)))
        };
        let mut before = Vec::new();
        if writes(alice, "fm.plyr.") && forgeries.is_empty() {
            let record = json!({
                "$type": TRACK, "title": "Forged", "artist": "Mallory", "fileType": "mp3",
                "audioUrl": "https://cdn.example.com/forged.mp3",
                "createdAt": "2026-03-09T00:00:00.000Z",
            });
            let forged = foreign_signature(alice, &forged_path, record).expect("forge");
            before.push((forged, ErrorKind::BadSignature));
        }
        if writes(bob, &comment_path) {
            let edited = block_not_matching_its_cid(frame, "lovely intro", "LOVELY INTRO")
                .expect("tamper a block");
            before.push((edited, ErrorKind::CidMismatch));
            let moved = ops_off_the_tree(frame, &moved_path).expect("move an op");
            before.push((moved, ErrorKind::MstMismatch));
        }
        for (bad, kind) in before {
            script.push(bad.clone());
            forgeries.push(Forgery {
                frame: bad,
                victim: frame.clone(),
                kind,
            });
        }
        script.push(frame.clone());
    }
    assert_eq!(forgeries.len(), 3, "every forgery found its place");
    let script = script
        .iter()
        .zip(1i64..)
        .map(|(frame, seq)| renumber(frame, seq).expect("renumber"))
        .collect();
    Splice {
        script,
        forgeries,
        forged_uri: format!("at://{alice}/{forged_path}"),
        moved_uri: format!("at://{bob}/{moved_path}"),
    }
}

/// The `#atproto` signing key of `did`'s document at the PLC, read as the indexer reads it.
async fn signing_key(plc: &str, did: &str) -> PublicKey {
    let doc: plyr_identity::DidDocument = reqwest::get(format!("{plc}/{did}"))
        .await
        .expect("PLC request")
        .json()
        .await
        .expect("DID document");
    doc.signing_key().expect("the #atproto key")
}

/// The forgeries are what they claim, checked with plyr-repo alone: the real commit each
/// imitates verifies with its DID's key from the PLC, the forgery fails for its reason.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn forgeries_fail_verification_for_their_reason(_pool: PgPool) {
    let pds = Pds::start().await.expect("start the PDS");
    let scenario = Scenario::write(&pds).await.expect("write the scenario");
    let splice = splice(&pds, &scenario).await;
    for forgery in &splice.forgeries {
        let victim = commit_of(&forgery.victim).expect("a real commit");
        let key = signing_key(&pds.plc, &victim.repo).await;
        verify_commit(&victim, &key).expect("the real commit verifies");
        let forged = commit_of(&forgery.frame).expect("a #commit");
        assert_eq!(forged.repo, victim.repo, "it claims the victim's repo");
        let err = verify_commit(&forged, &key).expect_err("a forgery must not verify");
        assert_eq!(err.kind(), forgery.kind, "{err}");
    }
    pds.stop().await.expect("stop the PDS");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn forged_and_tampered_commits_are_rejected_and_counted(pool: PgPool) {
    let pds = Pds::start().await.expect("start the PDS");
    let scenario = Scenario::write(&pds).await.expect("write the scenario");
    let splice = splice(&pds, &scenario).await;
    let relay = ScriptedRelay::start(splice.script).await;

    let mut indexer = relay_indexer(&database_url(&pool), &relay.url(), &pds.plc);
    wait_until_synced(&pool, &pds, &scenario.dids(), Some(&mut indexer), INDEXED).await;
    let skips = wait_for("three rejections counted", INDEXED, || async {
        let rows = skip_rows(&pool).await;
        let total: i64 = rows.iter().map(|(_, n)| n).sum();
        if total >= 3 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    let count = |reason: &str| {
        skips
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count("bad_signature"), 1, "{skips:?}");
    assert_eq!(count("cid_mismatch"), 1, "{skips:?}");
    assert_eq!(count("mst_mismatch"), 1, "{skips:?}");
    assert_eq!(skips.len(), 3, "nothing else skipped: {skips:?}");

    let appview = Appview::start(pool.clone()).await;
    scenario.assert_answers(&appview).await;
    let (status, body) = appview
        .xrpc("fm.plyr.feed.getTrack", &[("uri", &splice.forged_uri)])
        .await;
    assert_eq!(status, 404, "the forged track is not indexed: {body}");
    let comments = appview
        .ok("fm.plyr.feed.getComments", &[("uri", &scenario.first.uri)])
        .await;
    assert_eq!(
        comments["comments"][0]["text"], "lovely intro",
        "{comments}"
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from record where uri = $1")
        .bind(&splice.moved_uri)
        .fetch_one(&pool)
        .await
        .expect("ledger");
    assert_eq!(stored, 0, "the moved op left no trace");
    let artist = appview
        .ok(
            "fm.plyr.feed.getArtistTracks",
            &[("actor", &scenario.alice.did)],
        )
        .await;
    assert!(!titles(&artist["tracks"]).contains(&"Forged".to_owned()));

    indexer.start_kill().expect("stop the indexer");
    indexer.wait().await.expect("reap the indexer");
    appview.stop().await;
    drop(relay);
    pds.stop().await.expect("stop the PDS");
}
