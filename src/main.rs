//! `plyr-appview`: the one binary.
fn main() {}
