//! A small blocking client for the JSON-lines protocol, used by `orderpipe send` and
//! `orderpipe stats` (and handy in tests).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::wire::StatsReport;

/// Sends every line of `requests` over one connection (pipelined) and writes each reply line
/// to `out` as it arrives. Returns how many replies were received.
pub fn send_lines(
    socket: &Path,
    requests: impl Iterator<Item = io::Result<String>> + Send,
    out: &mut impl Write,
) -> io::Result<u64> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot connect to {}: {e}", socket.display()),
        )
    })?;
    let mut writer = io::BufWriter::new(stream.try_clone()?);
    let reader = BufReader::new(stream);
    std::thread::scope(|s| {
        let sender = s.spawn(move || -> io::Result<()> {
            for line in requests {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                writer.write_all(line.trim_end_matches(['\r', '\n']).as_bytes())?;
                writer.write_all(b"\n")?;
            }
            writer.flush()?;
            writer.get_ref().shutdown(std::net::Shutdown::Write)
        });
        let mut replies = 0;
        for line in reader.lines() {
            let line = line?;
            writeln!(out, "{line}")?;
            replies += 1;
        }
        out.flush()?;
        sender
            .join()
            .map_err(|_| io::Error::other("sender thread panicked"))??;
        Ok(replies)
    })
}

/// Asks a running daemon for its counters and latency percentiles.
pub fn stats(socket: &Path) -> io::Result<StatsReport> {
    let mut out = Vec::new();
    send_lines(
        socket,
        std::iter::once(Ok(r#"{"type":"stats"}"#.to_string())),
        &mut out,
    )?;
    let text = String::from_utf8_lossy(&out);
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        counters: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        latency_ns: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        state: crate::wire::StateDigest,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        amqp: Option<crate::bus::amqp::BridgeHealth>,
    }
    let reply: Reply = serde_json::from_str(text.trim())
        .map_err(|e| io::Error::other(format!("unexpected stats reply {text:?}: {e}")))?;
    if reply.kind != "stats" {
        return Err(io::Error::other(format!(
            "stats refused: {}",
            reply.reason.unwrap_or(text.to_string())
        )));
    }
    let counters = reply
        .counters
        .into_iter()
        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
        .collect();
    let latency = reply
        .latency_ns
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_value(v).unwrap_or_default()))
        .collect();
    Ok(StatsReport {
        counters,
        latency,
        state: reply.state,
        amqp: reply.amqp,
    })
}

/// Formats a stats report as a table.
pub fn format_stats(report: &StatsReport) -> String {
    let mut s = format!(
        "state digest {} after command {}\ncounters\n",
        report.state.digest, report.state.cseq
    );
    for (name, value) in &report.counters {
        s.push_str(&format!("  {name:<40} {value:>14}\n"));
    }
    s.push_str(&format!(
        "latency (ns)\n  {:<20} {:>12} {:>10} {:>10} {:>10} {:>12}\n",
        "stage", "count", "p50", "p99", "p99.9", "max"
    ));
    for (stage, l) in &report.latency {
        s.push_str(&format!(
            "  {stage:<20} {:>12} {:>10} {:>10} {:>10} {:>12}\n",
            l.count, l.p50, l.p99, l.p999, l.max
        ));
    }
    if let Some(a) = &report.amqp {
        let now = crate::telemetry::wall_ns();
        s.push_str(&format!(
            "amqp bridge\n  state {} for {:.1} s{}\n  lag {} events, {:.3} s\n",
            a.state,
            now.saturating_sub(a.since_ns) as f64 / 1e9,
            if a.connected {
                String::new()
            } else {
                format!(" (broker away for {:.1} s)", a.down_for_seconds(now))
            },
            a.lag_events,
            a.lag_seconds()
        ));
        if !a.last_error.is_empty() {
            s.push_str(&format!("  last error: {}\n", a.last_error));
        }
    }
    s
}
