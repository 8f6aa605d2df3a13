//! UPDATE rules: the new object compared with the stored one (rule ids U-…).

mod validation_support;

use serde_json::{Value, json};
use validation_support::{Case, Expect, allow, cluster, deny, job, run, service, update, with};

fn started(job: Value, status: &str) -> Value {
    with(job, &[("/status/jobDeploymentStatus", json!(status))])
}

fn cases() -> Vec<Case> {
    let two_hosts =
        |object: Value| with(object, &[("/spec/workerGroupSpecs/0/numOfHosts", json!(2))]);
    let selector = |name: &str| {
        with(
            job(),
            &[
                ("/spec/rayClusterSpec", json!(null)),
                ("/spec/shutdownAfterJobFinishes", json!(false)),
                ("/spec/clusterSelector", json!({"ray.io/cluster": name})),
            ],
        )
    };
    let more_workers = |object: Value| {
        with(
            object,
            &[("/spec/rayClusterSpec/workerGroupSpecs/0/replicas", json!(3))],
        )
    };
    let suspended = |object: Value| with(object, &[("/spec/suspend", json!(true))]);
    vec![
        update(
            deny(
                "U-managedBy",
                with(
                    cluster(),
                    &[("/spec/managedBy", json!("kueue.x-k8s.io/multikueue"))],
                ),
                "spec.managedBy",
                &[
                    "the managedBy field is immutable",
                    "ray.io/kuberay-operator",
                    "kueue.x-k8s.io/multikueue",
                ],
            ),
            cluster(),
        ),
        update(
            allow(
                "U-managedBy",
                with(
                    cluster(),
                    &[("/spec/managedBy", json!("ray.io/kuberay-operator"))],
                ),
            ),
            cluster(),
        ),
        update(
            deny(
                "U-managedBy-rayjob",
                job(),
                "spec.managedBy",
                &["immutable"],
            ),
            with(
                job(),
                &[("/spec/managedBy", json!("kueue.x-k8s.io/multikueue"))],
            ),
        ),
        update(
            deny(
                "U-managedBy-rayservice",
                with(
                    service(),
                    &[(
                        "/spec/rayClusterConfig/managedBy",
                        json!("kueue.x-k8s.io/multikueue"),
                    )],
                ),
                "spec.rayClusterConfig.managedBy",
                &["immutable"],
            ),
            service(),
        ),
        update(
            deny(
                "U-gcsBackend",
                with(
                    cluster(),
                    &[(
                        "/spec/gcsFaultToleranceOptions",
                        json!({"backend": "rocksdb"}),
                    )],
                ),
                "spec.gcsFaultToleranceOptions.backend",
                &[
                    "gcsFaultToleranceOptions.backend is immutable",
                    "redis",
                    "rocksdb",
                ],
            ),
            with(
                cluster(),
                &[(
                    "/spec/gcsFaultToleranceOptions",
                    json!({"redisAddress": "r:6379"}),
                )],
            ),
        ),
        update(
            allow(
                "U-gcsBackend",
                with(
                    cluster(),
                    &[(
                        "/spec/gcsFaultToleranceOptions",
                        json!({"backend": "redis", "redisAddress": "r:6379"}),
                    )],
                ),
            ),
            with(
                cluster(),
                &[(
                    "/spec/gcsFaultToleranceOptions",
                    json!({"redisAddress": "r:6379"}),
                )],
            ),
        ),
        update(
            deny(
                "U-numOfHosts",
                two_hosts(cluster()),
                "spec.workerGroupSpecs[0].numOfHosts",
                &["numOfHosts of worker group small cannot change from 1 to 2"],
            ),
            cluster(),
        ),
        update(
            deny(
                "U-groupName",
                with(
                    cluster(),
                    &[("/spec/workerGroupSpecs/0/groupName", json!("small-v2"))],
                ),
                "spec.workerGroupSpecs[0].groupName",
                &["worker group small cannot be renamed to small-v2 while the cluster runs"],
            ),
            cluster(),
        ),
        update(
            allow(
                "U-groupName-suspended",
                suspended(with(
                    cluster(),
                    &[("/spec/workerGroupSpecs/0/groupName", json!("small-v2"))],
                )),
            ),
            suspended(cluster()),
        ),
        update(
            // A new group in place of the old one, the old one kept elsewhere: no rename.
            allow("U-groupName-added", {
                let small = cluster()["spec"]["workerGroupSpecs"][0].clone();
                let added = with(small.clone(), &[("/groupName", json!("added"))]);
                with(
                    cluster(),
                    &[("/spec/workerGroupSpecs", json!([added, small]))],
                )
            }),
            cluster(),
        ),
        update(
            // Removing a group: the new object has fewer groups, none renamed.
            allow(
                "U-groupName-removed",
                with(cluster(), &[("/spec/workerGroupSpecs", json!([]))]),
            ),
            cluster(),
        ),
        update(
            allow(
                "U-numOfHosts-new-group",
                with(
                    two_hosts(cluster()),
                    &[("/spec/workerGroupSpecs/0/groupName", json!("small-v2"))],
                ),
            ),
            suspended(cluster()),
        ),
        update(
            allow("U-numOfHosts-suspended", suspended(two_hosts(cluster()))),
            suspended(cluster()),
        ),
        update(
            allow(
                "U-numOfHosts-replicas",
                with(
                    cluster(),
                    &[("/spec/workerGroupSpecs/0/replicas", json!(4))],
                ),
            ),
            cluster(),
        ),
        update(
            deny(
                "U-clusterSelector",
                started(selector("other"), "Running"),
                "spec.clusterSelector",
                &[
                    "clusterSelector cannot be changed after the RayJob has started (jobDeploymentStatus Running)",
                ],
            ),
            started(selector("shared"), "Running"),
        ),
        update(
            allow("U-clusterSelector", selector("other")),
            started(selector("shared"), ""),
        ),
        update(
            deny(
                "U-entrypoint",
                started(
                    with(job(), &[("/spec/entrypoint", json!("python other.py"))]),
                    "Complete",
                ),
                "spec.entrypoint",
                &["entrypoint cannot be changed after the RayJob has started"],
            ),
            started(job(), "Complete"),
        ),
        update(
            allow(
                "U-entrypoint",
                with(job(), &[("/spec/entrypoint", json!("python other.py"))]),
            ),
            started(job(), "New"),
        ),
        update(
            deny(
                "U-rayClusterSpec",
                started(more_workers(job()), "Running"),
                "spec.rayClusterSpec",
                &[
                    "rayClusterSpec cannot be changed after the RayJob has started",
                    "spec.suspend: true",
                ],
            ),
            started(job(), "Running"),
        ),
        update(
            allow(
                "U-rayClusterSpec-suspended",
                suspended(started(more_workers(job()), "Suspended")),
            ),
            suspended(started(job(), "Suspended")),
        ),
        // Kueue unsuspends and injects node selectors in one update, and suspends and restores them.
        update(
            allow(
                "U-rayClusterSpec-resume",
                started(more_workers(job()), "Suspended"),
            ),
            suspended(started(job(), "Suspended")),
        ),
        update(
            allow(
                "U-rayClusterSpec-suspend",
                suspended(started(more_workers(job()), "Running")),
            ),
            started(job(), "Running"),
        ),
        update(
            allow(
                "U-rayClusterSpec-labels-only",
                started(
                    with(job(), &[("/metadata/labels/team", json!("a"))]),
                    "Running",
                ),
            ),
            started(job(), "Running"),
        ),
        // Ratcheting: a problem already stored doesn't block an unrelated update (the
        // autoscaler's replicas patch), but touching the bad field is checked again.
        Case {
            id: "U-ratchet",
            object: with(
                bad_gpus(),
                &[("/spec/workerGroupSpecs/0/replicas", json!(3))],
            ),
            old: Some(bad_gpus()),
            expect: Expect::Warning(&["unchanged since stored, not blocking", "num-gpus"]),
            admitted: None,
        },
        update(
            deny(
                "U-ratchet",
                with(
                    bad_gpus(),
                    &[(
                        "/spec/workerGroupSpecs/0/rayStartParams/num-gpus",
                        json!("3"),
                    )],
                ),
                "spec.workerGroupSpecs[0].rayStartParams.num-gpus",
                &["num-gpus (3) differs"],
            ),
            bad_gpus(),
        ),
        update(
            deny(
                "U-ratchet-new-problem",
                with(bad_gpus(), &[("/metadata/name", json!("Bad"))]),
                "metadata.name",
                &["DNS1035"],
            ),
            bad_gpus(),
        ),
    ]
}

