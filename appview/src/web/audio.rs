//! Playback: `GET`/`HEAD /audio/{file_id}` answers 307 to the best source of the track's audio
//! this AppView can vouch for, and the same URL is the Track's `r2_url`.
//!
//! Sources, best first: our blob store's copy of the record's `audioBlob` (`/blob/{cid}`, stored
//! under its CID, so it is the bytes the record names), the author's PDS `getBlob` for it (the
//! PDS serves only bytes matching the CID), then the record's `audioUrl` when its host is
//! allow-listed. The file id is the CID when we hold the blob, else the record's rkey.
//! Tracks of hidden or taken-down accounts are never found, so never served. Supporter-gated
//! tracks answer 401, as upstream does to anonymous listeners: this AppView has no sessions
//! with which a supporter could prove access.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sqlx::PgPool;

use super::Web;
use super::error::WebError;
use crate::queries;
use crate::queries::track::TrackRow;

/// The CID of a record's `audioBlob` (`ref.$link`), when it has the shape of one.
pub fn blob_cid(record: &Value) -> Option<String> {
    let cid = record.pointer("/audioBlob/ref/$link")?.as_str()?;
    // CIDs are multibase text: base32 or base58, letters and digits only.
    let plausible =
        !cid.is_empty() && cid.len() <= 128 && cid.bytes().all(|b| b.is_ascii_alphanumeric());
    plausible.then(|| cid.to_owned())
}

/// Whether the record asks for a supporter gate (`supportGate`).
pub fn is_gated(record: &Value) -> bool {
    record.get("supportGate").is_some_and(Value::is_object)
}

/// An HTTPS origin as `https://host[:port]` with no path, query or credentials.
fn https_base(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let base = rest.trim_end_matches('/');
    let ok = !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| &url[..("https://".len() + base.len())])
}

/// The host of an HTTPS URL, lowercased, if it has a plain one.
fn https_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `host` is on the allow-list (`host`, or `*.domain` for subdomains of `domain`).
fn allowed_host(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|entry| match entry.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == entry,
    })
}

/// Where a track's audio is fetched: our `/blob/{cid}` when we hold (`held`) the record's
/// `audioBlob`, else the PDS `getBlob` URL when the author's PDS endpoint (`pds`) is known and
/// HTTPS, else an allow-listed `audioUrl`. None for a gated track.
pub fn source(row: &TrackRow, pds: Option<&str>, held: bool, web: &Web) -> Option<String> {
    if is_gated(&row.record) {
        return None;
    }
    if let Some(cid) = blob_cid(&row.record).filter(|_| held && web.blobs) {
        return Some(format!("{}/blob/{cid}", web.config.public_url));
    }
    if let (Some(cid), Some(base)) = (blob_cid(&row.record), pds.and_then(https_base)) {
        return Some(format!(
            "{base}/xrpc/com.atproto.sync.getBlob?did={}&cid={cid}",
            row.did
        ));
    }
    let url = row.record.get("audioUrl")?.as_str()?;
    let host = https_host(url)?;
    allowed_host(&host, &web.config.audio_hosts).then(|| url.to_owned())
}

/// `GET`/`HEAD /audio/{file_id}`: 307 to the track's audio; 401 for a gated track; 404
/// `audio file not found` when there is no such track or no source.
pub async fn audio(
    State(db): State<PgPool>,
    State(web): State<Web>,
    Path(file_id): Path<String>,
) -> Result<Response, WebError> {
    let not_found = || WebError::NotFound("audio file not found".into());
    // A file id is a track's audio blob CID (when we hold the blob), or its rkey.
    let by_cid = if web.blobs {
        queries::track::by_audio_cid(&db, &file_id).await?
    } else {
        None
    };
    let row = match by_cid {
        Some(row) => row,
        None => queries::track::by_rkey(&db, &file_id)
            .await?
            .ok_or_else(not_found)?,
    };
    let held = match blob_cid(&row.record).filter(|_| web.blobs) {
        Some(cid) => !queries::track::held_audio(&db, &[cid]).await?.is_empty(),
        None => false,
    };
    if is_gated(&row.record) {
        return Err(WebError::Unauthorized(
            "authentication required to stream this track",
        ));
    }
    let pds = queries::actor::cards(&db, std::slice::from_ref(&row.did))
        .await?
        .pop()
        .and_then(|c| c.pds);
    let target = source(&row, pds.as_deref(), held, &web).ok_or_else(not_found)?;
    Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_bases() {
        let allow = vec!["*.plyr.fm".to_owned(), "cdn.example".to_owned()];
        let cases = [
            ("audio.plyr.fm", true),
            ("a.b.plyr.fm", true),
            ("plyr.fm", false),
            ("evilplyr.fm", false),
            ("cdn.example", true),
            ("x.cdn.example", false),
        ];
        for (host, want) in cases {
            assert_eq!(allowed_host(host, &allow), want, "{host}");
        }
        assert_eq!(
            https_host("https://Audio.plyr.fm:443/a.mp3").as_deref(),
            Some("audio.plyr.fm")
        );
        assert_eq!(https_host("https://user@audio.plyr.fm/a.mp3"), None);
        assert_eq!(https_host("http://audio.plyr.fm/a.mp3"), None);
        assert_eq!(
            https_base("https://pds.example/"),
            Some("https://pds.example")
        );
        assert_eq!(
            https_base("https://pds.example:8443"),
            Some("https://pds.example:8443")
        );
        assert_eq!(https_base("https://pds.example/path"), None);
        assert_eq!(https_base("http://pds.example"), None);
    }
}
