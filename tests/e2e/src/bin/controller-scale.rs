//! Benchmark (issue 6): how fast `raygate controller` materializes many clusters at once.
//!
//! 1. Baseline: a plain client creates 900 Pods and 300 Services (the very objects the
//!    controller would build) with 16 requests in flight: the API server's own ceiling here.
//! 2. The 300 RayClusters of step 3 are created in another namespace before raygate's
//!    webhooks are registered: the API server's own cost for these creates, without admission.
//! 3. With `raygate controller --namespace=bench` and the webhook running, 300 RayClusters
//!    (KubeRay's sample: 1 head + 1 worker group, set to 2 workers) are created at once; the
//!    clock runs from the first create until a watch has seen all 900 Pods and 300 Services.
//! 4. The same again with the RayClusters stored before the controller starts, timed from its
//!    start: materialization alone, without the RayCluster creates and their webhook calls.
//!
//! 5. The RayClusters of step 3 get one status write each with no controller running: what
//!    the status the controller must write costs the API server by itself.
//!
//! Last, a floor for a/b on this machine: the CPU the API server, etcd and the webhook spent
//! on the baseline, on the admitted RayCluster creates and on one status write per cluster,
//! spread over every core, against the baseline's time. No controller, however cheap, could
//! do better here: the work is the same and the cores are shared.
//!
//! Prints the times, the ratio of 3 to 1 (target ≤ 1.3), the controller's peak RSS (VmHWM,
//! target ≤ 60 MB) and its CPU seconds; and, to show where the time goes, the CPU seconds etcd,
//! kube-apiserver, the webhook and the controller used in each phase, and the API server's
//! requests of the controller phase by verb and resource with the time it spent on them
//! (`apiserver_request_total`, `apiserver_request_duration_seconds`). Loopback only.
//!
//! `cargo build --release --bin raygate && RAYGATE_BIN=target/release/raygate
//!  cargo run --release -p raygate-e2e --bin controller-scale`

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use raygate_api::RayCluster;
use raygate_controller::pods::{PodContext, WorkerSlot, head_pod, worker_pod};
use raygate_controller::services::head_service;
use raygate_e2e::control_plane::api_server_metrics;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::{ControlPlane, Controller, Webhook, install_ray_crds};

const CLUSTERS: usize = 300;
const WORKERS: usize = 2;
const IN_FLIGHT: usize = 16;

fn sample(name: &str, namespace: &str) -> Result<RayCluster> {
    let text = sample_text("ray-cluster.sample.yaml")?;
    let mut value = raygate_api::manifest::parse_documents(&text)?
        .into_iter()
        .next()
        .context("the sample has a document")?;
    value["metadata"]["name"] = name.into();
    value["metadata"]["namespace"] = namespace.into();
    value["spec"]["workerGroupSpecs"][0]["replicas"] = (WORKERS as i64).into();
    serde_json::from_value(value).context("the sample is a RayCluster")
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

async fn count(client: &Client, namespace: &str) -> Result<(usize, usize)> {
    let params = ListParams::default().labels("ray.io/cluster");
    let pods: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), namespace);
    let services: Api<PartialObjectMeta<Service>> = Api::namespaced(client.clone(), namespace);
    let pods = pods.list_metadata(&params).await?.items.len();
    let services = services.list_metadata(&params).await?.items.len();
    Ok((pods, services))
}

/// How many distinct objects of the `ray.io/cluster` label a metadata watch has announced,
/// published as they arrive. The clock is read off this instead of polling with LISTs: a LIST
/// of hundreds of pods every 100 ms would load the API server the controller is measured on
/// (the baseline is timed by its own create answers and polls nothing).
fn watch_count<K>(
    client: &Client,
    namespace: &str,
) -> (
    tokio::sync::watch::Receiver<usize>,
    tokio::task::JoinHandle<()>,
)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    PartialObjectMeta<K>: k8s_openapi::serde::de::DeserializeOwned,
{
    let (seen_tx, seen_rx) = tokio::sync::watch::channel(0);
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels("ray.io/cluster");
    let task = tokio::spawn(async move {
        let mut names = HashSet::new();
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        while let Some(event) = events.next().await {
            match event {
                Ok(object) => {
                    names.insert(object.metadata.name.unwrap_or_default());
                    seen_tx.send_replace(names.len());
                }
                Err(error) => eprintln!("watch: {error} (the watcher retries)"),
            }
        }
    });
    (seen_rx, task)
}

