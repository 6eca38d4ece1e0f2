//! Runs what the scenarios publish to, each server as a separate process whose CPU time
//! and memory are read from /proc: Herald (one node on its embedded store, or 1 to 3 nodes
//! on a scratch PostgreSQL database, see `postgres.rs`), or the `relay` baseline
//! (`bin/relay.rs`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::Options;
use crate::postgres::Scratch;

pub(crate) const TOKEN: &str = "bench-token";

/// One server process: a Herald node or the relay.
struct Process {
    child: Child,
    addr: SocketAddr,
    _data: Option<tempfile::TempDir>,
}

/// What a scenario publishes to: its server processes (the first takes the set-up calls,
/// publishes go to each in turn) and, on PostgreSQL, the database they share. The
/// processes stop before the database is dropped (fields drop in order).
pub(crate) struct Target {
    nodes: Vec<Process>,
    database: Option<Scratch>,
    relay: bool,
}

/// The binary `name` next to this benchmark, of the same build profile, if it is there.
fn beside(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/bench, or target/<profile>/deps/bench-… for tests.
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A binary of this workspace of the same build profile as this benchmark: `cargo build
/// -p <package> --bin <name>` first when run by cargo (`cargo run`, `cargo test`; a no-op
/// when it is up to date), else the one next to the benchmark.
fn binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    if std::env::var_os("CARGO").is_none()
        && let Some(path) = beside(name)
    {
        return Ok(path);
    }
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", package, "--bin", name]);
    // What cargo sets for the package it runs (`cargo test` sets them for this process)
    // is not the build's to see: build scripts that watch one (ring's watches
    // CARGO_MANIFEST_DIR) would rebuild, and then again at the next plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            build.env_remove(key.as_ref());
        }
    }
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    if !build
        .status()
        .with_context(|| format!("building {name}"))?
        .success()
    {
        bail!("building {name} failed");
    }
    beside(name).with_context(|| format!("the {name} binary was not found next to the benchmark"))
}

/// The `herald` binary: `HERALD_BIN` if set, else the one of the same build profile as
/// this benchmark, built if missing.
fn herald_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return Ok(PathBuf::from(path));
    }
    match beside("herald") {
        Some(path) => Ok(path),
        None => binary("herald", "herald"),
    }
}