/// A cluster stored before T-gpu existed: num-gpus disagrees with the GPU limit.
fn bad_gpus() -> Value {
    with(
        cluster(),
        &[
            (
                "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/limits/nvidia.com~1gpu",
                json!(1),
            ),
            (
                "/spec/workerGroupSpecs/0/template/spec/containers/0/resources/requests/nvidia.com~1gpu",
                json!(1),
            ),
            (
                "/spec/workerGroupSpecs/0/rayStartParams/num-gpus",
                json!("2"),
            ),
        ],
    )
}

#[test]
fn update_rules() {
    run(cases());
}

/// A running RayJob stored by an older raygate, before admission wrote autoscaler v2's
/// `restartPolicy: Never`: a later label change gets that default written in by mutation, and
/// must still be admitted; a real change of its cluster still isn't.
#[test]
fn defaults_added_since_a_running_job_was_stored_are_not_a_change_of_its_cluster() {
    let v2 = with(
        job(),
        &[
            ("/spec/rayClusterSpec/enableInTreeAutoscaling", json!(true)),
            (
                "/spec/rayClusterSpec/autoscalerOptions",
                json!({"version": "v2"}),
            ),
        ],
    );
    let mut stored = raygate_api::admission::admit(&v2, None).normalized;
    let cluster = &mut stored["spec"]["rayClusterSpec"];
    assert_eq!(
        cluster["headGroupSpec"]["template"]["spec"]["restartPolicy"], "Never",
        "today's admission writes it"
    );
    // As an older raygate stored it.
    for pointer in [
        "/headGroupSpec/template/spec",
        "/workerGroupSpecs/0/template/spec",
    ] {
        cluster
            .pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .expect("pod spec")
            .remove("restartPolicy");
    }
    if let Some(annotations) = stored["metadata"]["annotations"].as_object_mut() {
        annotations.remove("raygate.io/derived");
    }
    let stored = started(stored, "Running");

    let relabelled = with(stored.clone(), &[("/metadata/labels/team", json!("ml"))]);
    let verdict = raygate_api::admission::admit(&relabelled, Some(&stored));
    assert!(verdict.errors.is_empty(), "{:?}", verdict.errors);

    let resized = with(
        stored.clone(),
        &[(
            "/spec/rayClusterSpec/workerGroupSpecs/0/maxReplicas",
            json!(9),
        )],
    );
    let verdict = raygate_api::admission::admit(&resized, Some(&stored));
    assert!(
        verdict
            .errors
            .iter()
            .any(|e| e.to_string().contains("rayClusterSpec cannot be changed")),
        "{:?}",
        verdict.errors
    );
}
