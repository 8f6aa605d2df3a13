//! A real etcd + kube-apiserver on loopback, the way controller-runtime's envtest runs one:
//! an API server with no kubelet, no scheduler and no controller-manager.
//!
//! The binaries come from `tests/controlplane/build.sh` (built from the published Go modules).
//! Everything binds `127.0.0.1`; nothing dials a ClusterIP or a pod IP.
//!
//! Children are started with `PR_SET_PDEATHSIG` from one long-lived spawner thread, so they
//! die with the test process even when it is SIGKILLed or aborts. (The death signal follows
//! the *thread* that forked: spawning from a test thread or a tokio blocking-pool thread would
//! kill the children as soon as that thread ends.)

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Directory holding `etcd`, `kube-apiserver` and `kubectl`; overrides `<workspace>/target/controlplane/bin`.
pub const BIN_DIR_ENV: &str = "RAYGATE_CONTROLPLANE_BIN";
/// When set (to anything), the temp dir with logs, certificates and etcd data is kept after drop.
/// It is also kept when starting fails and when the control plane is dropped during a panic
/// (a failing test).
pub const KEEP_DIR_ENV: &str = "RAYGATE_KEEP_CONTROLPLANE";

/// How long the API server gets to become ready (`/readyz`).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(15);
const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_TAIL_LINES: usize = 40;

/// A service CIDR is a required flag; nothing ever dials an address in it.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// The workspace root (`<repo>`), from this crate's location.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The command that builds the binaries, for error messages.
pub fn build_script() -> PathBuf {
    workspace_root().join("tests/controlplane/build.sh")
}

/// `<workspace>/target/controlplane/bin`, where `build.sh` puts the binaries.
pub fn default_bin_dir() -> PathBuf {
    workspace_root().join("target/controlplane/bin")
}

/// Paths of the control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kubectl: PathBuf,
}

impl Binaries {
    /// Finds the binaries in `$RAYGATE_CONTROLPLANE_BIN` or `<workspace>/target/controlplane/bin`.
    /// Fails (never skips) when one is missing, naming the build script.
    pub fn locate() -> Result<Self> {
        match std::env::var_os(BIN_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::locate_in(Path::new(&dir)),
            _ => Self::locate_in(&default_bin_dir()),
        }
    }

    /// Finds the binaries in `dir`, failing with an error that names the build script.
    pub fn locate_in(dir: &Path) -> Result<Self> {
        let bins = Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kubectl: dir.join("kubectl"),
        };
        let missing: Vec<&str> = [
            ("etcd", &bins.etcd),
            ("kube-apiserver", &bins.kube_apiserver),
            ("kubectl", &bins.kubectl),
        ]
        .into_iter()
        .filter(|(_, path)| !is_executable(path))
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            bail!(
                "control-plane binaries missing in {}: {}. Build them with `{}` \
                 (the first build takes many minutes; later runs are instant), or point ${BIN_DIR_ENV} \
                 at a directory that holds etcd, kube-apiserver and kubectl.",
                dir.display(),
                missing.join(", "),
                build_script().display(),
            );
        }
        Ok(bins)
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The API server's `/metrics` text (Prometheus format), read with `client`'s credentials.
pub async fn api_server_metrics(client: &kube::Client) -> Result<String> {
    client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await
        .context("reading the API server's /metrics")
}

/// The value of one series in a Prometheus text exposition: its name, with its labels when it
/// has any (0 when absent). A longer name sharing the prefix does not parse as a number, so
/// `foo` never reads `foo_total`.
pub fn sample_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_default()
}

/// What `kubectl` printed and how it exited.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout when kubectl succeeded, otherwise an error carrying stderr.
    pub fn into_stdout(self) -> Result<String> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(anyhow!(
                "kubectl failed ({}): {}",
                self.status,
                self.stderr.trim()
            ))
        }
    }
}

