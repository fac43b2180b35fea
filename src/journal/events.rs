//! How events are stored: many per row of `EventBlocks`, as one JSON array, so that the
//! projection writes one row per [`EVENTS_PER_BLOCK`] events instead of one per event (the
//! measurement is in docs/ARCHITECTURE.md). The view `Events (seq, topic, payload, recv_ns)`
//! unfolds them with SQLite's `json_each`, so `SELECT seq, topic, payload FROM Events` gives
//! the same rows, payload text byte for byte, as a table of one row per event did.
//!
//! A block's `events` is `[[seq,"topic",recv_ns,{payload}],...]`; `offsets` holds, for each
//! element, the little-endian `u32` byte offset where it starts, so that readers slice it
//! without parsing the payloads.

use crate::bus::{Batch, BusEvent, topic_name};

/// Events per row. A block of the pipeline stream's events is about 80 KB.
pub const EVENTS_PER_BLOCK: usize = 512;

/// One block being built (its buffers reused).
#[derive(Debug, Default)]
pub struct EventBlock {
    /// The JSON array.
    pub text: Vec<u8>,
    /// Where each element starts (`u32` LE each).
    pub offsets: Vec<u8>,
    /// First and last sequence number (0 when empty).
    pub first: u64,
    /// See `first`.
    pub last: u64,
}

impl EventBlock {
    /// Starts a new block.
    pub fn clear(&mut self) {
        self.text.clear();
        self.offsets.clear();
        self.first = 0;
        self.last = 0;
    }

    /// Events in the block.
    pub fn len(&self) -> usize {
        self.offsets.len() / 4
    }

    /// True if the block holds no event.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Appends event `e` of `batch`.
    pub fn push(&mut self, batch: &Batch, e: &BusEvent) {
        let mut num = itoa::Buffer::new();
        self.text.push(if self.is_empty() { b'[' } else { b',' });
        if self.is_empty() {
            self.first = e.seq;
        }
        self.last = e.seq;
        self.offsets
            .extend_from_slice(&(self.text.len() as u32).to_le_bytes());
        self.text.push(b'[');
        self.text.extend_from_slice(num.format(e.seq).as_bytes());
        self.text.extend_from_slice(b",\"");
        // Topics are dots and lowercase letters: nothing to escape.
        self.text.extend_from_slice(topic_name(e.topic).as_bytes());
        self.text.extend_from_slice(b"\",");
        self.text
            .extend_from_slice(num.format(e.recv_ns).as_bytes());
        self.text.push(b',');
        self.text.extend_from_slice(batch.payload_bytes(e));
        self.text.push(b']');
    }

    /// Closes the array.
    pub fn finish(&mut self) {
        self.text.push(b']');
    }

    /// The array's text (after [`EventBlock::finish`]).
    pub fn text(&self) -> &str {
        // Only whole `&str`s and ASCII were written.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }
}

/// Why a stored block cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event block {first}: {reason}")]
pub struct EventBlockError {
    /// The block's first sequence number.
    pub first: u64,
    /// What is wrong.
    pub reason: &'static str,
}

/// Calls `each(seq, topic, recv_ns, payload)` for every event of a stored block, in order.
pub fn unfold(
    first: u64,
    text: &str,
    offsets: &[u8],
    mut each: impl FnMut(u64, &str, u64, &str),
) -> Result<(), EventBlockError> {
    let fail = |reason| EventBlockError { first, reason };
    if !offsets.len().is_multiple_of(4) || !text.ends_with(']') {
        return Err(fail("its offsets or its text are cut short"));
    }
    let starts: Vec<usize> = offsets
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    for (i, &start) in starts.iter().enumerate() {
        // The element ends before the next one's comma, or before the array's last `]`.
        let end = starts.get(i + 1).map_or(text.len() - 1, |&next| next - 1);
        let element = text
            .get(start..end)
            .filter(|s| s.starts_with('[') && s.ends_with(']'))
            .ok_or_else(|| fail("an offset does not point at an element"))?;
        let inner = &element[1..element.len() - 1];
        let mut parts = inner.splitn(4, ',');
        let (Some(seq), Some(topic), Some(recv_ns), Some(payload)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("an element has fewer than four parts"));
        };
        let seq = seq
            .parse()
            .map_err(|_| fail("a sequence number is not a number"))?;
        let recv_ns = recv_ns
            .parse()
            .map_err(|_| fail("an ingress time is not a number"))?;
        let topic = topic
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .ok_or_else(|| fail("a topic is not a string"))?;
        each(seq, topic, recv_ns, payload);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_unfolds_into_its_events_and_the_view_agrees() {
        let mut batch = Batch::default();
        batch.push(
            41,
            "order.created",
            7,
            r#"{"order_id":1,"username":"a,\"]b"}"#,
        );
        batch.push(42, "trading.halted", 8, "{}");
        batch.push(43, "balance.changed", 9, r#"{"x":[1,2]}"#);
        let mut b = EventBlock::default();
        for e in batch.events() {
            b.push(&batch, e);
        }
        assert_eq!((b.first, b.last, b.len()), (41, 43, 3));
        b.finish();
        let text = b.text().to_string();
        let mut got = Vec::new();
        unfold(41, &text, &b.offsets, |s, t, r, p| {
            got.push((s, t.to_string(), r, p.to_string()))
        })
        .unwrap();
        let want: Vec<_> = batch
            .events()
            .iter()
            .map(|e| {
                (
                    e.seq,
                    topic_name(e.topic).to_string(),
                    e.recv_ns,
                    batch.payload(e).to_string(),
                )
            })
            .collect();
        assert_eq!(got, want);
        // SQLite's view over the same text gives the same rows.
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(&format!(
            "CREATE TABLE EventBlocks (first_seq INTEGER PRIMARY KEY, events TEXT); {}",
            super::super::schema::EVENTS_VIEW
        ))
        .unwrap();
        db.execute("INSERT INTO EventBlocks VALUES (41, ?1)", [&text])
            .unwrap();
        let rows: Vec<(u64, String, u64, String)> = db
            .prepare("SELECT seq, topic, recv_ns, payload FROM Events ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get(3)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, want);
        assert!(unfold(41, &text[..text.len() - 2], &b.offsets, |_, _, _, _| {}).is_err());
    }
}
