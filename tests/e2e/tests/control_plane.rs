//! The real control plane (etcd + kube-apiserver built by tests/controlplane/build.sh) works the
//! way later tests need it. These tests fail, never skip, when the binaries are missing.

use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use raygate_e2e::control_plane::KEEP_DIR_ENV;
use raygate_e2e::listeners::{listeners_on, process_running};
use raygate_e2e::{Binaries, ControlPlane};
use serde_json::{Value, json};

fn start() -> ControlPlane {
    let t = Instant::now();
    let cp =
        ControlPlane::start().expect("start the control plane (see tests/controlplane/build.sh)");
    eprintln!(
        "control plane ready in {:.2}s at {} (dir {})",
        t.elapsed().as_secs_f64(),
        cp.server_url(),
        cp.dir().display()
    );
    cp
}

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let out = cp.kubectl(args, stdin).expect("run kubectl");
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out.stdout
}

#[test]
fn control_plane_is_ready_and_reports_its_version() {
    let cp = start();

    assert_eq!(
        kubectl_ok(&cp, &["get", "--raw", "/readyz"], None).trim(),
        "ok"
    );

    let out = cp
        .kubectl(["version", "-o", "json"], None)
        .expect("kubectl version");
    assert!(out.success(), "{out}");
    let v: Value = serde_json::from_str(&out.stdout).expect("kubectl version prints JSON");
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    let client = v["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(
        server.starts_with("v1.37."),
        "server version {server:?}:\n{out}"
    );
    assert_eq!(
        client, server,
        "kubectl and the API server come from one build"
    );
    assert!(
        !out.stderr.contains("skew"),
        "kubectl warned about version skew: {}",
        out.stderr
    );

    // Loopback only: etcd's client port and the API server's port listen on 127.0.0.1 alone.
    for port in [cp.apiserver_port(), cp.etcd_port()] {
        let addrs = listeners_on(port);
        assert!(!addrs.is_empty(), "nothing listens on port {port}");
        assert!(
            addrs.iter().all(|a| a == &format!("0100007F:{port:04X}")),
            "port {port} listens on {addrs:?}, not only 127.0.0.1"
        );
    }

    assert!(cp.kubeconfig_path().is_file());
    assert!(cp.apiserver_log_path().is_file());
    assert!(cp.etcd_log_path().is_file());
}

#[tokio::test]
async fn configmap_and_pod_round_trip_and_pod_status_can_be_played() {
    let cp = ControlPlane::start_async()
        .await
        .expect("start the control plane (see tests/controlplane/build.sh)");

    // A ConfigMap through kubectl, read back through kubectl and the Rust client.
    let cm_yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  hello: world\n";
    let applied = kubectl_ok(&cp, &["apply", "-f", "-"], Some(cm_yaml));
    assert!(applied.contains("configmap/greeting created"), "{applied}");
    let data = kubectl_ok(
        &cp,
        &[
            "get",
            "configmap",
            "greeting",
            "-o",
            "jsonpath={.data.hello}",
        ],
        None,
    );
    assert_eq!(data, "world");

    let client = cp.client().await.expect("kube client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms.get("greeting").await.expect("get configmap");
    assert_eq!(
        cm.data.and_then(|d| d.get("hello").cloned()).as_deref(),
        Some("world")
    );

    // A Pod: admitted with no ServiceAccount and no controller-manager, stays Pending.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "head", "labels": { "app": "e2e" } },
        "spec": { "containers": [{ "name": "ray", "image": "rayproject/ray:2.60.0" }] },
    }))
    .expect("pod json");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let got = pods.get("head").await.expect("get pod");
    let phase = got.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(phase, Some("Pending"), "no kubelet runs pods");

    // Play kubelet: mark it Running and Ready with a loopback pod IP, via the status subresource.
    let status = json!({
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.2",
            "podIPs": [{ "ip": "127.0.0.2" }],
            "conditions": [
                { "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            ],
        }
    });
    pods.patch_status("head", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch pod status");
    let got = pods.get("head").await.expect("get pod");
    let st = got.status.expect("pod status");
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.2"));

    let shown = kubectl_ok(
        &cp,
        &[
            "get",
            "pod",
            "head",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}",
        ],
        None,
    );
    assert_eq!(shown, "Running 127.0.0.2");
}

