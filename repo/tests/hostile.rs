//! Hostile input for the frame decoder, the CAR reader, the DAG-CBOR converter and commit
//! verification: every case comes back as an error of a stated kind, never a panic.

use std::collections::BTreeMap;

use cid::Cid;
use cid::multihash::Multihash;
use plyr_repo::{
    Action, CarLimits, CommitEvent, ErrorKind, MAX_FRAME_BYTES, RepoOp, cbor_to_json, cid_for_cbor,
    decode_frame, parse_did_key, read_car, verify_commit,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A valid secp256k1 did:key (any key will do: these frames fail before the signature).
const KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

fn cbor(value: &impl Serialize) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("test value encodes")
}

/// A frame header `{op, t}` followed by raw body bytes.
fn frame(op: i64, t: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // Hand-built map so `t` can be absent: {op} or {op, t} (DAG-CBOR key order: length first).
    out.push(if t.is_some() { 0xa2 } else { 0xa1 });
    out.extend(cbor(&"op"));
    out.extend(cbor(&op));
    if let Some(t) = t {
        out.extend(cbor(&"t"));
        out.extend(cbor(&t));
    }
    out.extend(body);
    out
}

/// `n` nested one-element arrays around an integer.
fn nested_arrays(n: usize) -> Vec<u8> {
    let mut out = vec![0x81; n];
    out.push(0x01);
    out
}

/// CBOR text string header + raw bytes (which need not be UTF-8).
fn text(bytes: &[u8]) -> Vec<u8> {
    let len = u8::try_from(bytes.len()).expect("short test string");
    assert!(len < 24, "short form only");
    let mut out = vec![0x60 | len];
    out.extend(bytes);
    out
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = u8::try_from(n & 0x7f).expect("seven bits");
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn car_header(roots: &[Cid]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Header<'a> {
        roots: &'a [Cid],
        version: u64,
    }
    let header = cbor(&Header { roots, version: 1 });
    let mut out = varint(u64::try_from(header.len()).expect("small"));
    out.extend(header);
    out
}

fn car_section(cid: &Cid, block: &[u8]) -> Vec<u8> {
    let cid_bytes = cid.to_bytes();
    let mut out = varint(u64::try_from(cid_bytes.len() + block.len()).expect("small"));
    out.extend(cid_bytes);
    out.extend(block);
    out
}

