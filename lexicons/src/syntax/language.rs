//! BCP-47 language tags (RFC 5646): the syntax check, plus the "valid tag" rule that no
//! variant or extension singleton repeats. The primary language subtag must be lowercase, as
//! the ATProto interop vectors require.

use super::{SyntaxError, SyntaxKind};

/// RFC 5646 grandfathered tags, matched case-insensitively as whole tags.
const GRANDFATHERED: &[&str] = &[
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// Longest tag we take; real tags are far shorter.
const LANGUAGE_MAX_LEN: usize = 128;

fn fail<T>(reason: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError::new(SyntaxKind::Language, reason))
}

/// The subtags that must not repeat in a valid tag.
#[derive(Default)]
struct Repeatable<'a> {
    variants: Vec<&'a str>,
    singletons: Vec<u8>,
}

/// Checks BCP-47 syntax.
pub fn validate_language(s: &str) -> Result<(), SyntaxError> {
    parse(s).map(|_| ())
}

/// Checks BCP-47 syntax and RFC 5646 validity: no repeated variant or extension singleton
/// (compared case-insensitively). This is what the lexicon `language` format uses.
pub fn validate_language_strict(s: &str) -> Result<(), SyntaxError> {
    let tag = parse(s)?;
    for (i, v) in tag.variants.iter().enumerate() {
        if tag.variants[..i].iter().any(|w| w.eq_ignore_ascii_case(v)) {
            return fail("repeated variant subtag");
        }
    }
    for (i, s) in tag.singletons.iter().enumerate() {
        if tag.singletons[..i].contains(s) {
            return fail("repeated extension singleton");
        }
    }
    Ok(())
}

fn parse(s: &str) -> Result<Repeatable<'_>, SyntaxError> {
    if s.is_empty() || s.len() > LANGUAGE_MAX_LEN {
        return fail("must be 1-128 characters");
    }
    if GRANDFATHERED.iter().any(|g| g.eq_ignore_ascii_case(s)) {
        return Ok(Repeatable::default());
    }
    let subtags: Vec<&str> = s.split('-').collect();
    if subtags
        .iter()
        .any(|t| t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return fail("subtags must be 1-8 letters or digits");
    }
    let mut rest = &subtags[..];
    let mut out = Repeatable::default();

    // A tag made only of private-use subtags.
    if rest[0].eq_ignore_ascii_case("x") {
        return private_use(&rest[1..]).map(|()| out);
    }

    let language = rest[0];
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return fail("primary language must be 2-3 lowercase letters");
    }
    rest = &rest[1..];
    // Up to three extended language subtags.
    let mut extlangs = 0;
    while extlangs < 3 && rest.first().is_some_and(|t| is_alpha(t, 3)) {
        rest = &rest[1..];
        extlangs += 1;
    }
    if rest.first().is_some_and(|t| is_alpha(t, 4)) {
        rest = &rest[1..];
    }
    if rest
        .first()
        .is_some_and(|t| is_alpha(t, 2) || (t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit())))
    {
        rest = &rest[1..];
    }
    while let Some(t) = rest.first() {
        let variant = (5..=8).contains(&t.len())
            || (t.len() == 4 && t.starts_with(|c: char| c.is_ascii_digit()));
        if !variant {
            break;
        }
        out.variants.push(t);
        rest = &rest[1..];
    }
    while let Some(t) = rest.first() {
        if t.len() != 1 || t.eq_ignore_ascii_case("x") {
            break;
        }
        out.singletons.push(t.as_bytes()[0].to_ascii_lowercase());
        rest = &rest[1..];
        let count = rest
            .iter()
            .take_while(|t| (2..=8).contains(&t.len()))
            .count();
        if count == 0 {
            return fail("extension singleton needs at least one subtag");
        }
        rest = &rest[count..];
    }
    match rest.first() {
        None => Ok(out),
        Some(t) if t.eq_ignore_ascii_case("x") => private_use(&rest[1..]).map(|()| out),
        Some(_) => fail("unexpected subtag"),
    }
}

/// After `x-`: one or more subtags of 1-8 characters (already checked by the caller).
fn private_use(rest: &[&str]) -> Result<(), SyntaxError> {
    if rest.is_empty() {
        return fail("private use needs at least one subtag");
    }
    Ok(())
}

fn is_alpha(t: &str, len: usize) -> bool {
    t.len() == len && t.bytes().all(|b| b.is_ascii_alphabetic())
}
