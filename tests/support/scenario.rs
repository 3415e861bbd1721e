//! One history of fm.plyr writes made on a real PDS (creates, an update, deletes, likes, a
//! comment, a playlist, profiles, a blob-backed track, an applyWrites batch), the XRPC answers
//! it must produce, and a normalized snapshot of those answers for comparing two indexes.

use anyhow::Result;
use serde_json::{Value, json};

use super::appview::Appview;
use super::pds::{Account, Pds, Written};

/// Collections of the production namespace.
pub const TRACK: &str = "fm.plyr.track";
/// Likes.
pub const LIKE: &str = "fm.plyr.like";
/// Comments.
pub const COMMENT: &str = "fm.plyr.comment";
/// Lists (albums, playlists).
pub const LIST: &str = "fm.plyr.list";
/// Artist profiles (record key `self`).
pub const PROFILE: &str = "fm.plyr.actor.profile";

/// What was written, for the assertions.
pub struct Scenario {
    /// The artist.
    pub alice: Account,
    /// The listener.
    pub bob: Account,
    /// Created, then updated to [`REMASTER`] with putRecord.
    pub first: Written,
    /// Its audio is a blob uploaded to the PDS.
    pub blob_track: Written,
    /// The uploaded blob reference.
    pub blob: Value,
    /// Created, then deleted (bob's like of it stays stored but counts nowhere).
    pub deleted: Written,
    /// Created in the same commit as the playlist (applyWrites).
    pub applied: Written,
    /// alice's playlist: blob_track then first.
    pub playlist: Written,
    /// bob's comment on `first`.
    pub comment: Written,
}

/// The title `first` ends with.
pub const REMASTER: &str = "First light (remaster)";

fn track(title: &str, created_at: &str) -> Value {
    json!({
        "$type": TRACK,
        "title": title,
        "artist": "Alice",
        "audioUrl": "https://cdn.example.com/audio/first.mp3",
        "fileType": "mp3",
        "duration": 200,
        "createdAt": created_at,
    })
}

fn like(subject: &Written) -> Value {
    json!({"$type": LIKE, "subject": subject.strong_ref(), "createdAt": "2026-04-01T00:00:00.000Z"})
}