#[test]
fn hostile_frames_are_refused_by_kind() {
    let identity_bad_utf8 = {
        let mut body = vec![0xa3];
        body.extend(cbor(&"did"));
        body.extend(cbor(&"did:plc:abc"));
        body.extend(cbor(&"seq"));
        body.extend(cbor(&1i64));
        body.extend(cbor(&"time"));
        body.extend(text(b"\xff\xfe2024"));
        frame(1, Some("#identity"), &body)
    };
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        (
            "oversized",
            vec![0u8; MAX_FRAME_BYTES + 1],
            ErrorKind::TooLarge,
        ),
        ("empty", Vec::new(), ErrorKind::MalformedFrame),
        (
            "header only",
            frame(1, Some("#commit"), &[]),
            ErrorKind::MalformedFrame,
        ),
        (
            "message without t",
            frame(1, None, &cbor(&BTreeMap::<String, i64>::new())),
            ErrorKind::MalformedFrame,
        ),
        (
            "deeply nested unknown body",
            frame(7, Some("#future"), &nested_arrays(100_000)),
            ErrorKind::MalformedFrame,
        ),
        (
            "deeply nested header",
            nested_arrays(100_000),
            ErrorKind::MalformedFrame,
        ),
        (
            "invalid utf-8 in a text string",
            identity_bad_utf8,
            ErrorKind::MalformedFrame,
        ),
        (
            "trailing bytes after the body",
            frame(
                7,
                Some("#future"),
                &[cbor(&BTreeMap::<String, i64>::new()), vec![0x00]].concat(),
            ),
            ErrorKind::MalformedFrame,
        ),
        (
            "byte string length past the end",
            frame(
                1,
                Some("#commit"),
                &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            ErrorKind::MalformedFrame,
        ),
        (
            "map claiming 2^64 entries",
            frame(
                1,
                Some("#info"),
                &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            ErrorKind::MalformedFrame,
        ),
    ];
    for (name, bytes, kind) in cases {
        match decode_frame(&bytes) {
            Ok(frame) => panic!("{name}: decoded {frame:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}

#[test]
fn hostile_cbor_records_are_refused_by_kind() {
    let bad_utf8_value = [&[0xa1][..], &cbor(&"title"), &text(b"a\xc0\x80b")].concat();
    let bad_utf8_key = [&[0xa1][..], &text(b"\xff"), &cbor(&1i64)].concat();
    let float = [
        &[0xa1][..],
        &cbor(&"n"),
        &[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0][..],
    ]
    .concat();
    let deep = [&[0xa1][..], &cbor(&"a"), &nested_arrays(100_000)].concat();
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        (
            "invalid utf-8 value",
            bad_utf8_value,
            ErrorKind::MalformedCbor,
        ),
        ("invalid utf-8 key", bad_utf8_key, ErrorKind::MalformedCbor),
        ("deep nesting", deep, ErrorKind::MalformedCbor),
        ("not a map", cbor(&[1, 2, 3]), ErrorKind::InvalidDataModel),
        ("float", float, ErrorKind::InvalidDataModel),
        ("truncated", vec![0xa1, 0x61], ErrorKind::MalformedCbor),
    ];
    for (name, bytes, kind) in cases {
        match cbor_to_json(&bytes) {
            Ok(value) => panic!("{name}: decoded {value}"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}

#[test]
fn hostile_cars_are_refused_by_kind() {
    let block = cbor(&BTreeMap::from([("a", 1)]));
    let cid = cid_for_cbor(&block);
    let other = cbor(&BTreeMap::from([("a", 2)]));
    let sha512 = Cid::new_v1(
        0x71,
        Multihash::<64>::wrap(0x13, &[0u8; 64]).expect("64-byte digest fits"),
    );
    let v0 = Cid::new_v0(
        Multihash::<64>::wrap(0x12, &Sha256::digest(&block)).expect("32-byte digest fits"),
    )
    .expect("v0 cid");
    let header = car_header(&[cid]);
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        (
            "block that does not match its cid",
            [header.clone(), car_section(&cid, &other)].concat(),
            ErrorKind::CidMismatch,
        ),
        (
            "sha-512 cid",
            [header.clone(), car_section(&sha512, &block)].concat(),
            ErrorKind::UnsupportedCid,
        ),
        (
            "cidv0",
            [header.clone(), car_section(&v0, &block)].concat(),
            ErrorKind::UnsupportedCid,
        ),
        (
            "section length past the end",
            [header.clone(), varint(1 << 40), cid.to_bytes()].concat(),
            ErrorKind::MalformedCar,
        ),
        (
            "section length of 2^64-1",
            [header.clone(), varint(u64::MAX)].concat(),
            ErrorKind::MalformedCar,
        ),
        (
            "truncated varint",
            [header.clone(), vec![0xff, 0xff]].concat(),
            ErrorKind::MalformedCar,
        ),
        (
            "header that is not a car header",
            [varint(1), vec![0xa0]].concat(),
            ErrorKind::MalformedCar,
        ),
        (
            "oversized",
            vec![0u8; CarLimits::COMMIT.max_bytes + 1],
            ErrorKind::TooLarge,
        ),
        (
            "oversized block",
            [
                header.clone(),
                car_section(&cid_for_cbor(&[0u8; 1 << 20]), &[0u8; (1 << 20) + 1]),
            ]
            .concat(),
            ErrorKind::TooLarge,
        ),
    ];
    for (name, bytes, kind) in cases {
        match read_car(&bytes, &CarLimits::COMMIT) {
            Ok(car) => panic!("{name}: read {} blocks", car.len()),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}

#[test]
fn hostile_commits_are_refused_by_kind() {
    let key = parse_did_key(KEY).expect("test key");
    let block = cbor(&BTreeMap::from([("a", 1)]));
    let cid = cid_for_cbor(&block);
    let forged = cbor(&BTreeMap::from([("a", 2)]));
    let good_car = [car_header(&[cid]), car_section(&cid, &block)].concat();
    let forged_car = [car_header(&[cid]), car_section(&cid, &forged)].concat();
    let op = |path: &str| RepoOp {
        action: Action::Create,
        path: path.to_owned(),
        cid: Some(cid),
        prev: None,
    };
    let event = |blocks: &'static [u8], commit: Cid, ops: Vec<RepoOp>| CommitEvent {
        seq: 1,
        repo: "did:plc:abc".to_owned(),
        commit,
        rev: "3kabcabcabc22".to_owned(),
        since: None,
        blocks,
        ops,
        prev_data: None,
        time: "2024-01-01T00:00:00Z".to_owned(),
        too_big: false,
        blobs: Vec::new(),
        rebase: false,
    };
    let good_car: &'static [u8] = good_car.leak();
    let forged_car: &'static [u8] = forged_car.leak();
    let cases = vec![
        (
            "block that does not match its cid",
            event(forged_car, cid, vec![op("fm.plyr.track/a")]),
            ErrorKind::CidMismatch,
        ),
        (
            "root other than the commit",
            event(good_car, cid_for_cbor(&forged), vec![op("fm.plyr.track/a")]),
            ErrorKind::FieldsMismatch,
        ),
        (
            "commit block that is not a commit",
            event(good_car, cid, vec![op("fm.plyr.track/a")]),
            ErrorKind::MalformedCommit,
        ),
        (
            "too many ops",
            event(
                good_car,
                cid,
                (0..1000).map(|i| op(&format!("a.b.c/{i}"))).collect(),
            ),
            ErrorKind::TooLarge,
        ),
    ];
    for (name, event, kind) in cases {
        match verify_commit(&event, &key) {
            Ok(_) => panic!("{name}: verified"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}