impl fmt::Display for KubectlOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kubectl exited with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A running etcd + kube-apiserver, torn down on drop.
pub struct ControlPlane {
    bins: Binaries,
    /// `None` once kept on drop.
    dir: Option<tempfile::TempDir>,
    /// Keep `dir` on drop (set when starting failed).
    keep_dir: bool,
    root: PathBuf,
    etcd_port: u16,
    etcd_peer_port: u16,
    apiserver_port: u16,
    etcd: Option<Supervised>,
    apiserver: Option<Supervised>,
    kubeconfig: PathBuf,
    pki: Pki,
}

/// File locations of the generated credentials.
#[derive(Debug, Clone)]
struct Pki {
    client_ca_cert: PathBuf,
    client_ca_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_key: PathBuf,
    service_account_pub: PathBuf,
    apiserver_cert_dir: PathBuf,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver in a fresh temp dir and waits for `/readyz`.
    ///
    /// Ports are picked free and released just before etcd and the API server bind them, so
    /// another process (a parallel test) can take one in between; such a start fails with
    /// `address already in use` and is tried again with new ports.
    pub fn start() -> Result<Self> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let last = attempt == ATTEMPTS;
            match Self::start_once(last) {
                Err(error) if !last && format!("{error:#}").contains("address already in use") => {
                    tracing::warn!(
                        attempt,
                        error = %format!("{error:#}"),
                        "a port was taken before the control plane bound it; retrying with new ports"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One start; the dir is kept for a look when it fails and `keep_on_failure` is set.
    fn start_once(keep_on_failure: bool) -> Result<Self> {
        let bins = Binaries::locate()?;
        sweep_leaked_dirs();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .context("creating the control plane's temp dir")?;
        let root = dir.path().to_path_buf();
        fs::write(root.join(OWNER_FILE), std::process::id().to_string())
            .context("writing the owner pid file")?;
        let [etcd_port, etcd_peer_port, apiserver_port] = free_loopback_ports()?;
        let pki = write_pki(&root).context("generating certificates and keys")?;
        let kubeconfig = root.join("kubeconfig");

        let mut cp = ControlPlane {
            bins,
            dir: Some(dir),
            keep_dir: false,
            root,
            etcd_port,
            etcd_peer_port,
            apiserver_port,
            etcd: None,
            apiserver: None,
            kubeconfig,
            pki,
        };
        cp.write_kubeconfig()?;
        if let Err(e) = cp.start_etcd().and_then(|()| cp.start_apiserver()) {
            // Keep the logs for a look; the error already carries their last lines.
            cp.keep_dir = keep_on_failure;
            let dir = cp.root.display().to_string();
            let kept = if keep_on_failure { " (kept)" } else { "" };
            return Err(e.context(format!("starting the control plane in {dir}{kept}")));
        }
        Ok(cp)
    }

    /// [`ControlPlane::start`] off the async runtime's worker threads.
    pub async fn start_async() -> Result<Self> {
        tokio::task::spawn_blocking(Self::start)
            .await
            .context("control plane start task")?
    }

    /// The temp dir holding logs, certificates, etcd data and the kubeconfig.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Path of the admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    pub fn apiserver_port(&self) -> u16 {
        self.apiserver_port
    }

    /// etcd's client port.
    pub fn etcd_port(&self) -> u16 {
        self.etcd_port
    }

    /// etcd's peer port (a one-member cluster still listens on it).
    pub fn etcd_peer_port(&self) -> u16 {
        self.etcd_peer_port
    }

    /// Pids of the running etcd and kube-apiserver processes.
    pub fn pids(&self) -> Vec<u32> {
        [&self.etcd, &self.apiserver]
            .into_iter()
            .flatten()
            .map(Supervised::pid)
            .collect()
    }

    /// `http://127.0.0.1:<port>` of etcd's client listener.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    pub fn etcd_log_path(&self) -> PathBuf {
        self.root.join("etcd.log")
    }

    pub fn apiserver_log_path(&self) -> PathBuf {
        self.root.join("kube-apiserver.log")
    }

    /// The client CA (PEM files): sign more client certificates with it to act as other users.
    pub fn client_ca_paths(&self) -> (&Path, &Path) {
        (&self.pki.client_ca_cert, &self.pki.client_ca_key)
    }

    /// The CA bundle that verifies the API server's self-signed serving certificate.
    pub fn apiserver_ca_path(&self) -> PathBuf {
        self.pki.apiserver_cert_dir.join("apiserver.crt")
    }

    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// Whether the API server process is running.
    pub fn apiserver_running(&mut self) -> bool {
        self.apiserver
            .as_mut()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// A `kube::Client` for the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("loading the control plane's kubeconfig")?;
        kube::Client::try_from(config).context("building a kube client")
    }

    /// Runs the built kubectl with this control plane's kubeconfig.
    /// A non-zero exit is not an error here: look at [`KubectlOutput::status`].
    pub fn kubectl<I, S>(&self, args: I, stdin: Option<&str>) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bins.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.root.join("kube-cache"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.bins.kubectl.display()))?;
        let writer = match (stdin, child.stdin.take()) {
            (Some(input), Some(mut pipe)) => {
                let input = input.to_owned();
                Some(std::thread::spawn(move || pipe.write_all(input.as_bytes())))
            }
            _ => None,
        };
        let output = child.wait_with_output().context("waiting for kubectl")?;
        if let Some(writer) = writer {
            match writer.join() {
                Ok(Ok(())) => {}
                // kubectl may exit before reading all of stdin; its exit status tells why.
                Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Ok(Err(e)) => return Err(e).context("writing kubectl's stdin"),
                Err(_) => bail!("the thread writing kubectl's stdin panicked"),
            }
        }
        Ok(KubectlOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Waits (60 s at most) until the API server serves every named CRD: each one's
    /// `Established` condition is `True`.
    ///
    /// Polls the CRDs itself rather than running `kubectl wait`, which fails at once with
    /// "accessor error: <nil>" when it reads a CRD the API server has not given conditions yet.
    pub fn wait_crds_established(&self, names: &[&str]) -> Result<()> {
        let deadline = Instant::now() + CRD_ESTABLISHED_TIMEOUT;
        loop {
            let pending = self.crds_not_established(names)?;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "CRDs not established after {CRD_ESTABLISHED_TIMEOUT:?}: {}",
                    pending.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The named CRDs that are missing or not yet Established.
    fn crds_not_established(&self, names: &[&str]) -> Result<Vec<String>> {
        let listed = self
            .kubectl(["get", "crd", "-o", "json"], None)?
            .into_stdout()?;
        let list: serde_json::Value =
            serde_json::from_str(&listed).context("parsing `kubectl get crd -o json`")?;
        let established = |name: &str| {
            list["items"].as_array().into_iter().flatten().any(|crd| {
                crd["metadata"]["name"] == name
                    && crd["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
        };
        Ok(names
            .iter()
            .filter(|n| !established(n))
            .map(|n| (*n).to_owned())
            .collect())
    }

    /// Stops the API server gracefully (SIGTERM, then SIGKILL after a grace period).
    /// etcd keeps running; [`ControlPlane::start_apiserver`] brings it back on the same port.
    pub fn stop_apiserver(&mut self) -> Result<()> {
        if let Some(mut p) = self.apiserver.take() {
            p.terminate(APISERVER_STOP_GRACE);
        }
        Ok(())
    }

    /// Kills the API server at once (SIGKILL), like a crash.
    pub fn kill_apiserver(&mut self) {
        if let Some(mut p) = self.apiserver.take() {
            p.kill();
        }
    }

    /// (Re)starts the API server on the same etcd, port and certificates, and waits for `/readyz`.
    pub fn start_apiserver(&mut self) -> Result<()> {
        if self.apiserver_running() {
            bail!("kube-apiserver is already running on {}", self.server_url());
        }
        self.apiserver = None;
        let mut cmd = Command::new(&self.bins.kube_apiserver);
        cmd.args(self.apiserver_args());
        let started = Instant::now();
        let proc = Supervised::spawn("kube-apiserver", cmd, &self.apiserver_log_path())?;
        self.apiserver = Some(proc);
        self.wait_apiserver_ready(READY_TIMEOUT)?;
        tracing::info!(
            server = %self.server_url(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kube-apiserver ready"
        );
        Ok(())
    }

    fn apiserver_args(&self) -> Vec<String> {
        let p = &self.pki;
        vec![
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", self.apiserver_port),
            format!("--cert-dir={}", p.apiserver_cert_dir.display()),
            format!("--client-ca-file={}", p.client_ca_cert.display()),
            format!(
                "--service-account-key-file={}",
                p.service_account_pub.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                p.service_account_key.display()
            ),
            format!("--service-account-issuer={}", self.server_url()),
            "--authorization-mode=RBAC".into(),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
            format!("--etcd-servers={}", self.etcd_url()),
            // No controller-manager creates the `default` ServiceAccount, so Pods could never be
            // admitted with the ServiceAccount plugin on.
            "--disable-admission-plugins=ServiceAccount".into(),
            // The `kubernetes` Endpoints would hold 127.0.0.1, which Endpoints validation rejects.
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
        ]
    }

    fn start_etcd(&mut self) -> Result<()> {
        let client = self.etcd_url();
        let peer = format!("http://127.0.0.1:{}", self.etcd_peer_port);
        let mut cmd = Command::new(&self.bins.etcd);
        cmd.arg("--name=raygate")
            .arg(format!("--data-dir={}", self.root.join("etcd").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=raygate={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--unsafe-no-fsync");
        self.etcd = Some(Supervised::spawn("etcd", cmd, &self.etcd_log_path())?);

        let deadline = Instant::now() + ETCD_READY_TIMEOUT;
        loop {
            if let Some(etcd) = self.etcd.as_mut()
                && let Some(status) = etcd.exit_status()
            {
                bail!(
                    "etcd exited with {status} before becoming healthy\n{}",
                    log_tail(&self.etcd_log_path())
                );
            }
            let last = match http_get_loopback(self.etcd_port, "/health") {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "etcd on {client} not healthy after {ETCD_READY_TIMEOUT:?} (last answer: {last})\n{}",
                    log_tail(&self.etcd_log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_apiserver_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        loop {
            if let Some(apiserver) = self.apiserver.as_mut()
                && let Some(status) = apiserver.exit_status()
            {
                bail!(
                    "kube-apiserver exited with {status} before becoming ready\n{}",
                    log_tail(&self.apiserver_log_path())
                );
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.apiserver_port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                let out = self.kubectl(["get", "--raw=/readyz", "--request-timeout=5s"], None)?;
                if out.success() && out.stdout.trim() == "ok" {
                    return Ok(());
                }
                last = format!("{}{}", out.stdout.trim(), out.stderr.trim());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver at {} not ready after {timeout:?} (last /readyz: {last})\n{}",
                    self.server_url(),
                    log_tail(&self.apiserver_log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn write_kubeconfig(&self) -> Result<()> {
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "raygate-e2e",
                "cluster": {
                    "server": self.server_url(),
                    "certificate-authority": self.apiserver_ca_path(),
                },
            }],
            "users": [{
                "name": "admin",
                "user": {
                    "client-certificate": self.pki.admin_cert,
                    "client-key": self.pki.admin_key,
                },
            }],
            "contexts": [{
                "name": "raygate-e2e",
                "context": { "cluster": "raygate-e2e", "user": "admin", "namespace": "default" },
            }],
            "current-context": "raygate-e2e",
        });
        let yaml = serde_saphyr::to_string(&kubeconfig).context("serializing the kubeconfig")?;
        write_private(&self.kubeconfig, yaml.as_bytes())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut p) = self.apiserver.take() {
            p.kill();
        }
        if let Some(mut p) = self.etcd.take() {
            p.kill();
        }
        let keep =
            self.keep_dir || std::thread::panicking() || std::env::var_os(KEEP_DIR_ENV).is_some();
        if keep && let Some(dir) = self.dir.take() {
            let path = dir.keep();
            let _ = fs::write(path.join(KEPT_FILE), "kept for inspection\n");
            eprintln!(
                "raygate-e2e: kept the control plane's dir {} (logs: etcd.log, kube-apiserver.log)",
                path.display()
            );
        }
    }
}

/// A child process started with `PR_SET_PDEATHSIG`, its output in a log file.
pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
}

impl Supervised {
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (prctl, getppid); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::other("parent exited before exec"));
                }
                Ok(())
            });
        }
        let child = spawn_from_long_lived_thread(cmd)
            .with_context(|| format!("starting {name} (log: {})", log.display()))?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Supervised { name, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn terminate(&mut self, grace: Duration) {
        if self.exit_status().is_some() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall on our own child's pid, which is not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(
            name = self.name,
            "did not stop on SIGTERM within {grace:?}; killing"
        );
        self.kill();
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, so `PR_SET_PDEATHSIG` fires
/// only when the process dies, not when the calling thread ends.
fn spawn_from_long_lived_thread(cmd: Command) -> Result<Child> {
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("raygate-controlplane-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map(|_| tx)
    });
    let spawner = match spawner {
        Ok(tx) => tx,
        Err(e) => bail!("could not start the spawner thread: {e}"),
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("the spawner thread is gone"))?;
    let child = reply_rx
        .recv()
        .map_err(|_| anyhow!("the spawner thread did not answer"))??;
    Ok(child)
}

const DIR_PREFIX: &str = "raygate-controlplane-";
const OWNER_FILE: &str = "owner.pid";
const KEPT_FILE: &str = "KEPT";

/// Removes control-plane dirs whose owning process is gone and that were not kept on purpose:
/// those of processes that were SIGKILLed, or that held a `ControlPlane` in a static (never dropped).
fn sweep_leaked_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !is_ours || path.join(KEPT_FILE).exists() {
            continue;
        }
        let owner = fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if let Some(pid) = owner
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            tracing::debug!(dir = %path.display(), pid, "removing a leaked control-plane dir");
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Distinct free ports on 127.0.0.1 (all held open while choosing, so they differ).
pub fn free_loopback_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()
        .context("picking free loopback ports")?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// A tiny HTTP/1.0 GET against 127.0.0.1 (etcd's plain-HTTP `/health`); returns the whole answer.
pub(crate) fn http_get_loopback(port: u16, path: &str) -> Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            format!(
                "--- last {} lines of {}\n{}",
                lines.len() - start,
                path.display(),
                lines[start..].join("\n")
            )
        }
        Err(e) => format!("--- could not read {}: {e}", path.display()),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}

/// Generates the client CA, the admin client certificate and the service-account signing key.
fn write_pki(root: &Path) -> Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let dir = root.join("pki");
    fs::create_dir_all(&dir)?;
    let apiserver_cert_dir = root.join("apiserver-certs");
    fs::create_dir_all(&apiserver_cert_dir)?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "raygate-e2e-client-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let admin_key = KeyPair::generate()?;
    let mut admin_params = CertificateParams::default();
    admin_params.distinguished_name = DistinguishedName::new();
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "admin");
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = Issuer::new(ca_params, &ca_key);
    let admin_cert = admin_params.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    let pki = Pki {
        client_ca_cert: dir.join("client-ca.crt"),
        client_ca_key: dir.join("client-ca.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        service_account_key: dir.join("service-account.key"),
        service_account_pub: dir.join("service-account.pub"),
        apiserver_cert_dir,
    };
    write_private(&pki.client_ca_cert, ca_cert.pem().as_bytes())?;
    write_private(&pki.client_ca_key, ca_key.serialize_pem().as_bytes())?;
    write_private(&pki.admin_cert, admin_cert.pem().as_bytes())?;
    write_private(&pki.admin_key, admin_key.serialize_pem().as_bytes())?;
    write_private(&pki.service_account_key, sa_key.serialize_pem().as_bytes())?;
    write_private(&pki.service_account_pub, sa_key.public_key_pem().as_bytes())?;
    Ok(pki)
}
