//! The Helm chart and kustomize base in `deploy/`: they lint and render in every mode, say what
//! is wrong with bad values, match what raygate itself generates (webhook configurations, CRDs),
//! are accepted by a real API server, and grant each component only what it needs.

use raygate_api::manifest::parse_documents;
use raygate_e2e::cert_manager::{CertManagerBinaries, install_crds as install_cert_manager_crds};
use raygate_e2e::control_plane::workspace_root;
use raygate_e2e::helm::{KUBE_VERSION, RELEASE_NAMESPACE, chart_dir, helm, render};
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::self_managed::{
    SelfManagedOptions, SelfManagedWebhook, register_without_ca_bundle,
};
use raygate_e2e::service_account::kubeconfig_as;
use raygate_e2e::webhook::raygate_binary;
use raygate_e2e::{ControlPlane, Controller, install_policy_crd, install_ray_crds};
use serde_json::Value;

fn documents(yaml: &str) -> Vec<Value> {
    parse_documents(yaml)
        .expect("rendered output is YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendered chart"))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

fn raygate(args: &[&str]) -> String {
    let out = std::process::Command::new(raygate_binary().expect("raygate binary"))
        .args(args)
        .output()
        .expect("run raygate");
    assert!(
        out.status.success(),
        "raygate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn chart_lints_and_renders_in_every_mode() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let lint = helm(&["lint", "--strict", chart, "--kube-version", KUBE_VERSION]).expect("helm");
    assert!(lint.success, "helm lint: {}{}", lint.stdout, lint.stderr);

    let default = documents(&render(&[]).expect("default values render"));
    let deployment = find(&default, "Deployment", "raygate-webhook");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let pdb = find(&default, "PodDisruptionBudget", "raygate-webhook");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let env = container["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "RAYGATE_CERT_MODE" && e["value"] == "self-managed"),
        "self-managed certificates by default: {env:?}"
    );
    // Hooks render with the chart: the pre-delete Job removes the webhook configurations.
    let hook = find(&default, "Job", "raygate-uninstall");
    assert_eq!(
        hook["metadata"]["annotations"]["helm.sh/hook"],
        "pre-delete"
    );
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "NetworkPolicy",
        "Certificate",
        "RayPolicy",
    ] {
        assert!(
            !kinds(&default).contains(&kind.to_owned()),
            "{kind} is opt-in"
        );
    }

    let cert_manager = documents(
        &render(&[
            "--api-versions",
            "cert-manager.io/v1",
            "--set",
            "certificates.mode=certManager",
        ])
        .expect("cert-manager mode renders when its API exists"),
    );
    let certificate = find(&cert_manager, "Certificate", "raygate-webhook");
    assert_eq!(
        certificate["spec"]["dnsNames"][0],
        "raygate-webhook.raygate-system.svc"
    );
    // Signed by the chart's own CA, so renewals keep the CA the API server trusts.
    assert_eq!(certificate["spec"]["issuerRef"]["name"], "raygate-ca");
    let ca = find(&cert_manager, "Certificate", "raygate-webhook-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "raygate-selfsigned");
    let ca_issuer = find(&cert_manager, "Issuer", "raygate-ca");
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        "raygate-webhook-tls-ca"
    );
    let mutating = find(&cert_manager, "MutatingWebhookConfiguration", "raygate");
    assert_eq!(
        mutating["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "raygate-system/raygate-webhook"
    );
    let volumes = &find(&cert_manager, "Deployment", "raygate-webhook")["spec"]["template"]["spec"]
        ["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "raygate-webhook-tls");

    let everything = documents(
        &render(&[
            "--api-versions",
            "monitoring.coreos.com/v1",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.podMonitor.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "crds.upgrade=true",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ])
        .expect("every option renders"),
    );
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "NetworkPolicy",
        "CustomResourceDefinition",
    ] {
        assert!(
            kinds(&everything).contains(&kind.to_owned()),
            "{kind} missing"
        );
    }
    // Templated CRDs belong to the release, and `helm uninstall` would delete them with every
    // Ray object; the keep policy leaves them, as Helm leaves those of crds/.
    let templated_crds: Vec<&Value> = everything
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    let chart_crds =
        std::fs::read_to_string(chart_dir().join("crds/raygate-crds.yaml")).expect("crds");
    assert_eq!(templated_crds.len(), documents(&chart_crds).len());
    for crd in templated_crds {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{} would be deleted by helm uninstall",
            crd["metadata"]["name"]
        );
    }
    let args = &find(&everything, "Deployment", "raygate-controller")["spec"]["template"]["spec"]["containers"]
        [0]["args"];
    assert_eq!(
        args,
        &serde_json::json!(["controller", "--namespace=team-a", "--namespace=team-b"])
    );
}

