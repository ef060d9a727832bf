//! SentencePiece (BPE-by-score, llama.cpp's `llm_tokenizer_spm`) with byte fallback.

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::merge::{f32_key, merge as merge_by};

/// Split `text` into the symbols SentencePiece's merge loop ends with: the pair whose merged
/// text is a vocabulary token with the highest score merges first (ties: leftmost).
pub(crate) fn merge<'a>(text: &'a str, lookup: &HashMap<String, u32>, scores: &[f32]) -> Vec<&'a str> {
    let mut buf = String::new();
    merge_by(text, |l, r| {
        buf.clear();
        buf.push_str(l);
        buf.push_str(r);
        let id = *lookup.get(buf.as_str())?;
        Some(Reverse(f32_key(scores.get(id as usize).copied().unwrap_or(0.0))))
    })
}
