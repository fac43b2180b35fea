//! The shipped systemd unit passes `systemd-analyze verify`.

use std::process::Command;

use crate::support::BIN;

#[test]
fn the_unit_file_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/orderpipe.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    // systemd-analyze checks that the programs exist: point them at the freshly built binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orderpipe.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/orderpipe", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed for this test (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify also reports some problems as warnings without failing: none are expected.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("orderpipe")).collect();
    assert!(ours.is_empty(), "warnings about the unit:\n{stderr}");
}
