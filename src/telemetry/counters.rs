//! Counters shared between threads, and their typed metric names.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Adds one to a counter that only the calling thread writes.
///
/// A load and a store instead of `fetch_add`: with a single writer nothing can be lost, and a
/// plain store costs the engine no locked instruction.
#[inline]
pub fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Written by the engine thread only.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// Commands taken from connection rings.
    pub commands: AtomicU64,
    /// Orders accepted (given a sequence number).
    pub orders_accepted: AtomicU64,
    /// Orders refused by validation.
    pub orders_rejected: AtomicU64,
    /// Commands answered `busy` because the journal ring was full.
    pub busy: AtomicU64,
    /// Connections currently registered with the engine.
    pub connections: AtomicU64,
    /// Highest sequence number assigned.
    pub last_seq: AtomicU64,
    /// Highest command sequence number assigned.
    pub last_cseq: AtomicU64,
    /// The earliest expiry time of a resting `gtd` or `day` order, ns since the Unix epoch
    /// (0: none), for the expiry timer.
    pub next_expiry_ns: AtomicU64,
    /// Connections cut off because they did not read their execution reports.
    pub slow_consumers: AtomicU64,
    /// Stop orders triggered (`Trigger` commands run).
    pub stops_triggered: AtomicU64,
}

/// Written by the journal thread only.
#[derive(Debug, Default)]
pub struct JournalCounters {
    /// Transactions (blocks) committed.
    pub batches: AtomicU64,
    /// Commands committed.
    pub rows: AtomicU64,
    /// Commands in the last block committed: 1 while a lone client waits for each commit,
    /// more while several connections' commands share them (the socket's reply spin reads it).
    pub last_batch: AtomicU64,
    /// Failed commit attempts (each retried; nothing is dropped).
    pub commit_errors: AtomicU64,
    /// Highest sequence number of an event whose command is committed: the `durable_seq`.
    pub durable_seq: AtomicU64,
    /// Highest command sequence number committed: `durable` replies wait for it.
    pub durable_cseq: AtomicU64,
    /// 1 from a failed commit until the next one succeeds: the ingress then refuses every
    /// command but cancels and halts (`journal_unavailable`).
    pub failing: AtomicU64,
    /// Frames in the command journal's write-ahead log after the last commit.
    pub wal_frames: AtomicU64,
    /// Checkpoints the journal ran itself because its log passed `journal.wal_limit_mb`.
    pub wal_checkpoints: AtomicU64,
    /// 1 while a data file the daemon has open is no longer at its path (the data folder
    /// moved, deleted or replaced under it); set by the supervisor. The journal then stops
    /// committing (what it wrote would be lost with the file) and is failing until the
    /// files are back.
    pub files_missing: AtomicU64,
}

/// Written by the projection thread only.
#[derive(Debug, Default)]
pub struct ProjectionCounters {
    /// Transactions committed to the tables.
    pub batches: AtomicU64,
    /// Events written to the tables.
    pub rows: AtomicU64,
    /// Failed commit attempts (each retried with the same batch).
    pub commit_errors: AtomicU64,
    /// Highest command whose effects are in the tables: `projected` replies wait for it.
    pub projected_cseq: AtomicU64,
    /// Highest event in the `Events` table: subscribers and the RabbitMQ bridge follow it.
    pub projected_seq: AtomicU64,
    /// Snapshots of the replica written to the database.
    pub snapshots_written: AtomicU64,
    /// The command the newest written snapshot was taken after.
    pub snapshot_cseq: AtomicU64,
    /// How long the projection took to copy the replica's state for the last snapshot, in
    /// ns (off the order path: the live engine never pauses for a snapshot).
    pub snapshot_copy_ns: AtomicU64,
    /// Frames in the tables' write-ahead log after the projection's last commit.
    pub wal_frames: AtomicU64,
    /// Checkpoints the projection ran itself because the log passed `journal.wal_limit_mb`.
    pub wal_checkpoints: AtomicU64,
}

