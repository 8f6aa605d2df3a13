//! Deleting a Ray object never depends on raygate being up: the updates that remove its
//! finalizers skip the webhooks (their `matchConditions`), so a deletion started before an
//! outage completes during it, while new Ray objects are still refused.

use raygate_e2e::{ControlPlane, Webhook, install_ray_crds};

const CLUSTER: &str = r#"
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: held
  finalizers: [example.com/keep]
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.46.0
"#;

#[test]
fn finalizers_of_a_deleted_cluster_can_be_removed_while_the_webhook_is_down() {
    let cp = ControlPlane::start().expect("start the control plane (tests/controlplane/build.sh)");
    install_ray_crds(&cp).expect("raygate's CRDs install");
    let mut webhook = Webhook::start(&cp).expect("start raygate webhook");

    let created = cp
        .kubectl(["apply", "-f", "-"], Some(CLUSTER))
        .expect("kubectl runs");
    assert!(created.success(), "{created}");
    let deleted = cp
        .kubectl(["delete", "raycluster", "held", "--wait=false"], None)
        .expect("kubectl runs");
    assert!(deleted.success(), "{deleted}");
    webhook.stop();

    // The webhooks still guard everything else: a new cluster fails closed.
    let refused = cp
        .kubectl(["apply", "-f", "-"], Some(&CLUSTER.replace("held", "new")))
        .expect("kubectl runs");
    assert!(
        !refused.success() && refused.stderr.contains("failed calling webhook"),
        "a Ray object was admitted without the webhook:\n{refused}"
    );

    let released = cp
        .kubectl(
            [
                "patch",
                "raycluster",
                "held",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            ],
            None,
        )
        .expect("kubectl runs");
    assert!(
        released.success(),
        "removing the finalizer needed the stopped webhook:\n{released}"
    );
    let gone = cp
        .kubectl(
            [
                "get",
                "raycluster",
                "held",
                "--ignore-not-found",
                "-o",
                "name",
            ],
            None,
        )
        .expect("kubectl runs");
    assert!(
        gone.success() && gone.stdout.trim().is_empty(),
        "the cluster is still there:\n{gone}"
    );
}
