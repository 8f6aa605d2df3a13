//! RayJobs as a user sees them, against a real API server and a real Ray head: the job's
//! cluster is created, the job is submitted and followed through Ray's dashboard, its status
//! walks KubeRay's jobDeploymentStatus states, and its cluster goes away when the job is done.
//!
//! There is no kubelet: a background task marks the job clusters' pods Ready with loopback
//! IPs, and the controller reaches the local Ray head through `--dashboard-url-override`.
//! In K8sJobMode the test runs the submitter Job's own script (against the local head) where a
//! pod would, then records the Job's completion as the Job controller would.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use raygate_api::{RayCluster, RayJob};
use raygate_controller::dashboard::{DashboardClient, JobStatus};
use raygate_e2e::job_controller;
use raygate_e2e::ray_env::RayEnv;
use raygate_e2e::wait::wait_until;
use serde_json::{Value, json};

const NS: &str = "default";
const TIMEOUT: Duration = Duration::from_secs(90);

type Env = RayEnv;

async fn start() -> Env {
    RayEnv::start(NS)
        .await
        .expect("control plane, raygate and a Ray head start (tests/controlplane/build.sh, tests/tools/install-ray.sh)")
}

/// What these tests do with the environment, failing the test on any error.
trait JobEnv {
    fn kubectl_must(&self, args: &[&str], stdin: Option<&str>) -> String;
    fn must_apply(&self, yaml: &str);
    fn jobs(&self) -> Api<RayJob>;
    fn clusters(&self) -> Api<RayCluster>;
    fn dashboard(&self) -> DashboardClient;
    fn python(&self, code: &str) -> String;
    async fn wait_for_deployment_status(&self, name: &str, wanted: &str) -> RayJob;
    async fn wait_until_gone(&self, cluster: &str);
    fn job_events(&self, job: &str) -> Vec<(String, String, String)>;
}

impl JobEnv for Env {
    fn kubectl_must(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.kubectl_ok(args, stdin).expect("kubectl succeeds")
    }

    fn must_apply(&self, yaml: &str) {
        self.kubectl_must(&["apply", "-f", "-"], Some(yaml));
    }

    fn jobs(&self) -> Api<RayJob> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn clusters(&self) -> Api<RayCluster> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn dashboard(&self) -> DashboardClient {
        DashboardClient::new(&self.head.dashboard_url(), Duration::from_secs(5))
            .expect("a dashboard client")
    }

    /// A shell command running Python with Ray installed (the Ray head's own interpreter).
    fn python(&self, code: &str) -> String {
        format!("{} -c \"{code}\"", self.head.python().display())
    }

    async fn wait_for_deployment_status(&self, name: &str, wanted: &str) -> RayJob {
        wait_until(
            &format!("RayJob {name} jobDeploymentStatus {wanted}"),
            TIMEOUT,
            || async {
                let job = self.jobs().get(name).await.expect("get the RayJob");
                let status = job
                    .status
                    .as_ref()
                    .and_then(|s| s.job_deployment_status.as_deref());
                (status == Some(wanted)).then_some(job)
            },
        )
        .await
    }

    async fn wait_until_gone(&self, cluster: &str) {
        wait_until(
            &format!("RayCluster {cluster} deleted"),
            TIMEOUT,
            || async {
                self.clusters()
                    .get_opt(cluster)
                    .await
                    .expect("get the RayCluster")
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }

    fn job_events(&self, job: &str) -> Vec<(String, String, String)> {
        self.events("RayJob", job).expect("kubectl get events")
    }
}

fn rayjob(name: &str, spec: Value) -> String {
    let mut spec = spec;
    spec["rayClusterSpec"] = json!({
        "rayVersion": "2.46.0",
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [{
                "name": "ray-head",
                "image": "rayproject/ray:2.46.0",
                "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
            }]}},
        },
    });
    let job = json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    });
    serde_json::to_string(&job).expect("JSON")
}

