//! `core`: one admission of KubeRay's `ray-cluster.complete.yaml` as the webhook does it —
//! parse the JSON body, normalize, compute the JSON patch, validate the normalized object.
//! Target (issue 3): median ≤ 50 µs and p99 ≤ 100 µs on one core.
//!
//! `cargo bench -p raygate-api --bench core` prints criterion's estimate, then p50/p90/p99
//! over 20,000 timed admissions.

// The webhook binary allocates with mimalloc too; glibc's malloc doubles the time of this
// allocation-heavy path (many small JSON nodes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::Criterion;
use raygate_api::admission::{mutate, validate};
use raygate_api::manifest::parse_documents;
use raygate_api::schema_defaults::apply_crd_defaults;
use serde_json::Value;

fn request_body() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kuberay/samples/ray-cluster.complete.yaml");
    let text = std::fs::read_to_string(&path).expect("KubeRay sample present");
    let mut object = parse_documents(&text)
        .expect("sample is YAML")
        .into_iter()
        .find(|d| d["kind"] == "RayCluster")
        .expect("a RayCluster");
    // The API server applies schema defaults before calling the webhook.
    apply_crd_defaults(&mut object);
    serde_json::to_vec(&object).expect("serializes")
}

fn admit_once(body: &[u8]) -> usize {
    let object: Value = serde_json::from_slice(body).expect("valid JSON");
    let (normalized, patch, _) = mutate(&object);
    let verdict = validate(&normalized, None);
    patch.0.len() + verdict.errors.len()
}

fn percentiles(body: &[u8]) {
    const RUNS: usize = 20_000;
    for _ in 0..2_000 {
        black_box(admit_once(body));
    }
    let mut samples: Vec<u128> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(admit_once(black_box(body)));
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((RUNS as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "core: {RUNS} admissions of ray-cluster.complete.yaml ({} bytes): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        body.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let body = request_body();
    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("core/mutate+validate ray-cluster.complete.yaml", |b| {
        b.iter(|| admit_once(black_box(&body)))
    });
    criterion.final_summary();
    // Only when benchmarking: `cargo test --all-targets` runs this binary once as a smoke test.
    if std::env::args().any(|arg| arg == "--bench") {
        percentiles(&body);
    }
}
