//! The head Service (how workers, clients and the dashboard reach the head) and the headless
//! worker Service (DNS names for the hosts of multi-host replicas).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use raygate_api::RayCluster;
use raygate_api::labels::{K8S_APP_NAME, RAY_CLUSTER, RAY_HEADLESS_WORKER_SVC, RAY_NODE_TYPE};

use crate::names;

/// Ports of a head whose container declares none: Ray's own defaults.
const DEFAULT_HEAD_PORTS: [(&str, i32); 5] = [
    ("client", 10001),
    ("gcs-server", 6379),
    ("dashboard", 8265),
    ("metrics", 8080),
    ("serve", 8000),
];
/// Prometheus scrapes Ray's metrics through the head Service.
const METRICS_PORT: (&str, i32) = ("metrics", 8080);

/// The custom `headService` name, else `<cluster>-head-svc`.
pub fn head_service_name(cluster: &RayCluster) -> String {
    cluster
        .spec
        .head_group_spec
        .head_service
        .as_ref()
        .and_then(|s| s.metadata.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::head_service_name(&cluster.name_any()))
}

fn head_app_name(cluster: &RayCluster) -> Option<String> {
    cluster
        .spec
        .head_group_spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(K8S_APP_NAME))
        .cloned()
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        app_protocol: Some("tcp".to_string()),
        ..ServicePort::default()
    }
}

/// The head container's ports (unnamed ones called `<port>-port`), plus `metrics`.
fn head_ports(cluster: &RayCluster) -> Vec<ServicePort> {
    let declared = cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .filter(|p| !p.is_empty());
    let mut ports: Vec<ServicePort> = match declared {
        Some(declared) => declared
            .iter()
            .map(|p| {
                let name = p
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}-port", p.container_port));
                service_port(&name, p.container_port)
            })
            .collect(),
        None => DEFAULT_HEAD_PORTS
            .iter()
            .map(|(name, port)| service_port(name, *port))
            .collect(),
    };
    if !ports
        .iter()
        .any(|p| p.name.as_deref() == Some(METRICS_PORT.0))
    {
        ports.push(service_port(METRICS_PORT.0, METRICS_PORT.1));
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}