/// Written by connection tasks (several at once, so these use `fetch_add`).
#[derive(Debug, Default)]
pub struct IngressCounters {
    /// Connections accepted on the socket.
    pub connections: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Requests answered with an `error` reply by the ingress (bad JSON, bad frame, ...).
    pub bad_requests: AtomicU64,
    /// Times a connection stopped reading because the projection was `max_lag_commands`
    /// behind the journal.
    pub projection_pauses: AtomicU64,
    /// Times a socket connection task went round its loop (each round follows an event: data
    /// read or writable, replies, a commit, an answer). It grows with traffic, never while
    /// nothing happens: a task that went round without an event would be a spin.
    pub connection_rounds: AtomicU64,
    /// HTTP connections closed at once because `http.max_connections` were open.
    pub http_connections_refused: AtomicU64,
    /// HTTP connections closed because a request head did not arrive within `http.header_timeout_ms`.
    pub http_header_timeouts: AtomicU64,
    /// HTTP requests answered 408 because their body did not arrive within `http.body_timeout_ms`.
    pub http_body_timeouts: AtomicU64,
    /// HTTP requests answered 401 (no token, or an unknown one).
    pub http_auth_failures: AtomicU64,
    /// HTTP requests answered 429 because their address failed authentication too often.
    pub http_auth_limited: AtomicU64,
}

/// Written by the bus thread (fan-out) and the RabbitMQ bridge (its own fields).
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Highest sequence number the bus has handed to local subscribers.
    pub seq: AtomicU64,
    /// Local subscribers attached now.
    pub subscribers: AtomicU64,
    /// Local subscribers cut off because their buffer overflowed.
    pub cut_off: AtomicU64,
    /// Committed events the bus read back from SQLite because the journal's hand-over channel
    /// was full (the events are delivered all the same).
    pub read_back: AtomicU64,
    /// Highest sequence number RabbitMQ has confirmed (the bridge's cursor).
    pub amqp_confirmed_seq: AtomicU64,
    /// 1 while the bridge runs (`amqp.enabled`): only then is there a lag to speak of.
    pub amqp_enabled: AtomicU64,
    /// 1 while the bridge holds a working connection to the broker, 0 otherwise.
    pub amqp_connected: AtomicU64,
    /// Age of the oldest committed event RabbitMQ has not confirmed, in ms (0 when none is
    /// waiting). Written by the supervisor, which samples commits every 100 ms.
    pub amqp_lag_ms: AtomicU64,
    /// Connections to RabbitMQ made after the first (each follows a failure).
    pub amqp_reconnects: AtomicU64,
}

impl Counters {
    /// Events committed but not confirmed by RabbitMQ: the last committed sequence number minus
    /// the last confirmed one, read now from the two counters (the journal's commits move the
    /// first, the bridge's confirms the second), so that it grows while the broker is away.
    /// 0 without a bridge.
    pub fn amqp_lag_events(&self) -> u64 {
        if self.bus.amqp_enabled.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let committed = self.journal.durable_seq.load(Ordering::Acquire);
        committed.saturating_sub(self.bus.amqp_confirmed_seq.load(Ordering::Acquire))
    }

    /// Commands committed to the journal and not yet in the tables.
    pub fn projection_lag(&self) -> u64 {
        let durable = self.journal.durable_cseq.load(Ordering::Acquire);
        durable.saturating_sub(self.projection.projected_cseq.load(Ordering::Acquire))
    }
}

/// All counters of the daemon, each group on its own cache lines.
#[derive(Debug, Default)]
pub struct Counters {
    /// The engine's counters.
    pub engine: CachePadded<EngineCounters>,
    /// The journal's counters.
    pub journal: CachePadded<JournalCounters>,
    /// The projection's counters.
    pub projection: CachePadded<ProjectionCounters>,
    /// The ingress's counters.
    pub ingress: CachePadded<IngressCounters>,
    /// The bus's counters.
    pub bus: CachePadded<BusCounters>,
}

