//! Command blocks: the command journal's unit of storage. One row of `CommandBlocks` holds
//! every command of one commit, in `cseq` order, with the range it covers and a checksum.
//!
//! Body: a format byte, then for each command its ingress time (`recv_ns`, a little-endian
//! `u64`) and its [`CommandBody`] in bincode, back to back. Format 2 (written since commands
//! were encoded on the engine's side) uses variable-length integers
//! ([`binary::encode_compact_into`]): about 45 bytes for an order where format 1, the
//! protocol's fixed-width layout (docs/PROTOCOL.md), took 64. Both are read. The checksum
//! covers the row's numbers as well as the body, so a block moved, cut or changed in any byte
//! is found at recovery.

use crate::engine::snapshot::checksum;
use crate::engine::{CommandBody, CommandRecord};
use crate::wire::binary;

/// The body format this build writes.
pub const BLOCK_FORMAT: u8 = 2;

/// The first body format, with the protocol's fixed-width integers; still read.
pub const FIXED_FORMAT: u8 = 1;

/// One stored block, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The first command it holds.
    pub first_cseq: u64,
    /// The last command it holds.
    pub last_cseq: u64,
    /// The sequence number of the last event after its last command.
    pub last_seq: u64,
    /// [`block_checksum`] as stored.
    pub checksum: u64,
    /// The encoded commands.
    pub body: Vec<u8>,
    /// When it was committed, ns since the Unix epoch (not covered by the checksum: it
    /// describes the write, not the commands).
    pub written_ns: u64,
}

/// Why a block cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The stored checksum does not match the block.
    #[error("its checksum does not match (stored {stored:016x}, computed {computed:016x})")]
    Checksum {
        /// As stored.
        stored: u64,
        /// As computed from the row.
        computed: u64,
    },
    /// The body is in a format this build does not read.
    #[error("its body has format {0}, this build reads formats {FIXED_FORMAT} and {BLOCK_FORMAT}")]
    Format(u8),
    /// The body does not decode into the commands its range names.
    #[error("command {cseq} does not decode: {reason}")]
    Decode {
        /// The command that failed.
        cseq: u64,
        /// The decoder's words.
        reason: String,
    },
    /// The body holds more or fewer commands than the range names.
    #[error("it names commands {first} to {last} but holds {held}")]
    Count {
        /// First of the range.
        first: u64,
        /// Last of the range.
        last: u64,
        /// Commands found in the body.
        held: u64,
    },
}

/// The checksum of a block: its range, its last event and its body.
pub fn block_checksum(first_cseq: u64, last_cseq: u64, last_seq: u64, body: &[u8]) -> u64 {
    let mut head = [0u8; 24];
    head[..8].copy_from_slice(&first_cseq.to_le_bytes());
    head[8..16].copy_from_slice(&last_cseq.to_le_bytes());
    head[16..].copy_from_slice(&last_seq.to_le_bytes());
    checksum(&head) ^ checksum(body).rotate_left(17)
}

/// Appends one command as a block of [`BLOCK_FORMAT`] holds it: `recv_ns`, then the command.
pub fn encode_command(c: &CommandRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(&c.recv_ns.to_le_bytes());
    binary::encode_compact_into(&c.body, out);
}

/// Builds the body of one block from consecutive commands. Its buffer is reused.
#[derive(Debug, Default)]
pub struct BlockWriter {
    body: Vec<u8>,
    first: u64,
    last: u64,
    last_seq: u64,
}

impl BlockWriter {
    /// An empty writer.
    pub fn new() -> BlockWriter {
        BlockWriter::default()
    }

    /// Starts a new block (forgetting the last one, keeping the buffer).
    pub fn clear(&mut self) {
        self.body.clear();
        self.first = 0;
        self.last = 0;
        self.last_seq = 0;
    }

    /// Appends the next command. Commands come in `cseq` order without gaps.
    pub fn push(&mut self, c: &CommandRecord) {
        self.start(c.cseq, c.seq_end);
        encode_command(c, &mut self.body);
    }

