//! The review entry point under libFuzzer: any bytes a client can POST to `/mutate` or
//! `/validate`, decoded and decided as the routes do, with the invariants the regression test
//! checks too.

#![no_main]

#[path = "../../webhook/tests/review_invariants/mod.rs"]
mod review_invariants;

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    review_invariants::check_review(body);
});
