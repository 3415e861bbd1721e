//! ATProto repository verification (pure, no IO): DAG-CBOR, CAR slices, MST inversion proofs,
//! commit signatures and firehose frames.
