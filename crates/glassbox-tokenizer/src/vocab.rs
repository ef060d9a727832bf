use std::collections::HashMap;

use glassbox_gguf::{Array, Gguf};

use crate::bpe::{Merges, byte_to_char_table};
use crate::pretok::PreTokenizer;
use crate::{Error, Result, spm};

/// llama.cpp token types (`tokenizer.ggml.token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_i64(v: i64) -> TokenType {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

// The BPE variant is the large one, and a tokenizer is built once per model: no box needed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum TokenizerKind {
    Bpe { merges: Merges, pre: PreTokenizer, byte_to_char: [char; 256], char_to_byte: HashMap<char, u8> },
    Spm { byte_tokens: [Option<u32>; 256] },
}

pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    lookup: HashMap<String, u32>,
    /// Control, user-defined and unknown tokens, longest text first.
    special: Vec<u32>,
    kind: TokenizerKind,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    /// End-of-generation tokens: EOS, EOT and the usual end-of-turn markers present in the vocab.
    eog: Vec<u32>,
}

const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<|return|>", "<|eom_id|>",
];

fn id_key(g: &Gguf, key: &str, n: usize) -> Result<Option<u32>> {
    match g.get_u64(key)? {
        None => Ok(None),
        Some(v) if (v as usize) < n => Ok(Some(v as u32)),
        Some(v) => Err(Error::Invalid { key: key.into(), msg: format!("token id {v} is out of range ({n} tokens)") }),
    }
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model = g.get_str("tokenizer.ggml.model")?.ok_or_else(|| Error::MissingKey("tokenizer.ggml.model".into()))?;
        let tokens = match g.get_array("tokenizer.ggml.tokens")? {
            Some(Array::String(v)) => v.clone(),
            Some(_) => return Err(Error::Invalid { key: "tokenizer.ggml.tokens".into(), msg: "not an array of strings".into() }),
            None => return Err(Error::MissingKey("tokenizer.ggml.tokens".into())),
        };
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(Error::Invalid { key: "tokenizer.ggml.tokens".into(), msg: format!("{n} tokens") });
        }
        let types = match g.get_array("tokenizer.ggml.token_type")? {
            Some(a) => {
                let v = a.as_i64s().ok_or_else(|| Error::Invalid { key: "tokenizer.ggml.token_type".into(), msg: "not integers".into() })?;
                if v.len() != n {
                    return Err(Error::Invalid { key: "tokenizer.ggml.token_type".into(), msg: format!("{} entries for {n} tokens", v.len()) });
                }
                v.into_iter().map(TokenType::from_i64).collect()
            }
            None => vec![TokenType::Normal; n],
        };
        let scores = match g.get_array("tokenizer.ggml.scores")? {
            Some(Array::F32(v)) if v.len() == n => v.clone(),
            Some(_) => return Err(Error::Invalid { key: "tokenizer.ggml.scores".into(), msg: format!("expected {n} f32 values") }),
            None => vec![0.0; n],
        };
        let mut lookup = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            // First occurrence wins, like llama.cpp's token_to_id map.
            lookup.entry(t.clone()).or_insert(i as u32);
        }
        let (kind, default_bos, default_eos, default_add_bos, default_space_prefix) = match model {
            "gpt2" => {
                let pre_name = g.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
                let pre = PreTokenizer::for_name(pre_name)?;
                let merges = match g.get_array("tokenizer.ggml.merges")? {
                    Some(Array::String(v)) => v,
                    _ => return Err(Error::MissingKey("tokenizer.ggml.merges".into())),
                };
                let mut ranks = HashMap::with_capacity(merges.len());
                for (i, m) in merges.iter().enumerate() {
                    // "a b" with exactly one separating space (the left part may not be empty).
                    match m.char_indices().nth(1).and_then(|(i, _)| m[i..].find(' ')) {
                        Some(_) => {}
                        None => {
                            return Err(Error::Invalid { key: "tokenizer.ggml.merges".into(), msg: format!("merge {i} {m:?} has no separating space") });
                        }
                    }
                    ranks.entry(m.clone()).or_insert(i as u32);
                }
                let byte_to_char = byte_to_char_table();
                let char_to_byte = byte_to_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
                let llama3 = pre.ignore_merges;
                (TokenizerKind::Bpe { merges: Merges::new(ranks), pre, byte_to_char, char_to_byte }, 11, 11, llama3, false)
            }
            "llama" => {
                let mut byte_tokens = [None; 256];
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = lookup.get(&format!("<0x{b:02X}>")).copied();
                }
                (TokenizerKind::Spm { byte_tokens }, 1, 2, true, true)
            }
            other => return Err(Error::UnsupportedModel(other.into())),
        };
        let bos = id_key(g, "tokenizer.ggml.bos_token_id", n)?.or((default_bos < n).then_some(default_bos as u32));
        let eos = id_key(g, "tokenizer.ggml.eos_token_id", n)?.or((default_eos < n).then_some(default_eos as u32));
        let eot = id_key(g, "tokenizer.ggml.eot_token_id", n)?;
        let add_bos = g.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
        let add_eos = g.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(default_space_prefix);
        let mut special: Vec<u32> = (0..n as u32)
            .filter(|&i| matches!(types[i as usize], TokenType::Control | TokenType::UserDefined | TokenType::Unknown))
            .filter(|&i| !tokens[i as usize].is_empty())
            .collect();
        special.sort_by_key(|&i| std::cmp::Reverse(tokens[i as usize].len()));
        let mut eog: Vec<u32> = eos.into_iter().chain(eot).collect();
        for t in EOG_TEXTS {
            if let Some(&id) = lookup.get(*t) {
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        Ok(Tokenizer { tokens, types, scores, lookup, special, kind, bos, eos, add_bos, add_eos, add_space_prefix, eog })
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TokenizerKind::Bpe { .. } => "gpt2 (byte-level BPE)",
            TokenizerKind::Spm { .. } => "llama (SentencePiece)",
        }
    }
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.lookup.get(text).copied()
    }
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }

    /// Tokenize like `llama-tokenize`: BOS/EOS as the metadata says, special-token text parsed.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, self.add_bos, self.add_eos, true)
    }

    pub fn encode_with(&self, text: &str, add_bos: bool, add_eos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos && let Some(b) = self.bos {
            out.push(b);
        }
        let mut prev_special = true;
        for frag in self.partition(text, parse_special) {
            match frag {
                Frag::Special(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Frag::Text(t) => {
                    self.encode_text(t, prev_special, &mut out);
                    prev_special = false;
                }
            }
        }
        if add_eos && let Some(e) = self.eos {
            out.push(e);
        }
        out
    }

    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Frag<'a>> {
        // As llama.cpp: an empty text has no fragment (so no SentencePiece space prefix either).
        let mut frags = if text.is_empty() { Vec::new() } else { vec![Frag::Text(text)] };
        for &id in &self.special {
            let ty = self.types[id as usize];
            if !parse_special && matches!(ty, TokenType::Control | TokenType::Unknown) {
                continue;
            }
            let pat = self.tokens[id as usize].as_str();
            if !frags.iter().any(|f| matches!(f, Frag::Text(t) if t.contains(pat))) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Frag::Text(mut t) => {
                        while let Some(p) = t.find(pat) {
                            if p > 0 {
                                next.push(Frag::Text(&t[..p]));
                            }
                            next.push(Frag::Special(id));
                            t = &t[p + pat.len()..];
                        }
                        if !t.is_empty() {
                            next.push(Frag::Text(t));
                        }
                    }
                    s => next.push(s),
                }
            }
            frags = next;
        }
        frags
    }

    fn encode_text(&self, text: &str, prev_special: bool, out: &mut Vec<u32>) {
        match &self.kind {
            TokenizerKind::Bpe { merges, pre, byte_to_char, .. } => {
                let mut mapped = String::new();
                for piece in pre.split(text) {
                    mapped.clear();
                    mapped.extend(piece.bytes().map(|b| byte_to_char[b as usize]));
                    if pre.ignore_merges && let Some(&id) = self.lookup.get(mapped.as_str()) {
                        out.push(id);
                        continue;
                    }
                    for sym in merges.apply(&mapped) {
                        match self.lookup.get(sym) {
                            Some(&id) => out.push(id),
                            None => {
                                // Unknown symbol: one token per byte character, skipping any
                                // character the vocabulary lacks (as llama.cpp does).
                                let mut buf = [0u8; 4];
                                for c in sym.chars() {
                                    if let Some(&id) = self.lookup.get(&*c.encode_utf8(&mut buf)) {
                                        out.push(id);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            TokenizerKind::Spm { byte_tokens } => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && prev_special {
                    s.push(' ');
                }
                s.push_str(text);
                let escaped = s.replace(' ', "\u{2581}");
                for sym in spm::merge(&escaped, &self.lookup, &self.scores) {
                    match self.lookup.get(sym) {
                        Some(&id) => out.push(id),
                        None => {
                            for b in sym.bytes() {
                                if let Some(id) = byte_tokens[b as usize] {
                                    out.push(id);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The bytes a token stands for. Control tokens give their text only when `special`.
    pub fn token_bytes(&self, id: u32, special: bool) -> Result<Vec<u8>> {
        let text = self.tokens.get(id as usize).ok_or(Error::BadId(id))?;
        let ty = self.types[id as usize];
        Ok(match ty {
            TokenType::Control | TokenType::Unknown | TokenType::Unused => {
                if special { text.as_bytes().to_vec() } else { vec![] }
            }
            TokenType::UserDefined => text.as_bytes().to_vec(),
            TokenType::Byte if matches!(self.kind, TokenizerKind::Spm { .. }) => {
                parse_byte_token(text).map(|b| vec![b]).unwrap_or_else(|| text.as_bytes().to_vec())
            }
            _ => match &self.kind {
                TokenizerKind::Bpe { char_to_byte, .. } => {
                    text.chars().filter_map(|c| char_to_byte.get(&c).copied()).collect()
                }
                TokenizerKind::Spm { .. } => text.replace('\u{2581}', " ").into_bytes(),
            },
        })
    }

    /// Detokenize a whole sequence (lossy for invalid UTF-8).
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id, special)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

enum Frag<'a> {
    Text(&'a str),
    Special(u32),
}

/// Streaming detokenizer: emits only complete UTF-8, holding back a partial character.
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.pending.extend(tok.token_bytes(id, false)?);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                // Invalid bytes (not merely incomplete): emit lossily rather than stall.
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return Ok(s);
            }
        };
        let s = String::from_utf8(self.pending[..valid].to_vec()).expect("validated utf-8");
        self.pending.drain(..valid);
        Ok(s)
    }
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
