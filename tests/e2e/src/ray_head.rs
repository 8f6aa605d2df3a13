//! A real Ray head (`ray start --head --block` from PyPI's `ray`, installed by
//! `tests/tools/install-ray.sh`), for tests of the dashboard client and of the RayJob and
//! RayService paths. Not an imitation: the Jobs and Serve APIs answer as they do in a cluster.
//!
//! Everything stays on loopback: `--node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1`
//! with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` keep Ray's own processes there, and
//! `RAYGATE_RAY_LOOPBACK_ONLY=1` makes the venv's `raygate_loopback` hook bind Serve's gRPC
//! servers to 127.0.0.1 (Ray 2.60 binds replicas to `[::]` regardless). Ports Ray would
//! otherwise take at fixed defaults (GCS 6379, dashboard 8265, client server 10001, dashboard
//! agent 52365) are chosen free, and each head has its own `--temp-dir`, so several test
//! binaries can each run one at once; the remaining ports Ray picks free itself.
//!
//! `ray start` is made a session leader and every process of the head carries
//! `RAYGATE_RAY_HEAD_DIR=<its temp dir>` in its environment. Stopping kills that whole set:
//! the session, its descendants (job entrypoints run in sessions of their own) and anything
//! else marked with the dir. `ray stop` is never used: it stops every Ray on the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::control_plane::{Supervised, free_loopback_ports, http_get_loopback};

/// Path of the `ray` executable (`target/ray-venv/bin/ray`, set by `scripts/test.sh`).
pub const RAY_BIN_ENV: &str = "RAYGATE_RAY_BIN";
/// When set (to anything), the head's temp dir (Ray's logs) is kept after it stops.
pub const KEEP_DIR_ENV: &str = "RAYGATE_KEEP_RAY";
/// Marks every process of a head, for stopping them all (see the module docs).
const HEAD_DIR_MARKER: &str = "RAYGATE_RAY_HEAD_DIR";

/// How long the dashboard gets to answer `/api/gcs_healthz` with `success`. A head starts
/// in about 12 s on an idle 2-core machine; a busy one (a build running) takes longer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_LINES: usize = 30;
const DIR_PREFIX: &str = "raygate-ray-";
const OWNER_FILE: &str = "owner.pid";
const KEPT_FILE: &str = "KEPT";
const START_LOG: &str = "ray-start.log";

/// A running Ray head, stopped (with every process it started) when dropped, or, for
/// [`RayHead::shared`], when the test process exits.
pub struct RayHead {
    ray: PathBuf,
    root: PathBuf,
    dashboard_port: u16,
    gcs_port: u16,
    process: Mutex<Option<Supervised>>,
    dir: Mutex<Option<tempfile::TempDir>>,
}

impl RayHead {
    /// Starts a head and waits until its dashboard reports the GCS healthy.
    ///
    /// Fails (never skips) when `RAYGATE_RAY_BIN` is unset or wrong, or when Ray does not come
    /// up within [`READY_TIMEOUT`]; the error carries the end of Ray's logs.
    pub fn start() -> Result<Self> {
        Self::start_with_env(&[])
    }

    /// [`RayHead::start`] with extra environment for every Ray process of the head, e.g.
    /// `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN`, as raygate's pods get them.
    pub fn start_with_env(env: &[(&str, &str)]) -> Result<Self> {
        let ray = ray_binary()?;
        sweep_leaked_heads();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .context("creating the Ray head's temp dir")?;
        let root = dir.path().to_path_buf();
        fs::write(root.join(OWNER_FILE), std::process::id().to_string())
            .context("writing the owner pid file")?;
        let [gcs_port, dashboard_port, client_port, agent_port] = free_loopback_ports()?;

        let mut command = Command::new(&ray);
        command
            .args(["start", "--head", "--block"])
            .args([
                "--node-ip-address=127.0.0.1",
                "--dashboard-host=127.0.0.1",
                "--disable-usage-stats",
                "--num-cpus=1",
                // Plasma's store takes 30 % of the machine's memory by default.
                "--object-store-memory=100000000",
            ])
            .arg(format!("--port={gcs_port}"))
            .arg(format!("--dashboard-port={dashboard_port}"))
            .arg(format!("--ray-client-server-port={client_port}"))
            .arg(format!("--dashboard-agent-listen-port={agent_port}"))
            .arg(format!("--temp-dir={}", root.join("ray").display()))
            .current_dir(&root)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env("RAYGATE_RAY_LOOPBACK_ONLY", "1")
            .env(HEAD_DIR_MARKER, &root)
            .envs(env.iter().copied());
        // SAFETY: runs in the forked child before exec; setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = Supervised::spawn("ray start --head", command, &root.join(START_LOG))?;
        let head = RayHead {
            ray,
            root,
            dashboard_port,
            gcs_port,
            process: Mutex::new(Some(process)),
            dir: Mutex::new(Some(dir)),
        };
        let started = Instant::now();
        if let Err(e) = head.wait_ready() {
            let logs = head.log_tails();
            head.stop(true);
            return Err(e.context(format!(
                "starting a Ray head with {} (dir {} kept)\n{logs}",
                head.ray.display(),
                head.root.display()
            )));
        }
        eprintln!(
            "raygate-e2e: Ray head ready at {} after {:.1?} (dir {})",
            head.dashboard_url(),
            started.elapsed(),
            head.root.display()
        );
        Ok(head)
    }