impl Scenario {
    /// Makes the accounts and writes the history, one PDS call at a time (each is a commit).
    pub async fn write(pds: &Pds) -> Result<Scenario> {
        let alice = pds.create_account("alice.test").await?;
        let bob = pds.create_account("bob.test").await?;

        pds.put_record(
            &alice,
            PROFILE,
            "self",
            json!({"$type": PROFILE, "bio": "alice makes music", "createdAt": "2026-01-01T00:00:00.000Z"}),
        )
        .await?;
        let first = pds
            .create_record(
                &alice,
                TRACK,
                track("First light", "2026-03-01T00:00:00.000Z"),
            )
            .await?;
        // A few hundred KiB of "audio": the PDS sniffs nothing, the record carries the mime type.
        let audio: Vec<u8> = (0..300 * 1024u32)
            .map(|i| u8::try_from(i % 251).unwrap_or_default())
            .collect();
        let blob = pds.upload_blob(&alice, audio, "audio/mpeg").await?;
        let mut blob_record = track("Blob song", "2026-03-02T00:00:00.000Z");
        if let Some(fields) = blob_record.as_object_mut() {
            fields.remove("audioUrl");
            fields.insert("audioBlob".to_owned(), blob.clone());
        }
        let blob_track = pds.create_record(&alice, TRACK, blob_record).await?;
        let deleted = pds
            .create_record(&alice, TRACK, track("Doomed", "2026-03-03T00:00:00.000Z"))
            .await?;
        pds.delete_record(&alice, TRACK, deleted.rkey()).await?;
        let first_rkey = first.rkey().to_owned();
        let first = pds
            .put_record(
                &alice,
                TRACK,
                &first_rkey,
                track(REMASTER, "2026-03-01T00:00:00.000Z"),
            )
            .await?;
        let mut batch = pds
            .apply_writes(
                &alice,
                vec![
                    json!({
                        "$type": "com.atproto.repo.applyWrites#create",
                        "collection": TRACK,
                        "value": track("Applied", "2026-03-04T00:00:00.000Z"),
                    }),
                    json!({
                        "$type": "com.atproto.repo.applyWrites#create",
                        "collection": LIST,
                        "value": {
                            "$type": LIST,
                            "name": "Alice picks",
                            "listType": "playlist",
                            "items": [
                                {"subject": blob_track.strong_ref()},
                                {"subject": first.strong_ref()},
                            ],
                            "createdAt": "2026-03-05T00:00:00.000Z",
                        },
                    }),
                ],
            )
            .await?
            .into_iter();
        let (Some(applied), Some(playlist)) = (batch.next(), batch.next()) else {
            anyhow::bail!("applyWrites returned fewer than two results");
        };

        // bob comes back later: a fresh session, as a client would log in.
        let bob = pds.create_session(&bob.handle).await?;
        pds.put_record(
            &bob,
            PROFILE,
            "self",
            json!({"$type": PROFILE, "bio": "bob listens", "createdAt": "2026-01-02T00:00:00.000Z"}),
        )
        .await?;
        pds.create_record(&bob, LIKE, like(&first)).await?;
        pds.create_record(&bob, LIKE, like(&blob_track)).await?;
        pds.create_record(&bob, LIKE, like(&deleted)).await?;
        let unliked = pds.create_record(&bob, LIKE, like(&applied)).await?;
        pds.delete_record(&bob, LIKE, unliked.rkey()).await?;
        let comment = pds
            .create_record(
                &bob,
                COMMENT,
                json!({
                    "$type": COMMENT,
                    "subject": first.strong_ref(),
                    "text": "lovely intro",
                    "timestampMs": 12_000,
                    "createdAt": "2026-04-02T00:00:00.000Z",
                }),
            )
            .await?;
        Ok(Scenario {
            alice,
            bob,
            first,
            blob_track,
            blob,
            deleted,
            applied,
            playlist,
            comment,
        })
    }

    /// The DIDs that wrote records.
    pub fn dids(&self) -> [&str; 2] {
        [&self.alice.did, &self.bob.did]
    }

