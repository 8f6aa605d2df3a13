//! Benchmark (issue 5): what raygate's webhooks cost a real API server.
//!
//! Creates 200 RayClusters (KubeRay's ray-cluster.sample.yaml, renamed) through a local
//! kube-apiserver without raygate's webhooks, then 200 more with them registered, each one as
//! soon as the last is answered, then 200 more with the webhooks at 20 creates a second, and
//! prints the p50/p99 end-to-end create latency of each run and the API server's own
//! `apiserver_admission_webhook_admission_duration_seconds` for each of raygate's webhooks.
//! A few warm-up creates come first with the webhooks registered (the API server opens its
//! connection to raygate on the first call): the histogram is read before and after each run's
//! 200 creates and only the difference is reported, so it counts exactly those calls.
//! Target: the webhook's p99 as the API server sees it ≤ 5 ms. Loopback only.
//!
//! The runs start once the API server has published the CRDs' OpenAPI and gone quiet: right
//! after a CRD is installed it rebuilds its OpenAPI documents and collects garbage every
//! 0.2–0.4 s for seconds, which would weigh on whichever run came first. Each run also prints
//! how many garbage collections the API server made and how much it allocated meanwhile (its
//! Go runtime metrics): the calls over 5 ms are the ones that overlap a collection. The control:
//! with `GOGC=off` in the bench's environment (inherited by the API server) at most one call in
//! 200 is.
//!
//! `tests/controlplane/build.sh && cargo build --release --bin raygate &&
//!  RAYGATE_BIN=target/release/raygate cargo run --release -p raygate-e2e --bin admission-latency`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use raygate_e2e::control_plane::{api_server_metrics, sample_value};
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{ControlPlane, Webhook, install_ray_crds};
use serde_json::Value;

const CLUSTERS: usize = 200;
/// Creates with the webhooks registered before the measured runs; not counted.
const WARM_UP: usize = 5;
/// The third run's spacing: 20 creates a second, still a burst far above what a cluster's
/// users create, but leaving the API server's garbage collector time between creates.
const PACE: Duration = Duration::from_millis(50);

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

    settle(&client).await?;
    let without = measure(&api, &client, &sample, "plain", false, None).await?;
    let webhook = Webhook::start(&cp)?;
    // The API server picks up new webhook configurations within a second or so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    create_n(&api, &sample, "warm-up", WARM_UP, None).await?;
    let with = measure(&api, &client, &sample, "admitted", true, None).await?;
    let stored = api.get("admitted-0").await?;
    let normalized = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("raygate.io/normalized"));
    if normalized.is_none() {
        bail!("the webhook did not normalize the created clusters");
    }
    let paced = measure(&api, &client, &sample, "paced", true, Some(PACE)).await?;

    println!(
        "admission-latency: {CLUSTERS} RayCluster creates per run, sequential, one client \
         ({WARM_UP} warm-up creates with raygate before its runs, not counted)"
    );
    without.report("create without raygate, back to back")?;
    with.report("create with raygate, back to back")?;
    let p50_delta = percentile(&with.latencies, 0.5) - percentile(&without.latencies, 0.5);
    println!(
        "  end-to-end p50 difference: {:.2} ms",
        p50_delta.as_secs_f64() * 1000.0
    );
    paced.report(&format!(
        "create with raygate, one every {} ms",
        PACE.as_millis()
    ))?;
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

/// One measured run: its create latencies and the API server's metrics around it.
struct Run {
    /// Whether raygate's webhooks were registered: each create then calls each one once.
    webhooks: bool,
    latencies: Vec<Duration>,
    before: String,
    after: String,
}

async fn measure(
    api: &Api<DynamicObject>,
    client: &kube::Client,
    sample: &Value,
    prefix: &str,
    webhooks: bool,
    pace: Option<Duration>,
) -> Result<Run> {
    let before = api_server_metrics(client).await?;
    let latencies = create_n(api, sample, prefix, CLUSTERS, pace).await?;
    let after = api_server_metrics(client).await?;
    Ok(Run {
        webhooks,
        latencies,
        before,
        after,
    })
}

impl Run {
    /// Prints the run's create latencies, the API server's garbage collection meanwhile and,
    /// when raygate's webhooks were called, the API server's histogram of those calls.
    fn report(&self, label: &str) -> Result<()> {
        let api_server = GoRuntime::since(&self.after, &self.before);
        println!(
            "  {label}: p50 {:.2} ms, p99 {:.2} ms; the API server meanwhile: {} garbage \
             collections, {:.0} KB allocated per create",
            percentile(&self.latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1000.0,
            api_server.collections,
            api_server.allocated_bytes / self.latencies.len() as f64 / 1024.0,
        );
        for (name, kind) in [
            ("mutate.raygate.io", "admit"),
            ("validate.raygate.io", "validating"),
        ] {
            let buckets = since(
                &histogram(&self.after, name, kind),
                &histogram(&self.before, name, kind),
            );
            let calls = buckets.last().map_or(0.0, |b| b.1);
            let expected = if self.webhooks {
                self.latencies.len()
            } else {
                0
            };
            if calls != expected as f64 {
                bail!(
                    "{name} was called {calls} times for {} creates (expected {expected})",
                    self.latencies.len()
                );
            }
            if calls == 0.0 {
                continue;
            }
            let within_5ms = buckets
                .iter()
                .find(|(bound, _)| *bound == 0.005)
                .map_or(0.0, |b| b.1);
            println!(
                "    API server's view of {name}: p50 ≤ {} ms, p99 ≤ {} ms \
                 ({calls} calls, {within_5ms} within 5 ms)",
                bucket_quantile(&buckets, 0.5) * 1000.0,
                bucket_quantile(&buckets, 0.99) * 1000.0,
            );
        }
        Ok(())
    }
}

async fn create_n(
    api: &Api<DynamicObject>,
    sample: &Value,
    prefix: &str,
    count: usize,
    pace: Option<Duration>,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    let mut ticks = pace.map(|pace| {
        let mut ticks = tokio::time::interval(pace);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    for index in 0..count {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
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

/// Waits until the API server serves the OpenAPI of `ray.io/v1` (published asynchronously
/// after the CRDs are established), then until a 2 s window passes with at most one garbage
/// collection: the end of the rebuild that installing the CRDs set off.
async fn settle(client: &kube::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = http::Request::get("/openapi/v3/apis/ray.io/v1").body(Vec::new())?;
        if client.request_text(request).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the API server did not publish the OpenAPI of ray.io/v1 within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut start = api_server_metrics(client).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let end = api_server_metrics(client).await?;
        let window = GoRuntime::since(&end, &start);
        start = end;
        if window.collections <= 1.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the API server kept collecting garbage ({} times in 2 s) 60 s after the CRDs",
                window.collections
            );
        }
    }
}

/// The API server's Go runtime counters between two `/metrics` scrapes.
struct GoRuntime {
    collections: f64,
    allocated_bytes: f64,
}

impl GoRuntime {
    fn since(after: &str, before: &str) -> Self {
        let delta = |name: &str| sample_value(after, name) - sample_value(before, name);
        GoRuntime {
            collections: delta("go_gc_duration_seconds_count"),
            allocated_bytes: delta("go_memstats_alloc_bytes_total"),
        }
    }
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
