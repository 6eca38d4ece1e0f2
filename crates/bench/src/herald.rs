//! Runs the `herald` binary for a scenario and reads its CPU time and memory from /proc.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

pub(crate) const TOKEN: &str = "bench-token";

pub(crate) struct HeraldProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    _data: tempfile::TempDir,
}

/// The `herald` binary of the same build profile as this benchmark, built if missing.
fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/bench, or target/<profile>/deps/bench-… for tests.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("herald");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "herald"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    if !build.status().context("building herald")?.success() {
        bail!("building herald failed");
    }
    binary_after_build(&exe)
}

fn binary_after_build(exe: &std::path::Path) -> anyhow::Result<PathBuf> {
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("herald"))
        .find(|p| p.is_file())
        .context("the herald binary was not found next to the benchmark")
}

impl HeraldProcess {
    pub(crate) fn start(extra: &[&str]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut child = Command::new(binary()?)
            .args([
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
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting herald")?;
        let stdout = child.stdout.take().context("herald stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                bail!("herald exited before listening");
            };
            if let Some(url) = line?.strip_prefix("Herald listening on http://") {
                break url.trim().parse()?;
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            addr,
            _data: data,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// User + system CPU seconds Herald has used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        stat_cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// User + system CPU seconds Herald's threads whose name starts with `name` have used
    /// so far (Linux keeps the first 15 bytes of a thread's name).
    pub(crate) fn thread_cpu_seconds(&self, name: &str) -> f64 {
        let name = &name[..name.len().min(15)];
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return 0.0;
        };
        tasks
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end().starts_with(name))
            })
            .map(|task| stat_cpu_seconds(&task.path().join("stat").to_string_lossy()))
            .sum()
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }

    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
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

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
