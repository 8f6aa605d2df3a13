//! Load benchmark for the real `raygate webhook` TLS server (a separate process).
//!
//! `cargo bench -p raygate-webhook --bench load` (after `cargo build --release --bin raygate`;
//! `RAYGATE_BIN` overrides the binary). Under `cargo test --all-targets` it does nothing.
//!
//! The webhook runs with `RUST_LOG=warn`: raygate's default (`info`) writes one line per
//! review. `RAYGATE_BENCH_WEBHOOK_LOG=default` runs it with the default instead (its log then
//! goes to a file, as a container's goes to the runtime), `=<filter>` with that filter.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

// The generator shares the two cores with the webhook: every cycle it spends is one the webhook
// does not get. glibc's malloc took ~15 % of its CPU; mimalloc is what the webhook uses too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 2;
const IN_FLIGHT: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(10);
const MAX_REQUESTS: u64 = 500_000;
const HANDSHAKE_TASKS: usize = 8;
const HANDSHAKE_DURATION: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // One thread, like h2load's default: the generator takes at most one of the two cores
    // and leaves the other to the webhook, with no cross-thread wakeups of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

/// The webhook process, killed when dropped (also on panic).
struct Webhook {
    child: Child,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the webhook's log goes and what it holds.
struct WebhookLog {
    /// RUST_LOG for the webhook; empty means raygate's default filter.
    filter: String,
    /// `None`: the bench's own stderr (warnings only, so a failure shows).
    file: Option<PathBuf>,
}

impl WebhookLog {
    fn from_env(dir: &std::path::Path) -> Self {
        match std::env::var("RAYGATE_BENCH_WEBHOOK_LOG") {
            Ok(filter) if !filter.is_empty() => Self {
                filter: if filter == "default" {
                    String::new()
                } else {
                    filter
                },
                file: Some(dir.join("webhook.log")),
            },
            _ => Self {
                filter: "warn".to_owned(),
                file: None,
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.file, self.filter.as_str()) {
            (None, filter) => format!("RUST_LOG={filter} (no line per review), to stderr"),
            (Some(file), "") => format!(
                "raygate's default (a line per review), to {}",
                file.display()
            ),
            (Some(file), filter) => format!("RUST_LOG={filter}, to {}", file.display()),
        }
    }

    fn stderr(&self) -> Stdio {
        match &self.file {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("webhook log file")),
            None => Stdio::inherit(),
        }
    }

    fn report(&self) {
        if let Some(path) = &self.file {
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!("webhook log: {:.1} MB written", bytes as f64 / 1e6);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn binary() -> PathBuf {
    let path = std::env::var_os("RAYGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/raygate")
        });
    assert!(
        path.is_file(),
        "no raygate binary at {}: run `cargo build --release --bin raygate` first (or set RAYGATE_BIN)",
        path.display()
    );
    path
}

/// A ray.io object wrapped in an AdmissionReview v1 CREATE.
fn review(object: &Value) -> Bytes {
    let kind = object["kind"].as_str().unwrap_or("RayCluster");
    let resource = format!("{}s", kind.to_lowercase());
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-uid",
            "kind": {"group": "ray.io", "version": "v1", "kind": kind},
            "resource": {"group": "ray.io", "version": "v1", "resource": resource},
            "requestKind": {"group": "ray.io", "version": "v1", "kind": kind},
            "requestResource": {"group": "ray.io", "version": "v1", "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    });
    Bytes::from(serde_json::to_vec(&review).expect("JSON"))
}

/// (`/mutate` body, `/validate` body) for KubeRay's complete RayCluster sample.
fn bodies() -> (Bytes, Bytes) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kuberay/samples/ray-cluster.complete.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut documents = raygate_api::manifest::parse_documents(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    assert!(!documents.is_empty(), "{} is empty", path.display());
    let mut object = documents.swap_remove(0);
    object["metadata"]["namespace"] = json!("default");
    raygate_api::schema_defaults::apply_crd_defaults(&mut object);
    let normalized = raygate_api::admission::mutate(&object).0;
    (review(&object), review(&normalized))
}

#[derive(Deserialize)]
struct ReviewReply {
    response: ReplyResponse,
}

#[derive(Deserialize)]
struct ReplyResponse {
    allowed: bool,
}

fn post(path: &'static str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("https://127.0.0.1{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request")
}

/// One review; Ok only for a 200 with `response.allowed == true`.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &'static str,
    body: Bytes,
) -> Result<(), BoxError> {
    let response = sender.send_request(post(path, body)).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if status != 200 {
        return Err(format!("{path}: status {status}").into());
    }
    let reply: ReviewReply = serde_json::from_slice(&bytes)?;
    if !reply.response.allowed {
        return Err(format!("{path}: not allowed: {}", String::from_utf8_lossy(&bytes)).into());
    }
    Ok(())
}

fn connector(ca: &CertifiedIssuer<'static, KeyPair>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("CA into the root store");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Every new connection is a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn h2_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
        return Err("ALPN did not negotiate h2".into());
    }
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// True once `GET /readyz` on the admin port answers 200.
async fn ready(admin: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect(admin).await else {
        return false;
    };
    let request = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request).await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply).await;
    reply.starts_with(b"HTTP/1.1 200")
}

