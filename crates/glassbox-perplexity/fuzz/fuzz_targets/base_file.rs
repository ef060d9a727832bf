//! Fuzz llama.cpp `--kl-divergence-base` files: any bytes are refused with an error or read row
//! by row within the header's announced sizes — never a panic, never an allocation the file's
//! length does not justify, and every row read feeds the KLD statistics without panicking.
//! Run (seeded with the committed base files): cd crates/glassbox-perplexity/fuzz && mkdir -p corpus &&
//!   cargo +nightly fuzz run -s none base_file corpus ../../../tests/fixtures/kld -- -max_len=65536
#![no_main]

use glassbox_perplexity::base::{BaseReader, row_len};
use glassbox_perplexity::stats::KldAccumulator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get the magic, so the fuzzer spends its time past the first check.
    let mut bytes = data.to_vec();
    let flags = bytes.first().copied().unwrap_or(0);
    if flags & 1 == 1 && bytes.len() >= 8 {
        bytes[..8].copy_from_slice(b"_logits_");
    }
    // A quarter of the inputs are resized to the length their header announces (when small),
    // so rows and the statistics are reached, not only the length check.
    if flags & 6 == 6 && bytes.len() >= 20 {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as u64;
        let (n_ctx, n_vocab, n_chunk) = (word(8) % 64, word(12) % 512, word(16) % 4);
        bytes[8..12].copy_from_slice(&(n_ctx as u32).to_le_bytes());
        bytes[12..16].copy_from_slice(&(n_vocab as u32).to_le_bytes());
        bytes[16..20].copy_from_slice(&(n_chunk as u32).to_le_bytes());
        let rows = n_ctx.saturating_sub(1 + n_ctx / 2) * n_chunk;
        let len = 20 + n_ctx * n_chunk * 4 + rows * (2 * n_vocab.div_ceil(2) + 4) * 2;
        bytes.resize(len as usize, 0);
    }
    let Ok(mut r) = BaseReader::new(&bytes[..], bytes.len() as u64, "fuzz") else { return };
    let n_vocab = r.header.n_vocab;
    assert!(row_len(n_vocab) * 2 <= bytes.len(), "a row cannot be larger than the file");
    let mut row = vec![0u16; row_len(n_vocab)];
    let logits: Vec<f32> = (0..n_vocab).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut acc = KldAccumulator::default();
    while r.read_row(&mut row).is_ok() {
        acc.add(&logits, &row, 0);
    }
    let _ = acc.summary();
});
