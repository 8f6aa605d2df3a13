//! The `raygate webhook` binary as a Deployment runs it: JSON logs with one line per review
//! carrying its span (uid, kind, operation, allowed), and SIGTERM during a review — the
//! review still gets its answer, new connections are refused, the process exits 0. That is
//! what keeps a rolling update of the webhook from failing a single `kubectl apply`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::self_managed::loopback_tls_client;
use raygate_e2e::{Webhook, WebhookOptions};
use serde_json::{Value, json};

fn start_webhook() -> Webhook {
    let options = WebhookOptions {
        json_logs: true,
        ..WebhookOptions::default()
    };
    Webhook::spawn(None, &options).expect("raygate webhook starts (cargo build --bin raygate)")
}

/// A TLS connection that trusts only the webhook's own CA, as the API server's caBundle does.
fn connect(webhook: &Webhook) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let ca = std::fs::read_to_string(webhook.ca_path()).expect("the webhook's CA");
    let connection = loopback_tls_client(&ca).expect("TLS client");
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, webhook.port())).expect("TCP connect");
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
    let mut webhook = start_webhook();
    let uid = "5d6c3bb0-sigterm-test";
    let body = review_body(uid);
    let mut tls = connect(&webhook);
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
    let signalled = unsafe { libc::kill(webhook.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0, "SIGTERM sent");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, webhook.port()));
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
        if let Some(status) = webhook.exit_status() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(webhook.log_path()).expect("log");
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
