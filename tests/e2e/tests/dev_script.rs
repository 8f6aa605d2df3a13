//! `scripts/dev.sh`, the README's "bring up a local control plane" command, run as a user runs
//! it: it comes up, shows the stored sample with raygate's defaults and a rejected invalid
//! cluster, answers `kubectl` with the kubeconfig it prints, and on Ctrl-C stops everything it
//! started. Fails, never skips, when the control plane cannot start.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raygate_e2e::Binaries;
use raygate_e2e::control_plane::{free_loopback_ports, workspace_root};
use raygate_e2e::listeners::{listeners_on, process_group_members};
use raygate_e2e::webhook::raygate_binary;
use serde_json::Value;

/// Starting etcd, kube-apiserver, the webhook and the controller on a busy 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The last line dev.sh prints once everything is up.
const READY_LINE: &str = "Press Ctrl-C to stop.";
const STORED_SAMPLE_HEADER: &str = "== kubectl get raycluster raycluster-kuberay -o yaml";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

/// dev.sh in its own process group (as a terminal runs a foreground job). On drop the whole
/// group is SIGKILLed, so a failing test leaves no etcd or webhook behind.
struct DevScript {
    child: Child,
    pgid: u32,
    lines: mpsc::Receiver<(Stream, String)>,
    seen: Vec<(Stream, String)>,
}

/// Loopback ports dev.sh is told to use for raygate's own listeners.
struct DevPorts {
    webhook: u16,
    webhook_admin: u16,
    controller_admin: u16,
}

