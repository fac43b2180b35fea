//! What the bench watches beside the load: subscribers that read every committed event and
//! check that none is missing, and the daemon's resident memory and open files, sampled once a
//! second.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long subscribers may take, after the load, to reach the last committed event.
const CATCH_UP: Duration = Duration::from_secs(120);

/// What the subscribers saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscribers {
    /// Subscriber connections.
    pub connections: usize,
    /// Events received over all of them.
    pub events: u64,
    /// Times a subscriber was cut off as a slow consumer and subscribed again from where it
    /// was told to resume.
    pub resubscribed: u64,
}

/// One subscriber's progress, shared with the bench's main thread.
#[derive(Default)]
pub struct Progress {
    /// The last sequence number seen.
    pub last_seq: AtomicU64,
    /// Set by the main thread once the subscriber may stop (it has reached `target`).
    pub target: AtomicU64,
    /// The run failed elsewhere: stop now.
    pub abort: AtomicBool,
}

#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", default)]
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    from_seq: Option<u64>,
    #[serde(default)]
    resume_from_seq: Option<u64>,
}

/// Subscribes to every topic from the live edge and reads until `progress.target` is reached;
/// every event must follow the one before it (`#` matches every topic, so sequence numbers
/// have no gap). Returns (events, resubscriptions).
pub fn subscriber(socket: &Path, progress: &Progress) -> Result<(u64, u64), String> {
    let mut events = 0u64;
    let mut resubscribed = 0u64;
    let mut from: Option<u64> = None;
    loop {
        let mut stream = UnixStream::connect(socket)
            .map_err(|e| format!("subscriber: cannot connect to {}: {e}", socket.display()))?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let request = match from {
            Some(seq) => format!(r##"{{"type":"subscribe","patterns":["#"],"from_seq":{seq}}}"##),
            None => r##"{"type":"subscribe","patterns":["#"]}"##.to_string(),
        };
        writeln!(stream, "{request}").map_err(|e| format!("subscriber: {e}"))?;
        let mut reader = BufReader::with_capacity(1 << 16, stream);
        let mut line = Vec::with_capacity(512);
        let mut next: Option<u64> = from;
        loop {
            let target = progress.target.load(Ordering::Acquire);
            if progress.abort.load(Ordering::Relaxed)
                || (target > 0 && progress.last_seq.load(Ordering::Relaxed) >= target)
            {
                return Ok((events, resubscribed));
            }
            // A read that times out mid-line leaves what it read in `line`; the next one
            // appends the rest.
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Err("subscriber: the daemon closed the stream".into()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(format!("subscriber: {e}")),
            }
            if line.last() != Some(&b'\n') {
                continue;
            }
            let l: Line = serde_json::from_slice(&line).map_err(|e| {
                format!(
                    "subscriber: unreadable line ({e}): {}",
                    String::from_utf8_lossy(&line)
                )
            })?;
            let kind = l.kind.to_string();
            let (seq, from_seq, resume) = (l.seq, l.from_seq, l.resume_from_seq);
            line.clear();
            match kind.as_str() {
                "subscribed" => {
                    if next.is_none() {
                        next = from_seq;
                    }
                }
                "event" => {
                    let seq = seq.ok_or("subscriber: an event without seq")?;
                    if let Some(expected) = next
                        && seq != expected
                    {
                        return Err(format!(
                            "subscriber: event {seq} arrived where {expected} was next"
                        ));
                    }
                    next = Some(seq + 1);
                    events += 1;
                    progress.last_seq.store(seq, Ordering::Relaxed);
                }
                "unsubscribed" => {
                    from = resume.or(next);
                    resubscribed += 1;
                    break;
                }
                other => return Err(format!("subscriber: unexpected {other} line")),
            }
        }
    }
}

/// Sets every subscriber's target to the daemon's last committed event and waits (at most
/// [`CATCH_UP`]) for them to reach it.
pub fn catch_up(progress: &[Progress], last_seq: u64) -> Result<(), String> {
    let deadline = Instant::now() + CATCH_UP;
    for p in progress {
        p.target.store(last_seq.max(1), Ordering::Release);
    }
    while progress
        .iter()
        .any(|p| p.last_seq.load(Ordering::Relaxed) < last_seq)
    {
        if Instant::now() > deadline {
            for p in progress {
                p.abort.store(true, Ordering::Relaxed);
            }
            return Err(format!(
                "subscribers did not reach event {last_seq} within {} s",
                CATCH_UP.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The daemon's resident memory and open files at one moment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub second: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Reads `/proc/PID` of the daemon; `None` if it cannot.
pub fn sample(pid: u32, second: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        second,
        rss_kib,
        fds,
    })
}
