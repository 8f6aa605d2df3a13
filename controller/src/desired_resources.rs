//! `status.desiredCPU/Memory/GPU/TPU`: what the cluster asks of the Kubernetes scheduler, the
//! head plus every running group's template times its replicas. Only the templates' own
//! containers count, as in KubeRay.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use raygate_api::RayCluster;
use raygate_api::{accelerators, quantity};

const NANOS: i128 = 1_000_000_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sum {
    nanos: i128,
    binary: bool,
}

impl Sum {
    fn add(&mut self, text: &str, times: i128) {
        if let Some(q) = quantity::parse(text) {
            self.nanos = self.nanos.saturating_add(q.nanos().saturating_mul(times));
            self.binary |= text.ends_with('i');
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct DesiredResources {
    pub cpu: Quantity,
    pub memory: Quantity,
    pub gpu: Quantity,
    pub tpu: Quantity,
}

#[derive(Default)]
struct Totals {
    cpu: Sum,
    memory: Sum,
    gpu: Sum,
    tpu: Sum,
}

impl Totals {
    fn add_template(&mut self, template: &PodTemplateSpec, times: i128) {
        let containers = template.spec.iter().flat_map(|s| s.containers.iter());
        for container in containers {
            let Some(resources) = &container.resources else {
                continue;
            };
            let requests = resources.requests.as_ref();
            let limits = resources.limits.as_ref();
            let mut names: Vec<&String> = requests.iter().flat_map(|r| r.keys()).collect();
            names.extend(limits.iter().flat_map(|l| l.keys()));
            names.sort();
            names.dedup();
            for name in names {
                // A request says what the scheduler reserves; a lone limit implies an equal request.
                let Some(value) = requests
                    .and_then(|r| r.get(name))
                    .or_else(|| limits.and_then(|l| l.get(name)))
                else {
                    continue;
                };
                let sum = match name.as_str() {
                    "cpu" => &mut self.cpu,
                    "memory" => &mut self.memory,
                    "google.com/tpu" => &mut self.tpu,
                    other if accelerators::is_gpu_resource(other) => &mut self.gpu,
                    _ => continue,
                };
                sum.add(&value.0, times);
            }
        }
    }
}

pub fn desired_resources(cluster: &RayCluster) -> DesiredResources {
    let mut totals = Totals::default();
    totals.add_template(&cluster.spec.head_group_spec.template, 1);
    let suspended = cluster.spec.suspend == Some(true);
    for group in cluster.spec.worker_group_specs.iter().flatten() {
        if suspended || group.suspend == Some(true) {
            continue;
        }
        let pods = i128::from(group.replicas.unwrap_or(0).max(0))
            * i128::from(group.num_of_hosts.unwrap_or(1).max(1));
        totals.add_template(&group.template, pods);
    }
    DesiredResources {
        cpu: format(totals.cpu),
        memory: format(totals.memory),
        gpu: format(totals.gpu),
        tpu: format(totals.tpu),
    }
}

/// The canonical text of a sum: binary suffixes when the inputs used them, else decimal.
fn format(sum: Sum) -> Quantity {
    Quantity(format_nanos(sum.nanos, sum.binary))
}

fn format_nanos(nanos: i128, binary: bool) -> String {
    if nanos == 0 {
        return "0".to_string();
    }
    if nanos % NANOS == 0 {
        let whole = nanos / NANOS;
        let suffixes: &[(&str, i128)] = if binary {
            &[
                ("Ei", 1 << 60),
                ("Pi", 1 << 50),
                ("Ti", 1 << 40),
                ("Gi", 1 << 30),
                ("Mi", 1 << 20),
                ("Ki", 1 << 10),
            ]
        } else {
            &[
                ("E", 1_000_000_000_000_000_000),
                ("P", 1_000_000_000_000_000),
                ("T", 1_000_000_000_000),
                ("G", 1_000_000_000),
                ("M", 1_000_000),
                ("k", 1_000),
            ]
        };
        for (suffix, unit) in suffixes {
            if whole % unit == 0 {
                return format!("{}{suffix}", whole / unit);
            }
        }
        return whole.to_string();
    }
    for (suffix, unit) in [("m", 1_000_000i128), ("u", 1_000), ("n", 1)] {
        if nanos % unit == 0 {
            return format!("{}{suffix}", nanos / unit);
        }
    }
    nanos.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_follow_kubernetes_canonical_text() {
        assert_eq!(format_nanos(2 * NANOS, false), "2");
        assert_eq!(format_nanos(2_500_000_000, false), "2500m");
        assert_eq!(format_nanos(6 * (1 << 30) * NANOS, true), "6Gi");
        assert_eq!(format_nanos(40_000_000_000 * NANOS, false), "40G");
        assert_eq!(format_nanos(0, true), "0");
    }

    #[test]
    fn the_sample_asks_for_two_cpus_and_six_gib() {
        let yaml = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: demo}
spec:
  headGroupSpec:
    template:
      spec:
        containers:
        - name: ray-head
          resources:
            limits: {cpu: "1", memory: 5Gi}
            requests: {cpu: "1", memory: 5Gi}
  workerGroupSpecs:
  - groupName: g
    replicas: 1
    minReplicas: 1
    maxReplicas: 5
    template:
      spec:
        containers:
        - name: w
          resources:
            limits: {cpu: "1", memory: 1Gi, nvidia.com/gpu: "1"}
            requests: {cpu: 500m, memory: 1Gi}
"#;
        let value = raygate_api::manifest::parse_documents(yaml).expect("yaml")[0].clone();
        let cluster: RayCluster = serde_json::from_value(value).expect("RayCluster");
        let desired = desired_resources(&cluster);
        assert_eq!(desired.cpu.0, "1500m");
        assert_eq!(desired.memory.0, "6Gi");
        assert_eq!(desired.gpu.0, "1");
        assert_eq!(desired.tpu.0, "0");
    }
}
