//! Benchmark (issue 5): what raygate's webhooks cost a real API server.
//!
//! Creates 200 RayClusters (KubeRay's ray-cluster.sample.yaml, renamed) through a local
//! kube-apiserver without raygate's webhooks, then 200 more with them registered, and prints
//! the p50/p99 end-to-end create latency of both runs and the API server's own
//! `apiserver_admission_webhook_admission_duration_seconds` for each of raygate's webhooks.
//! A few warm-up creates come first with the webhooks registered (the API server opens its
//! connection to raygate on the first call): the histogram is read before and after the 200
//! measured creates and only the difference is reported, so it counts exactly those calls.
//! Target: the webhook's p99 as the API server sees it ≤ 5 ms. Loopback only.
//!
//! `tests/controlplane/build.sh && cargo build --release --bin raygate &&
//!  RAYGATE_BIN=target/release/raygate cargo run --release -p raygate-e2e --bin admission-latency`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use raygate_e2e::control_plane::api_server_metrics;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{ControlPlane, Webhook, install_ray_crds};
use serde_json::Value;

const CLUSTERS: usize = 200;
/// Creates with the webhooks registered before the measured run; not counted.
const WARM_UP: usize = 5;

#[tokio::main]
async fn main() -> Result<()> {
    let cp = ControlPlane::start_async().await?;
    install_ray_crds(&cp)?;
    let client = cp.client().await?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ray.io", "v1", "RayCluster"),
        "rayclusters",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let text = sample_text("ray-cluster.sample.yaml")?;
    let sample = raygate_api::manifest::parse_documents(&text)?
        .into_iter()
        .next()
        .context("the sample has a document")?;

    let without = create_all(&api, &sample, "plain").await?;
    let webhook = Webhook::start(&cp)?;
    // The API server picks up new webhook configurations within a second or so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    create_n(&api, &sample, "warm-up", WARM_UP).await?;
    let before = api_server_metrics(&client).await?;
    let with = create_all(&api, &sample, "admitted").await?;
    let stored = api.get("admitted-0").await?;
    let normalized = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("raygate.io/normalized"));
    if normalized.is_none() {
        bail!("the webhook did not normalize the created clusters");
    }

    let after = api_server_metrics(&client).await?;
    println!(
        "admission-latency: {CLUSTERS} RayCluster creates per run, sequential, one client \
         ({WARM_UP} warm-up creates with raygate before its run, not counted)"
    );
    report("create without raygate", &without);
    report("create with raygate   ", &with);
    let p50_delta = percentile(&with, 0.5) - percentile(&without, 0.5);
    println!(
        "  end-to-end p50 difference: {:.2} ms",
        p50_delta.as_secs_f64() * 1000.0
    );
    for (name, kind) in [
        ("mutate.raygate.io", "admit"),
        ("validate.raygate.io", "validating"),
    ] {
        let buckets = since(
            &histogram(&after, name, kind),
            &histogram(&before, name, kind),
        );
        if buckets.is_empty() {
            bail!("no apiserver_admission_webhook_admission_duration_seconds for {name}");
        }
        let within_5ms = buckets
            .iter()
            .find(|(bound, _)| *bound == 0.005)
            .map_or(0.0, |b| b.1);
        println!(
            "  API server's view of {name}: p50 ≤ {} ms, p99 ≤ {} ms ({} calls, {within_5ms} within 5 ms)",
            bucket_quantile(&buckets, 0.5) * 1000.0,
            bucket_quantile(&buckets, 0.99) * 1000.0,
            buckets.last().map_or(0.0, |b| b.1)
        );
    }
    // raygate's own view: time spent inside the handler, per verb.
    let own = webhook.metrics()?;
    for verb in ["mutate", "validate"] {
        let total = |suffix: &str| -> f64 {
            own.lines()
                .filter(|l| {
                    l.starts_with(&format!("raygate_admission_duration_seconds_{suffix}"))
                        && l.contains(&format!("verb=\"{verb}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let (sum, count) = (total("sum"), total("count"));
        let within_1ms: f64 = own
            .lines()
            .filter(|l| {
                l.starts_with("raygate_admission_duration_seconds_bucket")
                    && l.contains(&format!("verb=\"{verb}\""))
                    && l.contains("le=\"0.001\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if count > 0.0 {
            println!(
                "  raygate's own view of {verb}: mean {:.3} ms over {count} reviews \
                 (warm-up included), {within_1ms} within 1 ms",
                sum / count * 1000.0
            );
        }
    }
    // A connection per call would put a TLS handshake in every admission.
    let connections: Vec<String> = own
        .lines()
        .filter(|l| l.starts_with("raygate_tls_connections_total"))
        .map(str::to_owned)
        .collect();
    println!(
        "  connections the API server opened to raygate: {}",
        if connections.is_empty() {
            "none counted".to_owned()
        } else {
            connections.join(", ")
        }
    );
    drop(webhook);
    Ok(())
}

/// Bucket counts of `after` minus those of `before` (a bucket absent before counts from 0).
fn since(after: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |b| b.1);
            (bound, count - earlier)
        })
        .collect()
}

async fn create_all(
    api: &Api<DynamicObject>,
    sample: &Value,
    prefix: &str,
) -> Result<Vec<Duration>> {
    create_n(api, sample, prefix, CLUSTERS).await
}

async fn create_n(
    api: &Api<DynamicObject>,
    sample: &Value,
    prefix: &str,
    count: usize,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for index in 0..count {
        let mut object = sample.clone();
        object["metadata"] = serde_json::json!({"name": format!("{prefix}-{index}")});
        let object: DynamicObject = serde_json::from_value(object)?;
        let start = Instant::now();
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {prefix}-{index}"))?;
        latencies.push(start.elapsed());
    }
    Ok(latencies)
}

fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn report(label: &str, samples: &[Duration]) {
    println!(
        "  {label}: p50 {:.2} ms, p99 {:.2} ms",
        percentile(samples, 0.5).as_secs_f64() * 1000.0,
        percentile(samples, 0.99).as_secs_f64() * 1000.0
    );
}

/// Cumulative (upper bound, count) buckets of the webhook's admission duration histogram.
fn histogram(metrics: &str, webhook: &str, kind: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        if !line.starts_with("apiserver_admission_webhook_admission_duration_seconds_bucket{")
            || !line.contains(&format!("name=\"{webhook}\""))
            || !line.contains(&format!("type=\"{kind}\""))
            || !line.contains("operation=\"CREATE\"")
        {
            continue;
        }
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0.0);
        match buckets.iter_mut().find(|(b, _)| *b == bound) {
            Some(bucket) => bucket.1 += count,
            None => buckets.push((bound, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The smallest bucket bound holding at least the q-quantile of observations.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map_or(f64::NAN, |(bound, _)| *bound)
}
