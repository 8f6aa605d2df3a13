//! How a Ray job gets submitted: the `ray job submit` script run by the submitter Job
//! (K8sJobMode) or the head's sidecar (SidecarMode), and the request raygate itself sends to
//! the dashboard (HTTPMode). The script is idempotent, as KubeRay's is: a retried submitter
//! pod finds the job already submitted and only follows its logs.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use raygate_api::labels::K8S_CREATED_BY;
use raygate_api::{RayClusterSpec, RayJob};

use super::cluster::originated_from;
use crate::dashboard::JobSubmission;
use crate::names::CREATED_BY;

pub const SUBMITTER_CONTAINER: &str = "ray-job-submitter";
/// The submitter Job's retries when `submitterConfig.backoffLimit` is unset.
const DEFAULT_SUBMITTER_BACKOFF_LIMIT: i32 = 2;
const DEFAULT_DASHBOARD_PORT: i32 = 8265;

/// The head container's port named `dashboard`, else Ray's 8265.
pub fn dashboard_port(spec: &RayClusterSpec) -> i32 {
    spec.head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some("dashboard"))
        })
        .map(|p| p.container_port)
        .unwrap_or(DEFAULT_DASHBOARD_PORT)
}

/// The Ray container's image, which has the `ray` CLI the submitter needs.
pub fn head_image(spec: &RayClusterSpec) -> Option<String> {
    spec.head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.first())
        .and_then(|c| c.image.clone())
}

/// `'…'` for the shell, whatever the text holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The submitter's script: wait for the dashboard, submit unless the job already exists, then
/// follow its logs (so the submitter ends when the job does).
pub fn submit_script(job: &RayJob, dashboard_address: &str, job_id: &str) -> String {
    let url = format!("http://{dashboard_address}");
    let health = format!(
        "import urllib.request; urllib.request.urlopen('{url}/api/gcs_healthz', timeout=2)"
    );
    let mut submit = format!("ray job submit --address {url} --no-wait");
    if let Some(runtime_env) = runtime_env_json(job) {
        submit.push_str(&format!(
            " --runtime-env-json {}",
            shell_quote(&runtime_env)
        ));
    }
    if let Some(metadata) = job.spec.metadata.as_ref().filter(|m| !m.is_empty())
        && let Ok(json) = serde_json::to_string(metadata)
    {
        submit.push_str(&format!(" --metadata-json {}", shell_quote(&json)));
    }
    submit.push_str(&format!(" --submission-id {job_id}"));
    if let Some(cpus) = job.spec.entrypoint_num_cpus.filter(|n| *n > 0.0) {
        submit.push_str(&format!(" --entrypoint-num-cpus {cpus}"));
    }
    if let Some(gpus) = job.spec.entrypoint_num_gpus.filter(|n| *n > 0.0) {
        submit.push_str(&format!(" --entrypoint-num-gpus {gpus}"));
    }
    if let Some(resources) = job
        .spec
        .entrypoint_resources
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        submit.push_str(&format!(
            " --entrypoint-resources {}",
            shell_quote(resources)
        ));
    }
    let entrypoint = job.spec.entrypoint.as_deref().unwrap_or_default();
    format!(
        "until python -c {health} >/dev/null 2>&1; do echo 'waiting for the Ray dashboard at {url}'; sleep 2; done ; \
         if ! ray job status --address {url} {job_id} >/dev/null 2>&1 ; then {submit} -- {entrypoint} ; fi ; \
         ray job logs --address {url} --follow {job_id}",
        health = shell_quote(&health),
    )
}

/// `runtimeEnvYAML` as the JSON `ray job submit` and the Jobs API take.
fn runtime_env_json(job: &RayJob) -> Option<String> {
    runtime_env(job).ok().flatten().map(|v| v.to_string())
}

fn runtime_env(job: &RayJob) -> Result<Option<serde_json::Value>, String> {
    let Some(yaml) = job
        .spec
        .runtime_env_yaml
        .as_deref()
        .filter(|y| !y.trim().is_empty())
    else {
        return Ok(None);
    };
    serde_saphyr::from_str::<serde_json::Value>(yaml)
        .map(Some)
        .map_err(|e| format!("spec.runtimeEnvYAML is not valid YAML: {e}"))
}

