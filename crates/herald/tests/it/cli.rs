//! The command line: `token`, config files, start-up errors that name the key, and the
//! listening socket `serve` opens.

use std::process::Command;

use crate::support::Herald;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[tokio::test]
async fn generated_token_is_kept_and_printed_by_herald_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = herald()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("HERALD_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut token = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.trim().starts_with("hrd_") {
                token = Some(line.trim().to_owned());
            }
            if line.starts_with("Herald listening") {
                break;
            }
        }
        token
    })
    .await
    .unwrap()
    .expect("the generated token is printed once");
    let _ = child.kill();
    let _ = child.wait();
    let out = herald()
        .args(["token", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), printed);
}

#[tokio::test]
async fn config_example_lists_valid_keys_and_bad_config_names_the_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml");
    let herald_from_example = Herald::start_with(&["--config", example]).await;
    let app = herald_from_example.app("acme").await;
    assert!(app.starts_with("app_"));

    let tmp = tempfile::tempdir().unwrap();
    let bad_key = tmp.path().join("bad-key.toml");
    std::fs::write(&bad_key, "[delivery]\nmax_inflight = 3\n").unwrap();
    let bad_section = tmp.path().join("bad-section.toml");
    std::fs::write(&bad_section, "[deliveries]\nmax_in_flight = 3\n").unwrap();
    let bad_value = tmp.path().join("bad-value.toml");
    std::fs::write(&bad_value, "[delivery]\nretry_schedule = \"5s,soon\"\n").unwrap();
    let bad_share = tmp.path().join("bad-share.toml");
    std::fs::write(
        &bad_share,
        "[delivery]\nmax_queued = 100\nmax_queued_per_endpoint = 500\n",
    )
    .unwrap();
    for (file, key) in [
        (&bad_key, "unknown key `max_inflight` in [delivery]"),
        (&bad_section, "unknown section [deliveries]"),
        (&bad_value, "`retry_schedule`: invalid value '5s,soon'"),
        (
            &bad_share,
            "max_queued_per_endpoint: 500 is more than max_queued (100)",
        ),
    ] {
        let out = herald()
            .args(["serve", "--config"])
            .arg(file)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(key), "the error names `{key}`: {err}");
    }
    let out = herald()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("HERALD_MAX_IN_FLIGHT", "0")
        .output()
        .unwrap();
    // A variable's value is checked as its flag's, and the error names the variable.
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("HERALD_MAX_IN_FLIGHT") && err.contains("must be at least 1"),
        "{err}"
    );
}

/// `herald token` and `herald backup` find the store where `--config`'s `[store]` says.
#[test]
fn token_and_backup_read_the_store_from_the_settings_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("admin-token"), "hrd_from_the_file\n").unwrap();
    let file = tmp.path().join("herald.toml");
    std::fs::write(
        &file,
        format!("[store]\ndata_dir = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let out = herald()
        .args(["token", "--config"])
        .arg(&file)
        .env_remove("HERALD_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "hrd_from_the_file"
    );
    // A file that runs Herald on PostgreSQL: backup says so rather than copy nothing.
    let on_postgres = tmp.path().join("postgres.toml");
    std::fs::write(
        &on_postgres,
        "[store]\ndatabase_url = \"postgres://herald@127.0.0.1:1/herald\"\n",
    )
    .unwrap();
    let out = herald()
        .arg("backup")
        .arg(tmp.path().join("copy"))
        .arg("--config")
        .arg(&on_postgres)
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flags win over variables, which win over the file, which wins over the defaults: who
/// may read `/metrics` shows which one counted.
#[tokio::test]
async fn flags_win_over_the_environment_which_wins_over_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("herald.toml");
    std::fs::write(&file, "[telemetry]\nmetrics = \"off\"\n").unwrap();
    let file = file.to_str().unwrap();
    let unauthenticated = |herald: &Herald| {
        let url = herald.url("/metrics");
        async move {
            crate::support::http_client()
                .get(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The file alone: off.
    let herald = Herald::start_with(&["--config", file]).await;
    assert_eq!(unauthenticated(&herald).await, 404);
    // The variable over the file: public.
    let env = [("HERALD_METRICS", "public")];
    let herald = Herald::start_with_env(&["--config", file], &env).await;
    assert_eq!(unauthenticated(&herald).await, 200);
    // The flag over both: the token is needed.
    let herald = Herald::start_with_env(&["--config", file, "--metrics", "token"], &env).await;
    assert_eq!(unauthenticated(&herald).await, 401);
}

/// A burst of publishers connecting at once is queued by the kernel, not dropped: the
/// API's listen backlog is 1024, not the standard library's 128, past which a SYN is
/// dropped and sent again only after a second. Herald is stopped (SIGSTOP) so that it
/// accepts nothing while 600 connections are made; every one must complete its
/// handshake in the kernel's queue.
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_listen_backlog() {
    // The kernel caps every backlog at net.core.somaxconn (4096 by default since Linux 5.4).
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let burst = 600.min(somaxconn);
    let herald = Herald::start().await;
    let pid = herald.pid().unwrap().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name}");
    };
    signal("-STOP");
    let addr = herald.addr;
    let connects = (0..burst).map(|_| {
        tokio::time::timeout(
            std::time::Duration::from_millis(800),
            tokio::net::TcpStream::connect(addr),
        )
    });
    let results = futures::future::join_all(connects).await;
    signal("-CONT");
    let connected: Vec<_> = results.into_iter().filter_map(|r| r.ok()?.ok()).collect();
    assert_eq!(
        connected.len(),
        burst,
        "connections completed while Herald accepted nothing"
    );
    drop(connected);
    // And Herald goes on answering.
    let (status, _) = herald
        .call(reqwest::Method::GET, "/api/v1/health", None)
        .await;
    assert!(status.is_success(), "{status}");
}

/// The embedded store is one process's: a second `herald serve` on a data directory in
/// use exits at once, naming the process that has it, and writes nothing there (not even
/// the admin token it would otherwise generate); the first one goes on serving.
#[tokio::test]
async fn a_second_herald_on_a_data_directory_in_use_exits_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Herald::start_in(tmp.path(), &[]).await;
    let app = first.app("acme").await;
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(tmp.path());
    let lock_before = std::fs::read_to_string(tmp.path().join("herald.lock")).unwrap();

    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path())
            .env_remove("HERALD_ADMIN_TOKEN")
            .output(),
    )
    .await
    .expect("the second Herald exits at once")
    .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("Herald listening"), "{stdout}");
    let pid = first.pid().unwrap();
    assert!(
        stderr.contains("in use by another Herald process")
            && stderr.contains(&format!("(pid {pid})")),
        "the error says who has the directory: {stderr}"
    );
    assert_eq!(listing(tmp.path()), before, "no file was added or removed");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("herald.lock")).unwrap(),
        lock_before
    );
    // The first one is undisturbed.
    assert_eq!(
        first.get(&format!("/api/v1/app/{app}")).await["uid"],
        "acme"
    );
}
