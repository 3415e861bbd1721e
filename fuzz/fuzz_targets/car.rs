//! CAR bytes -> read_car (caps, per-block CID check) -> whole-repo walk and record decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_repo::{CarLimits, Repo, read_car};

fuzz_target!(|data: &[u8]| {
    if let Ok(car) = read_car(data, &CarLimits::COMMIT) {
        for root in car.roots() {
            if let Some(block) = car.get(root) {
                let _ = plyr_repo::cbor_to_json(block);
            }
        }
    }
    let Ok(repo) = Repo::read(data, &CarLimits::COMMIT) else {
        return;
    };
    let Ok(records) = repo.records() else {
        return;
    };
    for (_, cid) in records {
        if let Ok(bytes) = repo.record(&cid) {
            let _ = plyr_repo::cbor_to_json(bytes);
        }
    }
});
