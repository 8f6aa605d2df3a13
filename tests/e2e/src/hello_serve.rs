//! The RayService the Serve tests deploy: one tiny Serve application, `hello`, answering on a
//! loopback port with the `MESSAGE` of its runtime env, on a head-only cluster whose head
//! carries an env `DEPLOYMENT` (changing it is a cluster-level change: an upgrade).

use serde_json::{Value, json};

/// The application's module, `raygate_hello.py`, to put on the `PYTHONPATH` the config names.
pub const APP: &str = "import os\n\
from ray import serve\n\n\n\
@serve.deployment\n\
class Hello:\n    \
    def __call__(self, request):\n        \
        return os.environ.get(\"MESSAGE\", \"unset\")\n\n\n\
app = Hello.bind()\n";

/// `serveConfigV2`: `hello` on 127.0.0.1:`port` with `replicas` replicas answering `message`.
pub fn serve_config(port: u16, app_dir: &str, message: &str, replicas: u32) -> String {
    format!(
        "http_options:\n  host: 127.0.0.1\n  port: {port}\n\
         applications:\n\
         \x20 - name: hello\n\
         \x20   route_prefix: /\n\
         \x20   import_path: raygate_hello:app\n\
         \x20   runtime_env:\n\
         \x20     env_vars:\n\
         \x20       PYTHONPATH: {app_dir}\n\
         \x20       MESSAGE: {message}\n\
         \x20   deployments:\n\
         \x20     - name: Hello\n\
         \x20       num_replicas: {replicas}\n\
         \x20       ray_actor_options:\n\
         \x20         num_cpus: 0.1\n"
    )
}

/// The RayService `name` in `namespace`, deleting replaced clusters after 3 s.
pub fn rayservice(namespace: &str, name: &str, config: &str, head_env: &str) -> Value {
    json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "rayClusterDeletionDelaySeconds": 3,
            "serveConfigV2": config,
            "rayClusterConfig": {
                "rayVersion": "2.46.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{
                        "name": "ray-head",
                        "image": "rayproject/ray:2.46.0",
                        "env": [{"name": "DEPLOYMENT", "value": head_env}],
                        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
                    }]}},
                },
            },
        },
    })
}