/// Whether every label a selector names (a Service's `selector`, a `matchLabels`) is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a selector is a map of labels");
    !selector.is_empty() && selector.iter().all(|(key, value)| labels[key] == *value)
}

/// The Deployments whose pods a Service selects.
fn selected_deployments<'a>(docs: &'a [Value], service: &Value) -> Vec<&'a str> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment")
        .filter(|d| {
            selects(
                &service["spec"]["selector"],
                &d["spec"]["template"]["metadata"]["labels"],
            )
        })
        .map(|d| d["metadata"]["name"].as_str().expect("name"))
        .collect()
}

/// What the ServiceMonitors make Prometheus scrape: (Deployment, container port, path) for every
/// endpoint port of every Service a monitor selects, followed through the Service's
/// `targetPort` to the pods it selects. Fails on an endpoint that names no port of any
/// selected Service (a monitor that scrapes nothing).
fn service_monitor_targets(docs: &[Value]) -> Vec<(String, u64, String)> {
    let mut targets = Vec::new();
    for monitor in docs.iter().filter(|d| d["kind"] == "ServiceMonitor") {
        let name = &monitor["metadata"]["name"];
        let selector = &monitor["spec"]["selector"];
        assert!(
            selector["matchExpressions"].is_null()
                && monitor["spec"]["namespaceSelector"].is_null(),
            "{name}: only matchLabels in the monitor's own namespace are followed here"
        );
        let services: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "Service"
                    && d["metadata"]["namespace"] == monitor["metadata"]["namespace"]
                    && selects(&selector["matchLabels"], &d["metadata"]["labels"])
            })
            .collect();
        for endpoint in monitor["spec"]["endpoints"].as_array().expect("endpoints") {
            let mut found = false;
            for service in &services {
                let Some(port) = service["spec"]["ports"]
                    .as_array()
                    .expect("ports")
                    .iter()
                    .find(|p| p["name"] == endpoint["port"])
                else {
                    continue;
                };
                found = true;
                for deployment in selected_deployments(docs, service) {
                    let pod = &find(docs, "Deployment", deployment)["spec"]["template"]["spec"];
                    let container_port = pod["containers"]
                        .as_array()
                        .expect("containers")
                        .iter()
                        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                        .find(|p| {
                            p["name"] == port["targetPort"]
                                || p["containerPort"] == port["targetPort"]
                        })
                        .unwrap_or_else(|| {
                            panic!(
                                "{deployment} has no port {} for {}",
                                port["targetPort"], service["metadata"]["name"]
                            )
                        });
                    targets.push((
                        deployment.to_owned(),
                        container_port["containerPort"]
                            .as_u64()
                            .expect("port number"),
                        endpoint["path"].as_str().expect("path").to_owned(),
                    ));
                }
            }
            assert!(
                found,
                "{name}: endpoint port {} is on no selected Service",
                endpoint["port"]
            );
        }
    }
    targets.sort();
    targets
}

