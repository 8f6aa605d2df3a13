//! Benchmark (issue 5): what raygate's webhooks cost a real API server.
//!
//! Creates 200 RayClusters (KubeRay's ray-cluster.sample.yaml, renamed) through a local
//! kube-apiserver without raygate's webhooks, then 200 more with them registered, and prints
//! the p50/p99 end-to-end create latency of both runs and the API server's own
//! `apiserver_admission_webhook_admission_duration_seconds` for each of raygate's webhooks.
//! Target: the webhook's p99 as the API server sees it ≤ 5 ms. Loopback only.
//!
//! `tests/controlplane/build.sh && cargo build --release --bin raygate &&
//!  RAYGATE_BIN=target/release/raygate cargo run --release -p raygate-e2e --bin admission-latency`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{ControlPlane, Webhook, install_ray_crds};
use serde_json::Value;

const CLUSTERS: usize = 200;

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

    let metrics = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await
        .context("reading the API server's /metrics")?;
    println!("admission-latency: {CLUSTERS} RayCluster creates per run, sequential, one client");
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
        let buckets = histogram(&metrics, name, kind);
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
        if count > 0.0 {
            println!(
                "  raygate's own view of {verb}: mean {:.3} ms over {count} reviews",
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

async fn create_all(
    api: &Api<DynamicObject>,
    sample: &Value,
    prefix: &str,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(CLUSTERS);
    for index in 0..CLUSTERS {
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