/// Every counter by name: the one list that `stats`, the metrics export and the docs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// [`EngineCounters::commands`]
    Commands,
    /// [`EngineCounters::orders_accepted`]
    OrdersAccepted,
    /// [`EngineCounters::orders_rejected`]
    OrdersRejected,
    /// [`EngineCounters::busy`]
    Busy,
    /// [`EngineCounters::connections`]
    EngineConnections,
    /// [`EngineCounters::last_seq`]
    LastSeq,
    /// [`EngineCounters::slow_consumers`]
    SlowConsumers,
    /// [`EngineCounters::last_cseq`]
    LastCseq,
    /// [`EngineCounters::stops_triggered`]
    StopsTriggered,
    /// [`JournalCounters::batches`]
    JournalBatches,
    /// [`JournalCounters::rows`]
    JournalRows,
    /// [`JournalCounters::commit_errors`]
    JournalCommitErrors,
    /// [`JournalCounters::durable_seq`]
    DurableSeq,
    /// [`JournalCounters::durable_cseq`]
    DurableCseq,
    /// [`JournalCounters::failing`]
    JournalFailing,
    /// [`JournalCounters::wal_frames`]
    JournalWalFrames,
    /// [`JournalCounters::wal_checkpoints`]
    JournalWalCheckpoints,
    /// [`JournalCounters::files_missing`]
    DataFilesMissing,
    /// [`ProjectionCounters::batches`]
    ProjectionBatches,
    /// [`ProjectionCounters::rows`]
    ProjectionRows,
    /// [`ProjectionCounters::commit_errors`]
    ProjectionCommitErrors,
    /// [`ProjectionCounters::projected_cseq`]
    ProjectedCseq,
    /// [`ProjectionCounters::projected_seq`]
    ProjectedSeq,
    /// [`Counters::projection_lag`]
    ProjectionLag,
    /// [`IngressCounters::projection_pauses`]
    ProjectionPauses,
    /// [`ProjectionCounters::snapshots_written`]
    SnapshotsWritten,
    /// [`ProjectionCounters::snapshot_cseq`]
    SnapshotCseq,
    /// [`ProjectionCounters::snapshot_copy_ns`]
    SnapshotCopyNs,
    /// [`ProjectionCounters::wal_frames`]
    TablesWalFrames,
    /// [`ProjectionCounters::wal_checkpoints`]
    TablesWalCheckpoints,
    /// [`IngressCounters::connections`]
    Connections,
    /// [`IngressCounters::connections_refused`]
    ConnectionsRefused,
    /// [`IngressCounters::bad_requests`]
    BadRequests,
    /// [`IngressCounters::connection_rounds`]
    ConnectionRounds,
    /// [`IngressCounters::http_connections_refused`]
    HttpConnectionsRefused,
    /// [`IngressCounters::http_header_timeouts`]
    HttpHeaderTimeouts,
    /// [`IngressCounters::http_body_timeouts`]
    HttpBodyTimeouts,
    /// [`IngressCounters::http_auth_failures`]
    HttpAuthFailures,
    /// [`IngressCounters::http_auth_limited`]
    HttpAuthLimited,
    /// [`BusCounters::seq`]
    BusSeq,
    /// [`BusCounters::subscribers`]
    BusSubscribers,
    /// [`BusCounters::cut_off`]
    BusCutOff,
    /// [`BusCounters::read_back`]
    BusReadBack,
    /// [`BusCounters::amqp_confirmed_seq`]
    AmqpConfirmedSeq,
    /// [`Counters::amqp_lag_events`]
    AmqpLag,
    /// [`BusCounters::amqp_connected`]
    AmqpConnected,
    /// [`BusCounters::amqp_reconnects`]
    AmqpReconnects,
}