#[test]
fn service_monitors_scrape_the_webhook_and_the_controller() {
    let metrics_from = r#"networkPolicy.metricsFrom=[{"namespaceSelector": {"matchLabels":
        {"kubernetes.io/metadata.name": "monitoring"}}}]"#;
    let docs = documents(
        &render(&[
            "--api-versions",
            "monitoring.coreos.com/v1",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set-json",
            metrics_from,
        ])
        .expect("render"),
    );
    // The controller's metrics Service: its admin port, named for the ServiceMonitor, in front
    // of the controller's pods and no one else's.
    let service = find(&docs, "Service", "raygate-controller-metrics");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8082);
    assert_eq!(
        selected_deployments(&docs, service),
        ["raygate-controller"],
        "the controller metrics Service must select exactly the controller's pods"
    );
    assert_eq!(
        selected_deployments(&docs, find(&docs, "Service", "raygate-webhook")),
        ["raygate-webhook"]
    );
    // Both admin ports are scraped, each once: the webhook's admission and certificate metrics,
    // and the controller's reconcile, cluster-state and RayJob metrics.
    let targets = service_monitor_targets(&docs);
    assert_eq!(
        targets,
        [
            ("raygate-controller".to_owned(), 8082, "/metrics".to_owned()),
            ("raygate-webhook".to_owned(), 8081, "/metrics".to_owned()),
        ]
    );
    // The NetworkPolicy lets the metricsFrom peers reach both scraped ports.
    let policy = find(&docs, "NetworkPolicy", "raygate");
    let metrics_rule = policy["spec"]["ingress"]
        .as_array()
        .expect("ingress")
        .iter()
        .find(|rule| !rule["from"].is_null())
        .expect("a rule for the metricsFrom peers");
    assert_eq!(
        metrics_rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    for (deployment, port, _) in &targets {
        let pod_labels =
            &find(&docs, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels),
            "the NetworkPolicy doesn't cover {deployment}"
        );
        assert!(
            metrics_rule["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["port"] == *port),
            "the NetworkPolicy blocks scrapes of {deployment}:{port}"
        );
    }

    // Admission only: no controller, so neither its Service nor its monitor.
    let webhook_only = documents(
        &render(&[
            "--api-versions",
            "monitoring.coreos.com/v1",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "controller.enabled=false",
        ])
        .expect("render"),
    );
    assert_eq!(
        service_monitor_targets(&webhook_only),
        [("raygate-webhook".to_owned(), 8081, "/metrics".to_owned())]
    );
    assert!(
        !webhook_only
            .iter()
            .any(|d| d["metadata"]["name"] == "raygate-controller-metrics"),
        "no controller metrics Service without the controller"
    );
}

#[test]
fn bad_values_are_refused_with_what_is_wrong() {
    let cases: [(&[&str], &str); 5] = [
        (&["--set", "webhook.replicas=0"], "webhook/replicas"),
        (&["--set", "certificates.mode=vault"], "certificates/mode"),
        (&["--set", "logFormat=xml"], "logFormat"),
        (
            &[
                "--set",
                "controller.replicas=2",
                "--set",
                "controller.leaderElection=false",
            ],
            "controller.replicas=2 needs controller.leaderElection=true",
        ),
        (
            &["--set", "certificates.mode=certManager"],
            "cert-manager.io/v1 CRDs are not installed",
        ),
    ];
    for (args, phrase) in cases {
        let error = render(args).expect_err("bad values must not render");
        assert!(
            error.to_string().contains(phrase),
            "{args:?}: expected {phrase:?} in {error}"
        );
    }
}

#[test]
fn chart_webhook_configurations_match_raygate_webhook_config() {
    let chart = documents(&render(&[]).expect("render"));
    let generated: Value = serde_json::from_str(&raygate(&[
        "webhook-config",
        "--service",
        "raygate-webhook",
        "--namespace",
        RELEASE_NAMESPACE,
        "--output",
        "json",
    ]))
    .expect("JSON");
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let ours = generated["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["kind"] == kind)
            .expect("generated");
        let in_chart = find(&chart, kind, "raygate");
        assert_eq!(
            in_chart["webhooks"], ours["webhooks"],
            "{kind}: the chart drifted from `raygate webhook-config`"
        );
    }
}

