//! Verification throughput on one core: signature verifies/s for secp256k1 (libsecp256k1) and
//! P-256 (RustCrypto), and full `#commit` checks/s (frame decode + CAR + signature + MST
//! inversion) on synthetic single-record commits to a 5,000-record repository.
//!
//! Run: `cargo bench -p plyr-repo --features builder --bench verify`.

use std::hint::black_box;
use std::time::Instant;

use p256::ecdsa::signature::hazmat::PrehashSigner as _;
use plyr_repo::{Frame, PublicKey, RepoBuilder, Write, decode_frame, verify_commit};
use sha2::{Digest as _, Sha256};

const SIGNATURES: usize = 20_000;
const REPO_RECORDS: usize = 5_000;
const COMMITS: usize = 5_000;
const TIME: &str = "2026-01-01T00:00:00.000Z";

fn rate(label: &str, count: usize, run: impl FnOnce()) {
    let start = Instant::now();
    run();
    let secs = start.elapsed().as_secs_f64();
    let per_sec = count as f64 / secs;
    let micros = secs * 1e6 / count as f64;
    println!("{label}: {per_sec:.0}/s ({micros:.1} µs each, {count} runs)");
}

fn main() {
    let msg = b"an unsigned commit's dag-cbor stands in here";
    let digest: [u8; 32] = Sha256::digest(msg).into();

    let k256_secret = secp256k1::SecretKey::from_byte_array([0x42; 32]).expect("valid scalar");
    let k256_sig = secp256k1::SECP256K1
        .sign_ecdsa(secp256k1::Message::from_digest(digest), &k256_secret)
        .serialize_compact();
    let k256 = PublicKey::K256(secp256k1::PublicKey::from_secret_key(
        secp256k1::SECP256K1,
        &k256_secret,
    ));
    rate("secp256k1 verify", SIGNATURES, || {
        for _ in 0..SIGNATURES {
            black_box(k256.verify(black_box(msg), black_box(&k256_sig))).expect("verifies");
        }
    });

    let p256_secret = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("valid scalar");
    let p256_sig: p256::ecdsa::Signature = p256_secret.sign_prehash(&digest).expect("signs");
    let p256_sig = p256_sig.normalize_s().unwrap_or(p256_sig).to_bytes();
    let p256 = PublicKey::P256(*p256_secret.verifying_key());
    rate("p-256 verify", SIGNATURES / 4, || {
        for _ in 0..SIGNATURES / 4 {
            black_box(p256.verify(black_box(msg), black_box(&p256_sig))).expect("verifies");
        }
    });

    let mut repo = RepoBuilder::new("did:plc:benchmark", [0x42; 32]).expect("builder");
    let writes: Vec<Write> = (0..REPO_RECORDS)
        .map(|i| Write::Create {
            path: format!("fm.plyr.like/3k{i:011}"),
            record: serde_json::json!({"$type": "fm.plyr.like", "createdAt": TIME, "n": i}),
        })
        .collect();
    repo.commit(&writes, TIME).expect("initial commit");
    let frames: Vec<Vec<u8>> = (0..COMMITS)
        .map(|i| {
            let write = Write::Create {
                path: format!("fm.plyr.track/3z{i:011}"),
                record: serde_json::json!({
                    "$type": "fm.plyr.track", "title": format!("track {i}"), "createdAt": TIME,
                }),
            };
            repo.commit(&[write], TIME).expect("commit")
        })
        .collect();
    let key = repo.public_key();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    println!(
        "commit frames: {COMMITS}, {} bytes on average",
        bytes / COMMITS
    );
    rate("#commit frame decode only", COMMITS, || {
        for frame in &frames {
            black_box(decode_frame(black_box(frame)).expect("decodes"));
        }
    });
    rate("#commit frame decode + CAR read", COMMITS, || {
        for frame in &frames {
            let Ok(Frame::Commit(event)) = decode_frame(black_box(frame)) else {
                panic!("not a commit frame");
            };
            black_box(
                plyr_repo::read_car(event.blocks, &plyr_repo::CarLimits::COMMIT).expect("car"),
            );
        }
    });
    rate("#commit decode + verify (secp256k1)", COMMITS, || {
        for frame in &frames {
            let Ok(Frame::Commit(event)) = decode_frame(black_box(frame)) else {
                panic!("not a commit frame");
            };
            black_box(verify_commit(&event, &key).expect("verifies"));
        }
    });
}
