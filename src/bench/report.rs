//! The result of a run: what the table on stdout shows and what `--json` writes (and
//! `--compare` reads back).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::load::{Counts, Interface, Scenario};

/// The report's format version.
pub const VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// [`VERSION`].
    pub version: u32,
    /// A short label for pictures: interface, scenario, ack and load model.
    pub label: String,
    /// How the load was made.
    pub setup: Setup,
    /// Where it ran.
    pub machine: Machine,
    /// What was sent and answered.
    pub counts: Counts,
    /// Answers per second over the run (from the first request to the last answer).
    pub throughput_per_sec: f64,
    /// Seconds from the first request to the last answer.
    pub elapsed_secs: f64,
    /// Latency over the whole run, µs.
    pub latency_us: Percentiles,
    /// The percentile spectrum: `(percentile, latency in µs)`, from 0 to 100, finer towards
    /// the tail (HdrHistogram's percentile iteration, 5 ticks per half distance).
    pub spectrum: Vec<(f64, f64)>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
    /// The daemon's own `stats` reply after the run (its histograms cover the daemon's whole
    /// life: only this load, when `orderpipe bench` started the daemon itself).
    pub daemon_stats: Option<serde_json::Value>,
    /// What `--subscribers` saw.
    #[serde(default)]
    pub subscribers: Option<super::watch::Subscribers>,
    /// The daemon's memory and open files once a second (a daemon the bench started).
    #[serde(default)]
    pub daemon_samples: Vec<super::watch::Sample>,
}

/// How the load was made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Setup {
    /// The protocol.
    pub interface: Interface,
    /// What the requests were.
    pub scenario: Scenario,
    /// `accepted`, `durable` or `projected`.
    pub ack: String,
    /// `closed` (a window of requests in flight per connection) or `open` (a fixed rate;
    /// latency from each request's intended send time).
    pub model: String,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection, at most.
    pub window: usize,
    /// Requests per second over all connections (open loop).
    pub rate: Option<f64>,
    /// How long requests were sent.
    pub duration_secs: f64,
    /// The market.
    pub market: String,
    /// True if `orderpipe bench` started the daemon.
    pub own_daemon: bool,
}

/// Where it ran.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cores: usize,
    /// UTC, RFC 3339.
    pub date: String,
    /// The host's name.
    pub hostname: String,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One second of the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Second {
    /// Seconds since the start (the bucket `[second, second + 1)`).
    pub second: u64,
    /// Answers in it.
    pub answered: u64,
    /// Answers per second in it (the last bucket may cover less than a second).
    pub answers_per_sec: f64,
    /// Their p99, µs (0 if none).
    pub p99_us: f64,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Percentiles {
    /// The percentiles of a histogram in ns.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }

    /// In order, as the table and the checks read them.
    pub fn ordered(&self) -> [f64; 6] {
        [
            self.p50,
            self.p90,
            self.p99,
            self.p99_9,
            self.p99_99,
            self.max,
        ]
    }
}

/// The percentile spectrum of `h`.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| (v.percentile(), us(v.value_iterated_to())))
        .collect();
    points.dedup_by(|b, a| a.0 == b.0);
    points
}

/// The timeline of per-second histograms, over a run of `elapsed_secs`.
pub fn timeline(seconds: &[Histogram<u64>], elapsed_secs: f64) -> Vec<Second> {
    seconds
        .iter()
        .enumerate()
        .map(|(i, h)| Second {
            second: i as u64,
            answered: h.len(),
            answers_per_sec: h.len() as f64 / (elapsed_secs - i as f64).clamp(0.001, 1.0),
            p99_us: if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(0.99))
            },
        })
        .collect()
}

impl Report {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let s = &self.setup;
        let c = &self.counts;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "orderpipe bench: {} over {}, {} ack, {} loop, {} connection{}, {}",
            scenario_word(s.scenario),
            interface_word(s.interface),
            s.ack,
            s.model,
            s.connections,
            if s.connections == 1 { "" } else { "s" },
            match s.rate {
                Some(r) => format!("{r:.0} requests/s intended"),
                None => format!("window {}", s.window),
            }
        );
        let _ = writeln!(
            t,
            "  machine     {} cores, {}",
            self.machine.cores, self.machine.date
        );
        let _ = writeln!(
            t,
            "  requests    {} sent, {} answered in {:.2} s: {:.0} answers/s",
            c.sent, c.answered, self.elapsed_secs, self.throughput_per_sec
        );
        let _ = writeln!(
            t,
            "  answers     {} accepted, {} cancelled, {} busy, {} rejected{}",
            c.accepted,
            c.cancelled,
            c.busy,
            c.rejected_total(),
            if c.rejected.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    c.rejected
                        .iter()
                        .map(|(code, n)| format!("{code}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        if c.reports > 0 {
            let _ = writeln!(t, "  reports     {} execution reports", c.reports);
        }
        let l = &self.latency_us;
        let _ = writeln!(
            t,
            "  latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  ({})",
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p99_9),
            fmt_us(l.p99_99),
            fmt_us(l.max),
            if s.model == "open" {
                "from each request's intended send time"
            } else {
                "from each request's write"
            }
        );
        if let Some(w) = &self.subscribers {
            let _ = writeln!(
                t,
                "  subscribers {} read {} events, none missing ({} resubscribed after a cut-off)",
                w.connections, w.events, w.resubscribed
            );
        }
        if let (Some(first), Some(last)) = (self.daemon_samples.first(), self.daemon_samples.last())
        {
            let peak = self
                .daemon_samples
                .iter()
                .map(|s| s.rss_kib)
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                t,
                "  daemon      resident {} MiB at 1 s, {} MiB at the end (peak {}); open files {} → {}",
                first.rss_kib / 1024,
                last.rss_kib / 1024,
                peak / 1024,
                first.fds,
                last.fds
            );
        }
        if let Some(stats) = &self.daemon_stats {
            let _ = writeln!(t, "  daemon stages (ns, from its stats):");
            for (stage, summary) in stats["latency_ns"].as_object().into_iter().flatten() {
                let n = summary["count"].as_u64().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let _ = writeln!(
                    t,
                    "    {stage:<20} n {n:<10} p50 {:<9} p99 {:<9} p99.9 {:<9} max {}",
                    summary["p50"], summary["p99"], summary["p999"], summary["max"]
                );
            }
        }
        t
    }
}

fn fmt_us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// How the table names an interface.
pub fn interface_word(i: Interface) -> &'static str {
    match i {
        Interface::Json => "socket JSON lines",
        Interface::Binary => "socket binary frames",
        Interface::HttpCompat => "HTTP POST /API/orders",
        Interface::Http => "HTTP /api/trading/orders",
    }
}

/// How the table names a scenario.
pub fn scenario_word(s: Scenario) -> &'static str {
    match s {
        Scenario::Trade => "trade",
        Scenario::Book => "book",
    }
}
