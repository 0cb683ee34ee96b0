//! Arbitrary bytes as a `Range` header and as the JSON bodies of the API's requests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    buildd_fuzz::api::check(data);
});