    /// The read queries the assertions and the snapshot use.
    fn queries(&self) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        let (alice, bob) = (self.alice.did.clone(), self.bob.did.clone());
        vec![
            (
                "fm.plyr.feed.getLatestTracks",
                vec![("limit", "10".to_owned())],
            ),
            (
                "fm.plyr.feed.getTrack",
                vec![("uri", self.first.uri.clone())],
            ),
            (
                "fm.plyr.feed.getTrack",
                vec![("uri", self.blob_track.uri.clone())],
            ),
            (
                "fm.plyr.feed.getTrack",
                vec![("uri", self.deleted.uri.clone())],
            ),
            (
                "fm.plyr.feed.getArtistTracks",
                vec![("actor", alice.clone())],
            ),
            (
                "fm.plyr.feed.getLikes",
                vec![("uri", self.first.uri.clone())],
            ),
            ("fm.plyr.feed.getActorLikes", vec![("actor", bob.clone())]),
            (
                "fm.plyr.feed.getComments",
                vec![("uri", self.first.uri.clone())],
            ),
            (
                "fm.plyr.feed.getList",
                vec![("uri", self.playlist.uri.clone())],
            ),
            ("fm.plyr.feed.getActorLists", vec![("actor", alice.clone())]),
            ("fm.plyr.actor.getProfile", vec![("actor", alice)]),
            ("fm.plyr.actor.getProfile", vec![("actor", bob)]),
        ]
    }

    /// Every query's (status, body), with fields that depend on when or how a record was
    /// indexed (indexedAt, and handles, which the resolver checks on its own schedule) removed.
    pub async fn snapshot(&self, appview: &Appview) -> Vec<Value> {
        let mut out = Vec::new();
        for (nsid, params) in self.queries() {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, mut body) = appview.xrpc(nsid, &params).await;
            strip_unstable(&mut body);
            out.push(json!({"method": nsid, "params": params, "status": status, "body": body}));
        }
        out
    }

    /// The answers the history must give, asserted through XRPC.
    pub async fn assert_answers(&self, appview: &Appview) {
        let alice = self.alice.did.as_str();
        let bob = self.bob.did.as_str();

        let latest = appview
            .ok("fm.plyr.feed.getLatestTracks", &[("limit", "10")])
            .await;
        assert_eq!(
            titles(&latest["tracks"]),
            ["Applied", "Blob song", REMASTER],
            "newest first, the deleted track gone, the update applied: {latest:#}"
        );

        let first = appview
            .ok("fm.plyr.feed.getTrack", &[("uri", &self.first.uri)])
            .await;
        let view = &first["track"];
        assert_eq!(
            view["cid"],
            self.first.cid.as_str(),
            "the updated record's CID"
        );
        assert_eq!(view["author"]["did"], alice);
        assert_eq!(view["likeCount"], 1, "{view:#}");
        assert_eq!(view["commentCount"], 1, "{view:#}");

        let blob_track = appview
            .ok("fm.plyr.feed.getTrack", &[("uri", &self.blob_track.uri)])
            .await;
        assert_eq!(
            blob_track["track"]["record"]["audioBlob"], self.blob,
            "the blob reference as uploaded"
        );
        assert_eq!(blob_track["track"]["likeCount"], 1);

        let (status, gone) = appview
            .xrpc("fm.plyr.feed.getTrack", &[("uri", &self.deleted.uri)])
            .await;
        assert_eq!(status, 404, "deleted track: {gone}");

        let artist = appview
            .ok("fm.plyr.feed.getArtistTracks", &[("actor", alice)])
            .await;
        assert_eq!(titles(&artist["tracks"]).len(), 3, "{artist:#}");

        let likes = appview
            .ok("fm.plyr.feed.getLikes", &[("uri", &self.first.uri)])
            .await;
        let likers: Vec<&str> = likes["likes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["actor"]["did"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(likers, [bob], "{likes:#}");

        let liked = appview
            .ok("fm.plyr.feed.getActorLikes", &[("actor", bob)])
            .await;
        let mut liked = titles(&liked["tracks"]);
        liked.sort();
        assert_eq!(
            liked,
            ["Blob song", REMASTER],
            "the unliked and the deleted track are not listed"
        );

        let comments = appview
            .ok("fm.plyr.feed.getComments", &[("uri", &self.first.uri)])
            .await;
        let comments = comments["comments"].as_array().cloned().unwrap_or_default();
        assert_eq!(comments.len(), 1);
        assert_eq!(comments[0]["uri"], self.comment.uri.as_str());
        assert_eq!(comments[0]["text"], "lovely intro");
        assert_eq!(comments[0]["timestampMs"], 12_000);

        let list = appview
            .ok("fm.plyr.feed.getList", &[("uri", &self.playlist.uri)])
            .await;
        assert_eq!(list["list"]["name"], "Alice picks");
        assert_eq!(list["list"]["listType"], "playlist");
        assert_eq!(
            titles(&list["list"]["items"]),
            ["Blob song", REMASTER],
            "record order"
        );

        let lists = appview
            .ok("fm.plyr.feed.getActorLists", &[("actor", alice)])
            .await;
        assert_eq!(
            lists["lists"].as_array().map(Vec::len),
            Some(1),
            "{lists:#}"
        );

        let profile = appview
            .ok("fm.plyr.actor.getProfile", &[("actor", alice)])
            .await;
        assert_eq!(profile["bio"], "alice makes music");
        assert_eq!(profile["trackCount"], 3, "{profile:#}");
        assert_eq!(profile["playlistCount"], 1, "{profile:#}");
        let profile = appview
            .ok("fm.plyr.actor.getProfile", &[("actor", bob)])
            .await;
        assert_eq!(profile["bio"], "bob listens");
        assert_eq!(profile["commentCount"], 1, "{profile:#}");
    }
}

/// The titles of a list of track views.
pub fn titles(tracks: &Value) -> Vec<String> {
    tracks
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["record"]["title"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn strip_unstable(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.remove("indexedAt");
            fields.remove("handle");
            fields.values_mut().for_each(strip_unstable);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_unstable),
        _ => {}
    }
}
