//! RayCronJobs as a user sees them, against a real API server with raygate's webhook and
//! controller: a bad schedule is refused at `kubectl apply`, KubeRay's own sample creates a
//! RayJob at the next minute (named, labelled, annotated and owned as KubeRay does it), a
//! suspended cron job creates nothing, and after missed times only the latest one runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use raygate_api::{RayCronJob, RayJob};
use raygate_e2e::kuberay_samples::sample_text;
use raygate_e2e::wait::wait_until;
use raygate_e2e::{ControlPlane, Controller, Webhook, install_ray_crds};
use serde_json::{Value, json};

const NS: &str = "crons";

#[tokio::test]
async fn raycronjobs_create_rayjobs_on_schedule() {
    let cp = ControlPlane::start_async()
        .await
        .expect("control plane starts (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    let _webhook = Webhook::start(&cp).expect("raygate webhook starts");
    // The RayJobs' own clusters never get ready here (no kubelet), so the controller never
    // calls a dashboard; the override keeps any such call on loopback regardless.
    let controller =
        Controller::start_with(&cp, &["--dashboard-url-override", "http://127.0.0.1:9"])
            .expect("raygate controller starts");
    let client = cp.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace"),
        )
        .await
        .expect("namespace created");
    let cron_jobs: Api<RayCronJob> = Api::namespaced(client.clone(), NS);
    let jobs: Api<RayJob> = Api::namespaced(client.clone(), NS);
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        cp.kubectl(args.iter().copied().chain(["-n", NS]), stdin)
            .expect("kubectl runs")
    };

    // A schedule Go's cron parser refuses is refused at apply, naming the field.
    let bad = kubectl(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: ray.io/v1\nkind: RayCronJob\nmetadata: {name: bad}\nspec:\n  \
             schedule: '61 * * * *'\n  timeZone: Mars/Olympus_Mons\n  jobTemplate:\n    \
             entrypoint: python -c 'print(1)'\n    clusterSelector: {ray.io/cluster: shared}\n",
        ),
    );
    assert!(!bad.success(), "a bad schedule must be refused:\n{bad}");
    for expected in [
        "spec.schedule",
        "invalid cron schedule \"61 * * * *\": minute field \"61\": 61 is out of range [0, 59]",
        "spec.timeZone",
        "unknown time zone \"Mars/Olympus_Mons\"",
    ] {
        assert!(
            bad.stderr.contains(expected),
            "{expected:?} missing from:\n{}",
            bad.stderr
        );
    }

    // KubeRay's sample, unchanged: every minute.
    let sample = sample_text("ray-cronjob.sample.yaml").expect("KubeRay's RayCronJob sample");
    let applied = kubectl(&["apply", "-f", "-"], Some(&sample));
    assert!(applied.success(), "the sample is admitted:\n{applied}");
    let stored = cron_jobs.get("raycronjob-sample").await.expect("stored");
    // The template was normalized like a RayJob.
    assert_eq!(
        stored.spec.job_template.submission_mode.as_deref(),
        Some("K8sJobMode")
    );

    // Meanwhile: a yearly cron job, created suspended, whose history says it last ran in 2020.
    let yearly = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCronJob",
        "metadata": {"name": "yearly", "namespace": NS},
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": true,
            "jobTemplate": {
                "entrypoint": "python -c 'print(1)'",
                "clusterSelector": {"ray.io/cluster": "shared"},
            },
        },
    });
    cron_jobs
        .create(
            &PostParams::default(),
            &serde_json::from_value(yearly).expect("a RayCronJob"),
        )
        .await
        .expect("yearly created");
    cron_jobs
        .patch_status(
            "yearly",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": "2020-01-01T00:00:00Z"}})),
        )
        .await
        .expect("status patched");
    let events = |name: &str| -> Vec<(String, String)> {
        let out = kubectl(&["get", "events", "-o", "json"], None);
        let list: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["involvedObject"]["kind"] == "RayCronJob" && e["involvedObject"]["name"] == name
            })
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (text("reason"), text("message"))
            })
            .collect()
    };
    wait_until(
        "the SuspendedRayCronJob event",
        Duration::from_secs(30),
        || async {
            events("yearly")
                .iter()
                .any(|(reason, _)| reason == "SuspendedRayCronJob")
                .then_some(())
        },
    )
    .await;
    let yearly_runs = || async {
        jobs.list(&ListParams::default().labels("ray.io/cronjob-name=yearly"))
            .await
            .expect("list RayJobs")
            .items
    };
    assert!(
        yearly_runs().await.is_empty(),
        "a suspended cron job creates nothing"
    );

    // Resumed: 2021…2026 were missed; only 2026-01-01 runs, and the skip is reported.
    cron_jobs
        .patch(
            "yearly",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resumed");
    let runs = wait_until(
        "the run for 2026-01-01",
        Duration::from_secs(30),
        || async {
            let runs = yearly_runs().await;
            (!runs.is_empty()).then_some(runs)
        },
    )
    .await;
    let minutes_2026 = 1_767_225_600 / 60;
    let names: Vec<String> = runs.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, vec![format!("yearly-{minutes_2026}")]);
    let missed = wait_until(
        "the MissedSchedules event",
        Duration::from_secs(30),
        || async {
            events("yearly")
                .into_iter()
                .find(|(reason, _)| reason == "MissedSchedules")
        },
    )
    .await;
    assert!(missed.1.contains("5 scheduled time(s)"), "{missed:?}");
    let yearly = cron_jobs.get_status("yearly").await.expect("yearly");
    assert_eq!(
        yearly
            .status
            .and_then(|s| s.last_schedule_time)
            .map(|t| t.0.to_string())
            .as_deref(),
        Some("2026-01-01T00:00:00Z")
    );

    // The sample's first run, at the minute after it was created.
    let run = wait_until(
        "the sample's first RayJob",
        Duration::from_secs(90),
        || async {
            jobs.list(&ListParams::default().labels("ray.io/cronjob-name=raycronjob-sample"))
                .await
                .ok()
                .and_then(|list| list.items.into_iter().next())
        },
    )
    .await;
    let scheduled = run
        .annotations()
        .get("ray.io/cronjob-scheduled-timestamp")
        .cloned()
        .expect("the scheduled time is annotated");
    let scheduled_at: jiff::Timestamp = scheduled.parse().expect("RFC 3339");
    assert_eq!(scheduled_at.as_second() % 60, 0, "runs start on the minute");
    let created = stored.creation_timestamp().expect("created").0;
    assert!(
        scheduled_at > created && scheduled_at.as_second() - created.as_second() <= 60,
        "the first run is the first minute after creation: {scheduled} vs {created}"
    );
    assert_eq!(
        run.name_any(),
        format!("raycronjob-sample-{}", scheduled_at.as_second() / 60)
    );
    let owner = &run.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("RayCronJob", "raycronjob-sample")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        run.spec.entrypoint.as_deref(),
        Some("python /home/ray/samples/sample_code.py")
    );
    // The RayJob went through admission itself: normalized and stamped.
    assert_eq!(
        run.annotations()
            .get("raygate.io/normalized")
            .map(String::as_str),
        Some("1")
    );
    let sample_status = wait_until("lastScheduleTime", Duration::from_secs(10), || async {
        cron_jobs
            .get_status("raycronjob-sample")
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.last_schedule_time)
    })
    .await;
    assert_eq!(sample_status.0, scheduled_at);
    // Events are written by a background task, so this one may land after the status.
    wait_until(
        "a CreatedRayJob event naming the run",
        Duration::from_secs(10),
        || async {
            events("raycronjob-sample")
                .iter()
                .any(|(reason, note)| reason == "CreatedRayJob" && note.contains(&run.name_any()))
                .then_some(())
        },
    )
    .await;
    assert!(
        controller
            .metrics()
            .expect("metrics")
            .contains("kind=\"RayCronJob\""),
        "RayCronJob reconciles are counted"
    );
}
