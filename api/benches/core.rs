//! `core`: one admission of KubeRay's `ray-cluster.complete.yaml` as the webhook does it —
//! parse the JSON body, normalize, write the JSON patch's text, validate the normalized object.
//! Target (issue 3): median ≤ 50 µs and p99 ≤ 100 µs on one core.
//!
//! `cargo bench -p raygate-api --bench core` prints criterion's estimate, then p50/p90/p99
//! over 20,000 timed admissions.
//!
//! With 50 RayPolicies loaded, as the webhook runs it (inject + normalize + patch, then validate
//! and evaluate the policies); target (issue 7): within 2× of the no-policy figure.
//! - `core/50 policies`: a realistic set: 47 per-team policies, each selecting its own team
//!   namespace, plus a baseline, approved registries and production guardrails for every
//!   namespace; the object (in `team-7`) is matched by 4 of them, injections included.
//! - `core/50 policies, all matching`: the worst case, every policy matches and evaluates every
//!   rule kind (the same injection from each).

// The webhook binary allocates with mimalloc too; glibc's malloc doubles the time of this
// allocation-heavy path (many small JSON nodes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::Criterion;
use std::collections::BTreeMap;

use raygate_api::admission::{normalized_with_policies, validate};
use raygate_api::json_diff::diff_json;
use raygate_api::manifest::parse_documents;
use raygate_api::policy::{PolicySet, compile};
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
    let (normalized, _) = normalized_with_policies(&object, None);
    let patch = diff_json(&object, &normalized);
    let verdict = validate(&normalized, None);
    patch.map_or(0, |p| p.len()) + verdict.errors.len()
}

fn policy(name: String, spec: serde_json::Value) -> raygate_api::policy::CompiledPolicy {
    let object = serde_json::json!({
        "apiVersion": "raygate.io/v1alpha1",
        "kind": "RayPolicy",
        "metadata": {"name": name},
        "spec": spec,
    });
    compile(&object).expect("benchmark policy is valid")
}

/// Every rule kind, with limits the sample stays within (the whole evaluation runs; nothing
/// stops at a first finding), and an injection.
fn every_rule(i: usize, namespace_selector: serde_json::Value) -> serde_json::Value {
    let action = ["Deny", "Warn", "Audit"][i % 3];
    serde_json::json!({
        "match": {"namespaceSelector": namespace_selector, "kinds": ["RayCluster", "RayJob", "RayService"]},
        "action": action,
        "rules": {
            "maxGpusPerPod": {"limit": 8 + i},
            "maxGpusPerGroup": {"limit": 64},
            "maxGpusPerCluster": {"limit": 128},
            "maxCpuPerCluster": {"limit": format!("{}", 1000 + i)},
            "maxMemoryPerCluster": {"limit": "10Ti"},
            "maxReplicasPerGroup": {"limit": 1000},
            "maxWorkerGroups": {"limit": 20},
            "allowedAcceleratorTypes": {"values": ["nvidia-h100-80gb"]},
            "allowedImages": {"registries": ["docker.io/rayproject", format!("registry-{i}.example.com")], "patterns": ["*/ray:2.*"]},
            "allowedRayVersions": {"range": ">=2.0.0, <3"},
            "requiredLimits": {"resources": ["cpu"], "action": "Audit"},
            "forbiddenPodSettings": {"privileged": true, "hostNetwork": true, "hostPID": true, "hostPathVolumes": true, "addedCapabilities": true},
        },
        "inject": {
            "labels": {"example.com/team": "ml"},
            "priorityClassName": "ray-batch",
            "gpuGroups": {"nodeSelector": {"node.example.com/pool": "gpu"}}
        }
    })
}

/// 47 per-team policies and 3 for every namespace; `team-7` is matched by 4.
fn fifty_policies() -> PolicySet {
    let mut policies: Vec<_> = (0..47)
        .map(|i| {
            let selector = serde_json::json!({"matchLabels": {"kubernetes.io/metadata.name": format!("team-{i}")}});
            policy(format!("team-{i:02}"), every_rule(i, selector))
        })
        .collect();
    for (i, name) in ["baseline", "approved-registries", "production"]
        .into_iter()
        .enumerate()
    {
        policies.push(policy(
            name.to_owned(),
            every_rule(i, serde_json::json!({})),
        ));
    }
    PolicySet::new(policies)
}

/// 50 policies that all match.
fn fifty_matching_policies() -> PolicySet {
    PolicySet::new(
        (0..50)
            .map(|i| {
                policy(
                    format!("policy-{i:02}"),
                    every_rule(i, serde_json::json!({})),
                )
            })
            .collect(),
    )
}

const NAMESPACE: &str = "team-7";

/// The webhook's two calls with policies: mutate (inject, normalize, patch), then validate and
/// evaluate the policies on the mutated object.
fn admit_with_policies_once(body: &[u8], policies: &PolicySet) -> usize {
    let object: Value = serde_json::from_slice(body).expect("valid JSON");
    let labels = BTreeMap::new();
    let (normalized, _) = normalized_with_policies(&object, Some((policies, NAMESPACE, &labels)));
    let patch = diff_json(&object, &normalized);
    let verdict = validate(&normalized, None);
    let evaluation = policies.evaluate(&normalized, NAMESPACE, &labels);
    patch.map_or(0, |p| p.len()) + verdict.errors.len() + evaluation.violations.len()
}

fn percentiles(label: &str, body: &[u8], admit: impl Fn(&[u8]) -> usize) {
    const RUNS: usize = 20_000;
    for _ in 0..2_000 {
        black_box(admit(body));
    }
    let mut samples: Vec<u128> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(admit(black_box(body)));
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((RUNS as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "{label}: {RUNS} admissions of ray-cluster.complete.yaml ({} bytes): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
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
    let policies = fifty_policies();
    let all_matching = fifty_matching_policies();
    let object: Value = serde_json::from_slice(&body).expect("valid JSON");
    for (set, matched) in [(&policies, 4), (&all_matching, 50)] {
        let evaluation = set.evaluate(&object, NAMESPACE, &BTreeMap::new());
        assert_eq!(evaluation.matched.len(), matched);
        assert!(
            evaluation
                .violations
                .iter()
                .all(|v| v.rule == "requiredLimits"),
            "{:?}",
            evaluation.violations
        );
    }
    criterion.bench_function("core/mutate+validate ray-cluster.complete.yaml", |b| {
        b.iter(|| admit_once(black_box(&body)))
    });
    criterion.bench_function("core/50 policies ray-cluster.complete.yaml", |b| {
        b.iter(|| admit_with_policies_once(black_box(&body), &policies))
    });
    criterion.bench_function(
        "core/50 policies, all matching ray-cluster.complete.yaml",
        |b| b.iter(|| admit_with_policies_once(black_box(&body), &all_matching)),
    );
    criterion.final_summary();
    // Only when benchmarking: `cargo test --all-targets` runs this binary once as a smoke test.
    if std::env::args().any(|arg| arg == "--bench") {
        percentiles("core", &body, admit_once);
        percentiles("core/50 policies", &body, |b| {
            admit_with_policies_once(b, &policies)
        });
        percentiles("core/50 policies, all matching", &body, |b| {
            admit_with_policies_once(b, &all_matching)
        });
    }
}
