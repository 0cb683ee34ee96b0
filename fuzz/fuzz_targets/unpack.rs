//! Arbitrary bytes through the runtime's real unpack path, as a plain tar and gzipped.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    buildd_fuzz::unpack::check(data);
});