    /// One head for the whole test process, started on first use and stopped when the
    /// process exits (an `atexit` hook: statics are never dropped). Every caller gets the
    /// same error if it could not start.
    pub fn shared() -> Result<&'static RayHead> {
        static SHARED: OnceLock<std::result::Result<RayHead, String>> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(Ok(head)) = SHARED.get() {
                head.stop(false);
            }
        }
        let head = SHARED.get_or_init(|| {
            let head = RayHead::start().map_err(|e| format!("{e:#}"))?;
            // SAFETY: registers a plain function; it runs once, at exit, and does not unwind.
            if unsafe { libc::atexit(stop_shared) } != 0 {
                tracing::warn!("could not register the Ray head's exit hook");
            }
            Ok(head)
        });
        head.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// `http://127.0.0.1:<port>`, the dashboard (Jobs and Serve APIs).
    pub fn dashboard_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.dashboard_port)
    }

    /// The dashboard's port on 127.0.0.1.
    pub fn dashboard_port(&self) -> u16 {
        self.dashboard_port
    }

    /// `127.0.0.1:<port>`, the GCS (what workers and `ray.init(address=...)` connect to).
    pub fn gcs_address(&self) -> String {
        format!("127.0.0.1:{}", self.gcs_port)
    }

    /// The venv's Python, which has `ray`: job entrypoints must use it
    /// (`format!("{} -c 'print(1)'", head.python().display())`).
    pub fn python(&self) -> PathBuf {
        self.ray.with_file_name("python")
    }

    /// The head's own dir: `ray-start.log` and Ray's `--temp-dir` (`ray/`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The end of `ray start`'s output and of the dashboard's and GCS's logs.
    pub fn log_tails(&self) -> String {
        let logs = self.root.join("ray/session_latest/logs");
        [
            self.root.join(START_LOG),
            logs.join("dashboard.log"),
            logs.join("gcs_server.out"),
            logs.join("raylet.out"),
        ]
        .iter()
        .map(|path| log_tail(path))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The TCP sockets the head's processes listen on. For the network rule: every one
    /// should be [`Listener::is_loopback`].
    pub fn listeners(&self) -> Result<Vec<Listener>> {
        let leader = match self.process.lock() {
            Ok(guard) => guard.as_ref().map(Supervised::pid),
            Err(poisoned) => poisoned.into_inner().as_ref().map(Supervised::pid),
        }
        .ok_or_else(|| anyhow!("the Ray head is stopped"))?;
        let marker = format!("{HEAD_DIR_MARKER}={}", self.root.display()).into_bytes();
        let mut owners = BTreeMap::new();
        for pid in head_processes(i32::try_from(leader)?, &marker) {
            let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = fs::read_link(fd.path())
                    && let Some(inode) = target
                        .to_str()
                        .and_then(|t| t.strip_prefix("socket:["))
                        .and_then(|t| t.strip_suffix(']'))
                {
                    owners.insert(inode.to_string(), pid);
                }
            }
        }
        let mut found = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = fs::read_to_string(table).with_context(|| format!("reading {table}"))?;
            // `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`
            for row in text.lines().skip(1) {
                let fields: Vec<&str> = row.split_whitespace().collect();
                let (Some(local), Some(state), Some(inode)) =
                    (fields.get(1), fields.get(3), fields.get(9))
                else {
                    continue;
                };
                const LISTEN: &str = "0A";
                if *state != LISTEN {
                    continue;
                }
                if let Some(pid) = owners.get(*inode) {
                    let address = parse_proc_net_address(local)
                        .with_context(|| format!("a local address {local:?} in {table}"))?;
                    found.push(Listener { pid: *pid, address });
                }
            }
        }
        Ok(found)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .process
                .lock()
                .map_err(|_| anyhow!("the Ray head's lock is poisoned"))?
                .as_mut()
                .and_then(Supervised::exit_status)
            {
                bail!("`ray start` exited with {status} before the dashboard was ready");
            }
            // Ray answers 200 `success` once the dashboard reaches the GCS.
            let last = match loopback_http_get(self.dashboard_port, "/api/gcs_healthz") {
                Ok((200, body)) if body.trim() == "success" => return Ok(()),
                Ok((status, body)) => format!("{status} {body}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "the dashboard at {} did not report the GCS healthy within {READY_TIMEOUT:?} \
                     (last answer: {last})",
                    self.dashboard_url()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Kills every process of the head and removes its dir (unless `keep`, a panic in
    /// progress, or `RAYGATE_KEEP_RAY`). Safe to call more than once.
    fn stop(&self, keep: bool) {
        let mut process = match self.process.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(mut process) = process.take() {
            kill_head_processes(process.pid(), &self.root);
            // Reaps `ray start` (already killed).
            process.kill();
        }
        let mut dir = match self.dir.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let keep = keep || std::thread::panicking() || std::env::var_os(KEEP_DIR_ENV).is_some();
        if let Some(dir) = dir.take() {
            if keep {
                let path = dir.keep();
                let _ = fs::write(path.join(KEPT_FILE), "kept for inspection\n");
                eprintln!(
                    "raygate-e2e: kept the Ray head's dir {} (logs: {START_LOG}, ray/session_latest/logs/)",
                    path.display()
                );
            } else if let Err(e) = dir.close() {
                // Ray's files may still be written by a process that was just killed.
                eprintln!(
                    "raygate-e2e: could not remove the Ray head's dir {}: {e}",
                    self.root.display()
                );
            }
        }
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// A listening TCP socket of a head's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub pid: i32,
    pub address: SocketAddr,
}

impl Listener {
    /// Bound to 127.0.0.0/8 or `::1` (directly or as `::ffff:127.x.y.z`), not to a wildcard
    /// or the machine's own address.
    pub fn is_loopback(&self) -> bool {
        match self.address.ip() {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

/// `$RAYGATE_RAY_BIN`, checked; it must sit in a venv next to its `python`.
pub fn ray_binary() -> Result<PathBuf> {
    let install = crate::control_plane::workspace_root().join("tests/tools/install-ray.sh");
    let Some(path) = std::env::var_os(RAY_BIN_ENV).filter(|p| !p.is_empty()) else {
        bail!(
            "{RAY_BIN_ENV} is not set: these tests need a real Ray. Run `bash {}` and set \
             {RAY_BIN_ENV}=<repo>/target/ray-venv/bin/ray (scripts/test.sh does both)",
            install.display()
        );
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!(
            "{RAY_BIN_ENV}={} does not exist (run `bash {}`)",
            path.display(),
            install.display()
        );
    }
    let python = path.with_file_name("python");
    if !python.is_file() {
        bail!(
            "{RAY_BIN_ENV}={}: expected the venv's python next to it at {}",
            path.display(),
            python.display()
        );
    }
    Ok(path)
}

/// A free TCP port on 127.0.0.1 (for a Serve proxy, say).
pub fn free_loopback_port() -> Result<u16> {
    let [port] = free_loopback_ports::<1>()?;
    Ok(port)
}

/// An HTTP/1.0 GET to `127.0.0.1:<port><path>`: the answer's status code and body.
pub fn loopback_http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let answer = http_get_loopback(port, path)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP answer: {answer:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding") && value.trim() == "chunked"
        })
    });
    // Serve's proxy (uvicorn) answers even HTTP/1.0 in chunks.
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The payload of a chunked body (`<hex size>\r\n<data>\r\n ... 0\r\n\r\n`).
fn dechunk(mut rest: &str) -> Result<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("a chunk without a size line: {rest:?}"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("a chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| anyhow!("a chunk shorter than {size}: {after:?}"))?;
        body.push_str(chunk);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
}

/// One process, from `/proc/<pid>/stat` and `/proc/<pid>/environ`.
struct ProcessEntry {
    parent: i32,
    session: i32,
    marked: bool,
}

fn processes(marker: &[u8]) -> BTreeMap<i32, ProcessEntry> {
    let mut found = BTreeMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let (Some(parent), Some(session)) = (
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(3).and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        let marked = fs::read(entry.path().join("environ"))
            .map(|env| env.split(|b| *b == 0).any(|var| var == marker))
            .unwrap_or(false);
        found.insert(
            pid,
            ProcessEntry {
                parent,
                session,
                marked,
            },
        );
    }
    found
}

/// The head's processes: the session of `ray start` (`leader`, 0 when it is gone), their
/// descendants, and everything carrying the head's dir marker.
fn head_processes(leader: i32, marker: &[u8]) -> BTreeSet<i32> {
    let all = processes(marker);
    let own = std::process::id() as i32;
    let mut set: BTreeSet<i32> = all
        .iter()
        .filter(|(_, p)| (leader > 0 && p.session == leader) || p.marked)
        .map(|(pid, _)| *pid)
        .collect();
    loop {
        let children: Vec<i32> = all
            .iter()
            .filter(|(pid, p)| set.contains(&p.parent) && !set.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if children.is_empty() {
            break;
        }
        set.extend(children);
    }
    set.remove(&own);
    set
}

/// Freezes the head's processes (so none starts another meanwhile), looks again until no new
/// one appears, then kills them all.
fn kill_head_processes(leader: u32, root: &Path) {
    let leader = i32::try_from(leader).unwrap_or(0);
    let marker = format!("{HEAD_DIR_MARKER}={}", root.display()).into_bytes();
    let mut frozen = BTreeSet::new();
    for _ in 0..20 {
        let found = head_processes(leader, &marker);
        let new: Vec<i32> = found.difference(&frozen).copied().collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            // SAFETY: plain syscall; the pid belongs to the head (see `head_processes`).
            unsafe {
                libc::kill(pid, libc::SIGSTOP);
            }
            frozen.insert(pid);
        }
    }
    for pid in &frozen {
        // SAFETY: as above.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    tracing::debug!(processes = frozen.len(), "stopped the Ray head");
}

/// Kills the processes of heads whose test process is gone (SIGKILLed, say, so neither drop
/// nor the exit hook ran) and removes their dirs, unless kept on purpose.
fn sweep_leaked_heads() {
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
            tracing::debug!(dir = %path.display(), pid, "stopping a leaked Ray head");
            kill_head_processes(0, &path);
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// A `/proc/net/tcp{,6}` local address: `<hex address>:<hex port>`, the address printed as
/// 32-bit words in host byte order.
fn parse_proc_net_address(local: &str) -> Result<SocketAddr> {
    let (address, port) = local.split_once(':').ok_or_else(|| anyhow!("no port"))?;
    let port = u16::from_str_radix(port, 16)?;
    let mut bytes = Vec::with_capacity(16);
    for word in address.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word)?, 16)?;
        bytes.extend(word.to_ne_bytes());
    }
    let ip = match <[u8; 4]>::try_from(bytes.as_slice()) {
        Ok(v4) => IpAddr::from(v4),
        Err(_) => IpAddr::from(
            <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| anyhow!("neither IPv4 nor IPv6"))?,
        ),
    };
    Ok(SocketAddr::new(ip, port))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("12\r\nhello from raygate\r\n0\r\n\r\n").expect("valid"),
            "hello from raygate"
        );
        assert_eq!(
            dechunk("2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\n\r\n").expect("valid"),
            "hello"
        );
        assert!(dechunk("5\r\nhi").is_err());
    }

    #[test]
    fn loopback_addresses_in_proc_net_tcp() {
        let loopback = |local: &str| {
            let address = parse_proc_net_address(local).expect("valid");
            (address, Listener { pid: 1, address }.is_loopback())
        };
        if cfg!(target_endian = "little") {
            assert_eq!(
                loopback("0100007F:1F90"),
                ("127.0.0.1:8080".parse().expect("valid"), true)
            );
            assert!(loopback("0200007F:1F90").1);
            assert!(!loopback("00000000:1F90").1);
            assert!(!loopback("0100000A:1F90").1);
            assert!(loopback("00000000000000000000000001000000:1F90").1);
            assert_eq!(
                loopback("0000000000000000FFFF00000100007F:1F90"),
                ("[::ffff:127.0.0.1]:8080".parse().expect("valid"), true)
            );
            assert!(!loopback("00000000000000000000000000000000:1F90").1);
            assert!(!loopback("0000000000000000FFFF00000100000A:1F90").1);
        }
        assert!(parse_proc_net_address("zz:1").is_err());
        assert!(parse_proc_net_address("0100007F").is_err());
    }
}
