//! The `raygate webhook` binary as a Deployment runs it: JSON logs with one line per review
//! carrying its span (uid, kind, operation, allowed), and SIGTERM during a review — the
//! review still gets its answer, new connections are refused, the process exits 0. That is
//! what keeps a rolling update of the webhook from failing a single `kubectl apply`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raygate_e2e::control_plane::free_loopback_ports;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::webhook::raygate_binary;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

struct Running {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_webhook() -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let certificate =
        raygate_certs::self_signed(&["localhost".into()], &[Ipv4Addr::LOCALHOST.into()], 1)
            .expect("self-signed certificate");
    certificate.write_to(dir.path()).expect("write certificate");
    let ca_pem = certificate.ca_pem.clone();
    let [port, admin_port] = free_loopback_ports::<2>().expect("free ports");
    let log = dir.path().join("webhook.log");
    let child = Command::new(raygate_binary().expect("raygate binary (cargo build --bin raygate)"))
        .arg("webhook")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
        .arg(format!(
            "--tls-cert={}",
            dir.path().join("tls.crt").display()
        ))
        .arg(format!(
            "--tls-key={}",
            dir.path().join("tls.key").display()
        ))
        .arg("--log-format=json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("raygate webhook starts");
    let mut running = Running {
        child,
        port,
        log,
        ca_pem,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin_ready(admin_port) {
        let exited = running.child.try_wait().expect("process status");
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "raygate webhook did not become ready ({exited:?}):\n{}",
            std::fs::read_to_string(&running.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

fn admin_ready(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = String::new();
    tcp.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").is_ok()
        && tcp.read_to_string(&mut answer).is_ok()
        && answer.split_whitespace().nth(1) == Some("200")
}

/// A TLS connection that trusts only the webhook's own certificate, as the API server's
/// caBundle does.
fn connect(running: &Running) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(running.ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("trusted certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, running.port)).expect("TCP connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    rustls::StreamOwned::new(connection, tcp)
}

fn review_body(uid: &str) -> Vec<u8> {
    let cluster = raygate_api::manifest::parse_documents(
        &sample_text("ray-cluster.sample.yaml").expect("KubeRay sample"),
    )
    .expect("YAML")
    .remove(0);
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "ray.io", "version": "v1", "kind": "RayCluster"},
            "resource": {"group": "ray.io", "version": "v1", "resource": "rayclusters"},
            "name": "raycluster-kuberay",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": cluster,
            "dryRun": false,
        },
    }))
    .expect("JSON")
}

#[test]
fn sigterm_during_a_review_answers_it_then_exits_and_logs_are_json() {
    let mut running = start_webhook();
    let uid = "5d6c3bb0-sigterm-test";
    let body = review_body(uid);
    let mut tls = connect(&running);
    let (first, rest) = body.split_at(body.len() / 2);
    // `Expect: 100-continue` makes the server say when its handler is reading the body, so the
    // signal below lands while this review is in flight, not before the server saw it.
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).expect("headers");
    tls.flush().expect("flush");
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        let read = tls.read(&mut byte).expect("the server answers the headers");
        assert_eq!(read, 1, "closed before 100 Continue: {interim:?}");
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    tls.write_all(first).expect("half the body");
    tls.flush().expect("flush");

    // SIGTERM while the review is half sent, as the kubelet sends it during a rolling update.
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let signalled = unsafe { libc::kill(running.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0, "SIGTERM sent");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, running.port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    tls.write_all(rest).expect("the rest of the body");
    tls.flush().expect("flush");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight review got no answer:\n{answer}"
    );
    let (_, json) = answer.split_once("\r\n\r\n").expect("headers end");
    let review: Value = serde_json::from_str(json).expect("AdmissionReview");
    assert_eq!(review["response"]["uid"], uid);
    assert_eq!(review["response"]["allowed"], true, "{review}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("process status") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&running.log).expect("log");
    assert!(status.success(), "exit {status}:\n{log}");

    // Every line is a JSON object; the review's line carries its span's fields.
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let review_line = lines
        .iter()
        .find(|line| line["message"] == "admission review answered")
        .unwrap_or_else(|| panic!("no review logged:\n{log}"));
    let span = &review_line["span"];
    assert_eq!(span["uid"], uid, "{review_line}");
    assert_eq!(span["kind"], "RayCluster");
    assert_eq!(span["operation"], "CREATE");
    assert_eq!(span["verb"], "validate");
    assert_eq!(span["object"], "raycluster-kuberay");
    assert_eq!(review_line["result"], "allowed");
}
