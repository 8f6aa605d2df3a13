//! What must hold for any bytes sent to the admission routes, checked by the fuzz target
//! (`fuzz/fuzz_targets/review.rs` includes this file) and by the regression test over the
//! inputs the fuzzer once broke on.

use raygate_webhook::review::decode;
use raygate_webhook::verdict::{Endpoint, Outcome, decide};
use serde_json::Value;

/// Runs one body through both endpoints and panics when an invariant breaks.
pub fn check_review(body: &[u8]) {
    // Anything that isn't a well-formed review is a clear decode error, never a panic.
    let Ok(request) = decode(body) else {
        return;
    };
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let verdict = decide(endpoint, &request);
        // `Error` means a rule or default panicked and was caught: a bug in raygate.
        assert_ne!(
            verdict.outcome,
            Outcome::Error,
            "{} failed internally: {:?}",
            endpoint.as_str(),
            verdict.status
        );
        if let Some(patch_json) = &verdict.patch_json {
            let patch: json_patch::Patch =
                serde_json::from_slice(patch_json).expect("the patch is a JSON Patch");
            let mut patched = request
                .object
                .as_ref()
                .expect("a patched request has an object")
                .value()
                .clone();
            json_patch::patch(&mut patched, &patch).expect("the patch applies to the object sent");
            // The API server calls mutating webhooks again after other mutations; the second
            // call must change nothing.
            let (_, again, _) = raygate_api::admission::mutate(&patched);
            assert!(again.0.is_empty(), "second mutation patched {again:?}");
        }
        let review = serde_json::to_value(verdict.into_response(&request.uid).into_review())
            .expect("the answer serializes");
        assert_eq!(
            review["response"]["uid"],
            Value::String(request.uid.clone())
        );
    }
}
