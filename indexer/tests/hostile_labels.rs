//! Hostile label stream frames: each is refused as a malformed frame or its label skipped with
//! the expected reason, never a panic; frames signed by the reference implementation pass.

use plyr_indexer::fuzz_label_frame;
use plyr_repo::{PublicKey, parse_did_key};

/// The reference-signed vectors the label client's unit tests use.
const VECTORS: &str = include_str!("../src/labels/atproto-vectors.json");

fn vectors() -> serde_json::Value {
    serde_json::from_str(VECTORS).expect("vectors parse")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The first vector: a good k256 label, its frame and its labeler's key.
fn good() -> (Vec<u8>, PublicKey) {
    let v = vectors();
    let case = &v["cases"][0];
    assert_eq!(case["expect"], "ok");
    let labeler = case["labeler"].as_str().expect("labeler");
    let key = parse_did_key(v["keys"][labeler].as_str().expect("key")).expect("did:key");
    (hex(case["frame"].as_str().expect("frame")), key)
}

/// CBOR text string header + bytes (short strings only).
fn text(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 24);
    let mut out = vec![0x60 | u8::try_from(s.len()).expect("short")];
    out.extend_from_slice(s);
    out
}

/// A CBOR map of the given keys and already-encoded values (fewer than 24 entries).
fn map(entries: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xa0 | u8::try_from(entries.len()).expect("short")];
    for (key, value) in entries {
        out.extend(text(key));
        out.extend_from_slice(value);
    }
    out
}

/// A `#labels` frame whose body is `{seq: 1, labels: [<label>]}`, the label as raw CBOR.
fn frame_with_label(label: &[u8]) -> Vec<u8> {
    let mut out = vec![0xa2];
    out.extend(text(b"t"));
    out.extend(text(b"#labels"));
    out.extend(text(b"op"));
    out.push(0x01);
    out.push(0xa2);
    out.extend(text(b"seq"));
    out.push(0x01);
    out.extend(text(b"labels"));
    out.push(0x81);
    out.extend_from_slice(label);
    out
}

#[test]
fn reference_signed_frames_pass() {
    let (frame, key) = good();
    assert_eq!(fuzz_label_frame(&frame, &key), Ok(vec!["ok"]));
}

#[test]
fn hostile_frames_are_refused_or_skipped() {
    let (good_frame, key) = good();
    let mut nested = vec![0x81; 100_000];
    nested.push(0x01);
    let deep = map(&[(b"x", nested)]);
    let bad_utf8 = map(&[(b"src", vec![0x62, 0xff, 0xfe])]);
    let sig_as_text = map(&[(b"sig", text(b"AAAA"))]);
    let val_as_int = map(&[
        (b"src", text(b"did:plc:x")),
        (b"uri", text(b"did:plc:y")),
        (b"cts", text(b"2026-01-01T00:00:00Z")),
        (b"val", vec![0x07]),
        (b"ver", vec![0x01]),
    ]);
    let mut trailing = good_frame.clone();
    trailing.push(0x00);
    let mut oversized = good_frame.clone();
    oversized.resize(6 << 20, 0);
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good_frame[..good_frame.len() / 2].to_vec()),
        ("trailing bytes", trailing),
        ("over the 5 MB frame limit", oversized),
        (
            "a label nested 100,000 arrays deep",
            frame_with_label(&deep),
        ),
        (
            "invalid utf-8 in a label string",
            frame_with_label(&bad_utf8),
        ),
        ("sig that is not bytes", frame_with_label(&sig_as_text)),
        ("val that is not a string", frame_with_label(&val_as_int)),
        ("labels that is not a list", {
            let mut f = frame_with_label(&[]);
            let at = f.len() - 1;
            f[at] = 0x01;
            f
        }),
    ];
    for (name, bytes) in refused {
        assert!(fuzz_label_frame(&bytes, &key).is_err(), "{name}");
    }
}

#[test]
fn hostile_labels_are_counted_skips() {
    let (_, key) = good();
    let v = vectors();
    // Every reference vector lands on its expected outcome with that labeler's key.
    for case in v["cases"].as_array().expect("cases") {
        let labeler = case["labeler"].as_str().expect("labeler");
        let key = parse_did_key(v["keys"][labeler].as_str().expect("key")).expect("did:key");
        let frame = hex(case["frame"].as_str().expect("frame"));
        let expect = case["expect"].as_str().expect("expect");
        assert_eq!(
            fuzz_label_frame(&frame, &key),
            Ok(vec![expect]),
            "{}",
            case["name"]
        );
    }
    // A well-formed label with SQL in its value and a tricky subject: judged, not run.
    let label = map(&[
        (b"src", text(b"did:plc:x")),
        (b"uri", text(b"at://../../etc")),
        (b"cts", text(b"2026-01-01T00:00:00Z")),
        (b"val", text(b"'; drop table--")),
        (b"ver", vec![0x01]),
    ]);
    assert_eq!(
        fuzz_label_frame(&frame_with_label(&label), &key),
        Ok(vec!["unsigned_label"])
    );
}