impl DevScript {
    fn start(ports: &DevPorts) -> Self {
        let bins =
            Binaries::locate().expect("control-plane binaries (tests/controlplane/build.sh)");
        let bin_dir = bins.kubectl.parent().expect("kubectl's dir").to_path_buf();
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("scripts/dev.sh"))
            .current_dir(workspace_root())
            // Prebuilt binaries: dev.sh must not run cargo or the Go build under the test.
            .env("RAYGATE_CONTROLPLANE_BIN", &bin_dir)
            .env("RAYGATE_BIN", raygate_binary().expect("raygate binary"))
            .env(
                "RAYGATE_CONTROLPLANE_LAUNCHER",
                env!("CARGO_BIN_EXE_raygate-controlplane"),
            )
            .env("RAYGATE_DEV_WEBHOOK_PORT", ports.webhook.to_string())
            .env(
                "RAYGATE_DEV_WEBHOOK_ADMIN_PORT",
                ports.webhook_admin.to_string(),
            )
            .env(
                "RAYGATE_DEV_CONTROLLER_ADMIN_PORT",
                ports.controller_admin.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().expect("run bash scripts/dev.sh");
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward_lines(out, Stream::Stdout, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, Stream::Stderr, tx);
        }
        let pgid = child.id();
        DevScript {
            child,
            pgid,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads output until a line contains `needle`; panics with the transcript when the script
    /// exits first or `timeout` passes.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(line) => {
                    let found = line.1.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "dev.sh exited ({status:?}) before printing {needle:?}:\n{}",
                        self.transcript()
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(
                Instant::now() < deadline,
                "dev.sh did not print {needle:?} within {timeout:?}:\n{}",
                self.transcript()
            );
        }
    }

    /// Everything printed so far, stderr lines marked.
    fn transcript(&self) -> String {
        self.seen
            .iter()
            .map(|(stream, line)| match stream {
                Stream::Stdout => format!("  {line}\n"),
                Stream::Stderr => format!("! {line}\n"),
            })
            .collect()
    }

    fn lines_of(&self, stream: Stream) -> impl Iterator<Item = &str> {
        self.seen
            .iter()
            .filter(move |(s, _)| *s == stream)
            .map(|(_, line)| line.as_str())
    }

    /// The value after `prefix` on the first stdout line (trimmed) that starts with it.
    fn printed_after(&self, prefix: &str) -> String {
        self.lines_of(Stream::Stdout)
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("dev.sh printed no {prefix:?} line:\n{}", self.transcript()))
            .to_string()
    }

    /// The YAML dev.sh printed after `header`, up to its next `== ` section.
    fn section(&self, header: &str) -> String {
        self.lines_of(Stream::Stdout)
            .skip_while(|line| *line != header)
            .skip(1)
            .take_while(|line| !line.starts_with("== "))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    fn interrupt(&self) {
        signal_group(self.pgid, libc::SIGINT);
    }

    /// `kill <pid>` (or a CI timeout): SIGTERM to the script alone; its trap must stop the rest.
    fn terminate_script_only(&self) {
        let pid = libc::pid_t::try_from(self.pgid).expect("pid fits pid_t");
        // SAFETY: a plain syscall on our own child, not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Waits for the script to exit, then checks that nothing it started still runs or listens.
    fn assert_stops(&mut self, how: &str, ports: &[(u16, &str)]) {
        let status = self.wait_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "dev.sh still runs {EXIT_TIMEOUT:?} after {how}:\n{}",
                self.transcript()
            )
        });
        assert!(status.success(), "dev.sh exited with {status} on {how}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = process_group_members(self.pgid);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "processes outlived dev.sh after {how}: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for &(port, what) in ports {
            let left = listeners_on(port);
            assert!(
                left.is_empty(),
                "{what} still listens on {port} after {how}: {left:?}"
            );
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for dev.sh") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for DevScript {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none()
            || !process_group_members(self.pgid).is_empty()
        {
            signal_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    let pgid = libc::pid_t::try_from(pgid).expect("pid fits pid_t");
    // SAFETY: a plain syscall on the process group of our own child.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn forward_lines(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: mpsc::Sender<(Stream, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    });
}

/// The port of a `http(s)://127.0.0.1:<port>` URL (possibly followed by more text).
fn loopback_port(url: &str) -> u16 {
    let rest = url
        .split("://127.0.0.1:")
        .nth(1)
        .unwrap_or_else(|| panic!("{url:?} is not a loopback URL"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no port in {url:?}"))
}

fn kubectl(kubectl: &Path, kubeconfig: &Path, cache: &Path, args: &[&str]) -> String {
    let out = Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .env("KUBECACHEDIR", cache)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (bounded) until something listens on `port`.
fn wait_listening(port: u16, what: &str, script: &DevScript) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while listeners_on(port).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on 127.0.0.1:{port}:\n{}",
            script.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts dev.sh on free ports and waits until it is ready; returns it with every port it
/// (or its control plane) listens on.
fn dev_script_ready() -> (DevScript, Vec<(u16, &'static str)>) {
    let [webhook, webhook_admin, controller_admin] =
        free_loopback_ports::<3>().expect("free loopback ports");
    let ports = DevPorts {
        webhook,
        webhook_admin,
        controller_admin,
    };
    let started = Instant::now();
    let mut script = DevScript::start(&ports);
    script.wait_for_line(READY_LINE, READY_TIMEOUT);
    eprintln!("dev.sh ready in {:.1}s", started.elapsed().as_secs_f64());

    let apiserver_port = loopback_port(&script.printed_after("control plane ready in "));
    let etcd_port = loopback_port(&script.printed_after("etcd: "));
    let listening = vec![
        (apiserver_port, "kube-apiserver"),
        (etcd_port, "etcd"),
        (ports.webhook, "raygate webhook"),
        (ports.webhook_admin, "raygate webhook's admin server"),
        (ports.controller_admin, "raygate controller's admin server"),
    ];
    for &(port, what) in &listening {
        wait_listening(port, what, &script);
    }
    let members = process_group_members(script.pgid);
    assert!(
        members.len() >= 6,
        "bash, launcher, etcd, kube-apiserver, webhook and controller run: {members:?}"
    );
    (script, listening)
}

#[test]
fn dev_script_comes_up_shows_defaults_and_a_rejection_and_stops_on_ctrl_c() {
    let (mut script, listening) = dev_script_ready();

    // The stored sample, as dev.sh printed it, carries raygate's defaults.
    let yaml = script.section(STORED_SAMPLE_HEADER);
    let stored: Value = raygate_api::manifest::parse_documents(&yaml)
        .ok()
        .and_then(|documents| documents.into_iter().next())
        .unwrap_or_else(|| panic!("no stored RayCluster printed:\n{}", script.transcript()));
    assert_eq!(stored["kind"], "RayCluster", "{}", script.transcript());
    assert_eq!(
        stored["metadata"]["annotations"]["raygate.io/normalized"], "1",
        "{yaml}"
    );
    let head = &stored["spec"]["headGroupSpec"];
    // The sample's head has `rayStartParams: {}`: these come from raygate.
    assert_eq!(
        head["rayStartParams"]["dashboard-host"], "0.0.0.0",
        "{yaml}"
    );
    assert_eq!(head["rayStartParams"]["block"], "true", "{yaml}");

    // The invalid example, rejected as kubectl shows it.
    let rejection = script
        .lines_of(Stream::Stderr)
        .find(|line| line.contains("is invalid: spec.workerGroupSpecs[0]"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no rejection printed:\n{}", script.transcript()));
    assert!(
        rejection.contains("The RayCluster \"broken\" is invalid"),
        "{rejection}"
    );

    // kubectl with the kubeconfig dev.sh prints reaches the control plane.
    let kubeconfig = PathBuf::from(script.printed_after("export KUBECONFIG="));
    let bins = Binaries::locate().expect("control-plane binaries");
    let cache = tempfile::tempdir().expect("kubectl cache dir");
    let listed = kubectl(
        &bins.kubectl,
        &kubeconfig,
        cache.path(),
        &["get", "raycluster", "-o", "name"],
    );
    assert_eq!(listed.trim(), "raycluster.ray.io/raycluster-kuberay");

    script.interrupt();
    script.assert_stops("Ctrl-C", &listening);
}

#[test]
fn dev_script_stops_everything_it_started_when_only_the_script_is_terminated() {
    let (mut script, listening) = dev_script_ready();
    script.terminate_script_only();
    script.assert_stops("SIGTERM to the script", &listening);
}
