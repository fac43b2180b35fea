//! Wiring: starts the journal, the engine and the ingress in order, serves until the shutdown
//! future resolves, then stops them in the reverse order so that everything accepted is
//! committed before [`run`] returns.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::bus::{BusHandle, amqp};
use crate::config::Config;
use crate::engine::{Control, EngineHandle};
use crate::ingress::http::readiness;
use crate::ingress::{self, Ingress, uds};
use crate::journal::checkpoint::{self, Checkpointer};
use crate::journal::{self, JournalError, JournalHandle};
use crate::telemetry::{self, Counters};

/// Set in the environment (benchmarks only), the journal records nothing and the tables are not
/// written: the baseline that measures what recording costs.
pub const NULL_JOURNAL: &str = "ORDERPIPE_NULL_JOURNAL";

/// How often the supervisor looks at the threads and exports counters.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// `/readyz` fails when the engine's heartbeat has not moved, or a commit failed, within this.
/// The engine's loop advances its heartbeat at least every 100 ms, even when idle.
const READY_WINDOW: Duration = Duration::from_secs(1);

/// Why the daemon could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data folder could not be created.
    #[error("cannot create data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("cannot open database {path}: {source}")]
    Journal {
        /// The database file.
        path: String,
        /// Why.
        source: JournalError,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {path}: {source}")]
    Socket {
        /// The socket path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP listener could not be bound, or the gateway not set up.
    #[error("cannot serve HTTP on {addr}: {reason}")]
    Http {
        /// The configured address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A thread could not be started.
    #[error("cannot start the {0} thread: {1}")]
    Spawn(&'static str, std::io::Error),
    /// A thread ended abnormally.
    #[error("the {0} thread failed: {1}")]
    ThreadFailed(&'static str, String),
}

/// Runs the daemon until `shutdown` resolves, then drains and returns.
///
/// Order of start-up: data folder, database (migrated), journal thread, engine thread, socket;
/// only then READY=1 goes to systemd. Order of shutdown: stop accepting, let every connection
/// hand over what it read and collect its replies, let the engine finish every ring, let the
/// journal commit the last batch, remove the socket file.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let config = Arc::new(config);
    let d = &config.daemon;
    raise_open_files_limit();
    let data_dir_error = |source| AppError::DataDir {
        path: d.data_dir.display().to_string(),
        source,
    };
    if !d.data_dir.exists() {
        // The folder the daemon creates gets its documented mode whatever the umask is; one
        // that exists is the operator's and keeps its own.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&d.data_dir).map_err(data_dir_error)?;
        std::fs::set_permissions(
            &d.data_dir,
            std::fs::Permissions::from_mode(d.data_dir_mode),
        )
        .map_err(data_dir_error)?;
    }
    let journal_error = |source| AppError::Journal {
        path: d.database_path.display().to_string(),
        source,
    };
    let counters = Arc::new(Counters::default());
    let committed = Arc::new(tokio::sync::Notify::new());
    let projected = Arc::new(tokio::sync::Notify::new());
    let started = std::time::Instant::now();
    let files = journal::recovery::open(&config).map_err(journal_error)?;
    // The bus takes what the projection writes, from the tables' cursor on: recovery's own
    // projection (the rows a crash kept out of the tables) reaches subscribers too.
    let projected_at_start: u64 = files
        .tables
        .query_row("SELECT seq FROM Projection", [], |r| r.get::<_, i64>(0))
        .map(|s| s as u64)
        .map_err(|e| journal_error(e.into()))?;
    let bus = BusHandle::spawn(
        &d.database_path,
        &config.bus,
        projected_at_start + 1,
        counters.clone(),
    )
    .map_err(|e| AppError::Spawn("bus", e))?;
    let recovery = journal::recovery::recover(
        files,
        config.clone(),
        counters.clone(),
        journal::Outputs {
            projected: projected.clone(),
            bus: Some(bus.sender()),
        },
    )
    .map_err(journal_error)?;
    let recovered = recovery.info.clone();
    let recovered = &recovered;
    let engine = recovery.engine;
    tracing::info!(
        snapshot_cseq = recovered.snapshot_cseq,
        skipped_snapshots = recovered.skipped_snapshots,
        replayed = recovered.replayed,
        projected = recovered.projected,
        last_cseq = recovered.last_cseq,
        last_seq = engine.last_seq(),
        state_digest = %format_args!("{:016x}", recovered.digest),
        took_ms = started.elapsed().as_millis() as u64,
        "state recovered from the journal"
    );
    // Also for `systemctl status`, and for whoever supervises the start.
    let _ = sd_notify::notify(&[NotifyState::Status(&format!(
        "recovered: snapshot after command {}, {} snapshot(s) skipped, {} command(s) replayed, \
         {} projected, last command {}, state digest {:016x}",
        recovered.snapshot_cseq,
        recovered.skipped_snapshots,
        recovered.replayed,
        recovered.projected,
        recovered.last_cseq,
        recovered.digest
    ))]);
    let null_sink = std::env::var_os(NULL_JOURNAL).is_some();
    if null_sink {
        tracing::warn!(
            "{NULL_JOURNAL} is set: the journal records nothing and the tables are not written \
             (a benchmark baseline; every acknowledgement is a lie)"
        );
    }
    let (records_tx, records_rx) = journal::ring::ring(config.engine.journal_ring);
    let bridge = if config.amqp.enabled {
        Some(
            amqp::Bridge::spawn(&config, counters.clone(), projected.clone())
                .map_err(|e| AppError::Spawn("amqp", e))?,
        )
    } else {
        None
    };
    let projector_bell = journal::ProjectorHandle::bell();
    let journal = JournalHandle::spawn(
        (!null_sink).then_some(recovery.journal),
        records_rx,
        &config,
        counters.clone(),
        journal::Followers {
            committed: committed.clone(),
            projector: (!null_sink).then(|| projector_bell.clone()),
        },
    )
    .map_err(|e| AppError::Spawn("journal", e))?;
    let projector = if null_sink {
        // Nothing is projected: the projection (and its hand-over to the bus) goes.
        drop(recovery.projector);
        None
    } else {
        Some(
            journal::ProjectorHandle::start(recovery.projector, projector_bell)
                .map_err(|e| AppError::Spawn("projection", e))?,
        )
    };
    let checkpointer = Checkpointer::spawn(
        vec![
            checkpoint::File {
                path: d.journal_path.clone(),
                commits: |c| c.journal.batches.load(Ordering::Relaxed),
            },
            checkpoint::File {
                path: d.database_path.clone(),
                commits: |c| c.projection.batches.load(Ordering::Relaxed),
            },
        ],
        counters.clone(),
        // Copying pages back is background work, like the projection whose pages most are.
        config.projection.clone(),
    )
    .map_err(|e| AppError::Spawn("checkpoint", e))?;
    let engine = EngineHandle::spawn(
        &config,
        engine,
        records_tx,
        journal.bell(),
        counters.clone(),
    )
    .map_err(|e| AppError::Spawn("engine", e))?;
    let listener = uds::bind(&d.socket_path, d.socket_mode).map_err(|source| AppError::Socket {
        path: d.socket_path.display().to_string(),
        source,
    })?;

    if config.http.is_public() && config.http.allow_insecure_public {
        tracing::warn!(
            listen = %config.http.listen,
            "http.allow_insecure_public is set: the HTTP gateway serves other machines and its \
             demo or short tokens (or open_compat_orders) were accepted anyway"
        );
    }
    let http_listener = if config.http.enabled {
        let addr = config.http.listen;
        Some(
            ingress::http::bind(addr)
                .await
                .map_err(|e| AppError::Http {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?,
        )
    } else {
        None
    };

    let ingress = Arc::new(Ingress {
        config: config.clone(),
        engine: engine.link(),
        journal: journal.link(),
        counters: counters.clone(),
        open: AtomicUsize::new(0),
        committed,
        projected,
        projection: projector.as_ref().map(|p| p.link()),
        bus: bus.link(),
        bridge: bridge.as_ref().map(amqp::Bridge::status),
        next_session: std::sync::atomic::AtomicU32::new(1),
        expiry_wake: tokio::sync::Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicU8::new(readiness::STARTING));
    let mut http_addr = None;
    let http_server = match http_listener {
        Some(l) => {
            let state = ingress::http::Http::new(ingress.clone(), stop_rx.clone(), ready.clone())
                .map_err(|reason| AppError::Http {
                addr: config.http.listen.to_string(),
                reason,
            })?;
            http_addr = l.local_addr().ok();
            Some(tokio::spawn(ingress::http::serve(
                l,
                Arc::new(state),
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let expiry = tokio::spawn(ingress::expiry::run(ingress.clone(), stop_rx.clone()));
    let server = tokio::spawn(uds::serve(listener, ingress, stop_rx));

    let http_text = http_addr.map_or_else(|| "off".to_string(), |a| format!("http://{a}"));
    // Not `println!`, which panics when stdout cannot be written (a log file on a full disk).
    let _ = writeln!(
        std::io::stdout(),
        "orderpipe ready: socket {} database {} http {http_text}",
        d.socket_path.display(),
        d.database_path.display()
    );
    tracing::info!(socket = %d.socket_path.display(), database = %d.database_path.display(), http = %http_text, "ready");
    // Ready before systemd (or a test) hears so: /readyz answers 200 from READY=1 on.
    ready.store(readiness::READY, Ordering::Relaxed);
    let http_var = format!(
        "HTTP_LISTEN={}",
        http_addr.map_or_else(String::new, |a| a.to_string())
    );
    let _ = sd_notify::notify(&[
        NotifyState::Ready,
        NotifyState::Status("serving"),
        NotifyState::Custom(&http_var),
    ]);

    let data_files = DataFiles::new(&[&d.journal_path, &d.database_path]);
    let failure = supervise(
        &engine,
        &journal,
        projector.as_ref(),
        &counters,
        &ready,
        &data_files,
        shutdown,
    )
    .await;
    ready.store(readiness::STOPPING, Ordering::Relaxed);

    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    tracing::info!("shutting down: draining connections, engine and journal");
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = expiry.await;
    if let Some(h) = http_server {
        // Requests in flight are answered; event streams end with where to resume. The
        // gateway's engine connection goes once its last answer is out.
        let _ = h.await;
    }
    // Every connection has handed over its rings (or gone); the engine may stop once they are
    // empty. Registrations were all sent before this, and the channel is in order.
    let link = engine.link();
    while let Err(Control::Shutdown) = link.send(Control::Shutdown) {
        if engine.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let engine_result = tokio::task::spawn_blocking(move || engine.join())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let journal_result = tokio::task::spawn_blocking(move || journal.join())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    // Everything is committed: the projection writes the rest of it, and a last snapshot.
    let projection_result = match projector {
        Some(p) => tokio::task::spawn_blocking(move || p.finish())
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        None => Ok(()),
    };
    checkpointer.finish();
    let bus_result = tokio::task::spawn_blocking(move || bus.join())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    if let Some(bridge) = bridge {
        // Everything is committed and projected: the bridge publishes up to the end (while
        // the broker is reachable, for at most drain_timeout) and keeps its cursor; the rest
        // goes at the next start.
        bridge.finish(d.drain_timeout).await;
    }
    let _ = std::fs::remove_file(&d.socket_path);
    telemetry::export(&counters);
    tracing::info!(
        accepted = counters.engine.orders_accepted.load(Ordering::Relaxed),
        durable_seq = counters.journal.durable_seq.load(Ordering::Relaxed),
        "stopped"
    );
    if let Some(err) = failure {
        return Err(err);
    }
    engine_result.map_err(|e| AppError::ThreadFailed("engine", e))?;
    journal_result.map_err(|e| AppError::ThreadFailed("journal", e))?;
    projection_result.map_err(|e| AppError::ThreadFailed("projection", e))?;
    bus_result.map_err(|e| AppError::ThreadFailed("bus", e))?;
    Ok(())
}

/// Waits for `shutdown` while watching the threads, exporting counters and feeding the systemd
/// watchdog. Returns the failure if a thread died on its own.
async fn supervise(
    engine: &EngineHandle,
    journal: &JournalHandle,
    projector: Option<&journal::ProjectorHandle>,
    counters: &Counters,
    ready: &AtomicU8,
    data_files: &DataFiles,
    shutdown: impl Future<Output = ()>,
) -> Option<AppError> {
    let watchdog = sd_notify::watchdog_enabled();
    let heartbeat = engine.heartbeat();
    let mut last_beat = heartbeat.load(Ordering::Relaxed);
    let mut last_ping = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    // Readiness: the heartbeat moved within the last READY_WINDOW, the journal is not failing,
    // and no commit failed within the last READY_WINDOW.
    let mut beat_seen = (
        heartbeat.load(Ordering::Relaxed),
        tokio::time::Instant::now(),
    );
    let mut errors_seen = (
        counters.journal.commit_errors.load(Ordering::Relaxed),
        tokio::time::Instant::now() - READY_WINDOW,
    );
    // Dates the oldest event RabbitMQ has not confirmed (orderpipe_amqp_lag_seconds).
    let mut amqp_lag = telemetry::LagClock::new();
    // What the service manager was last told (`STATUS=`), from the first round on.
    let mut last_state = readiness::READY;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return None,
            _ = tick.tick() => {}
        }
        if engine.is_finished() {
            tracing::error!("engine thread ended unexpectedly");
            return Some(AppError::ThreadFailed(
                "engine",
                "ended unexpectedly".into(),
            ));
        }
        if journal.is_finished() {
            tracing::error!("journal thread ended unexpectedly");
            return Some(AppError::ThreadFailed(
                "journal",
                "ended unexpectedly".into(),
            ));
        }
        if projector.is_some_and(|p| p.is_finished()) {
            tracing::error!("projection thread ended unexpectedly");
            return Some(AppError::ThreadFailed(
                "projection",
                "ended unexpectedly (the log says why)".into(),
            ));
        }
        if counters.bus.amqp_enabled.load(Ordering::Relaxed) != 0 {
            let now = std::time::Instant::now();
            let committed = counters.journal.durable_seq.load(Ordering::Acquire);
            let confirmed = counters.bus.amqp_confirmed_seq.load(Ordering::Acquire);
            amqp_lag.sample(committed, confirmed, now);
            let age = amqp_lag.age(confirmed, now).as_millis() as u64;
            counters.bus.amqp_lag_ms.store(age, Ordering::Relaxed);
        }
        data_files.watch(&counters.journal.files_missing);
        telemetry::export(counters);
        let now = tokio::time::Instant::now();
        let beat = heartbeat.load(Ordering::Relaxed);
        if beat != beat_seen.0 {
            beat_seen = (beat, now);
        }
        let errors = counters.journal.commit_errors.load(Ordering::Relaxed);
        if errors != errors_seen.0 {
            errors_seen = (errors, now);
        }
        let state = if now - beat_seen.1 > READY_WINDOW {
            readiness::ENGINE_STALLED
        } else if counters.journal.failing.load(Ordering::Relaxed) != 0
            || counters.journal.files_missing.load(Ordering::Relaxed) != 0
            || now - errors_seen.1 < READY_WINDOW
        {
            readiness::JOURNAL_FAILING
        } else {
            readiness::READY
        };
        ready.store(state, Ordering::Relaxed);
        if state != last_state {
            last_state = state;
            say_readiness(state);
        }
        if let Some(interval) = watchdog {
            // Ping only while the engine loop advances: a stuck engine gets the daemon
            // restarted by systemd instead of being reported healthy.
            let beat = heartbeat.load(Ordering::Relaxed);
            if beat != last_beat && last_ping.elapsed() >= interval / 2 {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                last_ping = tokio::time::Instant::now();
                last_beat = beat;
            }
        }
    }
}

/// The data files the daemon holds open, by identity (device and inode) at start-up. A file
/// that is no longer at its path (the data folder moved, deleted or replaced under the
/// daemon) keeps taking writes through the open descriptor, and everything written would be
/// lost with it: the supervisor looks every round and stops the journal until it is back.
#[derive(Debug)]
struct DataFiles(Vec<(std::path::PathBuf, Option<(u64, u64)>)>);

impl DataFiles {
    fn new(paths: &[&std::path::Path]) -> DataFiles {
        DataFiles(
            paths
                .iter()
                .map(|p| (p.to_path_buf(), identity(p)))
                .collect(),
        )
    }

    /// Publishes whether a file is missing (`files_missing`), logging each change.
    fn watch(&self, missing: &AtomicU64) {
        let gone = self.0.iter().find(|(p, id)| identity(p) != *id);
        let now = u64::from(gone.is_some());
        if missing.swap(now, Ordering::AcqRel) == now {
            return;
        }
        match gone {
            Some((path, _)) => tracing::error!(
                file = %path.display(),
                "a data file is no longer at its path (its folder moved, deleted or replaced): \
                 the journal stops committing and new orders are refused until it is back"
            ),
            None => {
                tracing::info!("the data files are back at their paths: the journal commits again")
            }
        }
    }
}

fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Tells the service manager (`STATUS=`, shown by `systemctl status`) and the log that the
/// daemon's readiness changed, with the code `/readyz` answers.
fn say_readiness(state: u8) {
    let (code, reason) = readiness::describe(state);
    let status = format!("{code}: {reason}");
    let _ = sd_notify::notify(&[NotifyState::Status(&status)]);
    match state {
        readiness::READY => tracing::info!(state = code, "ready again"),
        readiness::ENGINE_STALLED => tracing::error!(
            state = code,
            "the engine loop has not advanced for {} ms: watchdog pings stop, so a service \
             manager with WatchdogSec restarts the daemon",
            READY_WINDOW.as_millis()
        ),
        _ => tracing::warn!(state = code, reason, "not ready"),
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one during the drain exits the process
/// at once with status 130.
pub fn shutdown_signals() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // SIGXFSZ (a write past RLIMIT_FSIZE) is caught, not left to kill the daemon: the write
    // then fails with EFBIG, which SQLite reports as a full disk, and the journal goes into
    // its failing state (refusing new orders, retrying) until the limit is raised. Tokio's
    // handler stays installed after the stream is dropped.
    drop(signal(SignalKind::from_raw(libc::SIGXFSZ))?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = writeln!(
                std::io::stderr(),
                "orderpipe: second signal during shutdown; exiting at once"
            );
            std::process::exit(130);
        });
    })
}

/// Raises the soft limit on open files to the hard one: every connection is a descriptor, and
/// `daemon.max_connections` plus `http.max_connections` are far above the usual soft limit of
/// 1,024 (the systemd unit sets `LimitNOFILE` itself).
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open files limit");
        }
    }
}
