//! The codes of replies: `error` codes (problems with a request found before the engine), and
//! how a code, the engine's `RejectCode` or an `ErrorCode`, travels in a reply.

use crate::engine::RejectCode;

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

/// A code enum whose snake_case words are part of the protocol.
pub trait Word: Copy + PartialEq + 'static {
    /// Every code.
    fn all() -> &'static [Self];
    /// Its word.
    fn word(self) -> &'static str;
    /// The code of a word, if it is one.
    fn from_word(word: &str) -> Option<Self> {
        Self::all().iter().copied().find(|c| c.word() == word)
    }
}

impl Word for ErrorCode {
    fn all() -> &'static [Self] {
        &ErrorCode::ALL
    }
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Word for RejectCode {
    fn all() -> &'static [Self] {
        &RejectCode::ALL
    }
    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// A code in a reply: the enum inside the daemon, so that each interface maps it with an
/// exhaustive `match`; its word on the wire, in both framings (a JSON string; a bincode
/// string in binary frames), so that adding a code renumbers nothing a client decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code<T>(pub T);

impl<T: Word> Code<T> {
    /// The word.
    pub fn as_str(self) -> &'static str {
        self.0.word()
    }
}

impl<T: Word> PartialEq<&str> for Code<T> {
    fn eq(&self, word: &&str) -> bool {
        self.0.word() == *word
    }
}

impl<T: Word> std::fmt::Display for Code<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.word())
    }
}

impl<T: Word> serde::Serialize for Code<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.word())
    }
}

impl<T: Word> bincode::Encode for Code<T> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(self.0.word(), e)
    }
}

impl<T: Word, C> bincode::Decode<C> for Code<T> {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let word: String = bincode::Decode::decode(d)?;
        T::from_word(&word)
            .map(Code)
            .ok_or_else(|| bincode::error::DecodeError::OtherString(format!("unknown code {word}")))
    }
}

impl<'de, T: Word, C> bincode::BorrowDecode<'de, C> for Code<T> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        <Self as bincode::Decode<C>>::decode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::binary;

    #[test]
    fn a_code_travels_as_its_word_in_both_framings() {
        for code in RejectCode::ALL {
            // In binary frames: the bytes of the word as a string, as before codes were typed.
            let bytes = binary::encode(&Code(code));
            assert_eq!(bytes, binary::encode(&code.as_str().to_string()));
            assert_eq!(binary::decode::<Code<RejectCode>>(&bytes), Ok(Code(code)));
            assert_eq!(
                serde_json::to_string(&Code(code)).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
        for code in ErrorCode::ALL {
            let bytes = binary::encode(&Code(code));
            assert_eq!(binary::decode::<Code<ErrorCode>>(&bytes), Ok(Code(code)));
        }
        let unknown = binary::encode(&"no_such_code".to_string());
        assert!(binary::decode::<Code<ErrorCode>>(&unknown).is_err());
    }
}
