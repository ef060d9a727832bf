//! Pre-tokenizer regexes by `tokenizer.ggml.pre` name (the table llama.cpp uses). Several
//! regexes apply in sequence: each splits every piece further, keeping unmatched gaps as pieces.

use fancy_regex::Regex;

use crate::{Error, Result};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's `deepseek-llm` pre-tokenizer (DeepSeek LLM 7B/67B): line breaks, cased letters,
/// ASCII and full-width punctuation, trailing space, CJK and Hangul runs, digit runs.
const DEEPSEEK_LLM: [&str; 6] = [r"[\x{D}\x{A}]", r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+", r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+", r"\s+$", r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+", r"\p{N}+"];
/// llama.cpp's `deepseek-coder` pre-tokenizer.
const DEEPSEEK_CODER: [&str; 5] = [r"[\x{D}\x{A}]", r"\s?\p{L}+", r"\s?\p{P}+", r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+", r"\p{N}"];

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
            "deepseek-llm" => (DEEPSEEK_LLM.to_vec(), false),
            "deepseek-coder" => (DEEPSEEK_CODER.to_vec(), false),
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