#[test]
fn chart_crds_and_kustomize_base_are_up_to_date() {
    let crds = std::fs::read_to_string(chart_dir().join("crds/raygate-crds.yaml")).expect("crds");
    assert_eq!(
        documents(&crds),
        documents(&raygate(&["crd"])),
        "deploy/helm/raygate/crds/raygate-crds.yaml differs from `raygate crd`: regenerate it"
    );
    let base = std::fs::read_to_string(workspace_root().join("deploy/kustomize/raygate.yaml"))
        .expect("kustomize base");
    let rendered = render(&["--include-crds", "--no-hooks"]).expect("render");
    assert_eq!(
        documents(&base),
        documents(&rendered),
        "deploy/kustomize/raygate.yaml differs from the chart: run deploy/render-kustomize.sh"
    );
}

fn kubectl_ok(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let out = cp.kubectl(args, stdin).expect("run kubectl");
    assert!(out.success(), "kubectl {args:?} failed:\n{out}");
    out.stdout
}

/// Applies the chart's ServiceAccounts, (Cluster)Roles and their bindings, without the
/// uninstall hook's.
fn apply_chart_rbac(cp: &ControlPlane, rendered: &str) {
    let rbac: Vec<Value> = documents(rendered)
        .into_iter()
        .filter(|d| {
            let kind = d["kind"].as_str().unwrap_or_default();
            matches!(
                kind,
                "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
            ) && d["metadata"]["annotations"]["helm.sh/hook"].is_null()
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": rbac});
    kubectl_ok(cp, &["apply", "-f", "-"], Some(&list.to_string()));
}

fn can(cp: &ControlPlane, account: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let user = format!("system:serviceaccount:{RELEASE_NAMESPACE}:{account}");
    let mut args = vec!["auth", "can-i", verb, "-n", namespace, "--as", &user];
    // `kind/name` names an object; `kind/status` a subresource, which kubectl takes apart.
    match resource.strip_suffix("/status") {
        Some(kind) => args.extend([kind, "--subresource=status"]),
        None => args.push(resource),
    }
    let out = cp.kubectl(&args, None).expect("run kubectl");
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i answered {other:?}: {out}"),
    }
}

#[test]
fn rendered_chart_is_accepted_by_the_api_server_with_least_privilege_rbac() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    kubectl_ok(&cp, &["create", "namespace", RELEASE_NAMESPACE], None);
    kubectl_ok(&cp, &["create", "namespace", "team-a"], None);
    // The chart's crds/ equal these (chart_crds_and_kustomize_base_are_up_to_date).
    install_ray_crds(&cp).expect("Ray CRDs");
    install_policy_crd(&cp).expect("RayPolicy CRD");

    // A policy from values, as an admin would give it: the API server checks it against the
    // RayPolicy CRD's schema.
    let policy = r#"{"team-gpus": {"match": {"namespaces": ["team-a"]}, "action": "Deny",
        "rules": {"maxGpusPerCluster": {"limit": 16}, "requiredLabels": {"keys": ["team"]}}}}"#;
    let policies = format!("policies={policy}");
    let rendered = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        &policies,
    ])
    .expect("render");
    let dry_run = kubectl_ok(
        &cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&rendered),
    );
    for created in [
        "deployment.apps/raygate-webhook created (server dry run)",
        "deployment.apps/raygate-controller created (server dry run)",
        "raypolicy.raygate.io/team-gpus created (server dry run)",
        "networkpolicy.networking.k8s.io/raygate created (server dry run)",
    ] {
        assert!(
            dry_run.contains(created),
            "{created} missing in:\n{dry_run}"
        );
    }
    // The kustomize base, as `kubectl apply -k` builds it (kubectl's own kustomize): the same
    // schema check by the API server. Namespaced objects need their namespace to exist, which a
    // dry run of the base's Namespace doesn't create; it exists here.
    let kustomize = workspace_root().join("deploy/kustomize");
    let kustomize = kustomize.to_str().expect("UTF-8 path");
    let dry_run = kubectl_ok(&cp, &["apply", "-k", kustomize, "--dry-run=server"], None);
    for accepted in [
        "namespace/raygate-system configured (server dry run)",
        "customresourcedefinition.apiextensions.k8s.io/rayclusters.ray.io",
        "deployment.apps/raygate-webhook created (server dry run)",
        "deployment.apps/raygate-controller created (server dry run)",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/raygate created (server dry run)",
        "poddisruptionbudget.policy/raygate-webhook created (server dry run)",
        "service/raygate-controller-metrics created (server dry run)",
    ] {
        assert!(
            dry_run.contains(accepted),
            "{accepted} missing in:\n{dry_run}"
        );
    }

    // The RBAC for real, then ask the API server what each ServiceAccount may do.
    apply_chart_rbac(&cp, &rendered);

    let webhook = "raygate-webhook";
    let controller = "raygate-controller";
    // What the components need.
    assert!(can(
        &cp,
        webhook,
        "watch",
        "raypolicies.raygate.io",
        "default"
    ));
    assert!(can(
        &cp,
        webhook,
        "patch",
        "raypolicies.raygate.io/status",
        "default"
    ));
    assert!(can(&cp, webhook, "list", "namespaces", "default"));
    assert!(can(&cp, webhook, "create", "secrets", RELEASE_NAMESPACE));
    assert!(can(
        &cp,
        webhook,
        "update",
        "secrets/raygate-webhook-tls",
        RELEASE_NAMESPACE
    ));
    assert!(can(
        &cp,
        webhook,
        "patch",
        "validatingwebhookconfigurations/raygate",
        "default"
    ));
    assert!(can(&cp, controller, "create", "pods", "team-a"));
    assert!(can(&cp, controller, "delete", "services", "team-a"));
    assert!(can(
        &cp,
        controller,
        "update",
        "rayclusters.ray.io/status",
        "team-a"
    ));
    assert!(can(
        &cp,
        controller,
        "update",
        "leases/raygate-controller",
        RELEASE_NAMESPACE
    ));
    // What they must not be able to do.
    assert!(!can(
        &cp,
        webhook,
        "patch",
        "raypolicies.raygate.io",
        "default"
    ));
    for namespace in ["default", "team-a", "kube-system"] {
        assert!(!can(&cp, webhook, "get", "secrets", namespace));
        // The controller reads a Ray cluster's auth token Secret by name (authOptions), as
        // KubeRay's operator does, but can never list or watch Secrets.
        assert!(!can(&cp, controller, "list", "secrets", namespace));
        assert!(!can(&cp, controller, "watch", "secrets", namespace));
        assert!(!can(&cp, controller, "update", "secrets", namespace));
        assert!(!can(&cp, webhook, "create", "pods", namespace));
    }
    assert!(!can(
        &cp,
        webhook,
        "get",
        "secrets/other",
        RELEASE_NAMESPACE
    ));
    assert!(!can(
        &cp,
        webhook,
        "patch",
        "validatingwebhookconfigurations/someone-elses",
        "default"
    ));
    // A RayJob's or RayService's own clusters are the controller's to delete; users' specs are
    // never its to rewrite.
    assert!(can(
        &cp,
        controller,
        "delete",
        "rayclusters.ray.io",
        "team-a"
    ));
    assert!(!can(&cp, controller, "update", "rayjobs.ray.io", "team-a"));
    assert!(!can(
        &cp,
        controller,
        "update",
        "rayservices.ray.io",
        "team-a"
    ));
    assert!(can(
        &cp,
        controller,
        "update",
        "rayservices.ray.io/status",
        "team-a"
    ));
    assert!(!can(
        &cp,
        controller,
        "update",
        "leases/kube-scheduler",
        "kube-system"
    ));
}

