//! Self-managed certificates against a real API server: the webhook issues its own CA and
//! serving certificate into a Secret and injects the `caBundle`; replicas agree on one Secret;
//! rotations of the serving certificate and of the CA drop no request; `raygate certs status`
//! tells an admin whether the API server can trust what is served.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use raygate_certs::CertBundle;
use raygate_certs::manager::stored_bundle;
use raygate_certs::parsed::ParsedCertificate;
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::self_managed::{
    NAMESPACE, SECRET_NAME, SelfManagedOptions, SelfManagedWebhook, create_namespace,
    register_without_ca_bundle, served_certificate, validating_ca_bundle,
};
use raygate_e2e::webhook::raygate_binary;
use raygate_e2e::{ControlPlane, KubectlOutput, install_policy_crd, install_ray_crds};
use serde_json::Value;

fn control_plane() -> ControlPlane {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    // --kubeconfig also makes the webhook watch RayPolicies; it is ready once they synced.
    install_policy_crd(&cp).expect("the RayPolicy CRD installs");
    create_namespace(&cp).expect("raygate's namespace");
    cp
}

/// The KubeRay sample RayCluster under another name, as JSON for `kubectl apply -f -`.
fn ray_cluster(name: &str) -> String {
    let text = sample_text("ray-cluster.sample.yaml").expect("KubeRay sample");
    let mut documents = raygate_api::manifest::parse_documents(&text).expect("sample is YAML");
    let mut cluster: Value = documents.remove(0);
    cluster["metadata"]["name"] = Value::String(name.to_owned());
    serde_json::to_string(&cluster).expect("JSON")
}

fn stored_certificates(cp: &ControlPlane) -> CertBundle {
    let out = cp
        .kubectl(
            ["get", "secret", "-n", NAMESPACE, SECRET_NAME, "-o", "json"],
            None,
        )
        .expect("kubectl runs")
        .into_stdout()
        .expect("the certificate Secret exists");
    let secret: Secret = serde_json::from_str(&out).expect("a Secret");
    stored_bundle(&secret).expect("the Secret holds raygate's certificates")
}

fn fingerprint(der: &[u8]) -> String {
    ParsedCertificate::from_der(der, "served")
        .expect("X.509")
        .fingerprint()
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

#[test]
fn a_fresh_cluster_admits_through_the_injected_ca_bundle() {
    let cp = control_plane();
    let webhook =
        SelfManagedWebhook::start(&cp, &SelfManagedOptions::default()).expect("webhook starts");
    register_without_ca_bundle(&cp, webhook.port()).expect("webhooks registered");

    // The webhook patches caBundle when it next looks; the first apply may come before that,
    // so wait for the bundle the way an operator would, then apply once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while validating_ca_bundle(&cp).expect("read caBundle").is_none() {
        assert!(
            Instant::now() < deadline,
            "caBundle never injected:\n{}",
            webhook.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = cp
        .kubectl(
            ["apply", "-o", "json", "-f", "-"],
            Some(&ray_cluster("injected")),
        )
        .expect("kubectl runs");
    assert!(out.success(), "not admitted:\n{out}\n{}", webhook.log());
    let stored: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        stored["metadata"]["annotations"]["raygate.io/normalized"], "1",
        "the mutating webhook ran"
    );

    let stored = stored_certificates(&cp);
    let ca_bundle = validating_ca_bundle(&cp).expect("read").expect("set");
    let served = served_certificate(webhook.port(), &ca_bundle).expect("served cert verifies");
    assert_eq!(
        served, stored.serving.parsed.der,
        "serves the Secret's cert"
    );
    let names = &stored.serving.parsed.names;
    assert!(
        names.dns.contains(&"raygate.raygate-system.svc".to_owned())
            && names
                .dns
                .contains(&"raygate.raygate-system.svc.cluster.local".to_owned()),
        "{names:?}"
    );

    let (code, text) = certs_status(&cp);
    println!("{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("mode:            self-managed"), "{text}");
    assert!(text.contains("status:          OK"), "{text}");
    assert_eq!(text.matches(": OK (caBundle trusts").count(), 2, "{text}");

    // What an admin sees when someone overwrote a caBundle: stop the webhook so it can't
    // repair it, put in another CA, and status names the webhook and fails.
    drop(webhook);
    let other = raygate_certs::self_signed(&["elsewhere".to_owned()], &[], 1).expect("CA");
    let b64 =
        serde_json::to_value(k8s_openapi::ByteString(other.ca_pem.into_bytes())).expect("base64");
    let patch = serde_json::json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": b64}]);
    let patched = cp
        .kubectl(
            [
                "patch",
                "validatingwebhookconfiguration",
                "raygate",
                "--type=json",
                &format!("--patch={patch}"),
            ],
            None,
        )
        .expect("kubectl runs");
    assert!(patched.success(), "{patched}");
    let (code, text) = certs_status(&cp);
    println!("{text}");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "ValidatingWebhookConfiguration raygate webhook validate.raygate.io: caBundle does not hold the CA"
        ),
        "{text}"
    );
}