/// 300 RayClusters `<prefix>-<i>` in `namespace`.
fn samples(namespace: &str, prefix: &str) -> Result<Vec<RayCluster>> {
    (0..CLUSTERS)
        .map(|i| sample(&format!("{prefix}-{i}"), namespace))
        .collect()
}

/// Runs `writes` IN_FLIGHT at a time; the first error ends them.
async fn in_flight<F>(writes: impl IntoIterator<Item = F>) -> kube::Result<()>
where
    F: std::future::Future<Output = kube::Result<()>>,
{
    stream::iter(writes)
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Creates the RayClusters, IN_FLIGHT at a time, as one user's burst of `kubectl apply`s.
async fn create_clusters(client: &Client, namespace: &str, objects: Vec<RayCluster>) -> Result<()> {
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), namespace);
    in_flight(objects.into_iter().map(|cluster| {
        let api = clusters.clone();
        async move { api.create(&PostParams::default(), &cluster).await.map(drop) }
    }))
    .await
    .with_context(|| format!("creating the RayClusters in {namespace}"))
}

/// The Pods and Services the 300 clusters have once materialized.
const WANT: (usize, usize) = (CLUSTERS * (WORKERS + 1), CLUSTERS);

/// Waits (10 minutes at most) until the watches have seen every Pod and Service of the 300
/// clusters.
async fn wait_for_all(
    pods_seen: &mut tokio::sync::watch::Receiver<usize>,
    services_seen: &mut tokio::sync::watch::Receiver<usize>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    wait_for(pods_seen, WANT.0, deadline)
        .await
        .context("Pods")?;
    wait_for(services_seen, WANT.1, deadline)
        .await
        .context("Services")
}

async fn wait_for(
    seen: &mut tokio::sync::watch::Receiver<usize>,
    want: usize,
    deadline: Instant,
) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let reached = tokio::time::timeout(left, seen.wait_for(|n| *n >= want))
        .await
        .map(|result| result.map(drop));
    match reached {
        Ok(result) => result.context("the watch ended")?,
        Err(_) => bail!("only {} of {want} after 10 minutes", *seen.borrow()),
    }
    Ok(())
}

/// The plain-client baseline: the controller's own objects, created directly.
async fn baseline(client: &Client) -> Result<Duration> {
    let namespace = "baseline";
    create_namespace(client, namespace).await?;
    let mut pods = Vec::new();
    let mut services = Vec::new();
    for index in 0..CLUSTERS {
        let mut cluster = sample(&format!("c{index}"), namespace)?;
        cluster.metadata.uid = Some(format!("00000000-0000-0000-0000-{index:012}"));
        let hash = raygate_controller::spec_hash::pod_template_hash(&cluster.spec);
        let ctx = PodContext {
            cluster: &cluster,
            cluster_domain: "cluster.local",
            template_hash: &hash,
        };
        let mut head = head_pod(&ctx);
        // No such owner exists; without the reference the garbage collector has nothing to do.
        head.metadata.owner_references = None;
        pods.push(head);
        let group = &cluster.spec.worker_group_specs.as_ref().context("groups")?[0];
        for replica in 0..WORKERS {
            let slot = WorkerSlot {
                replica_index: replica as u32,
                replica_name: None,
                host_index: None,
            };
            let mut worker = worker_pod(&ctx, group, &slot);
            worker.metadata.owner_references = None;
            pods.push(worker);
        }
        let mut service = head_service(&cluster);
        service.metadata.owner_references = None;
        services.push(service);
    }
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let service_api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut writes: Vec<futures_util::future::BoxFuture<'static, kube::Result<()>>> = Vec::new();
    for pod in pods {
        let api = pod_api.clone();
        writes.push(Box::pin(async move {
            api.create(&PostParams::default(), &pod).await.map(drop)
        }));
    }
    for service in services {
        let api = service_api.clone();
        writes.push(Box::pin(async move {
            api.create(&PostParams::default(), &service).await.map(drop)
        }));
    }
    in_flight(writes).await.context("baseline creates")?;
    Ok(started.elapsed())
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / per_second.max(1) as f64)
}