    /// Appends the next command already encoded by [`encode_command`] (as the journal ring
    /// carries it).
    pub fn push_encoded(&mut self, cseq: u64, seq_end: u64, encoded: &[u8]) {
        self.start(cseq, seq_end);
        self.body.extend_from_slice(encoded);
    }

    fn start(&mut self, cseq: u64, seq_end: u64) {
        if self.body.is_empty() {
            self.body.push(BLOCK_FORMAT);
            self.first = cseq;
        } else {
            assert_eq!(cseq, self.last + 1, "commands reach a block in order");
        }
        self.last = cseq;
        self.last_seq = seq_end;
    }

    /// True if no command was pushed since the last [`BlockWriter::clear`].
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// `(first_cseq, last_cseq, last_seq)` of the block.
    pub fn range(&self) -> (u64, u64, u64) {
        (self.first, self.last, self.last_seq)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The block's checksum.
    pub fn checksum(&self) -> u64 {
        block_checksum(self.first, self.last, self.last_seq, &self.body)
    }
}

impl StoredBlock {
    /// Checks the block and calls `each(cseq, recv_ns, body)` for every command in it, in
    /// order. Nothing is called for a block whose checksum or format is wrong; a body that
    /// stops decoding part way stops with the error after the commands before it.
    pub fn commands(&self, mut each: impl FnMut(u64, u64, CommandBody)) -> Result<(), BlockError> {
        let computed = block_checksum(self.first_cseq, self.last_cseq, self.last_seq, &self.body);
        if computed != self.checksum {
            return Err(BlockError::Checksum {
                stored: self.checksum,
                computed,
            });
        }
        let Some((&format, mut rest)) = self.body.split_first() else {
            return Err(BlockError::Count {
                first: self.first_cseq,
                last: self.last_cseq,
                held: 0,
            });
        };
        let decode = match format {
            BLOCK_FORMAT => binary::decode_compact_prefix::<CommandBody>,
            FIXED_FORMAT => binary::decode_prefix::<CommandBody>,
            _ => return Err(BlockError::Format(format)),
        };
        let mut cseq = self.first_cseq;
        while !rest.is_empty() {
            let decode_error = |reason: String| BlockError::Decode { cseq, reason };
            if rest.len() < 8 || cseq > self.last_cseq {
                return Err(if cseq > self.last_cseq {
                    BlockError::Count {
                        first: self.first_cseq,
                        last: self.last_cseq,
                        held: cseq - self.first_cseq + 1,
                    }
                } else {
                    decode_error("the body ends inside it".into())
                });
            }
            let (time, after) = rest.split_at(8);
            let mut ns = [0u8; 8];
            ns.copy_from_slice(time);
            let (body, used) = decode(after).map_err(decode_error)?;
            each(cseq, u64::from_le_bytes(ns), body);
            rest = &after[used..];
            // A stored range may end at u64::MAX: the count check below still catches it.
            cseq = cseq.saturating_add(1);
        }
        if Some(cseq) != self.last_cseq.checked_add(1) {
            return Err(BlockError::Count {
                first: self.first_cseq,
                last: self.last_cseq,
                held: cseq - self.first_cseq,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CommandBody, HaltTarget, MarketName, Transfer, Username};

    fn record(cseq: u64) -> CommandRecord {
        let body = if cseq.is_multiple_of(2) {
            CommandBody::Halt(HaltTarget::Market(MarketName::new("BTC-USD")))
        } else {
            CommandBody::Deposit(Transfer {
                username: Username::new("alice"),
                asset: crate::engine::AssetName::new("USD"),
                amount: crate::num::Decimal::new(cseq as i64, -2).unwrap(),
                idempotency_key: crate::engine::IdempotencyKey::new(&format!("k{cseq}")),
            })
        };
        CommandRecord {
            cseq,
            seq_end: cseq * 3,
            recv_ns: 1_700_000_000_000_000_000 + cseq,
            engine_mono: 0,
            body,
        }
    }

    fn stored(w: &BlockWriter) -> StoredBlock {
        let (first_cseq, last_cseq, last_seq) = w.range();
        block(first_cseq, last_cseq, last_seq, w.body().to_vec())
    }

    /// A stored block of `body` with its right checksum.
    fn block(first_cseq: u64, last_cseq: u64, last_seq: u64, body: Vec<u8>) -> StoredBlock {
        StoredBlock {
            first_cseq,
            last_cseq,
            last_seq,
            checksum: block_checksum(first_cseq, last_cseq, last_seq, &body),
            body,
            written_ns: 0,
        }
    }

    /// What a block gives back, or what it should: `(cseq, recv_ns, body)` of each command.
    fn decoded(b: &StoredBlock) -> Vec<(u64, u64, CommandBody)> {
        let mut got = Vec::new();
        b.commands(|cseq, recv_ns, body| got.push((cseq, recv_ns, body)))
            .unwrap();
        got
    }

    fn expected(records: &[CommandRecord]) -> Vec<(u64, u64, CommandBody)> {
        records
            .iter()
            .map(|r| (r.cseq, r.recv_ns, r.body))
            .collect()
    }

    #[test]
    fn a_block_gives_back_its_commands_in_order() {
        let mut w = BlockWriter::new();
        let records: Vec<_> = (41..=60).map(record).collect();
        for r in &records {
            w.push(r);
        }
        assert_eq!(w.range(), (41, 60, 180));
        assert_eq!(decoded(&stored(&w)), expected(&records));
        w.clear();
        assert!(w.is_empty());
    }

    #[test]
    fn a_block_of_the_fixed_width_format_is_read_as_before() {
        // The body an earlier build wrote: format 1, each command in the protocol's layout.
        let records: Vec<_> = (7..=12).map(record).collect();
        let mut body = vec![FIXED_FORMAT];
        for r in &records {
            body.extend_from_slice(&r.recv_ns.to_le_bytes());
            binary::encode_into(&r.body, &mut body);
        }
        let old = block(7, 12, 36, body);
        assert_eq!(decoded(&old), expected(&records));
        // The same commands in this build's format: the same commands, in fewer bytes.
        let mut w = BlockWriter::new();
        for r in &records {
            w.push(r);
        }
        assert_eq!(w.body()[0], BLOCK_FORMAT);
        assert!(
            w.body().len() < old.body.len(),
            "{} ≥ {}",
            w.body().len(),
            old.body.len()
        );
        assert_eq!(decoded(&stored(&w)), expected(&records));
    }

    #[test]
    fn a_body_of_an_unknown_format_is_refused() {
        let mut body = vec![9u8];
        body.extend_from_slice(&1u64.to_le_bytes());
        let b = block(1, 1, 1, body);
        let e = b.commands(|_, _, _| panic!("nothing decodes")).unwrap_err();
        assert_eq!(e, BlockError::Format(9));
        assert!(e.to_string().contains("format 9"), "{e}");
    }

    #[test]
    fn any_damage_is_found_and_named() {
        let mut w = BlockWriter::new();
        for c in 1..=5 {
            w.push(&record(c));
        }
        let good = stored(&w);
        let mut flipped = good.clone();
        let at = flipped.body.len() / 2;
        flipped.body[at] ^= 0x40;
        let mut moved = good.clone();
        moved.first_cseq = 2;
        let mut cut = good.clone();
        cut.body.truncate(good.body.len() - 3);
        for damaged in [flipped, moved, cut] {
            let mut called = 0;
            let e = damaged.commands(|_, _, _| called += 1).unwrap_err();
            assert!(matches!(e, BlockError::Checksum { .. }), "{e}");
            assert_eq!(called, 0);
        }
        // A body cut short but given a matching checksum: decoding names the command.
        let mut short = good.clone();
        short.body.truncate(good.body.len() - 3);
        short.checksum = block_checksum(1, 5, 15, &short.body);
        let e = short.commands(|_, _, _| {}).unwrap_err();
        assert!(matches!(e, BlockError::Decode { cseq: 5, .. }), "{e}");
        // A range that claims more commands than the body holds.
        let mut long = good;
        long.last_cseq = 6;
        long.checksum = block_checksum(1, 6, 15, &long.body);
        let e = long.commands(|_, _, _| {}).unwrap_err();
        assert_eq!(
            e,
            BlockError::Count {
                first: 1,
                last: 6,
                held: 5
            }
        );
    }
}
