//! `raygate controller`: the lean controller that materializes RayClusters into Pods and
//! Services and writes their status, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use raygate_controller::{LeaseOptions, Options};

use super::logging::{LogFormat, init_tracing};

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Kubeconfig file; without it, $KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "RAYGATE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace to watch (repeat for several; comma-separated in the env var). Default: all.
    #[arg(long = "namespace", env = "RAYGATE_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// The cluster's DNS domain: workers reach the head at `<svc>.<ns>.svc.<domain>`.
    #[arg(long, env = "RAYGATE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Address of the admin server (plain HTTP: /healthz, /readyz, /metrics).
    #[arg(long, env = "RAYGATE_ADMIN_LISTEN", default_value = "0.0.0.0:8082")]
    admin_listen: SocketAddr,
    /// Elect a leader through a coordination.k8s.io Lease, so only one of several replicas acts.
    #[arg(long, env = "RAYGATE_LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "RAYGATE_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "RAYGATE_LEADER_ELECTION_NAME",
        default_value = "raygate-controller"
    )]
    leader_election_name: String,
    /// Seconds the lease stays valid without renewal: the longest a failover takes.
    #[arg(long, env = "RAYGATE_LEADER_LEASE_SECONDS", default_value_t = 10)]
    leader_lease_seconds: u64,
    /// This replica's name in events and the lease (default: $POD_NAME or $HOSTNAME, plus the pid).
    #[arg(long, env = "RAYGATE_IDENTITY")]
    identity: Option<String>,
    /// RayClusters reconciled at the same time (0: no limit). Each pass holds a pod list and
    /// up to 16 writes in flight, so this bounds memory; more does not help a busy API server.
    #[arg(long, env = "RAYGATE_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Log output: human-readable text or one JSON object per line. Filter with RUST_LOG.
    #[arg(long, value_enum, env = "RAYGATE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Send every Ray dashboard request (RayJob submission and status) to this URL instead of
    /// each cluster's head Service. For tests and local runs with a Ray head on this machine.
    #[arg(long, env = "RAYGATE_DASHBOARD_URL_OVERRIDE")]
    dashboard_url_override: Option<String>,
}

impl ControllerArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        init_tracing(self.log_format)?;
        raygate_webhook::install_crypto_provider();
        let identity = self.identity.clone().unwrap_or_else(default_identity);
        let leader_election = self.leader_elect.then(|| {
            let namespace = self
                .leader_election_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_string());
            let mut lease = LeaseOptions::new(namespace, identity.clone());
            lease.name = self.leader_election_name.clone();
            lease.duration = std::time::Duration::from_secs(self.leader_lease_seconds.max(2));
            lease.renew = (lease.duration / 5).max(std::time::Duration::from_millis(500));
            lease
        });
        let options = Options {
            namespaces: self.namespaces,
            cluster_domain: self.cluster_domain,
            admin_listen: self.admin_listen,
            leader_election,
            concurrency: self.concurrency,
            identity,
            dashboard_override: self.dashboard_url_override,
        };
        // One thread: the controller mostly waits on the API server (about 0.2 of a core while
        // it builds 300 clusters at once), and one heap keeps its peak memory lower than two
        // threads freeing each other's allocations.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async {
            let client = super::kube_client::kube_client(self.kubeconfig.as_deref())
                .await
                .context("connecting to the Kubernetes API")?;
            tracing::info!(namespaces = ?options.namespaces, cluster_domain = options.cluster_domain, "starting the RayCluster and RayJob controllers");
            raygate_controller::run(client, options, raygate_webhook::shutdown_signal())
                .await
                .context("running the controller")?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        })
    }
}

fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "raygate".to_string());
    format!("{host}-{}", std::process::id())
}
