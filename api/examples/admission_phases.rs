//! One phase of the `core` benchmark's admission, run many times, for instruction counts under
//! callgrind: repeatable where wall-clock time on a shared machine is not.
//!
//! ```sh
//! cargo build --release -p raygate-api --example admission_phases
//! valgrind --tool=callgrind --toggle-collect=admission_phases::run \
//!     target/release/examples/admission_phases all 200
//! ```
//!
//! Divide the collected count by the runs. Without valgrind it prints the wall-clock time per
//! run (noisy on a shared machine). Each phase includes dropping what it built.
//! - `parse`: the request JSON into a `Value`.
//! - `mutate`: normalize and write the patch's text, as `core` does; its parts: `clone` (the
//!   object as received), `normalize` (clone + normalize), `diff` (the patch's text alone),
//!   `diff-ops` (the patch as operations, which `raygate check` and the tests use),
//!   `diff-ops-text` (operations, then serialized: how the webhook wrote the patch before).
//! - `renormalize`: normalizing an already normalized object (nothing left to add);
//!   `clone-normalized` is its clone alone.
//! - `typed`: the typed view of the normalized object; `validate`: typed view + every rule.
//! - `all`: one admission exactly as `core` measures it.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;

use raygate_api::RayCluster;
use raygate_api::admission::{mutate, normalized_with_policies, parse, validate};
use raygate_api::defaults::normalize;
use raygate_api::json_diff::{diff, diff_json};
use raygate_api::manifest::parse_documents;
use raygate_api::schema_defaults::apply_crd_defaults;
use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let phase = args.next().unwrap_or_else(|| "all".into());
    let runs: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kuberay/samples/ray-cluster.complete.yaml");
    let mut object = parse_documents(&std::fs::read_to_string(path)?)?
        .into_iter()
        .find(|d| d["kind"] == "RayCluster")
        .ok_or("no RayCluster")?;
    apply_crd_defaults(&mut object);
    let body = serde_json::to_vec(&object)?;
    let (normalized, _, _) = mutate(&object);
    let normalized_body = serde_json::to_vec(&normalized)?;
    let start = std::time::Instant::now();
    run(
        &phase,
        runs,
        [&body, &normalized_body],
        &object,
        &normalized,
    )?;
    eprintln!(
        "{phase}: {:.2} µs per run",
        start.elapsed().as_secs_f64() * 1e6 / runs as f64
    );
    Ok(())
}

/// The measured loop; `--toggle-collect=admission_phases::run` counts only this.
#[inline(never)]
fn run(
    phase: &str,
    runs: usize,
    [body, normalized_body]: [&[u8]; 2],
    object: &Value,
    normalized: &Value,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..runs {
        let n = match phase {
            "parse" => {
                black_box(serde_json::from_slice::<Value>(black_box(body))?).is_object() as usize
            }
            "parse-normalized" => {
                black_box(serde_json::from_slice::<Value>(black_box(normalized_body))?).is_object()
                    as usize
            }
            "typed-bytes" => {
                let typed: RayCluster = serde_json::from_slice(black_box(normalized_body))?;
                black_box(typed)
                    .spec
                    .worker_group_specs
                    .map_or(0, |g| g.len())
            }
            "mutate" => {
                let (normalized, _) = normalized_with_policies(black_box(object), None);
                black_box(diff_json(object, &normalized)).map_or(0, |p| p.len())
            }
            "clone" => black_box(black_box(object).clone()).is_object() as usize,
            "clone-normalized" => black_box(black_box(normalized).clone()).is_object() as usize,
            "normalize" => {
                let mut copy = black_box(object).clone();
                normalize(&mut copy).len() + black_box(copy).is_object() as usize
            }
            "renormalize" => {
                let mut copy = black_box(normalized).clone();
                normalize(&mut copy).len() + black_box(copy).is_object() as usize
            }
            "diff" => black_box(diff_json(black_box(object), black_box(normalized)))
                .map_or(0, |p| p.len()),
            "diff-ops" => black_box(diff(black_box(object), black_box(normalized)))
                .0
                .len(),
            "diff-ops-text" => {
                let patch = diff(black_box(object), black_box(normalized));
                black_box(serde_json::to_vec(&patch)?).len()
            }
            "typed" => {
                let typed: RayCluster = parse(black_box(normalized)).map_err(|e| e.message)?;
                black_box(typed)
                    .spec
                    .worker_group_specs
                    .map_or(0, |g| g.len())
            }
            "validate" => black_box(validate(black_box(normalized), None))
                .errors
                .len(),
            _ => {
                let object: Value = serde_json::from_slice(black_box(body))?;
                let (normalized, _) = normalized_with_policies(&object, None);
                let patch = diff_json(&object, &normalized);
                patch.map_or(0, |p| p.len()) + validate(&normalized, None).errors.len()
            }
        };
        black_box(n);
    }
    Ok(())
}
