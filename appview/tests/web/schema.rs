//! The response objects of plyr-web-api.md section 3 (and the endpoint tables of section 4) as
//! checkable schemas: every key present, no key beyond them, each value of its type, null only
//! where the reference says "or null".

use serde_json::Value;

/// A JSON type from the reference.
#[derive(Debug, Clone)]
pub enum S {
    /// A string.
    Str,
    /// An integer.
    Int,
    /// A float (search relevance).
    Num,
    /// A boolean.
    Bool,
    /// The value or null.
    Opt(Box<S>),
    /// An array of the type.
    Arr(Box<S>),
    /// An object with exactly these keys.
    Obj(Vec<(&'static str, S)>),
    /// Any object (upstream's `support_gate`).
    AnyObj,
}

use S::*;

fn opt(s: S) -> S {
    Opt(Box::new(s))
}

fn arr(s: S) -> S {
    Arr(Box::new(s))
}

/// Panics with the JSON path of the first mismatch.
pub fn check(value: &Value, schema: &S) {
    check_at(value, schema, "$");
}

fn check_at(value: &Value, schema: &S, path: &str) {
    match schema {
        Str => assert!(value.is_string(), "{path}: want string, got {value}"),
        Int => assert!(
            value.is_i64() || value.is_u64(),
            "{path}: want integer, got {value}"
        ),
        Num => assert!(value.is_number(), "{path}: want number, got {value}"),
        Bool => assert!(value.is_boolean(), "{path}: want bool, got {value}"),
        Opt(inner) => {
            if !value.is_null() {
                check_at(value, inner, path);
            }
        }
        Arr(item) => {
            let items = value
                .as_array()
                .unwrap_or_else(|| panic!("{path}: want array, got {value}"));
            for (i, v) in items.iter().enumerate() {
                check_at(v, item, &format!("{path}[{i}]"));
            }
        }
        AnyObj => assert!(value.is_object(), "{path}: want object, got {value}"),
        Obj(fields) => {
            let obj = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: want object, got {value}"));
            for (key, s) in fields {
                let v = obj
                    .get(*key)
                    .unwrap_or_else(|| panic!("{path}: missing key {key} in {value}"));
                check_at(v, s, &format!("{path}.{key}"));
            }
            for key in obj.keys() {
                assert!(
                    fields.iter().any(|(k, _)| k == key),
                    "{path}: unexpected key {key}"
                );
            }
        }
    }
}

/// AlbumSummary.
pub fn album_summary() -> S {
    Obj(vec![
        ("id", Str),
        ("slug", Str),
        ("title", Str),
        ("image_url", opt(Str)),
        ("thumbnail_url", opt(Str)),
    ])
}

/// FeaturedArtist.
pub fn featured_artist() -> S {
    Obj(vec![
        ("did", Str),
        ("handle", Str),
        ("display_name", Str),
        ("avatar_url", opt(Str)),
    ])
}

/// Track (upstream TrackResponse): every field always present.
pub fn track() -> S {
    Obj(vec![
        ("id", Int),
        ("title", Str),
        ("artist", Str),
        ("artist_handle", Str),
        ("artist_did", Str),
        ("artist_avatar_url", opt(Str)),
        ("file_id", Str),
        ("file_type", Str),
        ("features", arr(featured_artist())),
        ("r2_url", opt(Str)),
        ("atproto_record_uri", opt(Str)),
        ("atproto_record_cid", opt(Str)),
        ("atproto_record_url", opt(Str)),
        ("play_count", Int),
        ("created_at", Str),
        ("image_url", opt(Str)),
        ("thumbnail_url", opt(Str)),
        ("is_liked", Bool),
        ("like_count", Int),
        ("comment_count", Int),
        ("album", opt(album_summary())),
        ("tags", arr(Str)),
        ("copyright_flagged", opt(Bool)),
        ("copyright_match", opt(Str)),
        ("support_gate", opt(AnyObj)),
        ("gated", Bool),
        ("downloadable", Bool),
        ("download_policy", Str),
        ("artist_support_url", opt(Str)),
        ("copyright_song_uri", opt(Str)),
        ("copyright_recording_uri", opt(Str)),
        ("original_file_id", opt(Str)),
        ("original_file_type", opt(Str)),
        ("description", opt(Str)),
        ("audio_storage", Str),
        ("pds_blob_cid", opt(Str)),
        ("is_optimizing", Bool),
        ("visibility", Str),
        ("unlisted", Bool),
        ("self_labels", arr(Str)),
        ("operator_labels", arr(Str)),
        ("labels", arr(Str)),
    ])
}

/// `/tracks/`.
pub fn tracks_page() -> S {
    Obj(vec![
        ("tracks", arr(track())),
        ("next_cursor", opt(Str)),
        ("has_more", Bool),
    ])
}

/// Artist (upstream ArtistResponse).
pub fn artist() -> S {
    Obj(vec![
        ("did", Str),
        ("handle", Str),
        ("display_name", Str),
        ("bio", opt(Str)),
        ("avatar_url", opt(Str)),
        ("created_at", Str),
        ("updated_at", Str),
        ("show_liked_on_profile", Bool),
        ("support_url", opt(Str)),
    ])
}

fn top_item() -> S {
    opt(Obj(vec![("id", Int), ("title", Str), ("play_count", Int)]))
}

/// `/artists/{did}/analytics`.
pub fn analytics() -> S {
    Obj(vec![
        ("total_plays", Int),
        ("total_items", Int),
        ("total_duration_seconds", Int),
        ("top_item", top_item()),
        ("top_liked", top_item()),
        ("rank", opt(Int)),
    ])
}

/// `/tracks/{id}/comments`.
pub fn comments() -> S {
    Obj(vec![
        (
            "comments",
            arr(Obj(vec![
                ("id", Int),
                ("user_did", Str),
                ("user_handle", Str),
                ("user_display_name", Str),
                ("user_avatar_url", opt(Str)),
                ("text", Str),
                ("timestamp_ms", Int),
                ("created_at", Str),
                ("updated_at", opt(Str)),
            ])),
        ),
        ("count", Int),
        ("comments_enabled", Bool),
    ])
}

/// `/tracks/{id}/likes`.
pub fn likers() -> S {
    Obj(vec![
        (
            "users",
            arr(Obj(vec![
                ("did", Str),
                ("handle", Str),
                ("display_name", Str),
                ("avatar_url", opt(Str)),
                ("liked_at", Str),
            ])),
        ),
        ("count", Int),
    ])
}

fn playlist_fields() -> Vec<(&'static str, S)> {
    vec![
        ("id", Str),
        ("name", Str),
        ("owner_did", Str),
        ("owner_handle", Str),
        ("track_count", Int),
        ("image_url", opt(Str)),
        ("show_on_profile", Bool),
        ("is_private", Bool),
        ("atproto_record_uri", opt(Str)),
        ("created_at", Str),
        ("preview_thumbnails", arr(Str)),
    ]
}

/// Playlist.
pub fn playlist() -> S {
    Obj(playlist_fields())
}

/// PlaylistWithTracks.
pub fn playlist_with_tracks() -> S {
    let mut fields = playlist_fields();
    fields.push(("tracks", arr(track())));
    Obj(fields)
}

/// `/albums/{handle}`.
pub fn artist_albums() -> S {
    Obj(vec![(
        "albums",
        arr(Obj(vec![
            ("id", Str),
            ("title", Str),
            ("slug", Str),
            ("track_count", Int),
            ("total_plays", Int),
            ("image_url", opt(Str)),
        ])),
    )])
}

/// `/albums/{handle}/{slug}`.
pub fn album_detail() -> S {
    Obj(vec![
        (
            "metadata",
            Obj(vec![
                ("id", Str),
                ("title", Str),
                ("slug", Str),
                ("description", opt(Str)),
                ("artist", Str),
                ("artist_handle", Str),
                ("artist_did", Str),
                ("track_count", Int),
                ("total_plays", Int),
                ("image_url", opt(Str)),
                ("list_uri", opt(Str)),
            ]),
        ),
        ("tracks", arr(track())),
    ])
}

/// `/users/{handle}/likes`.
pub fn user_likes() -> S {
    Obj(vec![
        (
            "user",
            Obj(vec![
                ("did", Str),
                ("handle", Str),
                ("display_name", Str),
                ("avatar_url", opt(Str)),
            ]),
        ),
        ("tracks", arr(track())),
        ("count", Int),
    ])
}

/// One `/search/` result, by its `type`.
pub fn search_result(kind: &str) -> S {
    match kind {
        "track" => Obj(vec![
            ("type", Str),
            ("id", Int),
            ("title", Str),
            ("artist_handle", Str),
            ("artist_display_name", Str),
            ("image_url", opt(Str)),
            ("relevance", Num),
        ]),
        "artist" => Obj(vec![
            ("type", Str),
            ("did", Str),
            ("handle", Str),
            ("display_name", Str),
            ("avatar_url", opt(Str)),
            ("relevance", Num),
        ]),
        "album" => Obj(vec![
            ("type", Str),
            ("id", Str),
            ("title", Str),
            ("slug", Str),
            ("artist_handle", Str),
            ("artist_display_name", Str),
            ("image_url", opt(Str)),
            ("relevance", Num),
        ]),
        "tag" => Obj(vec![
            ("type", Str),
            ("id", Int),
            ("name", Str),
            ("track_count", Int),
            ("relevance", Num),
        ]),
        "playlist" => Obj(vec![
            ("type", Str),
            ("id", Str),
            ("name", Str),
            ("owner_handle", Str),
            ("owner_display_name", Str),
            ("image_url", opt(Str)),
            ("track_count", Int),
            ("relevance", Num),
        ]),
        other => panic!("unknown search result type {other}"),
    }
}

/// `/search/` counts.
pub fn search_counts() -> S {
    Obj(vec![
        ("tracks", Int),
        ("artists", Int),
        ("albums", Int),
        ("tags", Int),
        ("playlists", Int),
    ])
}

/// `/config`.
pub fn config() -> S {
    Obj(vec![
        ("max_upload_size_mb", Int),
        ("max_image_size_mb", Int),
        ("browser_observability", Bool),
        ("default_hidden_tags", arr(Str)),
        ("bufo_exclude_patterns", arr(Str)),
        ("bufo_include_patterns", arr(Str)),
        ("contact_email", Str),
        ("privacy_email", Str),
        ("dmca_email", Str),
        ("dmca_registration_number", Str),
        ("terms_last_updated", Str),
    ])
}

/// `/stats`.
pub fn stats() -> S {
    Obj(vec![
        ("total_plays", Int),
        ("total_tracks", Int),
        ("total_artists", Int),
        ("total_duration_seconds", Int),
    ])
}

/// `/oembed`.
pub fn oembed() -> S {
    Obj(vec![
        ("version", Str),
        ("type", Str),
        ("provider_name", Str),
        ("provider_url", Str),
        ("title", Str),
        ("author_name", Str),
        ("author_url", Str),
        ("width", Int),
        ("height", Int),
        ("html", Str),
        ("thumbnail_url", opt(Str)),
        ("thumbnail_width", opt(Int)),
        ("thumbnail_height", opt(Int)),
    ])
}

/// `/lists/by-uri`.
pub fn list_location() -> S {
    Obj(vec![
        ("type", Str),
        ("id", Str),
        ("handle", opt(Str)),
        ("slug", opt(Str)),
    ])
}

/// `{"detail": "..."}`.
pub fn detail() -> S {
    Obj(vec![("detail", Str)])
}

/// FastAPI's 422 body.
pub fn validation() -> S {
    Obj(vec![(
        "detail",
        arr(Obj(vec![
            ("type", Str),
            ("loc", arr(Str)),
            ("msg", Str),
            ("input", opt(Str)),
        ])),
    )])
}