#[test]
fn cert_manager_mode_is_accepted_by_the_api_server() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    kubectl_ok(&cp, &["create", "namespace", RELEASE_NAMESPACE], None);
    // cert-manager's CRDs, as cert-manager's own tests install them; only its API is needed.
    let cert_manager =
        CertManagerBinaries::locate().expect("cert-manager (tests/certmanager/build.sh)");
    install_cert_manager_crds(&cp, &cert_manager.crds).expect("cert-manager's CRDs");

    let rendered = render(&[
        "--api-versions",
        "cert-manager.io/v1",
        "--set",
        "certificates.mode=certManager",
    ])
    .expect("render");
    // What the API server would store: every object checked against its built-in or CRD schema.
    let out = kubectl_ok(
        &cp,
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&rendered),
    );
    let applied: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
    let applied: Vec<Value> = match applied["kind"].as_str() {
        Some("List") => applied["items"].as_array().expect("items").clone(),
        _ => vec![applied],
    };
    let stored = |kind: &str, name: &str| {
        applied
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the API server did not accept {kind}/{name}:\n{out}"))
    };
    stored("Issuer", "raygate-selfsigned");
    assert_eq!(
        stored("Issuer", "raygate-ca")["spec"]["ca"]["secretName"],
        "raygate-webhook-tls-ca"
    );
    assert_eq!(
        stored("Certificate", "raygate-webhook-ca")["spec"]["isCA"],
        true
    );
    let serving = stored("Certificate", "raygate-webhook");
    assert_eq!(serving["spec"]["issuerRef"]["name"], "raygate-ca");
    assert_eq!(
        serving["spec"]["dnsNames"][0],
        "raygate-webhook.raygate-system.svc"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert_eq!(
            stored(kind, "raygate")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "raygate-system/raygate-webhook",
            "{kind}: the cainjector would not fill its caBundle"
        );
    }
    stored("Deployment", "raygate-webhook");
    stored("Deployment", "raygate-controller");
}

