//! `/v1/completions` log-probabilities in the legacy shape lm-evaluation-harness and other
//! scoring clients read: `tokens`, `token_logprobs`, `top_logprobs`, `text_offset` — with
//! `echo`, the prompt's tokens first (the first one unscored: `null`).
//!
//! `text_offset` counts characters (Unicode scalar values, as Python's `len`) of the returned
//! text before each token, so a client can find where its context ends with `len(context)`. A
//! token that ends inside a multi-byte character starts the next one at the character it
//! completes; a token's own text is its bytes decoded lossily.

use glassbox_engine::{TokenLogprob, Tokenizer};
use serde_json::{Map, Value, json};

#[derive(Default)]
pub(crate) struct Legacy {
    tokens: Vec<String>,
    token_logprobs: Vec<Value>,
    top: Vec<Value>,
    offsets: Vec<usize>,
    /// Bytes of every token so far, and how many of them are decoded into `chars`.
    bytes: Vec<u8>,
    decoded: usize,
    chars: usize,
}

impl Legacy {
    /// Advance the character count over every complete character in `bytes`.
    fn settle(&mut self) {
        loop {
            match std::str::from_utf8(&self.bytes[self.decoded..]) {
                Ok(s) => {
                    self.chars += s.chars().count();
                    self.decoded = self.bytes.len();
                    return;
                }
                Err(e) => {
                    let ok = e.valid_up_to();
                    self.chars += std::str::from_utf8(&self.bytes[self.decoded..self.decoded + ok]).map_or(0, |s| s.chars().count());
                    self.decoded += ok;
                    match e.error_len() {
                        // Invalid bytes become one replacement character each run, as lossy decoding.
                        Some(n) => {
                            self.chars += 1;
                            self.decoded += n;
                        }
                        // An incomplete character at the end: wait for the next token.
                        None => return,
                    }
                }
            }
        }
    }

    /// One token: its text, its log-probability (`None` for the unscored first prompt token)
    /// and its alternatives.
    pub(crate) fn push(&mut self, tok: &Tokenizer, id: u32, lp: Option<&TokenLogprob>) {
        let b = tok.token_bytes(id, false).unwrap_or_default();
        self.offsets.push(self.chars);
        self.tokens.push(String::from_utf8_lossy(&b).into_owned());
        self.bytes.extend_from_slice(&b);
        self.settle();
        match lp {
            Some(lp) => {
                self.token_logprobs.push(json!(lp.logprob));
                let m: Map<String, Value> = lp
                    .top
                    .iter()
                    .map(|&(t, l)| (String::from_utf8_lossy(&tok.token_bytes(t, false).unwrap_or_default()).into_owned(), json!(l)))
                    .collect();
                self.top.push(Value::Object(m));
            }
            None => {
                self.token_logprobs.push(Value::Null);
                self.top.push(Value::Null);
            }
        }
    }

    /// The echoed prompt: every prompt token, the first unscored, then `scored[i]` for token
    /// `i + 1`. Returns the prompt's text as these tokens spell it.
    pub(crate) fn echo(&mut self, tok: &Tokenizer, prompt: &[u32], scored: &[TokenLogprob]) -> String {
        for (i, &id) in prompt.iter().enumerate() {
            let lp = i.checked_sub(1).and_then(|j| scored.get(j));
            self.push(tok, id, lp);
        }
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        json!({"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top, "text_offset": self.offsets})
    }
}

/// Legacy log-probabilities of generated tokens only (no echo), offsets from 0.
pub(crate) fn generated(tok: &Tokenizer, lps: &[TokenLogprob]) -> Value {
    let mut l = Legacy::default();
    for lp in lps {
        l.push(tok, lp.token, Some(lp));
    }
    l.json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_across_split_bytes() {
        let mut l = Legacy::default();
        // "é" (2 bytes) split over two pushes, then "x": offsets 0, 0 (still mid-char), 1.
        l.bytes.extend_from_slice(&[0xc3]);
        l.settle();
        assert_eq!((l.chars, l.decoded), (0, 0));
        l.bytes.extend_from_slice(&[0xa9, b'x']);
        l.settle();
        assert_eq!((l.chars, l.decoded), (2, 3));
        l.bytes.extend_from_slice(&[0xff, b'y']);
        l.settle();
        assert_eq!(l.chars, 4);
    }
}
