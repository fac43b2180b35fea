//! Topic patterns with AMQP topic-exchange rules: words separated by dots, `*` matches exactly
//! one word, `#` matches zero or more words. A topic `a..b` has three words, the middle one
//! empty; the empty topic is one empty word.

/// Longest pattern accepted, in bytes (an AMQP routing key holds 255).
pub const MAX_PATTERN_LEN: usize = 255;

/// Most patterns one subscription may carry.
pub const MAX_PATTERNS: usize = 64;

/// One word of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Any,
    /// This exact word.
    Literal(String),
}

/// A compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    words: Vec<Word>,
}

impl Pattern {
    /// Compiles `text`. A word that mixes `*` or `#` with other characters (`order*`) is
    /// refused: in AMQP it would be a literal word, which is never what was meant.
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "pattern of {} bytes is longer than {MAX_PATTERN_LEN}",
                text.len()
            ));
        }
        let words = text
            .split('.')
            .map(|w| match w {
                "*" => Ok(Word::One),
                "#" => Ok(Word::Any),
                w if w.contains(['*', '#']) => Err(format!(
                    "pattern `{text}`: the word `{w}` mixes a wildcard with other characters; \
                     `*` and `#` must be whole words (`order.*`, `#.filled`)"
                )),
                w => Ok(Word::Literal(w.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pattern {
            text: text.to_string(),
            words,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if `topic` matches. Backtracks over the last `#` seen only, as glob matching does:
    /// O(words of pattern × words of topic) at worst, no allocation.
    pub fn matches(&self, topic: &str) -> bool {
        let p = &self.words;
        let mut t = topic.split('.');
        // Pattern position, and the topic words consumed so far.
        let mut i = 0;
        // The last `#`: its pattern position, and a topic iterator just after what it absorbs.
        let mut star: Option<(usize, std::str::Split<'_, char>)> = None;
        loop {
            let before = t.clone();
            let Some(word) = t.next() else { break };
            match p.get(i) {
                Some(Word::Any) => {
                    star = Some((i, before));
                    i += 1;
                    t = star.as_ref().map(|(_, rest)| rest.clone()).unwrap_or(t);
                    continue;
                }
                Some(Word::One) => {
                    i += 1;
                    continue;
                }
                Some(Word::Literal(l)) if l == word => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            // Mismatch: let the last `#` absorb one more word and try again after it.
            let Some((si, rest)) = star.as_mut() else {
                return false;
            };
            if rest.next().is_none() {
                return false;
            }
            i = *si + 1;
            t = rest.clone();
        }
        p[i..].iter().all(|w| *w == Word::Any)
    }
}

/// Compiles a subscription's patterns; at least one, at most [`MAX_PATTERNS`].
pub fn compile(patterns: &[String]) -> Result<Vec<Pattern>, String> {
    if patterns.is_empty() {
        return Err("`patterns` is empty; subscribe to at least one (`#` for everything)".into());
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(format!(
            "{} patterns; a subscription takes at most {MAX_PATTERNS}",
            patterns.len()
        ));
    }
    patterns.iter().map(|p| Pattern::new(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_an_amqp_topic_exchange() {
        // (pattern, topic, matches)
        let cases: &[(&str, &str, bool)] = &[
            ("order.created", "order.created", true),
            ("order.created", "order.filled", false),
            ("order.created", "order.created.x", false),
            ("order.created", "order", false),
            ("order.*", "order.created", true),
            ("order.*", "order", false),
            ("order.*", "order.created.BTC-USD", false),
            ("*.created", "order.created", true),
            ("*", "order", true),
            ("*", "order.created", false),
            ("*", "", true),
            ("#", "", true),
            ("#", "order", true),
            ("#", "order.created.BTC-USD", true),
            ("#.x", "x", true),
            ("#.x", "a.x", true),
            ("#.x", "a.b.x", true),
            ("#.x", "a.x.b", false),
            ("#.x", "", false),
            ("x.#", "x", true),
            ("x.#", "x.a.b", true),
            ("x.#", "y.x", false),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a.b.b", true),
            ("a.#.b", "a.b.c", false),
            ("a.#.b", "b.a.b", false),
            ("a.#.b.#", "a.x.b.y.z", true),
            ("#.b.#", "b", true),
            ("#.#", "a.b", true),
            ("#.*", "", true),
            ("#.*", "a.b", true),
            ("*.#.*", "a", false),
            ("*.#.*", "a.b", true),
            ("a.*.#.c", "a.b.c", true),
            ("a.*.#.c", "a.c", false),
            ("#.a.#.a", "x.a.y.a.z", false),
            ("#.a.#.a", "x.a.y.a.z.a", true),
            // Empty words are words.
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("a.b", "a..b", false),
            ("", "", true),
            ("", "a", false),
            ("*.", "a.", true),
            ("a.#", "a.", true),
            ("trade.#", "trade.executed", true),
            ("order.*", "trade.executed", false),
        ];
        for &(pattern, topic, expected) in cases {
            let p = Pattern::new(pattern).unwrap();
            assert_eq!(
                p.matches(topic),
                expected,
                "pattern {pattern:?} against topic {topic:?}"
            );
        }
    }

    #[test]
    fn refuses_wildcards_inside_words_and_over_long_patterns() {
        let e = Pattern::new("order*").unwrap_err();
        assert!(e.contains("`order*`"), "{e}");
        assert!(Pattern::new("a.#b").is_err());
        assert!(Pattern::new(&"a".repeat(256)).unwrap_err().contains("255"));
        assert!(compile(&[]).unwrap_err().contains("empty"));
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        assert!(compile(&many).unwrap_err().contains("at most 64"));
        assert_eq!(compile(&["order.*".into()]).unwrap()[0].as_str(), "order.*");
    }
}
