//! Every input the fuzzer (`scripts/fuzz.sh`) ever broke on, and its seeds, still holds the
//! review invariants: no panic, no internal error, patches that apply and are idempotent.

mod review_invariants;

use std::path::Path;

#[test]
fn fuzz_seeds_and_past_crashes_hold_the_review_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut checked = 0;
    for dir in ["seeds/review", "regressions/review"] {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.file_name().is_some_and(|n| n == "README.md") {
                continue;
            }
            let body = std::fs::read(&path).expect("readable input");
            eprintln!("{}", path.display());
            review_invariants::check_review(&body);
            checked += 1;
        }
    }
    // The seeds alone are several; an empty directory means the paths broke, not success.
    assert!(
        checked >= 5,
        "only {checked} inputs found under {}",
        root.display()
    );
}