impl Counter {
    /// All counters, in display order.
    pub const ALL: [Counter; 47] = [
        Counter::Commands,
        Counter::OrdersAccepted,
        Counter::OrdersRejected,
        Counter::Busy,
        Counter::EngineConnections,
        Counter::LastSeq,
        Counter::SlowConsumers,
        Counter::LastCseq,
        Counter::StopsTriggered,
        Counter::JournalBatches,
        Counter::JournalRows,
        Counter::JournalCommitErrors,
        Counter::DurableSeq,
        Counter::DurableCseq,
        Counter::JournalFailing,
        Counter::JournalWalFrames,
        Counter::JournalWalCheckpoints,
        Counter::DataFilesMissing,
        Counter::ProjectionBatches,
        Counter::ProjectionRows,
        Counter::ProjectionCommitErrors,
        Counter::ProjectedCseq,
        Counter::ProjectedSeq,
        Counter::ProjectionLag,
        Counter::ProjectionPauses,
        Counter::SnapshotsWritten,
        Counter::SnapshotCseq,
        Counter::SnapshotCopyNs,
        Counter::TablesWalFrames,
        Counter::TablesWalCheckpoints,
        Counter::Connections,
        Counter::ConnectionsRefused,
        Counter::BadRequests,
        Counter::ConnectionRounds,
        Counter::HttpConnectionsRefused,
        Counter::HttpHeaderTimeouts,
        Counter::HttpBodyTimeouts,
        Counter::HttpAuthFailures,
        Counter::HttpAuthLimited,
        Counter::BusSeq,
        Counter::BusSubscribers,
        Counter::BusCutOff,
        Counter::BusReadBack,
        Counter::AmqpConfirmedSeq,
        Counter::AmqpLag,
        Counter::AmqpConnected,
        Counter::AmqpReconnects,
    ];

