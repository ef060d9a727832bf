//! llama.cpp's `--kl-divergence-base` file.
//!
//! Layout (little-endian): `_logits_`, `n_ctx: u32`, `n_vocab: i32`, `n_chunk: i32`, then
//! `n_ctx × n_chunk` tokens (`i32`, the text's tokens, never BOS-substituted), then per chunk and
//! per scored position one row of `nv = 2·⌈n_vocab/2⌉ + 4` `u16`: `scale: f32`,
//! `min_log_prob: f32`, then per token `q` with log-prob ≈ `scale·q + min_log_prob` (0 for
//! tokens more than 16 nats below the top one), padded to an even count.
//!
//! The reader checks the header against the file's length before reading anything else, so a
//! truncated or inflated file is refused up front, not half-way through a run.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::{Error, Result, scored_per_chunk};

const MAGIC: &[u8; 8] = b"_logits_";
const MAX_CTX: u32 = 1 << 20;
const MAX_VOCAB: i32 = 1 << 24;

/// What a base file says about the evaluation it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
    /// `n_ctx × n_chunk` tokens of the evaluated text.
    pub tokens: Vec<u32>,
}

/// `u16`s per stored row.
pub fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// llama.cpp's `nearest_int`: round to nearest (ties to even) by the 1.5·2^23 trick.
fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantise one row of logits into `row` (length [`row_len`]) exactly as llama.cpp's
/// `log_softmax(n_vocab, logits, log_prob, tok)` does; returns the negative log-likelihood of
/// `next` (in f64, as llama.cpp accumulates it).
pub fn quantize_row(logits: &[f32], next: usize, row: &mut [u16]) -> f64 {
    let n = logits.len();
    debug_assert_eq!(row.len(), row_len(n));
    let mut max = logits[0];
    let mut min = logits[0];
    for &l in &logits[1..] {
        max = max.max(l);
        min = min.min(l);
    }
    let min = min.max(max - 16.0);
    let sum_exp: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    let log_sum_exp = sum_exp.ln() as f32;
    let min_log_prob = min - max - log_sum_exp;
    let scale = (max - min) / 65535.0;
    row[0..2].copy_from_slice(&split(scale));
    row[2..4].copy_from_slice(&split(min_log_prob));
    let q = &mut row[4..];
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (o, &l) in q.iter_mut().zip(logits) {
            *o = if l > min { nearest_int(inv * (l - min)) as u16 } else { 0 };
        }
    } else {
        q[..n].fill(0);
    }
    q[n..].fill(0);
    (max + log_sum_exp - logits[next]) as f64
}

fn split(f: f32) -> [u16; 2] {
    let b = f.to_le_bytes();
    [u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]])]
}

pub(crate) fn join(lo: u16, hi: u16) -> f32 {
    let (a, b) = (lo.to_le_bytes(), hi.to_le_bytes());
    f32::from_le_bytes([a[0], a[1], b[0], b[1]])
}

/// Writes a base file as llama-perplexity `--kl-divergence-base F` (without
/// `--kl-divergence`) does.
pub struct BaseWriter<W: Write> {
    w: W,
    n_vocab: usize,
    row: Vec<u16>,
    bytes: Vec<u8>,
    rows_left: usize,
}

impl BaseWriter<BufWriter<File>> {
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let f = File::create(path).map_err(io)?;
        BaseWriter::new(BufWriter::new(f), header).map_err(io)
    }
}

impl<W: Write> BaseWriter<W> {
    pub fn new(mut w: W, h: &Header) -> std::io::Result<Self> {
        assert_eq!(h.tokens.len(), h.n_ctx * h.n_chunk, "header tokens must be n_ctx × n_chunk");
        w.write_all(MAGIC)?;
        w.write_all(&(h.n_ctx as u32).to_le_bytes())?;
        w.write_all(&(h.n_vocab as i32).to_le_bytes())?;
        w.write_all(&(h.n_chunk as i32).to_le_bytes())?;
        let mut buf = Vec::with_capacity(h.tokens.len() * 4);
        for &t in &h.tokens {
            buf.extend_from_slice(&(t as i32).to_le_bytes());
        }
        w.write_all(&buf)?;
        let nv = row_len(h.n_vocab);
        Ok(BaseWriter { w, n_vocab: h.n_vocab, row: vec![0; nv], bytes: vec![0; nv * 2], rows_left: h.n_chunk * scored_per_chunk(h.n_ctx) })
    }

    /// Append the row for one scored position; returns the NLL of `next` under `logits`.
    pub fn write_row(&mut self, logits: &[f32], next: usize) -> std::io::Result<f64> {
        assert_eq!(logits.len(), self.n_vocab, "one logit per vocabulary entry");
        if self.rows_left == 0 {
            return Err(std::io::Error::other("more rows than the header announced"));
        }
        self.rows_left -= 1;
        let nll = quantize_row(logits, next, &mut self.row);
        for (b, q) in self.bytes.chunks_exact_mut(2).zip(&self.row) {
            b.copy_from_slice(&q.to_le_bytes());
        }
        self.w.write_all(&self.bytes)?;
        Ok(nll)
    }