#[test]
fn uninstall_hook_removes_the_webhook_configurations_as_its_service_account() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    kubectl_ok(&cp, &["create", "namespace", RELEASE_NAMESPACE], None);
    // Configurations pointing nowhere: exactly what blocks Ray objects after a bad uninstall.
    let configs = raygate(&[
        "webhook-config",
        "--url",
        "https://127.0.0.1:9",
        "--namespace",
        RELEASE_NAMESPACE,
    ]);
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&configs));
    let hook: Vec<Value> = documents(&render(&[]).expect("render"))
        .into_iter()
        .filter(|d| {
            d["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete" && d["kind"] != "Job"
        })
        .collect();
    let job = documents(&render(&[]).expect("render"))
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .expect("the hook Job");
    let args: Vec<String> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": hook});
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(&list.to_string()));

    let kubeconfig =
        kubeconfig_as(&cp, RELEASE_NAMESPACE, "raygate-uninstall").expect("kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("UTF-8").to_owned();
    let mut hook_args: Vec<&str> = args.iter().map(String::as_str).collect();
    hook_args.extend(["--kubeconfig", &kubeconfig]);
    let first = raygate(&hook_args);
    assert!(
        first.contains("MutatingWebhookConfiguration/raygate deleted"),
        "{first}"
    );
    assert!(
        first.contains("ValidatingWebhookConfiguration/raygate deleted"),
        "{first}"
    );
    // A retried hook finds nothing and still succeeds.
    let again = raygate(&hook_args);
    assert!(again.contains("not found"), "{again}");
    let left = kubectl_ok(
        &cp,
        &[
            "get",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations",
            "-o",
            "name",
        ],
        None,
    );
    assert!(!left.contains("raygate"), "{left}");
}