    /// The metric name (Prometheus style).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Commands => "orderpipe_commands_total",
            Counter::OrdersAccepted => "orderpipe_orders_accepted_total",
            Counter::OrdersRejected => "orderpipe_orders_rejected_total",
            Counter::Busy => "orderpipe_busy_replies_total",
            Counter::EngineConnections => "orderpipe_engine_connections",
            Counter::LastSeq => "orderpipe_last_seq",
            Counter::SlowConsumers => "orderpipe_slow_consumers_total",
            Counter::LastCseq => "orderpipe_last_cseq",
            Counter::StopsTriggered => "orderpipe_stops_triggered_total",
            Counter::JournalBatches => "orderpipe_journal_batches_total",
            Counter::JournalRows => "orderpipe_journal_rows_total",
            Counter::JournalCommitErrors => "orderpipe_journal_commit_errors_total",
            Counter::DurableSeq => "orderpipe_durable_seq",
            Counter::DurableCseq => "orderpipe_durable_cseq",
            Counter::JournalFailing => "orderpipe_journal_failing",
            Counter::JournalWalFrames => "orderpipe_journal_wal_frames",
            Counter::JournalWalCheckpoints => "orderpipe_journal_wal_checkpoints_total",
            Counter::DataFilesMissing => "orderpipe_data_files_missing",
            Counter::ProjectionBatches => "orderpipe_projection_batches_total",
            Counter::ProjectionRows => "orderpipe_projection_events_total",
            Counter::ProjectionCommitErrors => "orderpipe_projection_commit_errors_total",
            Counter::ProjectedCseq => "orderpipe_projected_cseq",
            Counter::ProjectedSeq => "orderpipe_projected_seq",
            Counter::ProjectionLag => "orderpipe_projection_lag_commands",
            Counter::ProjectionPauses => "orderpipe_projection_pauses_total",
            Counter::SnapshotCopyNs => "orderpipe_snapshot_copy_ns",
            Counter::SnapshotsWritten => "orderpipe_snapshots_written_total",
            Counter::SnapshotCseq => "orderpipe_snapshot_cseq",
            Counter::TablesWalFrames => "orderpipe_tables_wal_frames",
            Counter::TablesWalCheckpoints => "orderpipe_tables_wal_checkpoints_total",
            Counter::Connections => "orderpipe_connections_total",
            Counter::ConnectionsRefused => "orderpipe_connections_refused_total",
            Counter::BadRequests => "orderpipe_bad_requests_total",
            Counter::ConnectionRounds => "orderpipe_connection_rounds_total",
            Counter::HttpConnectionsRefused => "orderpipe_http_connections_refused_total",
            Counter::HttpHeaderTimeouts => "orderpipe_http_header_timeouts_total",
            Counter::HttpBodyTimeouts => "orderpipe_http_body_timeouts_total",
            Counter::HttpAuthFailures => "orderpipe_http_auth_failures_total",
            Counter::HttpAuthLimited => "orderpipe_http_auth_limited_total",
            Counter::BusSeq => "orderpipe_bus_seq",
            Counter::BusSubscribers => "orderpipe_bus_subscribers",
            Counter::BusCutOff => "orderpipe_bus_subscribers_cut_off_total",
            Counter::BusReadBack => "orderpipe_bus_read_back_events_total",
            Counter::AmqpConfirmedSeq => "orderpipe_amqp_confirmed_seq",
            Counter::AmqpLag => "orderpipe_amqp_lag_events",
            Counter::AmqpConnected => "orderpipe_amqp_connected",
            Counter::AmqpReconnects => "orderpipe_amqp_reconnects_total",
        }
    }

    /// The counter's current value.
    pub fn read(self, c: &Counters) -> u64 {
        let atomic = match self {
            Counter::AmqpLag => return c.amqp_lag_events(),
            Counter::ProjectionLag => return c.projection_lag(),
            Counter::Commands => &c.engine.commands,
            Counter::OrdersAccepted => &c.engine.orders_accepted,
            Counter::OrdersRejected => &c.engine.orders_rejected,
            Counter::Busy => &c.engine.busy,
            Counter::EngineConnections => &c.engine.connections,
            Counter::LastSeq => &c.engine.last_seq,
            Counter::SlowConsumers => &c.engine.slow_consumers,
            Counter::LastCseq => &c.engine.last_cseq,
            Counter::StopsTriggered => &c.engine.stops_triggered,
            Counter::JournalBatches => &c.journal.batches,
            Counter::JournalRows => &c.journal.rows,
            Counter::JournalCommitErrors => &c.journal.commit_errors,
            Counter::DurableSeq => &c.journal.durable_seq,
            Counter::DurableCseq => &c.journal.durable_cseq,
            Counter::JournalFailing => &c.journal.failing,
            Counter::JournalWalFrames => &c.journal.wal_frames,
            Counter::JournalWalCheckpoints => &c.journal.wal_checkpoints,
            Counter::DataFilesMissing => &c.journal.files_missing,
            Counter::ProjectionBatches => &c.projection.batches,
            Counter::ProjectionRows => &c.projection.rows,
            Counter::ProjectionCommitErrors => &c.projection.commit_errors,
            Counter::ProjectedCseq => &c.projection.projected_cseq,
            Counter::ProjectedSeq => &c.projection.projected_seq,
            Counter::ProjectionPauses => &c.ingress.projection_pauses,
            Counter::SnapshotsWritten => &c.projection.snapshots_written,
            Counter::SnapshotCseq => &c.projection.snapshot_cseq,
            Counter::SnapshotCopyNs => &c.projection.snapshot_copy_ns,
            Counter::TablesWalFrames => &c.projection.wal_frames,
            Counter::TablesWalCheckpoints => &c.projection.wal_checkpoints,
            Counter::Connections => &c.ingress.connections,
            Counter::ConnectionsRefused => &c.ingress.connections_refused,
            Counter::BadRequests => &c.ingress.bad_requests,
            Counter::ConnectionRounds => &c.ingress.connection_rounds,
            Counter::HttpConnectionsRefused => &c.ingress.http_connections_refused,
            Counter::HttpHeaderTimeouts => &c.ingress.http_header_timeouts,
            Counter::HttpBodyTimeouts => &c.ingress.http_body_timeouts,
            Counter::HttpAuthFailures => &c.ingress.http_auth_failures,
            Counter::HttpAuthLimited => &c.ingress.http_auth_limited,
            Counter::BusSeq => &c.bus.seq,
            Counter::BusSubscribers => &c.bus.subscribers,
            Counter::BusCutOff => &c.bus.cut_off,
            Counter::BusReadBack => &c.bus.read_back,
            Counter::AmqpConfirmedSeq => &c.bus.amqp_confirmed_seq,
            Counter::AmqpConnected => &c.bus.amqp_connected,
            Counter::AmqpReconnects => &c.bus.amqp_reconnects,
        };
        atomic.load(Ordering::Relaxed)
    }
}
