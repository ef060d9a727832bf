//! Pre-tokenizer regexes by `tokenizer.ggml.pre` name (the table llama.cpp uses). Several
//! regexes apply in sequence: each splits every piece further, keeping unmatched gaps as pieces.

use fancy_regex::Regex;

use crate::{Error, Result};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub(crate) struct PreTokenizer {
    regexes: Vec<Regex>,
    /// llama3-style vocabularies look whole words up before merging.
    pub ignore_merges: bool,
}

impl PreTokenizer {
    pub fn for_name(name: &str) -> Result<PreTokenizer> {
        let (exprs, ignore_merges): (Vec<&str>, bool) = match name {
            "default" => (vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"], false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (vec![LLAMA3], true),
            "dbrx" | "smaug-bpe" => (vec![LLAMA3], false),
            "gpt-2" | "phi-2" | "mpt" | "olmo" | "roberta-bpe" => (vec![GPT2], false),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva" => {
                (vec![r"\p{N}", GPT2], false)
            }
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" => (vec![QWEN2], false),
            "falcon" => (vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"], false),
            other => return Err(Error::UnknownPre(other.to_owned())),
        };
        let regexes = exprs
            .into_iter()
            .map(|e| Regex::new(e).expect("built-in pre-tokenizer regex compiles"))
            .collect();
        Ok(PreTokenizer { regexes, ignore_merges })
    }

    /// Split `text` into pieces (byte ranges), applying each regex to each piece in turn.
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                let mut pos = 0;
                while pos <= piece.len() {
                    let m = match re.find_from_pos(piece, pos) {
                        Ok(Some(m)) => m,
                        // Backtracking limit hit: keep the rest as one piece (never drop text).
                        Ok(None) | Err(_) => break,
                    };
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                        last = m.end();
                        pos = m.end();
                    } else {
                        // Empty match: advance one character.
                        pos = m.end() + piece[m.end()..].chars().next().map_or(1, char::len_utf8);
                    }
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }
}
