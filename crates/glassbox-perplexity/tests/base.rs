//! The base-file format round-trips, its statistics behave as llama.cpp's do, and hostile files
//! are refused up front with the reason.

use glassbox_perplexity::base::{BaseReader, BaseWriter, Header, quantize_row, row_len};
use glassbox_perplexity::stats::{KldAccumulator, nll};
use proptest::prelude::*;

fn logits(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 12.0
        })
        .collect()
}

fn file(n_ctx: usize, n_vocab: usize, n_chunk: usize) -> (Header, Vec<Vec<f32>>, Vec<u8>) {
    let tokens: Vec<u32> = (0..n_ctx * n_chunk).map(|i| (i * 7 % n_vocab) as u32).collect();
    let h = Header { n_ctx, n_vocab, n_chunk, tokens };
    let rows: Vec<Vec<f32>> = (0..n_chunk * glassbox_perplexity::scored_per_chunk(n_ctx)).map(|i| logits(i as u64, n_vocab)).collect();
    let mut w = BaseWriter::new(Vec::new(), &h).unwrap();
    for (i, r) in rows.iter().enumerate() {
        w.write_row(r, i % n_vocab).unwrap();
    }
    (h, rows, w.finish().unwrap())
}

#[test]
fn round_trip_and_identical_logits_have_near_zero_kld() {
    let (h, rows, bytes) = file(16, 33, 3);
    // Header layout, byte for byte: magic, n_ctx u32, n_vocab i32, n_chunk i32, tokens.
    assert_eq!(&bytes[..8], b"_logits_");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 16);
    assert_eq!(bytes.len(), 20 + 16 * 3 * 4 + 3 * 7 * row_len(33) * 2);
    let mut r = BaseReader::new(&bytes[..], bytes.len() as u64, "mem").unwrap();
    assert_eq!(r.header, h);
    let mut row = vec![0u16; row_len(33)];
    let mut acc = KldAccumulator::default();
    for (i, l) in rows.iter().enumerate() {
        r.read_row(&mut row).unwrap();
        acc.add(l, &row, i % 33);
    }
    assert!(r.read_row(&mut row).is_err(), "no row past the end");
    let s = acc.summary();
    assert_eq!(s.tokens, 21);
    assert!(s.kld_mean.abs() < 1e-5, "{s:?}");
    assert_eq!(s.same_top, 100.0);
    assert!((s.ppl_ratio - 1.0).abs() < 1e-3, "{s:?}");
}

#[test]
fn quantized_log_probs_are_within_half_a_step() {
    let l = logits(7, 1001);
    let mut row = vec![0u16; row_len(1001)];
    let n = quantize_row(&l, 3, &mut row);
    assert!((n - nll(&l, 3)).abs() < 1e-4);
    let scale = f32::from_le_bytes([row[0].to_le_bytes()[0], row[0].to_le_bytes()[1], row[1].to_le_bytes()[0], row[1].to_le_bytes()[1]]);
    let min = f32::from_le_bytes([row[2].to_le_bytes()[0], row[2].to_le_bytes()[1], row[3].to_le_bytes()[0], row[3].to_le_bytes()[1]]);
    let max = l.iter().cloned().fold(f32::MIN, f32::max);
    for (i, &v) in l.iter().enumerate() {
        let exact = -nll(&l, i) as f32;
        if v > max - 16.0 {
            assert!((scale * row[4 + i] as f32 + min - exact).abs() <= scale * 0.5 + 1e-4, "{i}");
        }
    }
    assert_eq!(row[4 + 1001], 0, "odd vocabulary padded with zero");
}

#[test]
fn different_distributions_have_positive_kld() {
    let (_, rows, bytes) = file(8, 50, 2);
    let mut r = BaseReader::new(&bytes[..], bytes.len() as u64, "mem").unwrap();
    let mut row = vec![0u16; row_len(50)];
    let mut acc = KldAccumulator::default();
    for (i, l) in rows.iter().enumerate() {
        r.read_row(&mut row).unwrap();
        let shifted: Vec<f32> = l.iter().enumerate().map(|(j, v)| v + if j % 3 == 0 { 1.0 } else { 0.0 }).collect();
        acc.add(&shifted, &row, i % 50);
    }
    let s = acc.summary();
    assert!(s.kld_mean > 0.01 && s.kld_max >= s.kld_median, "{s:?}");
}

fn refused(bytes: &[u8]) -> String {
    match BaseReader::new(bytes, bytes.len() as u64, "base.kld") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_files_are_refused_up_front() {
    let (_, _, bytes) = file(16, 33, 3);
    assert!(refused(&bytes[..bytes.len() - 1]).contains("but the file has"));
    let mut more = bytes.clone();
    more.push(0);
    assert!(refused(&more).contains("but the file has"));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(refused(&magic).contains("not a llama.cpp log-probability file"));
    let mut huge = bytes.clone();
    huge[16..20].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(refused(&huge).contains("but the file has"));
    let mut neg = bytes.clone();
    neg[12..16].copy_from_slice(&(-5i32).to_le_bytes());
    assert!(refused(&neg).contains("n_vocab -5"));
    let mut tok = bytes.clone();
    tok[20..24].copy_from_slice(&33i32.to_le_bytes());
    assert!(refused(&tok).contains("token 0 is 33"));
    assert!(refused(b"_logits_").contains("too short"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..4096), fix_magic in any::<bool>()) {
        if fix_magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"_logits_");
        }
        if let Ok(mut r) = BaseReader::new(&bytes[..], bytes.len() as u64, "fuzz") {
            let mut row = vec![0u16; row_len(r.header.n_vocab)];
            while r.read_row(&mut row).is_ok() {}
        }
    }
}
