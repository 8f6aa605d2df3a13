//! cert-manager mode against a real API server and a real cert-manager (controller and
//! cainjector built from the github.com/cert-manager/cert-manager module by
//! tests/certmanager/build.sh, running as local processes): raygate declares a self-signed
//! Issuer and its CA chain and the serving Certificate, cert-manager issues, the cainjector
//! injects the CA into raygate's webhook configurations, `kubectl apply` is admitted through
//! TLS, and a forced renewal under a steady stream of applies fails no request.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raygate_certs::parsed::ParsedCertificate;
use raygate_e2e::cert_manager::CertManager;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::self_managed::{
    NAMESPACE, SECRET_NAME, SelfManagedOptions, SelfManagedWebhook, create_namespace,
    register_without_ca_bundle, served_certificate, validating_ca_bundle,
};
use raygate_e2e::webhook::raygate_binary;
use raygate_e2e::{ControlPlane, KubectlOutput, install_policy_crd, install_ray_crds};
use serde_json::Value;

/// The serving Certificate raygate declares (`--certificate-name` default).
const CERTIFICATE: &str = "raygate";

fn cert_manager_options() -> SelfManagedOptions {
    SelfManagedOptions {
        cert_mode: Some("cert-manager".to_owned()),
        ..SelfManagedOptions::default()
    }
}

/// The KubeRay sample RayCluster under another name, as JSON for `kubectl apply -f -`.
fn ray_cluster(name: &str) -> String {
    let text = sample_text("ray-cluster.sample.yaml").expect("KubeRay sample");
    let mut documents = raygate_api::manifest::parse_documents(&text).expect("sample is YAML");
    let mut cluster: Value = documents.remove(0);
    cluster["metadata"]["name"] = Value::String(name.to_owned());
    serde_json::to_string(&cluster).expect("JSON")
}

fn fingerprint(der: &[u8]) -> String {
    ParsedCertificate::from_der(der, "served")
        .expect("X.509")
        .fingerprint()
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let out = cp
        .kubectl(args.iter().copied(), None)
        .expect("kubectl runs");
    out.success()
        .then(|| serde_json::from_str(&out.stdout).expect("JSON"))
}