    /// Flush; refuses a file with fewer rows than its header announced.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.rows_left != 0 {
            return Err(std::io::Error::other(format!("{} rows announced by the header were never written", self.rows_left)));
        }
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Reads a base file chunk by chunk, after checking its header against its length.
pub struct BaseReader<R: Read> {
    r: R,
    path: String,
    pub header: Header,
    bytes: Vec<u8>,
    rows_left: usize,
}

impl BaseReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        let io = |source| Error::Io { path: p.clone(), source };
        let f = File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        BaseReader::new(BufReader::with_capacity(1 << 20, f), len, &p)
    }
}

impl<R: Read> BaseReader<R> {
    /// `len` is the total length of what `r` yields (the file size).
    pub fn new(mut r: R, len: u64, path: &str) -> Result<Self> {
        let corrupt = |msg: String| Error::Corrupt { path: path.to_owned(), msg };
        let io = |source| Error::Io { path: path.to_owned(), source };
        let mut head = [0u8; 20];
        if len < 20 {
            return Err(if len >= 8 { corrupt(format!("{len} bytes is too short for a header")) } else { Error::NotABaseFile { path: path.to_owned() } });
        }
        r.read_exact(&mut head).map_err(io)?;
        if &head[..8] != MAGIC {
            return Err(Error::NotABaseFile { path: path.to_owned() });
        }
        let n_ctx = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let n_vocab = i32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        let n_chunk = i32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        if !(4..=MAX_CTX).contains(&n_ctx) {
            return Err(corrupt(format!("n_ctx {n_ctx} is outside [4, {MAX_CTX}]")));
        }
        if !(2..=MAX_VOCAB).contains(&n_vocab) {
            return Err(corrupt(format!("n_vocab {n_vocab} is outside [2, {MAX_VOCAB}]")));
        }
        if n_chunk < 1 {
            return Err(corrupt(format!("n_chunk {n_chunk} is not positive")));
        }
        let (n_ctx, n_vocab, n_chunk) = (n_ctx as usize, n_vocab as usize, n_chunk as usize);
        let n_tokens = n_ctx.checked_mul(n_chunk).ok_or_else(|| corrupt("n_ctx × n_chunk overflows".into()))?;
        let row_bytes = row_len(n_vocab) * 2;
        let rows = scored_per_chunk(n_ctx).checked_mul(n_chunk);
        let expect = rows
            .and_then(|r| r.checked_mul(row_bytes))
            .and_then(|b| b.checked_add(n_tokens.checked_mul(4)?))
            .and_then(|b| b.checked_add(20))
            .ok_or_else(|| corrupt("sizes overflow".into()))?;
        if expect as u64 != len {
            return Err(corrupt(format!(
                "header says n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}: {expect} bytes, but the file has {len}"
            )));
        }
        let mut tb = vec![0u8; n_tokens * 4];
        r.read_exact(&mut tb).map_err(io)?;
        let mut tokens = Vec::with_capacity(n_tokens);
        for (i, c) in tb.chunks_exact(4).enumerate() {
            let t = i32::from_le_bytes(c.try_into().expect("4 bytes"));
            if t < 0 || t as usize >= n_vocab {
                return Err(corrupt(format!("token {i} is {t}, outside the vocabulary of {n_vocab}")));
            }
            tokens.push(t as u32);
        }
        Ok(BaseReader {
            r,
            path: path.to_owned(),
            header: Header { n_ctx, n_vocab, n_chunk, tokens },
            bytes: vec![0; row_bytes],
            rows_left: rows.unwrap_or(0),
        })
    }

    /// Read the next stored row into `row` (length [`row_len`]).
    pub fn read_row(&mut self, row: &mut [u16]) -> Result<()> {
        if self.rows_left == 0 {
            return Err(Error::Corrupt { path: self.path.clone(), msg: "read past the last row".into() });
        }
        self.rows_left -= 1;
        self.r.read_exact(&mut self.bytes).map_err(|source| Error::Io { path: self.path.clone(), source })?;
        for (q, b) in row.iter_mut().zip(self.bytes.chunks_exact(2)) {
            *q = u16::from_le_bytes([b[0], b[1]]);
        }
        let (scale, min) = (join(row[0], row[1]), join(row[2], row[3]));
        if !(scale.is_finite() && scale >= 0.0 && min.is_finite()) {
            return Err(Error::Corrupt { path: self.path.clone(), msg: format!("row scale {scale} / minimum log-prob {min} is not finite") });
        }
        Ok(())
    }
}