/// Waits up to 30 s for `kubectl get` to print something containing `needle`.
fn eventually_contains(cp: &ControlPlane, args: &[&str], needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = cp.kubectl(args, None).expect("run kubectl");
        if out.success() && out.stdout.contains(needle) {
            return out.stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl {args:?} never showed {needle:?}:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn webhook_and_controller_work_as_their_service_accounts_with_the_chart_rbac() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    kubectl_ok(&cp, &["create", "namespace", RELEASE_NAMESPACE], None);
    kubectl_ok(&cp, &["create", "namespace", "team-a"], None);
    install_ray_crds(&cp).expect("Ray CRDs");
    install_policy_crd(&cp).expect("RayPolicy CRD");
    apply_chart_rbac(&cp, &render(&[]).expect("render"));

    // The webhook as raygate-webhook: its own certificates (Secret, caBundle), policy and
    // namespace watches.
    let webhook_kubeconfig =
        kubeconfig_as(&cp, RELEASE_NAMESPACE, "raygate-webhook").expect("kubeconfig");
    let webhook = SelfManagedWebhook::start(
        &cp,
        &SelfManagedOptions {
            kubeconfig: Some(webhook_kubeconfig),
            ..SelfManagedOptions::default()
        },
    )
    .expect("the webhook starts as its ServiceAccount");
    register_without_ca_bundle(&cp, webhook.port()).expect("register the webhooks");
    // The controller as raygate-controller, leader-elected like the chart runs it.
    let controller_kubeconfig =
        kubeconfig_as(&cp, RELEASE_NAMESPACE, "raygate-controller").expect("kubeconfig");
    let controller = Controller::start_as(
        &controller_kubeconfig,
        &[
            "--leader-elect",
            "--leader-election-namespace=raygate-system",
        ],
    )
    .expect("the controller starts as its ServiceAccount");

    // The happy path: admitted with defaults, materialized, status and events written.
    let sample = sample_text("ray-cluster.sample.yaml").expect("sample");
    let applied = eventually_apply(&cp, &sample);
    assert!(applied.contains("raycluster-kuberay created"), "{applied}");
    let stored = kubectl_ok(
        &cp,
        &[
            "get",
            "raycluster",
            "raycluster-kuberay",
            "-n",
            "team-a",
            "-o",
            "json",
        ],
        None,
    );
    assert!(
        stored.contains("raygate.io/normalized"),
        "not normalized: {stored}"
    );
    eventually_contains(
        &cp,
        &[
            "get",
            "pods",
            "-n",
            "team-a",
            "-l",
            "ray.io/cluster=raycluster-kuberay",
            "-o",
            "name",
        ],
        "raycluster-kuberay-head",
    );
    eventually_contains(
        &cp,
        &["get", "services", "-n", "team-a", "-o", "name"],
        "raycluster-kuberay-head-svc",
    );
    eventually_contains(
        &cp,
        &[
            "get",
            "raycluster",
            "raycluster-kuberay",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.status.desiredWorkerReplicas}",
        ],
        "1",
    );
    eventually_contains(
        &cp,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
        "Created",
    );

    // A RayPolicy applied now is enforced by the webhook through its watch.
    let policy = r#"
apiVersion: raygate.io/v1alpha1
kind: RayPolicy
metadata:
  name: small-groups
spec:
  match:
    namespaces: [team-a]
  action: Deny
  rules:
    maxReplicasPerGroup:
      limit: 1
"#;
    kubectl_ok(&cp, &["apply", "-f", "-"], Some(policy));
    let big = sample
        .replace("name: raycluster-kuberay", "name: big")
        .replace("replicas: 1", "replicas: 3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let out = cp
            .kubectl(["apply", "-n", "team-a", "-f", "-"], Some(&big))
            .expect("run kubectl");
        if !out.success() && out.stderr.contains("small-groups") {
            break;
        }
        assert!(
            out.success() || out.stderr.contains("small-groups"),
            "unexpected answer: {out}"
        );
        if out.success() {
            kubectl_ok(&cp, &["delete", "raycluster", "big", "-n", "team-a"], None);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the policy was never enforced: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    drop(controller);
    drop(webhook);
}

/// `kubectl apply` into team-a, retried while the freshly injected caBundle propagates.
fn eventually_apply(cp: &ControlPlane, manifest: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = cp
            .kubectl(["apply", "-n", "team-a", "-f", "-"], Some(manifest))
            .expect("run kubectl");
        if out.success() {
            return out.stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl apply kept failing: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn with_watch_namespaces_the_controller_can_act_only_there() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    for namespace in [RELEASE_NAMESPACE, "team-a", "team-b"] {
        kubectl_ok(&cp, &["create", "namespace", namespace], None);
    }
    install_ray_crds(&cp).expect("Ray CRDs");
    apply_chart_rbac(
        &cp,
        &render(&["--set", "watchNamespaces={team-a}"]).expect("render"),
    );
    let controller = "raygate-controller";
    assert!(can(&cp, controller, "create", "pods", "team-a"));
    assert!(can(
        &cp,
        controller,
        "watch",
        "rayclusters.ray.io",
        "team-a"
    ));
    assert!(can(&cp, controller, "get", "secrets", "team-a"));
    for namespace in ["team-b", "default", "kube-system", RELEASE_NAMESPACE] {
        // Ray token auth Secrets too are read only where the controller reconciles.
        for (verb, resource) in [
            ("create", "pods"),
            ("list", "rayclusters.ray.io"),
            ("get", "secrets"),
            ("create", "secrets"),
        ] {
            assert!(
                !can(&cp, controller, verb, resource, namespace),
                "{verb} {resource} in {namespace}"
            );
        }
    }
    assert!(can(
        &cp,
        controller,
        "update",
        "leases/raygate-controller",
        RELEASE_NAMESPACE
    ));
}

/// A controller whose RBAC lacks `rayclusters/status` (a trimmed ClusterRole) still builds the
/// cluster, and says on the RayCluster why its status stays empty: a Warning event carrying
/// the API server's "forbidden". Once the rule is back, the status is written.
#[test]
fn a_status_write_the_rbac_forbids_is_reported_as_a_warning_event() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    kubectl_ok(&cp, &["create", "namespace", RELEASE_NAMESPACE], None);
    kubectl_ok(&cp, &["create", "namespace", "team-a"], None);
    install_ray_crds(&cp).expect("Ray CRDs");
    let rendered = render(&[]).expect("render");
    let trimmed: Vec<Value> = documents(&rendered)
        .into_iter()
        .map(|mut doc| {
            if doc["kind"] == "ClusterRole" && doc["metadata"]["name"] == "raygate-controller" {
                let rules = doc["rules"].as_array_mut().expect("rules");
                let before = rules.len();
                rules.retain(|r| r["resources"] != serde_json::json!(["rayclusters/status"]));
                assert_eq!(rules.len(), before - 1, "the status rule was not found");
            }
            doc
        })
        .collect();
    let trimmed = trimmed
        .iter()
        .map(|d| serde_json::to_string(d).expect("JSON"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    apply_chart_rbac(&cp, &trimmed);
    assert!(!can(
        &cp,
        "raygate-controller",
        "patch",
        "rayclusters/status",
        "team-a"
    ));

    let kubeconfig =
        kubeconfig_as(&cp, RELEASE_NAMESPACE, "raygate-controller").expect("kubeconfig");
    let controller = Controller::start_as(&kubeconfig, &[]).expect("the controller starts");
    let sample = sample_text("ray-cluster.sample.yaml").expect("sample");
    kubectl_ok(&cp, &["apply", "-n", "team-a", "-f", "-"], Some(&sample));
    eventually_contains(
        &cp,
        &[
            "get",
            "pods",
            "-n",
            "team-a",
            "-l",
            "ray.io/cluster=raycluster-kuberay",
            "-o",
            "name",
        ],
        "worker",
    );
    let events = eventually_contains(
        &cp,
        &[
            "get",
            "events",
            "-n",
            "team-a",
            "--field-selector=type=Warning,reason=FailedToUpdateStatus",
            "-o",
            "json",
        ],
        "FailedToUpdateStatus",
    );
    assert!(events.contains("forbidden"), "{events}");
    assert!(events.contains("raycluster-kuberay"), "{events}");
    let metrics = controller.metrics().expect("metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "raygate_controller_reconcile_errors_total{kind=\"RayCluster\",error=\"PatchStatus\"}"
        )),
        "{metrics}"
    );

    apply_chart_rbac(&cp, &rendered);
    eventually_contains(
        &cp,
        &[
            "get",
            "raycluster",
            "raycluster-kuberay",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.status.desiredWorkerReplicas}",
        ],
        "1",
    );
}
