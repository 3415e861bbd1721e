//! Reruns the build when a migration file is added or edited, so `migrate!` embeds it.
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