fn submitter_env(dashboard_address: &str, job_id: &str) -> Vec<EnvVar> {
    [
        ("PYTHONUNBUFFERED", "1"),
        ("RAY_DASHBOARD_ADDRESS", dashboard_address),
        ("RAY_JOB_SUBMISSION_ID", job_id),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    })
    .collect()
}

fn default_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities("500m", "200Mi")),
        limits: Some(quantities("1", "1Gi")),
        ..ResourceRequirements::default()
    }
}

/// Gives a container without a command the submit script, and the submitter's env.
fn complete_container(container: &mut Container, job: &RayJob, address: &str, job_id: &str) {
    if container.command.as_ref().is_none_or(|c| c.is_empty()) {
        container.command = Some(vec!["/bin/bash".into(), "-ce".into(), "--".into()]);
        container.args = Some(vec![submit_script(job, address, job_id)]);
    }
    container
        .env
        .get_or_insert_with(Vec::new)
        .extend(submitter_env(address, job_id));
}

/// The container SidecarMode appends to the head pod.
pub fn sidecar_container(
    job: &RayJob,
    address: &str,
    job_id: &str,
    image: Option<String>,
) -> Container {
    let mut container = Container {
        name: SUBMITTER_CONTAINER.to_string(),
        image,
        resources: Some(default_resources()),
        ..Container::default()
    };
    complete_container(&mut container, job, address, job_id);
    container
}

