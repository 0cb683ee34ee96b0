//! What the fuzz targets check, shared with the replay tests that run in `cargo test`
//! (`runtime/tests/fuzz_replay.rs` and the daemon's `serve::fuzz_api` tests include these files).

pub mod api;
pub mod unpack;

// The daemon is a binary crate: its request parsing is included by path, as the daemon itself
// compiles it, so the fuzzer exercises the same code without a library seam.
#[path = "../../daemon/src/serve/bodies.rs"]
#[allow(dead_code)]
mod bodies;
#[path = "../../daemon/src/serve/range.rs"]
#[allow(dead_code)]
mod range;