/// The same load with h2load (Debian's `nghttp2-client`) as the generator, when it is on the
/// PATH: one process per verb, each one connection with half the streams. h2load spends about
/// 40 % of this bench's own CPU per request, and on two shared cores the rest goes to the
/// webhook. Its `--log-file` gives every request's status and duration. Returns reviews per
/// second and p99 (ms).
async fn h2load_phase(
    dir: &std::path::Path,
    addr: SocketAddr,
    pid: u32,
    mutate: &Bytes,
    validate: &Bytes,
) -> Option<(f64, f64)> {
    const STREAMS: usize = IN_FLIGHT / 2;
    let available = tokio::process::Command::new("h2load")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    if !available {
        println!("h2load: not installed (apt-get install nghttp2-client), phase skipped");
        return None;
    }
    let cpu_before = cpu_seconds(&pid.to_string());
    // Both processes start before either is awaited: together they are the 64 streams.
    // `kill_on_drop`: a panic here must not leave an h2load running against nothing.
    let mut runs = Vec::new();
    for (verb, body) in [("mutate", mutate), ("validate", validate)] {
        let body_path = dir.join(format!("{verb}.json"));
        let log_path = dir.join(format!("{verb}.tsv"));
        std::fs::write(&body_path, body).expect("h2load body");
        let child = tokio::process::Command::new("h2load")
            .args(["-c", "1", "-t", "1", "--warm-up-time=1"])
            .arg(format!("-m{STREAMS}"))
            .arg(format!("-D{}", MEASURE.as_secs()))
            .arg(format!("--log-file={}", log_path.display()))
            .arg(format!("--data={}", body_path.display()))
            .args(["-H", "Content-Type: application/json"])
            .arg(format!("https://{addr}/{verb}"))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning h2load");
        runs.push((child, log_path));
    }
    let mut latencies = Vec::new();
    let mut failures = 0u64;
    let mut from_warm_up = 0u64;
    for (mut child, log_path) in runs {
        let status = child.wait().await.expect("h2load");
        assert!(status.success(), "h2load failed: {status}");
        let log = std::fs::read_to_string(&log_path).expect("h2load log");
        // One line per request closed while measuring: start (µs since the epoch), status,
        // duration (µs). Status 0: its answer's headers came in the warm-up, so h2load never
        // recorded them; such a request is not a measured one.
        for line in log.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match (
                fields.get(1),
                fields.get(2).and_then(|d| d.parse::<u64>().ok()),
            ) {
                (Some(&"200"), Some(micros)) => latencies.push(Duration::from_micros(micros)),
                (Some(&"0"), _) => from_warm_up += 1,
                _ => failures += 1,
            }
        }
    }
    assert!(!latencies.is_empty(), "h2load logged no answered request");
    let webhook_cpu = cpu_seconds(&pid.to_string()) - cpu_before;
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / MEASURE.as_secs_f64();
    println!(
        "h2load: 2 processes (/mutate, /validate), 1 h2 connection x {STREAMS} streams each, 1 s warm-up, {} s measured",
        MEASURE.as_secs()
    );
    let p99 = percentile(&latencies, 0.99);
    println!(
        "  {} reviews: {rate:.0} reviews/s, p50 {:.2}, p90 {:.2}, p99 {p99:.2} ms (target <= 5), failures {failures}, answered in the warm-up {from_warm_up}, webhook CPU {webhook_cpu:.2} s",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
    );
    Some((rate, p99))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    ms(sorted[index])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user + system) a process has used so far; `self` for this one.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// `VmHWM` and `VmRSS` of a process, in MB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn run() {
    let binary = binary();
    let (mutate_body, validate_body) = bodies();

    // A CA and a serving certificate for 127.0.0.1.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, leaf.pem()).expect("write cert");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");
    let connector = connector(&ca);

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let log = WebhookLog::from_env(dir.path());
    println!("webhook log: {}", log.describe());

    // Ready time: spawn to the first 200 on /readyz.
    let spawned = Instant::now();
    let child = Command::new(&binary)
        .arg("webhook")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env("RUST_LOG", &log.filter)
        .stdin(Stdio::null())
        .stderr(log.stderr())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
    let mut webhook = Webhook { child };
    let pid = webhook.child.id();
    loop {
        if ready(admin).await {
            break;
        }
        if let Ok(Some(status)) = webhook.child.try_wait() {
            panic!("the webhook exited before it was ready: {status}");
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(30),
            "the webhook was not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready_ms = ms(spawned.elapsed());
    println!("binary: {}", binary.display());
    println!("ready: {ready_ms:.1} ms (target <= 100 ms)");

    // Sustained load: CONNECTIONS h2 connections, IN_FLIGHT concurrent requests.
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        senders.push(h2_connect(&connector, addr).await.expect("h2 connection"));
    }
    let started = Instant::now();
    let measure_from = started + WARMUP;
    let cpu_at_start = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let measure_until = measure_from + MEASURE;
    let measured = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..IN_FLIGHT {
        let mut sender = senders[task % CONNECTIONS].clone();
        let (mutate_body, validate_body) = (mutate_body.clone(), validate_body.clone());
        let measured = measured.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut last = measure_from;
            for i in task.. {
                let (path, body) = if i % 2 == 0 {
                    ("/mutate", mutate_body.clone())
                } else {
                    ("/validate", validate_body.clone())
                };
                let begun = Instant::now();
                if begun >= measure_until {
                    break;
                }
                let counted = begun >= measure_from;
                if counted && measured.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
                    break;
                }
                let outcome = send(&mut sender, path, body).await;
                let done = Instant::now();
                if counted {
                    latencies.push(done - begun);
                    last = last.max(done);
                    if let Err(error) = outcome {
                        if failures == 0 {
                            eprintln!("failure: {error}");
                        }
                        failures += 1;
                    }
                }
            }
            (latencies, failures, last)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0u64;
    let mut last = measure_from;
    for task in tasks {
        let (l, f, t) = task.await.expect("load task");
        latencies.extend(l);
        failures += f;
        last = last.max(t);
    }
    drop(senders);
    let (webhook_cpu, generator_cpu) = (
        cpu_seconds(&pid.to_string()) - cpu_at_start.0,
        cpu_seconds("self") - cpu_at_start.1,
    );
    latencies.sort_unstable();
    let elapsed = (last - measure_from).as_secs_f64();
    let rate = latencies.len() as f64 / elapsed;
    let (p50, p90, p99) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
    );
    let max = latencies.last().copied().map(ms).unwrap_or(f64::NAN);
    println!(
        "load: {CONNECTIONS} h2 connections, {IN_FLIGHT} in flight, /mutate + /validate of ray-cluster.complete.yaml"
    );
    println!(
        "  {} reviews in {elapsed:.2} s: {rate:.0} reviews/s (target >= 15000)",
        latencies.len()
    );
    println!("  latency ms: p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2} (target <= 5), max {max:.2}");
    println!("  failures: {failures}");
    let wall = started.elapsed().as_secs_f64();
    println!(
        "  CPU over the {wall:.1} s run (warm-up included): webhook {webhook_cpu:.2} s, load generator {generator_cpu:.2} s"
    );

    let (hwm, rss) = memory(pid);
    println!("webhook memory: VmHWM {hwm:.1} MB, VmRSS {rss:.1} MB (target <= 40 MB)");

    let with_h2load = h2load_phase(dir.path(), addr, pid, &mutate_body, &validate_body)
        .await
        .map(|(rate, p99)| format!(" | h2load: {rate:.0} reviews/s, p99 {p99:.2} ms"))
        .unwrap_or_default();
    // VmHWM is the peak so far: read again, it covers the h2load phase's faster load too.
    let (hwm, _) = memory(pid);
    println!("webhook memory after both load phases: VmHWM {hwm:.1} MB (target <= 40 MB)");

    // Full TLS handshakes: a new connection per review.
    let handshake_until = Instant::now() + HANDSHAKE_DURATION;
    let handshake_start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..HANDSHAKE_TASKS {
        let connector = connector.clone();
        let body = validate_body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < handshake_until {
                let begun = Instant::now();
                let outcome = async {
                    let mut sender = h2_connect(&connector, addr).await?;
                    send(&mut sender, "/validate", body.clone()).await
                }
                .await;
                latencies.push(begun.elapsed());
                if let Err(error) = outcome {
                    if failures == 0 {
                        eprintln!("handshake failure: {error}");
                    }
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut connects = Vec::new();
    let mut connect_failures = 0u64;
    for task in tasks {
        let (l, f) = task.await.expect("handshake task");
        connects.extend(l);
        connect_failures += f;
    }
    let connect_elapsed = handshake_start.elapsed().as_secs_f64();
    connects.sort_unstable();
    let connect_rate = connects.len() as f64 / connect_elapsed;
    let connect_p99 = percentile(&connects, 0.99);
    println!(
        "tls handshakes: {HANDSHAKE_TASKS} tasks, new TCP+TLS+h2 connection and one /validate each"
    );
    println!(
        "  {} connections in {connect_elapsed:.2} s: {connect_rate:.0} connections/s, p99 {connect_p99:.2} ms, failures {connect_failures}",
        connects.len()
    );

    log.report();
    println!(
        "summary: ready {ready_ms:.1} ms (<=100) | {rate:.0} reviews/s (>=15000) | p99 {p99:.2} ms (<=5) | VmHWM {hwm:.1} MB (<=40) | failures {failures} | {connect_rate:.0} TLS conn/s p99 {connect_p99:.2} ms{with_h2load}"
    );
    drop(webhook);
}
