//! The web API's identifiers, all pure functions of the network's own: integer track ids and
//! UUID-shaped list ids hashed from the AT-URI (the same hashes migration 0003 stores), and
//! album slugs from titles.

use sha2::{Digest, Sha256};

/// Longest slug, in bytes (slugs are ASCII); longer titles are cut on a word boundary.
const MAX_SLUG_LEN: usize = 100;

/// The integer id of the record at `uri`: the first 52 bits of sha256(uri), below 2^53 so a
/// JavaScript number holds it exactly. Equals the `web_id` column of migration 0003.
pub fn int_id(uri: &str) -> i64 {
    let digest = Sha256::digest(uri.as_bytes());
    let mut high = [0u8; 8];
    high[1..].copy_from_slice(&digest[..7]);
    // 56 bits read, the low 4 dropped: 52 bits, so the value always fits an i64.
    i64::from_be_bytes(high) >> 4
}

/// The UUID-shaped id of `key` (a list's AT-URI, or an implicit album's key): the first 16
/// bytes of sha256(key) in UUID text form. Equals the `web_id` column of `list`.
pub fn uuid_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The key an implicit album (tracks of `did` naming album `title`, with no album list) is
/// hashed from. It is no AT-URI: nothing on the network names such an album.
pub fn implicit_album_key(did: &str, title: &str) -> String {
    format!("at://{did}/fm.plyr.track#album={title}")
}

/// True when `s` is a UUID in canonical text form (what [`uuid_id`] produces).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The slug of `title`: lowercase ASCII letters and digits, every other run of characters one
/// `-`, no `-` at either end, cut at [`MAX_SLUG_LEN`] on a word boundary. Empty when the title
/// has no letter or digit.
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    let mut dash = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.push(c);
        } else {
            dash = true;
        }
    }
    if slug.len() > MAX_SLUG_LEN {
        // The slug is ASCII, so any byte index is a char boundary.
        let cut = match slug[..=MAX_SLUG_LEN].rfind('-') {
            Some(i) if i > 0 => i,
            _ => MAX_SLUG_LEN,
        };
        slug.truncate(cut);
    }
    slug
}

/// Slugs for one artist's album titles, given oldest album first: [`slugify`], then `-2`,
/// `-3`... for a slug an older album already took. A title with no letter or digit becomes
/// `album`.
pub fn unique_slugs<'a>(titles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let mut out = Vec::new();
    for title in titles {
        let mut base = slugify(title);
        if base.is_empty() {
            base = "album".to_owned();
        }
        let mut slug = base.clone();
        let mut n = 2u32;
        while !taken.insert(slug.clone()) {
            slug = format!("{base}-{n}");
            n = n.saturating_add(1);
        }
        out.push(slug);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_ids_are_below_2_pow_53_and_stable() {
        let uri = "at://did:plc:abc/fm.plyr.track/3k";
        // Computed by Postgres from the migration's expression.
        assert_eq!(int_id(uri), 3_244_671_823_255_096);
        for i in 0..1000 {
            let id = int_id(&format!("at://did:plc:x/fm.plyr.track/{i}"));
            assert!((0..(1i64 << 53)).contains(&id), "{id}");
        }
    }

    #[test]
    fn uuid_ids_match_postgres() {
        assert_eq!(
            uuid_id("at://did:plc:a/fm.plyr.list/x"),
            "346ece3f-4e66-fa9e-480e-444fcb864fac"
        );
        assert!(is_uuid(&uuid_id("anything")));
        for bad in [
            "",
            "346ece3f4e66fa9e480e444fcb864fac",
            "346ece3f-4e66-fa9e-480e-444fcb864fag",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn slugs_follow_the_rule() {
        let long = "word ".repeat(30);
        let cases = [
            ("Hello, World!", "hello-world"),
            ("  --Déjà Vu--  ", "d-j-vu"),
            ("ALL CAPS 2024", "all-caps-2024"),
            ("a__b..c", "a-b-c"),
            ("!!!", ""),
            ("", ""),
        ];
        for (title, want) in cases {
            assert_eq!(slugify(title), want, "{title}");
        }
        let cut = slugify(&long);
        assert!(cut.len() <= MAX_SLUG_LEN, "{cut}");
        assert!(cut.ends_with("word"), "{cut}");
        assert_eq!(slugify(&"x".repeat(150)).len(), MAX_SLUG_LEN);
    }

    #[test]
    fn repeated_slugs_get_suffixes() {
        assert_eq!(
            unique_slugs(["Blue", "blue!", "Other", "BLUE", "", "?"]),
            ["blue", "blue-2", "other", "blue-3", "album", "album-2"]
        );
    }
}