/// `apiserver_request_total` and `apiserver_request_duration_seconds_sum` summed by
/// (verb, resource, subresource): what was asked of the API server, and its time answering.
async fn api_requests(client: &Client) -> Result<BTreeMap<String, (f64, f64)>> {
    let text = api_server_metrics(client).await?;
    let mut by_request = BTreeMap::new();
    for line in text.lines() {
        let (slot, rest) = if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
            (0, rest)
        } else if let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_sum{") {
            (1, rest)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let resource = label("resource");
        if resource.is_empty() {
            continue;
        }
        let sub = label("subresource");
        let key = format!(
            "{} {resource}{}",
            label("verb"),
            if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            }
        );
        let entry: &mut (f64, f64) = by_request.entry(key).or_default();
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        if slot == 0 {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    Ok(by_request)
}

/// CPU seconds used so far by each named process.
fn cpu_by_process(processes: &[(&'static str, u32)]) -> Vec<(&'static str, f64)> {
    processes
        .iter()
        .map(|&(name, pid)| (name, cpu_seconds(pid).unwrap_or(f64::NAN)))
        .collect()
}

/// "etcd 0.80 s, kube-apiserver 2.10 s, ..." for the CPU used between two readings.
fn cpu_used(before: &[(&'static str, f64)], after: &[(&'static str, f64)]) -> String {
    after
        .iter()
        .zip(before)
        .map(|((name, a), (_, b))| format!("{name} {:.2} s", a - b))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU seconds all the processes used together between two readings.
fn cpu_total(before: &[(&'static str, f64)], after: &[(&'static str, f64)]) -> f64 {
    after.iter().zip(before).map(|((_, a), (_, b))| a - b).sum()
}

/// The 300 RayCluster creates alone, before raygate's webhooks are registered: the API
/// server's own cost for them, to set against the same creates through admission (printed
/// by the controller phase) and the baseline; then a status write for each. Nothing watches
/// this namespace. Returns the CPU seconds of the creates and of the status writes.
async fn unadmitted_creates(
    client: &Client,
    processes: &[(&'static str, u32)],
    plain: Duration,
) -> Result<(f64, f64)> {
    let namespace = "unadmitted";
    let creates = timed_creates(
        client,
        namespace,
        processes,
        plain,
        "without raygate's webhooks",
    )
    .await?;
    let status = status_writes(client, namespace, processes).await?;
    // Gone again (nothing holds them: no webhook stamped them, no finalizer), so the later
    // phases meet the same store as in the bench's earlier rows.
    let api: Api<RayCluster> = Api::namespaced(client.clone(), namespace);
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .context("deleting the unadmitted RayClusters")?;
    Ok((creates, status))
}

/// Creates the 300 RayClusters `<namespace>-<i>` in a new `namespace` with nothing else
/// going on, and prints how long that took against the baseline and each process's CPU.
/// Returns the CPU seconds all the processes used for them.
async fn timed_creates(
    client: &Client,
    namespace: &str,
    processes: &[(&'static str, u32)],
    plain: Duration,
    phase: &str,
) -> Result<f64> {
    create_namespace(client, namespace).await?;
    let objects = samples(namespace, namespace)?;
    let cpu_at_start = cpu_by_process(processes);
    let started = Instant::now();
    create_clusters(client, namespace, objects).await?;
    let took = started.elapsed();
    println!(
        "{phase}: {CLUSTERS} RayCluster creates alone in {:.2} s ({:.2} of the baseline)",
        took.as_secs_f64(),
        took.as_secs_f64() / plain.as_secs_f64()
    );
    let cpu_at_end = cpu_by_process(processes);
    println!("  CPU: {}", cpu_used(&cpu_at_start, &cpu_at_end));
    Ok(cpu_total(&cpu_at_start, &cpu_at_end))
}

/// Waits (30 s at most) until the API server calls the webhooks just registered: it learns
/// of new webhook configurations through a watch, so the first creates could otherwise be
/// stored unadmitted. A dry-run create comes back stamped once the mutating webhook runs.
async fn wait_until_admitted(client: &Client) -> Result<()> {
    let probe = sample("admission-probe", "default")?;
    let api: Api<RayCluster> = Api::namespaced(client.clone(), "default");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = api.create(&dry_run, &probe).await;
        if let Ok(admitted) = &answer
            && admitted
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(raygate_api::labels::ANNOTATION_NORMALIZED))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the API server did not call raygate's webhooks within 30 s: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cp = ControlPlane::start_async().await?;
    install_ray_crds(&cp)?;
    let client = cp.client().await?;
    let [etcd, apiserver] = cp.pids()[..] else {
        bail!("expected the pids of etcd and kube-apiserver");
    };
    let mut processes = vec![("etcd", etcd), ("kube-apiserver", apiserver)];

    let cpu_at_start = cpu_by_process(&processes);
    let plain = baseline(&client).await?;
    println!(
        "baseline: {} Pods + {CLUSTERS} Services by a plain client in {:.2} s",
        WANT.0,
        plain.as_secs_f64()
    );
    let cpu_at_end = cpu_by_process(&processes);
    println!("  CPU: {}", cpu_used(&cpu_at_start, &cpu_at_end));
    let baseline_cpu = cpu_total(&cpu_at_start, &cpu_at_end);
    let unadmitted = unadmitted_creates(&client, &processes, plain).await?;

    let webhook = Webhook::start(&cp)?;
    processes.push(("webhook", webhook.pid()));
    wait_until_admitted(&client).await?;

    create_namespace(&client, "bench").await?;
    let controller = Controller::start_with(&cp, &["--namespace=bench"])?;
    let pid = controller.pid();
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    processes.push(("controller", pid));
    let objects = samples("bench", "bench")?;
    let (mut pods_seen, pods_watch) = watch_count::<Pod>(&client, "bench");
    let (mut services_seen, services_watch) = watch_count::<Service>(&client, "bench");
    // Both watches are running before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests_before = api_requests(&client).await?;
    let cpu_at_start = cpu_by_process(&processes);
    let started = Instant::now();
    create_clusters(&client, "bench", objects).await?;
    let created = started.elapsed();
    wait_for_all(&mut pods_seen, &mut services_seen).await?;
    let materialized = started.elapsed();
    let cpu_at_end = cpu_by_process(&processes);
    let requests_after = api_requests(&client).await?;
    pods_watch.abort();
    services_watch.abort();
    // Let the controller settle, then make sure it made nothing extra.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = count(&client, "bench").await?;
    let rss = proc_status_kb(pid, "VmHWM:").unwrap_or(0);
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;

    println!(
        "controller: {CLUSTERS} RayClusters created in {:.2} s; all {} Pods and {} Services after {:.2} s",
        created.as_secs_f64(),
        WANT.0,
        WANT.1,
        materialized.as_secs_f64()
    );
    println!(
        "ratio controller / baseline: {:.2} (target <= 1.3)",
        materialized.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "controller peak RSS (VmHWM): {:.1} MB (target <= 60 MB); CPU: {cpu:.2} s",
        rss as f64 / 1024.0
    );
    println!("  CPU until then: {}", cpu_used(&cpu_at_start, &cpu_at_end));
    println!("after 5 s more: {settled:?} Pods and Services (expected {WANT:?})");
    for line in controller.metrics()?.lines() {
        if line.starts_with("raygate_controller_reconcile_duration_seconds_sum{kind=\"RayCluster\"")
            || line.starts_with(
                "raygate_controller_reconcile_duration_seconds_count{kind=\"RayCluster\"",
            )
            || line.starts_with("raygate_controller_reconcile_errors_total")
        {
            println!("controller metrics: {line}");
        }
    }
    println!("API server requests from the first RayCluster create to the last object seen:");
    for (request, (count, seconds)) in &requests_after {
        let (count_before, seconds_before) =
            requests_before.get(request).copied().unwrap_or_default();
        let count = count - count_before;
        if count >= 1.0 {
            println!(
                "  {request}: {count:.0} requests, {:.2} s in the API server",
                seconds - seconds_before
            );
        }
    }
    if settled != WANT {
        bail!("the controller created {settled:?}, expected {WANT:?}");
    }
    drop(controller);
    processes.pop();
    let status_cpu = status_writes(&client, "bench", &processes).await?;
    let admitted = (
        stored_first(&cp, &client, &processes, plain).await?,
        status_cpu,
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let floor = |(creates, status): (f64, f64)| {
        (baseline_cpu + creates + status) / cores / plain.as_secs_f64()
    };
    println!(
        "floor for a/b here, whatever the controller: the baseline's {baseline_cpu:.2} CPU-s + \
         the RayCluster creates' {:.2} + one status write per cluster {:.2}, on {cores} cores: \
         a/b >= {:.2} (with every status write put off until the pods exist: {:.2})",
        admitted.0,
        admitted.1,
        floor(admitted),
        floor((admitted.0, 0.0))
    );
    println!(
        "  the same without raygate's webhooks (smaller objects): creates {:.2}, status writes \
         {:.2}: a/b >= {:.2}; without the status writes either: a/b >= {:.2}",
        unadmitted.0,
        unadmitted.1,
        floor(unadmitted),
        floor((unadmitted.0, 0.0))
    );
    Ok(())
}

/// One status write for each RayCluster of `namespace` (a merge patch of `lastUpdateTime`, as
/// the controller's own writes are merge patches of what changed), 16 at a time, with no
/// controller running. Returns the CPU seconds the processes used for them.
async fn status_writes(
    client: &Client,
    namespace: &str,
    processes: &[(&'static str, u32)],
) -> Result<f64> {
    let api: Api<RayCluster> = Api::namespaced(client.clone(), namespace);
    let names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .context("listing the RayClusters")?
        .items
        .into_iter()
        .filter_map(|cluster| cluster.metadata.name)
        .collect();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({ "status": { "lastUpdateTime": now } });
    let cpu_at_start = cpu_by_process(processes);
    let started = Instant::now();
    in_flight(names.iter().map(|name| {
        let (api, patch) = (&api, &patch);
        async move {
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(drop)
        }
    }))
    .await
    .context("the status writes")?;
    let took = started.elapsed();
    let cpu_at_end = cpu_by_process(processes);
    println!(
        "{} RayCluster status writes alone (no controller): {:.2} s",
        names.len(),
        took.as_secs_f64()
    );
    println!("  CPU: {}", cpu_used(&cpu_at_start, &cpu_at_end));
    Ok(cpu_total(&cpu_at_start, &cpu_at_end))
}

/// The same 300 RayClusters, stored (through the webhook) before a controller watching their
/// namespace starts: the clock runs from the controller's start to the last object seen, so
/// it measures materialization alone, without the RayCluster creates.
async fn stored_first(
    cp: &ControlPlane,
    client: &Client,
    processes: &[(&'static str, u32)],
    plain: Duration,
) -> Result<f64> {
    let namespace = "stored";
    let phase = "through raygate's webhooks, no controller watching";
    let creates_cpu = timed_creates(client, namespace, processes, plain, phase).await?;
    let (mut pods_seen, pods_watch) = watch_count::<Pod>(client, namespace);
    let (mut services_seen, services_watch) = watch_count::<Service>(client, namespace);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let controller = Controller::start_with(cp, &[&format!("--namespace={namespace}")])?;
    // What the start costs (process, Lease, caches) before the first write lands.
    wait_for(
        &mut services_seen,
        1,
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .context("the first Service")?;
    let first = started.elapsed();
    wait_for_all(&mut pods_seen, &mut services_seen)
        .await
        .context("the stored clusters")?;
    let materialized = started.elapsed();
    pods_watch.abort();
    services_watch.abort();
    let rss = proc_status_kb(controller.pid(), "VmHWM:").unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = count(client, namespace).await?;
    println!(
        "stored first: {CLUSTERS} RayClusters already stored; from the controller's start to all {} Pods and {} Services: {:.2} s",
        WANT.0,
        WANT.1,
        materialized.as_secs_f64()
    );
    println!(
        "  first object after {:.2} s; ratio to the baseline: {:.2}; controller peak RSS {:.1} MB; after 5 s more: {settled:?}",
        first.as_secs_f64(),
        materialized.as_secs_f64() / plain.as_secs_f64(),
        rss as f64 / 1024.0
    );
    if settled != WANT {
        bail!("the controller created {settled:?} for the stored clusters, expected {WANT:?}");
    }
    Ok(creates_cpu)
}