/// K8sJobMode's submitter: a batch Job named exactly like the RayJob.
pub fn submitter_job(
    job: &RayJob,
    cluster_spec: Option<&RayClusterSpec>,
    dashboard_address: &str,
    job_id: &str,
) -> Job {
    let mut template = job
        .spec
        .submitter_pod_template
        .clone()
        .unwrap_or_else(|| PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: SUBMITTER_CONTAINER.to_string(),
                    image: cluster_spec.and_then(head_image),
                    resources: Some(default_resources()),
                    ..Container::default()
                }],
                restart_policy: Some("Never".to_string()),
                ..PodSpec::default()
            }),
        });
    if let Some(container) = template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.first_mut())
    {
        complete_container(container, job, dashboard_address, job_id);
    }
    let mut labels = originated_from(job);
    labels.insert(K8S_CREATED_BY.to_string(), CREATED_BY.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job.name_any()),
            namespace: job.namespace(),
            labels: Some(labels),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(
                job.spec
                    .submitter_config
                    .as_ref()
                    .and_then(|c| c.backoff_limit)
                    .unwrap_or(DEFAULT_SUBMITTER_BACKOFF_LIMIT),
            ),
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// HTTPMode's request to `POST /api/jobs/`. An error names the field that could not be read.
pub fn http_submission(job: &RayJob, job_id: &str) -> Result<JobSubmission, String> {
    let entrypoint_resources = match job.spec.entrypoint_resources.as_deref() {
        Some(text) if !text.trim().is_empty() => Some(
            serde_json::from_str::<BTreeMap<String, f64>>(text).map_err(|e| {
                format!("spec.entrypointResources is not a JSON object of numbers: {e}")
            })?,
        ),
        _ => None,
    };
    Ok(JobSubmission {
        entrypoint: job.spec.entrypoint.clone().unwrap_or_default(),
        submission_id: job_id.to_string(),
        runtime_env: runtime_env(job)?,
        metadata: job.spec.metadata.clone(),
        entrypoint_num_cpus: job.spec.entrypoint_num_cpus,
        entrypoint_num_gpus: job.spec.entrypoint_num_gpus,
        entrypoint_resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(extra: serde_json::Value) -> RayJob {
        let mut spec = json!({
            "entrypoint": "python -c 'print(1)'",
            "rayClusterSpec": {"headGroupSpec": {"template": {"spec": {"containers": [
                {"name": "ray-head", "image": "rayproject/ray:2.46.0"}
            ]}}}},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        }))
        .expect("a RayJob")
    }

    #[test]
    fn the_script_submits_once_then_follows_logs() {
        let j = job(json!({
            "runtimeEnvYAML": "pip: [\"emoji\"]\nenv_vars: {A: \"it's\"}\n",
            "metadata": {"team": "a"},
            "entrypointNumCpus": 1.5,
            "entrypointResources": "{\"r\": 1}",
        }));
        let script = submit_script(&j, "svc.ns.svc.cluster.local:8265", "nightly-x");
        let url = "http://svc.ns.svc.cluster.local:8265";
        assert!(
            script.contains(&format!("{url}/api/gcs_healthz")),
            "{script}"
        );
        assert!(
            script.contains(&format!(
                "if ! ray job status --address {url} nightly-x >/dev/null 2>&1 ; then ray job submit --address {url} --no-wait"
            )),
            "{script}"
        );
        assert!(
            script.contains(r#"--runtime-env-json '{"env_vars":{"A":"it'\''s"},"pip":["emoji"]}'"#),
            "{script}"
        );
        assert!(
            script.contains(r#"--metadata-json '{"team":"a"}'"#),
            "{script}"
        );
        assert!(
            script.contains("--submission-id nightly-x --entrypoint-num-cpus 1.5"),
            "{script}"
        );
        assert!(
            script.contains(r#"--entrypoint-resources '{"r": 1}'"#),
            "{script}"
        );
        assert!(script.contains("-- python -c 'print(1)' ; fi"), "{script}");
        assert!(script.ends_with(&format!("ray job logs --address {url} --follow nightly-x")));
    }

    #[test]
    fn the_submitter_job_is_named_like_the_rayjob_and_uses_the_head_image() {
        let j = job(json!({"submitterConfig": {"backoffLimit": 5}}));
        let cluster = j.spec.ray_cluster_spec.clone();
        let k8s_job = submitter_job(&j, cluster.as_ref(), "svc:8265", "nightly-x");
        assert_eq!(k8s_job.name_any(), "nightly");
        let spec = k8s_job.spec.clone().expect("spec");
        assert_eq!(spec.backoff_limit, Some(5));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("rayproject/ray:2.46.0"));
        assert_eq!(
            c.command.as_deref(),
            Some(&["/bin/bash".to_string(), "-ce".into(), "--".into()][..])
        );
        let env: Vec<_> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert!(env.contains(&("RAY_JOB_SUBMISSION_ID", Some("nightly-x"))));
        assert!(env.contains(&("RAY_DASHBOARD_ADDRESS", Some("svc:8265"))));
        assert_eq!(k8s_job.owner_references()[0].kind, "RayJob");
    }

    #[test]
    fn a_users_submitter_command_is_kept() {
        let j = job(
            json!({"submitterPodTemplate": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "mine", "image": "me/submitter", "command": ["submit-it"]}
            ]}}}),
        );
        let k8s_job = submitter_job(&j, None, "svc:8265", "id");
        let c = &k8s_job
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0];
        assert_eq!(c.command.as_deref(), Some(&["submit-it".to_string()][..]));
        assert_eq!(c.args, None);
        assert!(
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "RAY_DASHBOARD_ADDRESS")
        );
    }

    #[test]
    fn http_submissions_carry_the_spec_and_name_bad_fields() {
        let j = job(
            json!({"runtimeEnvYAML": "working_dir: /tmp/x", "entrypointResources": "{\"r\": 2}"}),
        );
        let submission = http_submission(&j, "id-1").expect("valid");
        assert_eq!(submission.submission_id, "id-1");
        assert_eq!(
            submission.runtime_env,
            Some(json!({"working_dir": "/tmp/x"}))
        );
        assert_eq!(
            submission.entrypoint_resources,
            Some(BTreeMap::from([("r".to_string(), 2.0)]))
        );
        let bad = job(json!({"entrypointResources": "r=2"}));
        let error = http_submission(&bad, "id").expect_err("not JSON");
        assert!(error.contains("spec.entrypointResources"), "{error}");
    }
}