/// Whether `kind/name` in raygate's namespace has condition `Ready=True`.
fn is_ready(cp: &ControlPlane, kind: &str, name: &str) -> bool {
    let object = get_json(cp, &["get", kind, name, "-n", NAMESPACE, "-o", "json"]);
    object.is_some_and(|o| {
        o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn wait_for(
    what: &str,
    timeout: Duration,
    diagnostics: impl Fn() -> String,
    mut probe: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

fn annotation(cp: &ControlPlane, kind: &str) -> Option<String> {
    get_json(cp, &["get", kind, "raygate", "-o", "json"]).and_then(|o| {
        o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
            .as_str()
            .map(str::to_owned)
    })
}

fn certs_status(cp: &ControlPlane) -> (Option<i32>, String) {
    let output = Command::new(raygate_binary().expect("raygate binary"))
        .args(["certs", "status", "--namespace", NAMESPACE])
        .arg(format!("--secret-name={SECRET_NAME}"))
        .arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
        .output()
        .expect("raygate certs status runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// What `cmctl renew` does: add the `Issuing=True` condition to the Certificate's status, which
/// cert-manager's trigger controller takes as "issue now".
fn force_renewal(cp: &ControlPlane) {
    let patch = serde_json::json!([{
        "op": "add",
        "path": "/status/conditions/-",
        "value": {
            "type": "Issuing",
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered by the raygate e2e test",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        },
    }]);
    let out = cp
        .kubectl(
            [
                "patch",
                "certificate",
                CERTIFICATE,
                "-n",
                NAMESPACE,
                "--subresource=status",
                "--type=json",
                &format!("--patch={patch}"),
            ],
            None,
        )
        .expect("kubectl runs");
    assert!(out.success(), "triggering a renewal failed:\n{out}");
}

#[test]
fn cert_manager_issues_injects_and_renews_with_no_failed_admission() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    install_policy_crd(&cp).expect("the RayPolicy CRD installs");
    create_namespace(&cp).expect("raygate's namespace");

    // Without cert-manager's CRDs, the webhook refuses to start and says what is missing.
    let mut without = SelfManagedWebhook::spawn(&cp, &cert_manager_options()).expect("spawns");
    let error = without
        .wait_ready()
        .expect_err("no cert-manager, no webhook");
    let text = format!("{error:#}");
    assert!(
        text.contains("cert-manager is not installed")
            && text.contains("certificates.cert-manager.io")
            && text.contains("issuers.cert-manager.io"),
        "{text}"
    );
    drop(without);

    let started = Instant::now();
    let mut cert_manager = CertManager::start(&cp).expect("cert-manager starts");
    println!(
        "cert-manager CRDs installed and processes started in {:?}",
        started.elapsed()
    );

    let mut webhook = SelfManagedWebhook::spawn(&cp, &cert_manager_options()).expect("spawns");
    register_without_ca_bundle(&cp, webhook.port()).expect("webhooks registered");
    let issued = Instant::now();
    webhook
        .wait_ready()
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cert_manager.logs()));
    println!(
        "raygate ready on cert-manager's certificate after {:?}",
        issued.elapsed()
    );
    let logs = || format!("--- raygate\n{}\n{}", webhook.log(), cert_manager.logs());

    // The self-signed Issuer, the CA chain and the serving Certificate are Ready.
    for (kind, name) in [
        ("issuer", "raygate-selfsigned"),
        ("certificate", "raygate-ca"),
        ("issuer", "raygate-ca"),
        ("certificate", CERTIFICATE),
    ] {
        wait_for(
            &format!("{kind}/{name} Ready"),
            Duration::from_secs(60),
            logs,
            || is_ready(&cp, kind, name),
        );
    }

    // raygate annotated both configurations; cainjector injected the CA into both.
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        wait_for(
            &format!("{kind} annotated"),
            Duration::from_secs(30),
            logs,
            || annotation(&cp, kind).as_deref() == Some("raygate-system/raygate"),
        );
    }
    let injected = wait_for(
        "cainjector to inject the caBundle",
        Duration::from_secs(60),
        logs,
        || {
            let mutating = get_json(
                &cp,
                &[
                    "get",
                    "mutatingwebhookconfiguration",
                    "raygate",
                    "-o",
                    "json",
                ],
            );
            validating_ca_bundle(&cp).expect("read").is_some()
                && mutating
                    .is_some_and(|m| m["webhooks"][0]["clientConfig"]["caBundle"].is_string())
        },
    );
    println!("caBundle injected {injected:?} after the Certificate was Ready");
    let ca_bundle = validating_ca_bundle(&cp).expect("read").expect("set");
    let ca_secret = get_json(
        &cp,
        &[
            "get",
            "secret",
            "raygate-webhook-tls-ca",
            "-n",
            NAMESPACE,
            "-o",
            "json",
        ],
    )
    .expect("the CA Secret exists");
    let ca_pem =
        serde_json::from_value::<k8s_openapi::ByteString>(ca_secret["data"]["tls.crt"].clone())
            .expect("base64");
    assert_eq!(
        ParsedCertificate::from_pem(&ca_bundle, "caBundle")
            .expect("PEM")
            .der,
        ParsedCertificate::from_pem(&String::from_utf8_lossy(&ca_pem.0), "CA")
            .expect("PEM")
            .der,
        "the caBundle is raygate's CA, injected by cainjector"
    );

    // Admitted through TLS.
    let out = cp
        .kubectl(
            ["apply", "-o", "json", "-f", "-"],
            Some(&ray_cluster("via-cert-manager")),
        )
        .expect("kubectl runs");
    assert!(out.success(), "not admitted:\n{out}\n{}", logs());
    let stored: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        stored["metadata"]["annotations"]["raygate.io/normalized"], "1",
        "the mutating webhook ran"
    );
    let first = served_certificate(webhook.port(), &ca_bundle).expect("served cert verifies");

    let (code, text) = certs_status(&cp);
    println!("{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("mode:            cert-manager"), "{text}");
    assert!(
        text.contains("serving cert:") && text.contains("notAfter"),
        "{text}"
    );
    assert!(text.contains("status:          OK"), "{text}");
    assert_eq!(text.matches(": OK (caBundle trusts").count(), 2, "{text}");

    // A renewal, forced as `cmctl renew` does, while applies stream in.
    let out = cp
        .kubectl(["create", "namespace", "stream"], None)
        .expect("kubectl runs");
    assert!(out.success(), "{out}");
    const MAX_APPLIES: usize = 2_000;
    let stop = AtomicBool::new(false);
    let (applied, failures, observed, renewed_after) = std::thread::scope(|scope| {
        let stream = scope.spawn(|| {
            let mut applied = 0usize;
            let mut failures: Vec<KubectlOutput> = Vec::new();
            while !stop.load(Ordering::Relaxed) && applied + failures.len() < MAX_APPLIES {
                let name = format!("stream-{}", applied + failures.len());
                let out = cp
                    .kubectl(
                        ["apply", "-n", "stream", "-f", "-"],
                        Some(&ray_cluster(&name)),
                    )
                    .expect("kubectl runs");
                if out.success() {
                    applied += 1;
                } else {
                    failures.push(out);
                }
            }
            (applied, failures)
        });
        let mut observed = BTreeSet::new();
        let mut untrusted = Vec::new();
        let mut sample = |observed: &mut BTreeSet<String>| {
            let bundle = validating_ca_bundle(&cp)
                .expect("read")
                .expect("caBundle set");
            match served_certificate(webhook.port(), &bundle) {
                Ok(der) => {
                    observed.insert(fingerprint(&der));
                }
                Err(error) => untrusted.push(format!("{error:#}")),
            }
        };
        // Some applies before the renewal, then the renewal, then some after it.
        let before = Instant::now();
        while before.elapsed() < Duration::from_secs(5) {
            sample(&mut observed);
            std::thread::sleep(Duration::from_millis(250));
        }
        force_renewal(&cp);
        let triggered = Instant::now();
        let mut renewed_after = None;
        while triggered.elapsed() < Duration::from_secs(90) {
            sample(&mut observed);
            if renewed_after.is_none() && observed.len() > 1 {
                renewed_after = Some(triggered.elapsed());
            }
            if renewed_after.is_some_and(|at| triggered.elapsed() > at + Duration::from_secs(5)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        let (applied, failures) = stream.join().expect("the apply stream ran");
        assert!(
            untrusted.is_empty(),
            "handshakes the caBundle did not trust: {untrusted:#?}"
        );
        (applied, failures, observed, renewed_after)
    });
    println!(
        "renewal under load: {applied} applies admitted, {} failed; {} serving certificates \
         seen; the new one served {renewed_after:?} after the renewal was triggered",
        failures.len(),
        observed.len()
    );
    assert!(
        failures.is_empty(),
        "failed applies:\n{}\n{}",
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        logs()
    );
    assert!(
        renewed_after.is_some(),
        "the served certificate never changed\n{}",
        logs()
    );
    assert!(applied >= 10, "only {applied} applies");
    let bundle_after = validating_ca_bundle(&cp).expect("read").expect("set");
    let last = served_certificate(webhook.port(), &bundle_after).expect("served cert verifies");
    assert_ne!(
        fingerprint(&first),
        fingerprint(&last),
        "a new certificate is served"
    );
    assert!(
        webhook
            .log()
            .contains("serving the certificate cert-manager issued")
    );
    let (code, text) = certs_status(&cp);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        cert_manager.running(),
        "cert-manager kept running\n{}",
        cert_manager.logs()
    );
    webhook.stop();
}