#[test]
fn two_replicas_starting_together_share_one_secret_and_serve_the_same_certificate() {
    let cp = control_plane();
    let options = SelfManagedOptions::default();
    let mut first = SelfManagedWebhook::spawn(&cp, &options).expect("first replica");
    let mut second = SelfManagedWebhook::spawn(&cp, &options).expect("second replica");
    first.wait_ready().expect("first replica ready");
    second.wait_ready().expect("second replica ready");

    let secrets = cp
        .kubectl(
            [
                "get",
                "secrets",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/managed-by=raygate",
                "-o",
                "name",
            ],
            None,
        )
        .expect("kubectl runs")
        .into_stdout()
        .expect("list Secrets");
    assert_eq!(
        secrets.lines().collect::<Vec<_>>(),
        [format!("secret/{SECRET_NAME}")]
    );
    let issuers = [&first, &second]
        .iter()
        .filter(|replica| {
            replica
                .log()
                .contains("issued a new CA and serving certificate")
        })
        .count();
    assert_eq!(issuers, 1, "exactly one replica issues; the other reads");

    let stored = stored_certificates(&cp);
    let trust = stored.trust_bundle();
    let a = served_certificate(first.port(), &trust).expect("first replica's cert verifies");
    let b = served_certificate(second.port(), &trust).expect("second replica's cert verifies");
    println!(
        "first replica serves {}, second serves {}",
        fingerprint(&a),
        fingerprint(&b)
    );
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_eq!(a, stored.serving.parsed.der);
}

#[test]
fn rotations_of_serving_cert_and_ca_under_a_steady_stream_of_applies_fail_no_request() {
    const SERVING: &str = "30s";
    const CA: &str = "90s";
    // The CA switches at 75 s and the old one leaves at 90 s; a little past that.
    const RUN_FOR: Duration = Duration::from_secs(100);
    const MAX_APPLIES: usize = 2_000;

    let cp = control_plane();
    let options = SelfManagedOptions {
        serving_cert_lifetime: Some(SERVING.to_owned()),
        ca_lifetime: Some(CA.to_owned()),
        ..SelfManagedOptions::default()
    };
    let mut first = SelfManagedWebhook::start(&cp, &options).expect("webhook starts");
    let started = Instant::now();
    let second = SelfManagedWebhook::start(&cp, &options).expect("second replica starts");
    register_without_ca_bundle(&cp, first.port()).expect("webhooks registered");
    let deadline = Instant::now() + Duration::from_secs(30);
    while validating_ca_bundle(&cp).expect("read caBundle").is_none() {
        assert!(Instant::now() < deadline, "caBundle never injected");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = cp
        .kubectl(["create", "namespace", "stream"], None)
        .expect("kubectl runs");
    assert!(out.success(), "{out}");

    let stop = AtomicBool::new(false);
    let (applied, failures, observed) = std::thread::scope(|scope| {
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
        // Meanwhile, check what the API server checks: both replicas' certificates verify
        // against the caBundle it holds right now.
        let mut observed = Observed::default();
        while started.elapsed() < RUN_FOR {
            let bundle = validating_ca_bundle(&cp)
                .expect("read caBundle")
                .expect("caBundle set");
            for replica in [&first, &second] {
                match served_certificate(replica.port(), &bundle) {
                    Ok(der) => {
                        observed.serving.insert(fingerprint(&der));
                    }
                    Err(error) => observed.untrusted.push(format!(
                        "{:?}: replica on {}: {error:#}",
                        started.elapsed(),
                        replica.port()
                    )),
                }
            }
            let stored = stored_certificates(&cp);
            observed.signing_cas.insert(stored.ca.parsed.fingerprint());
            observed.max_trusted = observed.max_trusted.max(stored.trusted().len());
            std::thread::sleep(Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        let (applied, failures) = stream.join().expect("the apply stream ran");
        (applied, failures, observed)
    });

    println!(
        "rotation under load: {applied} applies admitted, {} failed, over {:?}; {} serving \
         certificates and {} signing CAs seen, up to {} CAs trusted at once; {} handshakes \
         not trusted by the caBundle",
        failures.len(),
        started.elapsed(),
        observed.serving.len(),
        observed.signing_cas.len(),
        observed.max_trusted,
        observed.untrusted.len(),
    );
    let rotations = first
        .metrics()
        .expect("metrics")
        .lines()
        .filter(|line| line.starts_with("raygate_certificate_rotations_total"))
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .join("\n");
    println!("{rotations}");
    assert!(
        failures.is_empty(),
        "failed applies:\n{}\n--- webhook log\n{}",
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        first.log()
    );
    assert!(observed.untrusted.is_empty(), "{:#?}", observed.untrusted);
    assert!(applied >= 50, "only {applied} applies in {RUN_FOR:?}");
    // 0, 20, 40, 60, 75 (new CA), 95 s.
    assert!(
        observed.serving.len() >= 4,
        "serving certificates seen: {}",
        observed.serving.len()
    );
    assert!(
        observed.signing_cas.len() >= 2,
        "the CA did not rotate:\n{}",
        first.log()
    );
    assert_eq!(observed.max_trusted, 2, "old and new CA trusted together");
    first.stop();
}

#[derive(Default)]
struct Observed {
    serving: BTreeSet<String>,
    signing_cas: BTreeSet<String>,
    max_trusted: usize,
    untrusted: Vec<String>,
}
