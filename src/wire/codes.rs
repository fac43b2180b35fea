//! The codes of `error` replies: problems with a request found before the engine.

/// Codes of `error` replies (problems with the request itself, found by the ingress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not valid JSON, a missing or mistyped field, an unknown field or type.
    BadRequest,
    /// A JSON line longer than `max_line_bytes`; the line is skipped.
    LineTooLong,
    /// A binary frame longer than `max_frame_bytes`; the connection is closed.
    FrameTooLarge,
    /// A binary frame that does not decode; the connection is closed.
    BadFrame,
    /// The connection ended in the middle of a frame.
    TruncatedFrame,
    /// The first bytes are neither `{` nor the binary magic; the connection is closed.
    BadMagic,
    /// The binary handshake asks for a protocol version this daemon does not speak.
    UnsupportedVersion,
    /// `max_connections` are open; the connection is closed.
    TooManyConnections,
    /// The daemon is shutting down.
    ShuttingDown,
    /// A request the daemon could not serve (for example `stats` while the engine is busy).
    Unavailable,
    /// The client did not read its messages fast enough and was disconnected.
    SlowConsumer,
    /// A query about something that does not exist (an unknown market or user).
    NotFound,
    /// The caller may not do this (act for another user, or use an admin function).
    Forbidden,
    /// The command journal cannot commit (a full disk, a failing one, a lock held by another
    /// process): the command was not processed. Only cancels and halts are taken meanwhile.
    /// In a `not_durable` answer: processed, and waiting in memory for the journal.
    JournalUnavailable,
    /// In a `not_durable` answer: processed, but the journal (or the projection, for
    /// `projected`) took longer than `daemon.durable_timeout_ms` to commit it.
    CommitTimeout,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadRequest,
        ErrorCode::LineTooLong,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadFrame,
        ErrorCode::TruncatedFrame,
        ErrorCode::BadMagic,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooManyConnections,
        ErrorCode::ShuttingDown,
        ErrorCode::Unavailable,
        ErrorCode::SlowConsumer,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::JournalUnavailable,
        ErrorCode::CommitTimeout,
    ];

    /// The stable protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TruncatedFrame => "truncated_frame",
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::JournalUnavailable => "journal_unavailable",
            ErrorCode::CommitTimeout => "commit_timeout",
        }
    }
}
