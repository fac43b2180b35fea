//! Config errors are all reported at once, by `validate` and by `run` alike.

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