pub fn head_service(cluster: &RayCluster) -> Service {
    let cluster_name = cluster.name_any();
    let labels = names::head_service_labels(&cluster_name, head_app_name(cluster).as_deref());
    let head = &cluster.spec.head_group_spec;
    let service_type = head
        .service_type
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "ClusterIP".to_string());
    let owner = crate::pods::controller_reference(cluster);
    let namespace = cluster.namespace();

    if let Some(custom) = &head.head_service {
        // The user's Service, pointed at our head and given the ports Ray needs.
        let mut service = custom.clone();
        service.metadata.name = Some(head_service_name(cluster));
        service.metadata.namespace = namespace;
        service.metadata.owner_references = owner;
        service.metadata.resource_version = None;
        service.metadata.uid = None;
        let mut merged = service.metadata.labels.take().unwrap_or_default();
        merged.extend(labels.clone());
        service.metadata.labels = Some(merged);
        let mut spec = service.spec.take().unwrap_or_default();
        spec.selector = Some(labels);
        if spec.type_.as_deref().unwrap_or("").is_empty() {
            spec.type_ = Some(service_type);
        }
        let ports = spec.ports.get_or_insert_with(Vec::new);
        for port in head_ports(cluster) {
            if !ports.iter().any(|p| p.name == port.name) {
                ports.push(port);
            }
        }
        service.spec = Some(spec);
        return service;
    }

    // Headless by default: clients get the head pod's own address, and workers can resolve
    // the head before it is Ready (they must, to join a GCS that is still starting).
    let headless = service_type == "ClusterIP";
    Service {
        metadata: ObjectMeta {
            name: Some(head_service_name(cluster)),
            namespace,
            labels: Some(labels.clone()),
            annotations: cluster.spec.head_service_annotations.clone(),
            owner_references: owner,
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(head_ports(cluster)),
            type_: Some(service_type),
            cluster_ip: headless.then(|| "None".to_string()),
            publish_not_ready_addresses: headless.then_some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Whether any worker group runs multi-host replicas, which need per-pod DNS names.
/// A copy of the cluster's head Service for the RayJob or RayService that owns the cluster:
/// one stable name (`<owner>-head-svc`) whatever cluster currently serves.
pub fn owner_head_service(
    cluster: &RayCluster,
    name: String,
    labels: BTreeMap<String, String>,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Service {
    let spec = head_service(cluster).spec.map(|mut spec| {
        let selector = spec.selector.get_or_insert_with(BTreeMap::new);
        selector.insert(RAY_CLUSTER.to_string(), cluster.name_any());
        selector.insert(RAY_NODE_TYPE.to_string(), "head".to_string());
        spec
    });
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cluster.namespace(),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// What [`ensure_selecting`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// The selector moved (to another cluster).
    Moved,
    Unchanged,
}

/// Creates the Service, or moves an existing one's selector — only that: users and cloud
/// controllers annotate Services, and the ClusterIP must stay.
pub async fn ensure_selecting(
    api: &kube::Api<Service>,
    desired: &Service,
) -> Result<Ensured, kube::Error> {
    let name = desired.name_any();
    let selector = desired.spec.as_ref().and_then(|s| s.selector.clone());
    match api.get_opt(&name).await? {
        None => match api.create(&kube::api::PostParams::default(), desired).await {
            Ok(_) => Ok(Ensured::Created),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ensured::Unchanged),
            Err(e) => Err(e),
        },
        Some(existing) if existing.spec.as_ref().and_then(|s| s.selector.clone()) != selector => {
            let patch = serde_json::json!({"spec": {"selector": selector}});
            api.patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await?;
            Ok(Ensured::Moved)
        }
        Some(_) => Ok(Ensured::Unchanged),
    }
}

pub fn needs_headless_service(cluster: &RayCluster) -> bool {
    cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .any(|g| g.num_of_hosts.unwrap_or(1) > 1)
}

pub fn headless_worker_service(cluster: &RayCluster) -> Service {
    let cluster_name = cluster.name_any();
    Service {
        metadata: ObjectMeta {
            name: Some(names::headless_service_name(&cluster_name)),
            namespace: cluster.namespace(),
            labels: Some(BTreeMap::from([(
                RAY_HEADLESS_WORKER_SVC.to_string(),
                cluster_name.clone(),
            )])),
            owner_references: crate::pods::controller_reference(cluster),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                (RAY_CLUSTER.to_string(), cluster_name),
                (RAY_NODE_TYPE.to_string(), "worker".to_string()),
            ])),
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> RayCluster {
        let value = raygate_api::manifest::parse_documents(yaml).expect("yaml")[0].clone();
        serde_json::from_value(value).expect("RayCluster")
    }

    const SAMPLE: &str = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: demo, namespace: ns}
spec:
  headGroupSpec:
    template:
      spec:
        containers:
        - name: ray-head
          ports:
          - {containerPort: 6379, name: gcs-server}
          - {containerPort: 8265, name: dashboard}
          - {containerPort: 10001}
"#;

    #[test]
    fn head_service_is_headless_with_sorted_ports_and_metrics() {
        let service = head_service(&cluster(SAMPLE));
        assert_eq!(service.metadata.name.as_deref(), Some("demo-head-svc"));
        let spec = service.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let names: Vec<_> = spec
            .ports
            .expect("ports")
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.port))
            .collect();
        assert_eq!(
            names,
            vec![
                ("10001-port".to_string(), 10001),
                ("dashboard".to_string(), 8265),
                ("gcs-server".to_string(), 6379),
                ("metrics".to_string(), 8080),
            ]
        );
        let selector = spec.selector.expect("selector");
        assert_eq!(selector["ray.io/node-type"], "head");
        assert_eq!(selector["app.kubernetes.io/created-by"], "kuberay-operator");
    }

    #[test]
    fn a_custom_head_service_keeps_its_name_and_gets_our_selector() {
        let yaml = format!(
            "{SAMPLE}    headService:\n      metadata: {{name: custom, labels: {{a: b}}}}\n      spec: {{type: NodePort, selector: {{x: z}}}}\n"
        );
        let service = head_service(&cluster(&yaml));
        assert_eq!(service.metadata.name.as_deref(), Some("custom"));
        assert_eq!(service.metadata.labels.as_ref().expect("labels")["a"], "b");
        let spec = service.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert!(!spec.selector.expect("selector").contains_key("x"));
        assert_eq!(spec.ports.expect("ports").len(), 4);
    }
}
