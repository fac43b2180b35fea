//! Short strings stored inline, so that commands and records carry names without allocating.

use std::fmt;

/// Up to `N` bytes of UTF-8 stored inline (`N` at most 255).
///
/// Invariants: `len as usize <= N`; `bytes[..len]` is valid UTF-8 and ends on a character
/// boundary; `bytes[len..]` are zero (so derived equality and hashing see only the content).
/// When the source was longer than `N`, `overflow` is set and the content is its longest prefix
/// that fits: the engine refuses such a value with a reason instead of silently truncating it.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    /// Number of content bytes.
    len: u8,
    /// The source did not fit.
    overflow: bool,
    /// Content, zero-padded.
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    /// The empty text.
    pub const EMPTY: Text<N> = Text {
        len: 0,
        overflow: false,
        bytes: [0; N],
    };

    /// Copies `s`, keeping the longest prefix that fits and noting whether it did not.
    pub fn new(s: &str) -> Text<N> {
        const { assert!(N <= 255, "Text holds at most 255 bytes") };
        let mut cut = s.len().min(N);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut bytes = [0; N];
        bytes[..cut].copy_from_slice(&s.as_bytes()[..cut]);
        Text {
            len: cut as u8,
            overflow: s.len() > N,
            bytes,
        }
    }

    /// The content.
    pub fn as_str(&self) -> &str {
        let content = &self.bytes[..self.len as usize];
        debug_assert!(std::str::from_utf8(content).is_ok());
        // Construction only ever copies whole characters, so this cannot fail.
        std::str::from_utf8(content).unwrap_or_default()
    }

    /// True for the empty text.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.overflow
    }

    /// True when the source was longer than `N` bytes.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// `None` for the empty text, else the content.
    pub fn non_empty(&self) -> Option<&str> {
        (!self.is_empty()).then(|| self.as_str())
    }
}

/// Compares the content only: the padding is zero by construction, so this is the same as
/// comparing everything, and short names compare in a few bytes instead of `N`.
impl<const N: usize> PartialEq for Text<N> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.overflow == other.overflow
            && self.bytes[..self.len as usize] == other.bytes[..other.len as usize]
    }
}

impl<const N: usize> Eq for Text<N> {}

/// Hashes the content only (not the zero padding), so short names hash in a few steps.
impl<const N: usize> std::hash::Hash for Text<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes[..self.len as usize]);
        state.write_u8(u8::from(self.overflow));
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text::EMPTY
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}{}",
            self.as_str(),
            if self.overflow { "…" } else { "" }
        )
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Binary form (for the command journal and snapshots): length, overflow flag, content. Decoding
/// checks the same invariants as [`Text::new`].
impl<const N: usize> bincode::Encode for Text<N> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&self.len, e)?;
        bincode::Encode::encode(&self.overflow, e)?;
        // Bytes are written as they are: the same layout as one `u8` after another.
        bincode::enc::write::Writer::write(e.writer(), &self.bytes[..self.len as usize])
    }
}

impl<Ctx, const N: usize> bincode::Decode<Ctx> for Text<N> {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let len: u8 = bincode::Decode::decode(d)?;
        let overflow: bool = bincode::Decode::decode(d)?;
        if len as usize > N {
            return Err(bincode::error::DecodeError::Other(
                "text longer than its capacity",
            ));
        }
        let mut bytes = [0u8; N];
        d.claim_bytes_read(len as usize)?;
        bincode::de::read::Reader::read(d.reader(), &mut bytes[..len as usize])?;
        if std::str::from_utf8(&bytes[..len as usize]).is_err() {
            return Err(bincode::error::DecodeError::Other("text is not UTF-8"));
        }
        Ok(Text {
            len,
            overflow,
            bytes,
        })
    }
}

impl<'de, Ctx, const N: usize> bincode::BorrowDecode<'de, Ctx> for Text<N> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        <Text<N> as bincode::Decode<Ctx>>::decode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_text_and_flags_long_text() {
        let t = Text::<8>::new("alice");
        assert_eq!(t.as_str(), "alice");
        assert!(!t.overflowed());
        let t = Text::<4>::new("abcdef");
        assert_eq!(t.as_str(), "abcd");
        assert!(t.overflowed());
        assert!(!t.is_empty());
        // Never cuts a character in half: "é" is two bytes.
        let t = Text::<4>::new("abcé");
        assert_eq!(t.as_str(), "abc");
        assert!(t.overflowed());
        assert!(Text::<4>::new("").is_empty());
        assert_eq!(Text::<4>::new("ab"), Text::<4>::new("ab"));
        assert_ne!(Text::<4>::new("abcd"), Text::<4>::new("abcde"));
    }
}