#[tokio::test]
async fn restarting_the_api_server_keeps_data() {
    let mut cp = ControlPlane::start_async()
        .await
        .expect("start the control plane (see tests/controlplane/build.sh)");
    let client = cp.client().await.expect("kube client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "survivor" },
        "data": { "k": "v" },
    }))
    .expect("configmap json");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let url = cp.server_url();

    let t = Instant::now();
    cp.stop_apiserver().expect("stop the API server");
    eprintln!("API server stopped in {:.2}s", t.elapsed().as_secs_f64());
    assert!(!cp.apiserver_running());
    let down = cp
        .kubectl(["get", "configmap", "survivor"], None)
        .expect("kubectl");
    assert!(
        !down.success(),
        "kubectl reached a stopped API server:\n{down}"
    );

    let t = Instant::now();
    let cp = tokio::task::spawn_blocking(move || cp.start_apiserver().map(|()| cp))
        .await
        .expect("join")
        .expect("restart the API server");
    eprintln!("API server restarted in {:.2}s", t.elapsed().as_secs_f64());
    assert_eq!(cp.server_url(), url, "same port after restart");

    // The client made before the restart still works, and the data is still there.
    let back = cms
        .get("survivor")
        .await
        .expect("get configmap after restart");
    assert_eq!(
        back.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );
    let via_kubectl = kubectl_ok(
        &cp,
        &["get", "configmap", "survivor", "-o", "jsonpath={.data.k}"],
        None,
    );
    assert_eq!(via_kubectl, "v");

    // A crash (SIGKILL) and restart keeps the data too.
    let mut cp = cp;
    cp.kill_apiserver();
    let cp = tokio::task::spawn_blocking(move || cp.start_apiserver().map(|()| cp))
        .await
        .expect("join")
        .expect("restart the API server after a kill");
    assert_eq!(
        kubectl_ok(
            &cp,
            &["get", "configmap", "survivor", "-o", "jsonpath={.data.k}"],
            None
        ),
        "v"
    );
}

#[test]
fn missing_binaries_fail_loudly_and_name_the_build_script() {
    let empty = tempfile::tempdir().expect("tempdir");
    let err = Binaries::locate_in(empty.path()).expect_err("no binaries in an empty dir");
    let msg = format!("{err:#}");
    assert!(msg.contains("tests/controlplane/build.sh"), "{msg}");
    assert!(msg.contains("kube-apiserver"), "{msg}");
    assert!(msg.contains("etcd"), "{msg}");
    assert!(msg.contains("kubectl"), "{msg}");
}

/// The ports and processes of a running control plane, to check once it is gone.
struct Footprint {
    ports: Vec<u16>,
    pids: Vec<u32>,
    dir: std::path::PathBuf,
}

impl Footprint {
    fn of(cp: &ControlPlane) -> Self {
        let footprint = Footprint {
            ports: vec![cp.apiserver_port(), cp.etcd_port(), cp.etcd_peer_port()],
            pids: cp.pids(),
            dir: cp.dir().to_path_buf(),
        };
        assert_eq!(footprint.pids.len(), 2, "etcd and kube-apiserver run");
        for &port in &footprint.ports {
            assert!(!listeners_on(port).is_empty(), "nothing listens on {port}");
        }
        for &pid in &footprint.pids {
            assert!(process_running(pid), "process {pid} is not running");
        }
        footprint
    }

    /// Drop kills and reaps the children before it returns: no waiting needed.
    fn assert_gone(&self) {
        for &port in &self.ports {
            let left = listeners_on(port);
            assert!(left.is_empty(), "port {port} still listens: {left:?}");
        }
        for &pid in &self.pids {
            assert!(
                !process_running(pid),
                "process {pid} outlived the control plane"
            );
        }
    }
}

#[test]
fn dropping_the_control_plane_stops_its_processes_and_frees_its_ports() {
    let cp = start();
    let footprint = Footprint::of(&cp);
    drop(cp);
    footprint.assert_gone();
    if std::env::var_os(KEEP_DIR_ENV).is_none() {
        assert!(
            !footprint.dir.exists(),
            "the temp dir of a passing test is removed"
        );
    }
}

#[test]
fn a_panic_while_holding_the_control_plane_stops_it_and_keeps_its_logs() {
    let noted = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cp = start();
        if let Ok(mut noted) = noted.lock() {
            *noted = Some(Footprint::of(&cp));
        }
        panic!("a failing test while the control plane runs");
    }));
    assert!(outcome.is_err(), "the closure panics");
    let footprint = noted
        .into_inner()
        .expect("lock")
        .expect("the control plane started before the panic");
    footprint.assert_gone();
    // A failing test's logs are kept for a look; this one is done with them.
    assert!(
        footprint.dir.join("kube-apiserver.log").is_file(),
        "the dir of a panicking test is kept"
    );
    std::fs::remove_dir_all(&footprint.dir).expect("remove the kept dir");
}