fn status_field<'a>(
    job: &'a RayJob,
    pick: impl Fn(&'a raygate_api::RayJobStatus) -> Option<&'a str>,
) -> &'a str {
    job.status.as_ref().and_then(pick).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_job_runs_on_its_own_cluster_which_is_deleted_after_the_ttl() {
    let env = start().await;
    env.must_apply(&rayjob(
        "hello",
        json!({
            "submissionMode": "HTTPMode",
            "entrypoint": env.python("print('hello from raygate')"),
            "shutdownAfterJobFinishes": true,
            "ttlSecondsAfterFinished": 3,
        }),
    ));

    let running = env.wait_for_deployment_status("hello", "Running").await;
    let status = running.status.clone().unwrap_or_default();
    let cluster = status.ray_cluster_name.clone().expect("a cluster name");
    assert!(cluster.starts_with("hello-"), "{cluster}");
    assert_eq!(
        status.dashboard_url.as_deref(),
        Some(format!("{cluster}-head-svc.default.svc.cluster.local:8265").as_str()),
        "dashboardURL names the head Service, as KubeRay's does"
    );
    let created = env
        .clusters()
        .get(&cluster)
        .await
        .expect("the job's RayCluster");
    assert_eq!(created.labels()["ray.io/originated-from-crd"], "RayJob");
    assert_eq!(created.labels()["ray.io/originated-from-cr-name"], "hello");
    assert_eq!(created.owner_references()[0].name, "hello");
    let head_svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(env.client.clone(), NS)
        .get("hello-head-svc")
        .await
        .expect("the RayJob's head Service, named for the job");
    let selector = head_svc.spec.and_then(|s| s.selector).unwrap_or_default();
    assert_eq!(selector.get("ray.io/cluster"), Some(&cluster));
    assert!(
        running
            .finalizers()
            .iter()
            .any(|f| f == "ray.io/rayjob-finalizer"),
        "{:?}",
        running.finalizers()
    );

    let done = env.wait_for_deployment_status("hello", "Complete").await;
    assert_eq!(
        status_field(&done, |s| s.job_status.as_deref()),
        "SUCCEEDED"
    );
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.start_time.is_some() && status.end_time.is_some());
    let info = status
        .ray_job_info
        .clone()
        .expect("rayJobInfo from the dashboard");
    assert!(
        info.start_time.is_some() && info.end_time.is_some(),
        "{info:?}"
    );

    // Ray itself ran the job under the RayJob's submission id.
    let job_id = status.job_id.clone().expect("a job id");
    let ray_job = env
        .dashboard()
        .job_info(&job_id)
        .await
        .expect("the dashboard answers")
        .expect("Ray knows the job");
    assert_eq!(ray_job.status, JobStatus::Succeeded);

    env.wait_until_gone(&cluster).await;
    let metrics = env.controller_metrics().expect("controller metrics");
    assert!(
        metrics.contains("raygate_job_outcomes_total{outcome=\"Complete\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("raygate_job_execution_duration_seconds_count{outcome=\"Complete\"} 1"),
        "{metrics}"
    );
    env.expect_event_reasons(
        "RayJob",
        "hello",
        &[
            "CreatedRayCluster",
            "SubmittedRayJob",
            "Running",
            "Complete",
            "DeletedRayCluster",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_on_a_new_cluster_then_fails() {
    let env = start().await;
    env.must_apply(&rayjob(
        "flaky",
        json!({
            "submissionMode": "HTTPMode",
            "entrypoint": env.python("import sys; sys.exit(3)"),
            "backoffLimit": 1,
        }),
    ));
    // Every attempt has its own cluster and Ray job: watch both change while it retries.
    let mut clusters = std::collections::BTreeSet::new();
    let mut job_ids = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let failed = loop {
        let job = env.jobs().get("flaky").await.expect("get the RayJob");
        let status = job.status.clone().unwrap_or_default();
        clusters.extend(status.ray_cluster_name);
        job_ids.extend(status.job_id);
        if status.job_deployment_status.as_deref() == Some("Failed") {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for Failed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(
        status.failed,
        Some(2),
        "two attempts: the first and one retry"
    );
    assert_eq!(status.job_status.as_deref(), Some("FAILED"));
    assert_eq!(status.reason.as_deref(), Some("AppFailed"));
    let message = status.message.unwrap_or_default();
    assert!(message.contains("exit code 3"), "{message}");
    assert_eq!(clusters.len(), 2, "a new cluster per attempt: {clusters:?}");
    assert_eq!(job_ids.len(), 2, "a new Ray job per attempt: {job_ids:?}");
    let first = clusters
        .iter()
        .find(|c| Some(*c) != status.ray_cluster_name.as_ref());
    if let Some(first) = first {
        env.wait_until_gone(first).await;
    }
    let events = env.job_events("flaky");
    assert!(
        events.iter().any(|e| e.0 == "Warning" && e.1 == "Retrying"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_job_creates_nothing_until_resumed() {
    let env = start().await;
    env.must_apply(&rayjob(
        "queued",
        json!({
            "submissionMode": "HTTPMode",
            "entrypoint": env.python("print('resumed')"),
            "shutdownAfterJobFinishes": true,
            "suspend": true,
        }),
    ));
    env.wait_for_deployment_status("queued", "Suspended").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clusters = env
        .clusters()
        .list(&Default::default())
        .await
        .expect("list");
    assert!(clusters.items.is_empty(), "a suspended job has no cluster");

    env.kubectl_must(
        &[
            "patch",
            "rayjob",
            "queued",
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ],
        None,
    );
    let done = env.wait_for_deployment_status("queued", "Complete").await;
    assert_eq!(
        status_field(&done, |s| s.job_status.as_deref()),
        "SUCCEEDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_rayjob_stops_its_ray_job() {
    let env = start().await;
    env.must_apply(&rayjob(
        "long",
        json!({
            "submissionMode": "HTTPMode",
            "entrypoint": env.python("import time; time.sleep(600)"),
        }),
    ));
    let job = wait_until("the Ray job RUNNING", TIMEOUT, || async {
        let job = env.jobs().get("long").await.expect("get");
        (status_field(&job, |s| s.job_status.as_deref()) == "RUNNING").then_some(job)
    })
    .await;
    let job_id = job.status.and_then(|s| s.job_id).expect("a job id");
    env.kubectl_must(
        &["delete", "rayjob", "long", "--wait=true", "--timeout=60s"],
        None,
    );
    let dashboard = env.dashboard();
    wait_until("the Ray job STOPPED", TIMEOUT, || async {
        let info = dashboard.job_info(&job_id).await.ok().flatten()?;
        (info.status == JobStatus::Stopped).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_job_mode_submits_through_a_submitter_job() {
    let env = start().await;
    env.must_apply(&rayjob(
        "batch",
        json!({"entrypoint": env.python("print('submitted by the Job')")}),
    ));
    let running = env.wait_for_deployment_status("batch", "Running").await;
    let status = running.status.clone().unwrap_or_default();
    let job_id = status.job_id.clone().expect("a job id");
    let in_cluster = format!(
        "http://{}",
        status.dashboard_url.clone().expect("dashboardURL")
    );

    let jobs: Api<Job> = Api::namespaced(env.client.clone(), NS);
    let submitter = jobs
        .get("batch")
        .await
        .expect("the submitter Job, named like the RayJob");
    assert_eq!(submitter.owner_references()[0].name, "batch");
    let spec = submitter.spec.clone().expect("spec");
    assert_eq!(spec.backoff_limit, Some(2));
    let container = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(container.image.as_deref(), Some("rayproject/ray:2.46.0"));
    let script = container.args.as_ref().expect("the submit script")[0].clone();
    assert!(
        script.contains(&format!("--submission-id {job_id}")),
        "{script}"
    );

    // Where the pod would run it: the same script, against the local head.
    let local = script.replace(&in_cluster, &env.head.dashboard_url());
    let bin = env.head.python().parent().expect("venv bin").to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for attempt in 0..2 {
        // A retried submitter pod finds the job submitted and only follows it.
        let out = Command::new("bash")
            .args(["-ce", "--", &local])
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "attempt {attempt}: {log}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            log.contains("submitted by the Job"),
            "attempt {attempt}: {log}"
        );
    }

    // The Job controller's part: the submitter pod succeeded.
    job_controller::mark_complete(&jobs, "batch")
        .await
        .expect("record the submitter's completion");
    let done = env.wait_for_deployment_status("batch", "Complete").await;
    assert_eq!(
        status_field(&done, |s| s.job_status.as_deref()),
        "SUCCEEDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_job_waits_for_its_job_id_then_deletion_rules_run_in_order() {
    let env = start().await;
    let mut job: Value = serde_json::from_str(&rayjob(
        "notebook",
        json!({
            "submissionMode": "InteractiveMode",
            "deletionStrategy": {"deletionRules": [
                {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}},
                {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 4}},
            ]},
        }),
    ))
    .expect("JSON");
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"] = json!([{
        "groupName": "workers", "replicas": 1, "minReplicas": 0, "maxReplicas": 2,
        "rayStartParams": {},
        "template": {"spec": {"containers": [{
            "name": "ray-worker", "image": "rayproject/ray:2.46.0",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        }]}},
    }]);
    env.must_apply(&job.to_string());
    let waiting = env.wait_for_deployment_status("notebook", "Waiting").await;
    let cluster = status_field(&waiting, |s| s.ray_cluster_name.as_deref()).to_string();

    // The user submits from the notebook, then tells the RayJob which job to follow.
    let id = format!("notebook-{}", std::process::id());
    let submission = raygate_controller::dashboard::JobSubmission {
        entrypoint: env.python("print('interactive')"),
        submission_id: id.clone(),
        ..Default::default()
    };
    env.dashboard()
        .submit_job(&submission)
        .await
        .expect("Ray takes the job");
    let patch = json!({"spec": {"jobId": id}}).to_string();
    env.kubectl_must(
        &["patch", "rayjob", "notebook", "--type=merge", "-p", &patch],
        None,
    );
    let done = env.wait_for_deployment_status("notebook", "Complete").await;
    assert_eq!(status_field(&done, |s| s.job_id.as_deref()), id);
    assert_eq!(
        status_field(&done, |s| s.job_status.as_deref()),
        "SUCCEEDED"
    );

    // DeleteWorkers at once (the head stays for the dashboard), DeleteCluster 4 s later.
    let suspended = wait_until("the worker groups suspended", TIMEOUT, || async {
        let c = env.clusters().get_opt(&cluster).await.expect("get")?;
        let groups = c.spec.worker_group_specs.clone().unwrap_or_default();
        groups.iter().all(|g| g.suspend == Some(true)).then_some(c)
    })
    .await;
    assert!(suspended.metadata.deletion_timestamp.is_none());
    env.wait_until_gone(&cluster).await;
    env.expect_event_reasons(
        "RayJob",
        "notebook",
        &["Waiting", "SuspendedWorkers", "DeletedRayCluster"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_fails_without_retrying() {
    let env = start().await;
    env.must_apply(&rayjob(
        "slow",
        json!({
            "submissionMode": "HTTPMode",
            "entrypoint": env.python("import time; time.sleep(600)"),
            "activeDeadlineSeconds": 15,
            "backoffLimit": 2,
        }),
    ));
    let failed = env.wait_for_deployment_status("slow", "Failed").await;
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(status.failed, Some(1), "a deadline is not retried");
    let message = status.message.unwrap_or_default();
    assert!(message.contains("activeDeadlineSeconds (15)"), "{message}");
    // The deadline also ends the work in Ray.
    let job_id = status.job_id.expect("a job id");
    let dashboard = env.dashboard();
    wait_until("the Ray job STOPPED", TIMEOUT, || async {
        let info = dashboard.job_info(&job_id).await.ok().flatten()?;
        (info.status == JobStatus::Stopped).then_some(())
    })
    .await;
}

/// Plays kubelet for the head pod's `ray-job-submitter` container: it ended with `exit_code`.
async fn submitter_exited(env: &Env, cluster: &str, exit_code: i32) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(env.client.clone(), NS);
    let heads = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("ray.io/cluster={cluster},ray.io/node-type=head")),
        )
        .await
        .expect("list head pods");
    let head = heads.items.first().expect("the head pod");
    let containers: Vec<String> = head
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    assert!(
        containers.iter().any(|c| c == "ray-job-submitter"),
        "SidecarMode puts the submitter into the head pod: {containers:?}"
    );
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"containerStatuses": [
        {"name": "ray-head", "ready": true, "restartCount": 0, "image": "rayproject/ray:2.46.0",
         "imageID": "", "state": {"running": {"startedAt": now}}},
        {"name": "ray-job-submitter", "ready": false, "restartCount": 0,
         "image": "rayproject/ray:2.46.0", "imageID": "",
         "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" },
                                  "startedAt": now, "finishedAt": now}}},
    ]}});
    let name = head.name_any();
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("container statuses patched");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_mode_follows_the_submitter_container_in_the_head_pod() {
    let env = start().await;

    // The sidecar could not submit (exit 1): the job fails at once, saying why.
    env.must_apply(&rayjob(
        "side-fail",
        json!({"submissionMode": "SidecarMode", "entrypoint": env.python("print(1)")}),
    ));
    let running = env.wait_for_deployment_status("side-fail", "Running").await;
    let cluster = status_field(&running, |s| s.ray_cluster_name.as_deref()).to_string();
    let head = submitter_exited(&env, &cluster, 1).await;
    let failed = env.wait_for_deployment_status("side-fail", "Failed").await;
    assert_eq!(
        status_field(&failed, |s| s.reason.as_deref()),
        "SubmissionFailed"
    );
    let message = status_field(&failed, |s| s.message.as_deref());
    assert!(
        message.contains(&format!(
            "ray-job-submitter of head pod {head} exited with code 1"
        )),
        "{message}"
    );

    // The sidecar submitted the job (as its script does, here against the local head) and it
    // succeeded: Complete only once the sidecar has exited too.
    env.must_apply(&rayjob(
        "side-ok",
        json!({"submissionMode": "SidecarMode", "entrypoint": env.python("print(2)")}),
    ));
    let running = env.wait_for_deployment_status("side-ok", "Running").await;
    let cluster = status_field(&running, |s| s.ray_cluster_name.as_deref()).to_string();
    let job_id = status_field(&running, |s| s.job_id.as_deref()).to_string();
    let submission = raygate_controller::rayjob::submitter::http_submission(&running, &job_id)
        .expect("a submission");
    env.dashboard()
        .submit_job(&submission)
        .await
        .expect("the job is submitted");
    wait_until("the Ray job SUCCEEDED", TIMEOUT, || async {
        let info = env.dashboard().job_info(&job_id).await.ok().flatten()?;
        (info.status == JobStatus::Succeeded).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = env.jobs().get("side-ok").await.expect("the RayJob");
    assert_eq!(
        status_field(&still, |s| s.job_deployment_status.as_deref()),
        "Running",
        "the job is not Complete while its submitter still runs"
    );
    submitter_exited(&env, &cluster, 0).await;
    let done = env.wait_for_deployment_status("side-ok", "Complete").await;
    assert_eq!(
        status_field(&done, |s| s.job_status.as_deref()),
        "SUCCEEDED"
    );
}