impl Process {
    /// Starts `program` with `args` and waits for the line `<banner> http://<address>`.
    fn start(
        program: &Path,
        args: &[&str],
        banner: &str,
        data: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            bail!("no stdout from {}", program.display());
        };
        let mut lines = BufReader::new(stdout).lines();
        let prefix = format!("{banner} http://");
        let listening = lines.by_ref().find_map(|line| {
            let line = line.ok()?;
            Some(line.strip_prefix(&prefix)?.trim().parse::<SocketAddr>())
        });
        let addr = match listening {
            Some(Ok(addr)) => addr,
            failed => {
                let _ = child.kill();
                let _ = child.wait();
                match failed {
                    Some(Err(error)) => bail!("{}: {error}", program.display()),
                    _ => bail!("{} exited before listening", program.display()),
                }
            }
        };
        // Keep reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            addr,
            _data: data,
        })
    }

    /// A Herald node with `extra` flags (`--database-url`, scenario settings).
    fn herald(extra: &[&str]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let data_dir = data.path().to_string_lossy().into_owned();
        let mut args = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--log",
            "warn",
            // The benchmark's receiver listens on loopback.
            "--allow-destination",
            "127.0.0.0/8",
            "--data-dir",
            &data_dir,
        ];
        args.extend_from_slice(extra);
        Self::start(&herald_binary()?, &args, "Herald listening on", Some(data))
    }

    fn pid(&self) -> i32 {
        // Linux pids fit in an i32 (pid_max is at most 2^22).
        self.child.id() as i32
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Target {
    /// Herald as `options` say: one node on its embedded store, or `--nodes` nodes on a
    /// fresh database made through `--database-url`; `extra` flags on every node.
    pub(crate) async fn herald(options: &Options, extra: &[&str]) -> anyhow::Result<Self> {
        let mut flags: Vec<&str> = extra.to_vec();
        if let Some(sink) = &options.otlp_sink {
            flags.extend(["--otlp-endpoint", sink.as_str()]);
        }
        let extra = flags.as_slice();
        let Some(admin_url) = &options.database_url else {
            return Ok(Self {
                nodes: vec![Process::herald(extra)?],
                database: None,
                relay: false,
            });
        };
        let database = Scratch::create(admin_url).await?;
        let mut args = vec!["--database-url", database.url.as_str()];
        args.extend_from_slice(extra);
        // One after the other: the first node creates the schema (later ones would wait
        // for its lock anyway).
        let nodes = (0..options.nodes)
            .map(|_| Process::herald(&args))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            nodes,
            database: Some(database),
            relay: false,
        })
    }

    /// The relay baseline (`bin/relay.rs`).
    pub(crate) fn relay() -> anyhow::Result<Self> {
        let relay = Process::start(
            &binary("bench", "relay")?,
            &["--bind", "127.0.0.1:0", "--admin-token", TOKEN],
            "Relay listening on",
            None,
        )?;
        Ok(Self {
            nodes: vec![relay],
            database: None,
            relay: true,
        })
    }

    pub(crate) fn is_relay(&self) -> bool {
        self.relay
    }

    /// The database the nodes share, on PostgreSQL.
    pub(crate) fn database(&self) -> Option<&Scratch> {
        self.database.as_ref()
    }

    pub(crate) fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// `path` on the first node, which takes the set-up calls.
    pub(crate) fn url(&self, path: &str) -> String {
        self.node_url(0, path)
    }

    /// `path` on node `node`.
    pub(crate) fn node_url(&self, node: usize, path: &str) -> String {
        format!("http://{}{}", self.nodes[node].addr, path)
    }

    /// User + system CPU seconds the processes have used so far, summed over the nodes.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.nodes
            .iter()
            .map(|node| stat_cpu_seconds(&format!("/proc/{}/stat", node.pid())))
            .sum()
    }

    /// User + system CPU seconds the threads whose name starts with `name` have used so
    /// far, summed over the nodes (Linux keeps the first 15 bytes of a thread's name).
    pub(crate) fn thread_cpu_seconds(&self, name: &str) -> f64 {
        let name = &name[..name.len().min(15)];
        let mut seconds = 0.0;
        for node in &self.nodes {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", node.pid())) else {
                continue;
            };
            seconds += tasks
                .flatten()
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|comm| comm.trim_end().starts_with(name))
                })
                .map(|task| stat_cpu_seconds(&task.path().join("stat").to_string_lossy()))
                .sum::<f64>();
        }
        seconds
    }

    /// Resident memory now, of the largest node.
    pub(crate) fn rss_mib(&self) -> f64 {
        self.largest("VmRSS:")
    }

    /// Peak resident memory, of the largest node.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.largest("VmHWM:")
    }

    fn largest(&self, key: &str) -> f64 {
        self.nodes
            .iter()
            .map(|node| node.status_kib(key) as f64 / 1024.0)
            .fold(0.0, f64::max)
    }
}

/// User + system CPU seconds this benchmark process (load generator and receiver) has
/// used so far.
pub(crate) fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// The machine's CPU time so far, from `/proc/stat`: (idle, including waiting for I/O;
/// total), in seconds summed over every core.
pub(crate) fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (idle / 100.0, total / 100.0)
}

/// What the benchmark reads of a `/proc/<pid>/stat` file (times in seconds, at the
/// kernel's 100 ticks a second).
pub(crate) struct ProcStat {
    pub(crate) parent: i32,
    /// utime + stime: the process's own CPU time.
    pub(crate) cpu: f64,
    /// cutime + cstime: the CPU time of the children it has waited for.
    pub(crate) reaped_children_cpu: f64,
}

pub(crate) fn proc_stat(path: &str) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: field
    // 4 of the whole line (the parent) is 1 here, utime to cstime (14 to 17) are 11 to 14.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| -> Option<f64> { fields.get(i)?.parse::<f64>().ok() };
    Some(ProcStat {
        parent: fields.get(1)?.parse().ok()?,
        cpu: (ticks(11)? + ticks(12)?) / 100.0,
        reaped_children_cpu: (ticks(13)? + ticks(14)?) / 100.0,
    })
}

/// utime + stime of a `/proc/…/stat` file, in seconds (0 if it cannot be read).
fn stat_cpu_seconds(path: &str) -> f64 {
    proc_stat(path).map_or(0.0, |stat| stat.cpu)
}
