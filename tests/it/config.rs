//! Config errors are all reported at once, by `validate` and by `run` alike; what the config
//! refuses beyond loopback; the modes of the files the daemon creates.

use crate::support::*;

const BROKEN: &str = r#"
[daemon]
data_dir = "data"
colour = "blue"

[engine]
core = 999

[assets.USD]
scale = 8
[assets.BTC]
scale = 8

[markets.BTC-USD]
base = "BTC"
quote = "USD"
tick_size = "0.1"
min_size = "0.0001"
max_size = "1000"
max_price = "10000000"
reference_price = "100"
"#;

fn assert_all_three(stderr: &str) {
    for key in [
        "daemon.colour: unknown key",
        "engine.core: core 999 is not available",
        "markets.BTC-USD.lot_size: is required",
    ] {
        assert!(stderr.contains(key), "missing {key:?} in:\n{stderr}");
    }
}

#[test]
fn validate_reports_every_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let (status, _, stderr) = run_cli(&["validate", "--config", path.to_str().unwrap()], None);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("3 error(s)"), "{stderr}");
    assert_all_three(&stderr);
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let (status, _, stderr) = run_cli(&["run", "--config", path.to_str().unwrap()], None);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_all_three(&stderr);
    assert!(
        !dir.path().join("data").exists(),
        "run created files for a bad config"
    );
}

#[test]
fn the_shipped_config_is_valid() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let (status, stdout, stderr) = run_cli(&["validate", "--config", shipped], None);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("valid (2 markets)"), "{stdout}");
}

/// The shipped config with only the HTTP address changed to every interface, written into
/// `dir` (the data folder beside it).
fn public_shipped(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let shipped = include_str!("../../config.toml");
    let mut public = shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:18282\"");
    if !extra.is_empty() {
        public = public.replace("allow_insecure_public = false", extra);
    }
    assert_ne!(public, shipped);
    let path = dir.join("public.toml");
    std::fs::write(&path, public).unwrap();
    path
}

#[test]
fn a_gateway_on_every_interface_with_the_demo_tokens_is_refused_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = public_shipped(dir.path(), "");
    let path = path.to_str().unwrap();
    for command in ["validate", "run"] {
        let (status, _, stderr) = run_cli(&[command, "--config", path], None);
        assert_eq!(status.code(), Some(2), "{command}: {stderr}");
        for key in [
            "http.admin_tokens",
            "http.user_tokens.alice",
            "http.user_tokens.bob",
        ] {
            assert!(
                stderr.contains(&format!("{key}: this is a demo token")),
                "{command}: missing {key} in:\n{stderr}"
            );
        }
        assert!(stderr.contains("allow_insecure_public"), "{stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "run created files for a refused config"
    );
    // Said in so many words, the operator gets what was asked for.
    let path = public_shipped(dir.path(), "allow_insecure_public = true");
    let (status, stdout, stderr) = run_cli(&["validate", "--config", path.to_str().unwrap()], None);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
}

/// Permission bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file of a fresh data folder, started under umask 000, after durable orders (so that
/// both write-ahead logs and shared-memory files exist).
fn modes_under_umask_000(daemon_keys: &str) -> Vec<(String, u32)> {
    let mut d = Daemon::start_with_umask(daemon_keys, 0);
    let mut c = d.json();
    c.request(r#"{"type":"hello","ack":"projected"}"#);
    for i in 0..5 {
        let r = c.call(&order(
            "alice",
            "BTC-USD",
            "buy",
            &format!("{}", 90 + i),
            "0.01",
        ));
        assert_eq!(r["type"], "accepted", "{r}");
    }
    let data = d.db.parent().unwrap().to_path_buf();
    let mut modes = vec![("data".to_string(), mode_of(&data))];
    for name in [
        "orderpipe.db",
        "orderpipe.db-wal",
        "orderpipe.db-shm",
        "commands.db",
        "commands.db-wal",
        "commands.db-shm",
        "orderpipe.sock",
    ] {
        modes.push((name.to_string(), mode_of(&data.join(name))));
    }
    drop(c);
    d.stop();
    modes
}

#[test]
fn files_the_daemon_creates_have_their_documented_modes_whatever_the_umask() {
    let expect = |dir: u32, file: u32| {
        let mut v = vec![("data".to_string(), dir)];
        for name in ["orderpipe.db", "commands.db"] {
            for ext in ["", "-wal", "-shm"] {
                v.push((format!("{name}{ext}"), file));
            }
        }
        v.push(("orderpipe.sock".to_string(), 0o660));
        v
    };
    let show = |v: &[(String, u32)]| {
        v.iter()
            .map(|(n, m)| format!("{n} {m:o}"))
            .collect::<Vec<_>>()
    };
    let shipped = modes_under_umask_000("");
    assert_eq!(show(&shipped), show(&expect(0o750, 0o640)));
    let chosen = modes_under_umask_000("data_dir_mode = \"0700\"\nfile_mode = \"0600\"\n");
    assert_eq!(show(&chosen), show(&expect(0o700, 0o600)));
}

#[test]
fn an_accepted_insecure_public_gateway_is_warned_about_at_start() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"data\"\n[http]\nlisten = \"0.0.0.0:0\"\n\
             allow_insecure_public = true\nadmin_tokens = [\"demo-admin-token-change-me\"]\n{MARKETS}"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut warned = false;
    // The warning comes before the daemon serves; the log ends when it exits.
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("http.allow_insecure_public is set") {
            warned = true;
            break;
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "no warning in:\n{}", seen.join("\n"));
}
