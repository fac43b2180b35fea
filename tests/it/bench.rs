//! `orderpipe bench` against the real daemon: every interface in a closed and an open loop,
//! a daemon the bench starts itself on the shipped config, `--compare`, and the options it
//! refuses. Each run is short; what is checked is that the report adds up, not how fast.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

const TOKEN: &str = "bench-admin-token-0123456789abcdef-0123";

fn bench_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orderpipe"))
}

fn run(args: &[&str]) -> Output {
    let out = bench_cmd().arg("bench").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "orderpipe bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The report's counts add up, its percentiles are in order, its spectrum rises to 100% and its
/// timeline holds every answer. Returns the number of answers.
fn check_report(r: &Value) -> u64 {
    let c = &r["counts"];
    let rejected: u64 = c["rejected"].as_object().unwrap().values().map(n).sum();
    let answered = n(&c["answered"]);
    assert!(answered > 0, "nothing was answered: {r}");
    assert_eq!(n(&c["sent"]), answered, "{c}");
    assert_eq!(
        n(&c["accepted"]) + n(&c["cancelled"]) + n(&c["busy"]) + rejected,
        answered,
        "the answers do not add up: {c}"
    );
    assert!(f(&r["throughput_per_sec"]) > 0.0);
    let l = &r["latency_us"];
    let ordered: Vec<f64> = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]
        .iter()
        .map(|k| f(&l[k]))
        .collect();
    assert!(ordered[0] > 0.0, "{l}");
    assert!(
        ordered.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {l}"
    );
    let spectrum = r["spectrum"].as_array().unwrap();
    assert!(
        spectrum.len() > 10,
        "a spectrum of {} points",
        spectrum.len()
    );
    let points: Vec<(f64, f64)> = spectrum.iter().map(|p| (f(&p[0]), f(&p[1]))).collect();
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "the spectrum does not rise: {points:?}"
    );
    assert_eq!(points.last().unwrap().0, 100.0);
    let in_timeline: u64 = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| n(&s["answered"]))
        .sum();
    assert_eq!(in_timeline, answered, "the timeline misses answers");
    answered
}

/// Both pictures exist and draw every label given.
fn check_pictures(dir: &Path, labels: &[&str]) {
    for (file, titles) in [
        ("latency.svg", &["Latency by percentile"][..]),
        (
            "timeline.svg",
            &["Throughput per second", "p99 latency per second"][..],
        ),
    ] {
        let svg = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{file} was not written: {e}"));
        assert!(svg.starts_with("<svg"), "{file} is not an SVG");
        for text in titles.iter().chain(labels) {
            assert!(svg.contains(text), "{file} has no {text:?}");
        }
        // A drawn series: a polyline with points.
        assert!(svg.contains("<polyline"), "{file} draws no line");
    }
}

fn commands(d: &Daemon) -> u64 {
    counter(&mut d.json(), "orderpipe_commands_total")
}

