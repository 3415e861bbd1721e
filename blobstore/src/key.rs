//! `BlobKey`: the name of a stored object, either a blob addressed by its own CID or a derived
//! rendition (transcode, thumbnail) addressed by its source CID and a rendition name.

use std::fmt;
use std::str::FromStr;

use crate::cid::BlobCid;

/// Longest rendition name; keeps object keys and file names short.
const MAX_RENDITION_NAME: usize = 64;

/// What a stored object is called. Backends map it to a path or an object key; the text form
/// (`Display`) is the same on every backend: `<cid>` or `renditions/<cid>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKey {
    /// An original blob, stored under the CID of its bytes.
    Blob(BlobCid),
    /// A rendition derived from the blob `source`, e.g. `web.flac` or `thumb-512.webp`.
    Rendition {
        /// The CID of the original the rendition was made from.
        source: BlobCid,
        /// Which rendition.
        name: RenditionName,
    },
}

impl BlobKey {
    /// The key of a rendition of `source`.
    pub fn rendition(source: BlobCid, name: RenditionName) -> Self {
        Self::Rendition { source, name }
    }

    /// The CID the key is derived from: the blob's own, or a rendition's source.
    pub fn cid(&self) -> &BlobCid {
        match self {
            Self::Blob(cid) | Self::Rendition { source: cid, .. } => cid,
        }
    }

    /// Whether the object's bytes hash to the CID in its key. Only these are deduplicated on
    /// upload: a rendition may be replaced by a new encode.
    pub fn is_content_addressed(&self) -> bool {
        matches!(self, Self::Blob(_))
    }
}

impl From<BlobCid> for BlobKey {
    fn from(cid: BlobCid) -> Self {
        Self::Blob(cid)
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(cid) => write!(f, "{cid}"),
            Self::Rendition { source, name } => write!(f, "renditions/{source}/{name}"),
        }
    }
}

/// Why a key or rendition name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The CID part is not a blob CID.
    #[error("bad cid in key {key:?}")]
    Cid {
        /// The key as given.
        key: String,
        /// What was wrong with the CID.
        #[source]
        source: crate::cid::CidParseError,
    },
    /// A rendition name outside `[a-z0-9._-]{1,64}`, or one starting with a dot.
    #[error("bad rendition name {0:?}")]
    RenditionName(String),
    /// Neither `<cid>` nor `renditions/<cid>/<name>`.
    #[error("unrecognised key {0:?}")]
    Shape(String),
}

impl FromStr for BlobKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse_cid = |text: &str| {
            text.parse::<BlobCid>().map_err(|source| KeyError::Cid {
                key: s.to_owned(),
                source,
            })
        };
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [cid] => Ok(Self::Blob(parse_cid(cid)?)),
            ["renditions", cid, name] => Ok(Self::Rendition {
                source: parse_cid(cid)?,
                name: name.parse()?,
            }),
            _ => Err(KeyError::Shape(s.to_owned())),
        }
    }
}

/// The name of a derived rendition: `[a-z0-9._-]{1,64}`, not starting with a dot, so it is
/// safe as a file name and an object key segment on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RenditionName(String);

impl RenditionName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RenditionName {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if s.is_empty()
            || s.len() > MAX_RENDITION_NAME
            || s.starts_with('.')
            || !s.chars().all(allowed)
        {
            return Err(KeyError::RenditionName(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for RenditionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

    #[test]
    fn keys_round_trip() {
        let cid: BlobCid = HELLO.parse().expect("vector");
        let web: RenditionName = "web.flac".parse().expect("name");
        for key in [BlobKey::Blob(cid), BlobKey::rendition(cid, web)] {
            let text = key.to_string();
            assert_eq!(text.parse::<BlobKey>(), Ok(key.clone()), "{text}");
            assert_eq!(key.cid(), &cid);
        }
        assert_eq!(
            BlobKey::rendition(cid, "thumb-512.webp".parse().expect("name")).to_string(),
            format!("renditions/{HELLO}/thumb-512.webp")
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        type Check = fn(&KeyError) -> bool;
        let cases: &[(String, Check)] = &[
            (String::new(), |e| matches!(e, KeyError::Cid { .. })),
            ("tmp/x".into(), |e| matches!(e, KeyError::Shape(_))),
            (format!("renditions/{HELLO}"), |e| {
                matches!(e, KeyError::Shape(_))
            }),
            (format!("renditions/{HELLO}/a/b"), |e| {
                matches!(e, KeyError::Shape(_))
            }),
            (format!("renditions/{HELLO}/.."), |e| {
                matches!(e, KeyError::RenditionName(_))
            }),
            (format!("renditions/{HELLO}/Web"), |e| {
                matches!(e, KeyError::RenditionName(_))
            }),
            (format!("renditions/{HELLO}/"), |e| {
                matches!(e, KeyError::RenditionName(_))
            }),
            ("renditions/bafyfoo/web".into(), |e| {
                matches!(e, KeyError::Cid { .. })
            }),
        ];
        for (text, want) in cases {
            match text.parse::<BlobKey>() {
                Ok(key) => panic!("{text:?} parsed as {key}"),
                Err(e) => assert!(want(&e), "{text:?}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn rendition_names() {
        let long = "a".repeat(MAX_RENDITION_NAME);
        let too_long = "a".repeat(MAX_RENDITION_NAME + 1);
        let cases = [
            ("web.flac", true),
            ("thumb-512_v2.webp", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            ("", false),
            (".hidden", false),
            ("a/b", false),
            ("a\\b", false),
            ("É", false),
            ("web flac", false),
        ];
        for (name, ok) in cases {
            assert_eq!(name.parse::<RenditionName>().is_ok(), ok, "{name:?}");
        }
    }
}
