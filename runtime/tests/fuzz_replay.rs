//! The unpack fuzz target's checks (fuzz/src/unpack.rs), run over its seeds and the crashes it
//! found, so they hold in `cargo test` without cargo-fuzz.

#[path = "../../fuzz/src/unpack.rs"]
mod unpack;