#[test]
fn every_interface_in_a_closed_and_an_open_loop_reports_what_the_daemon_did() {
    let mut d = Daemon::start_with(
        &format!("[http]\nlisten = \"127.0.0.1:0\"\nadmin_tokens = [\"{TOKEN}\"]\n"),
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let http = format!("http://{}", d.http());
    let socket = d.socket.display().to_string();
    let config = d.config.display().to_string();
    let runs: &[(&str, &str, &[&str])] = &[
        ("json", "trade", &["--window", "8"]),
        ("json", "book", &["--rate", "2000", "--ack", "accepted"]),
        ("binary", "book", &["--window", "4", "--ack", "accepted"]),
        ("binary", "trade", &["--rate", "3000"]),
        ("http", "book", &[]),
        ("http", "trade", &["--rate", "300"]),
        ("http-compat", "trade", &["--ack", "accepted"]),
        ("http-compat", "trade", &["--rate", "300"]),
    ];
    for (i, (interface, scenario, extra)) in runs.iter().enumerate() {
        let json = out.path().join(format!("run{i}.json"));
        let plot = out.path().join(format!("plot{i}"));
        let mut args = vec![
            "--config",
            &config,
            "--interface",
            interface,
            "--scenario",
            scenario,
            "--connections",
            "2",
            "--duration",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ];
        if interface.starts_with("http") {
            args.extend(["--http", &http, "--token", TOKEN]);
        } else {
            args.extend(["--socket", &socket]);
        }
        args.extend(extra.iter().copied());
        let before = commands(&d);
        let stdout = String::from_utf8(run(&args).stdout).unwrap();
        assert!(stdout.contains("latency µs"), "no table: {stdout}");
        let r = read_json(&json);
        let answered = check_report(&r);
        let setup = &r["setup"];
        assert_eq!(setup["interface"], *interface, "{setup}");
        assert_eq!(setup["scenario"], *scenario, "{setup}");
        let open = extra.contains(&"--rate");
        assert_eq!(
            setup["model"],
            if open { "open" } else { "closed" },
            "{setup}"
        );
        assert_eq!(setup["own_daemon"], false);
        // Every answer that was not `busy` is a command the daemon processed, and the
        // daemon's own figures for the run came with the report.
        let c = &r["counts"];
        // A cancel or amend of an order that no longer rests and is not in the tables yet
        // (the projection behind, on a loaded machine) is answered 404 `not_found` by the
        // gateway itself, without a command.
        let gateway_only = c["rejected"].get("not_found").map_or(0, n);
        assert_eq!(
            commands(&d) - before,
            answered - n(&c["busy"]) - gateway_only,
            "run {i}: the daemon processed another number of commands than were answered: {c}"
        );
        assert!(
            n(&r["daemon_stats"]["counters"]["orderpipe_commands_total"])
                >= before + answered - gateway_only,
            "run {i}: {}",
            r["daemon_stats"]
        );
        if *scenario == "book" {
            assert!(
                n(&c["cancelled"]) > 0,
                "run {i}: the book mix sent no cancel: {c}"
            );
        }
        if open {
            // An open loop sends at its rate: no more than the rate allows in the duration.
            let rate = extra[1].parse::<f64>().unwrap();
            assert!(n(&c["sent"]) as f64 <= rate * 1.0 + 1.0, "run {i}: {c}");
        }
        check_pictures(&plot, &[r["label"].as_str().unwrap()]);
    }

    // Two reports in one picture.
    let both = out.path().join("both");
    let a = out.path().join("run0.json");
    let b = out.path().join("run2.json");
    run(&[
        "--compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--plot",
        both.to_str().unwrap(),
    ]);
    let labels = [
        read_json(&a)["label"].as_str().unwrap().to_string(),
        read_json(&b)["label"].as_str().unwrap().to_string(),
    ];
    assert_ne!(labels[0], labels[1]);
    check_pictures(&both, &[&labels[0], &labels[1]]);
    d.stop();
}

/// The shipped config, as a new user runs it: the bench starts its own daemon.
fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

#[test]
fn without_a_target_the_bench_starts_a_daemon_on_a_copy_of_the_config() {
    let out = tempfile::tempdir().unwrap();
    // Without --json, the report is left in the current folder.
    let json = out.path().join("orderpipe-bench.json");
    let config = shipped_config();
    let result = bench_cmd()
        .current_dir(out.path())
        .arg("bench")
        .args([
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "1",
            "--subscribers",
            "1",
            "--plot",
            out.path().join("plot").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("started a daemon"), "{stderr}");
    // Not a terminal: progress comes as plain lines.
    assert!(stderr.contains("answers/s"), "no progress line: {stderr}");
    let r = read_json(&json);
    let answered = check_report(&r);
    assert_eq!(r["setup"]["own_daemon"], true);
    assert_eq!(r["setup"]["ack"], "durable");
    // The daemon ran only this load: its command count is the answers'.
    assert_eq!(
        n(&r["daemon_stats"]["counters"]["orderpipe_commands_total"]),
        answered - n(&r["counts"]["busy"])
    );
    // Its own funded users trade with each other: nothing is refused.
    assert_eq!(
        r["counts"]["rejected"],
        serde_json::json!({}),
        "{}",
        r["counts"]
    );
}

#[test]
fn options_that_cannot_go_together_are_refused_with_the_reason() {
    let config = shipped_config();
    let config = config.to_str().unwrap();
    for (args, reason) in [
        (
            &["--interface", "http-compat", "--scenario", "book"][..],
            "cannot send",
        ),
        (
            &["--interface", "http", "--window", "4"][..],
            "one request at a time",
        ),
        (&["--connections", "0"][..], "--connections"),
        (&["--rate", "0"][..], "--rate"),
        (&["--ack", "whenever"][..], "accepted, durable or projected"),
        (&["--compare", "a.json", "b.json"][..], "--plot"),
        (
            &["--socket", "/nonexistent/orderpipe.sock", "--duration", "1"][..],
            "cannot connect",
        ),
    ] {
        let out = bench_cmd()
            .arg("bench")
            .args(["--config", config])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was not refused");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
