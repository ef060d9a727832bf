//! Container tests: byte-exact round trips of the real models, and hostile inputs that must
//! fail with an error naming the fault (never a panic, never a file-sized allocation).

use glassbox_gguf::{Array, Error, GgmlType, Gguf, GgufFile, GgufWriter, Limits, Value, WriterTensor};
use proptest::prelude::*;

fn roundtrip(file: &str) {
    let path = glassbox_testdata::model(file);
    let f = GgufFile::open(&path).unwrap();
    let mut out = Vec::with_capacity(f.bytes().len());
    GgufWriter::from_gguf(f.gguf(), f.bytes()).write(&mut out).unwrap();
    assert_eq!(out.len(), f.bytes().len(), "{file}: length differs after round trip");
    assert!(out == f.bytes(), "{file}: bytes differ after round trip");
}

#[test]
fn roundtrip_smollm2_is_byte_identical() {
    roundtrip(glassbox_testdata::SMOLLM2);
}

#[test]
fn roundtrip_gemma3_is_byte_identical() {
    roundtrip(glassbox_testdata::GEMMA3);
}

#[test]
fn real_metadata_and_tensor_order_preserved() {
    let f = GgufFile::open(&glassbox_testdata::model(glassbox_testdata::SMOLLM2)).unwrap();
    let g = f.gguf();
    assert_eq!(g.version, 3);
    assert_eq!(g.metadata()[0].0, "general.architecture");
    assert_eq!(g.get_str("general.architecture").unwrap(), Some("llama"));
    assert_eq!(g.get_u64("llama.block_count").unwrap(), Some(30));
    assert_eq!(g.tensors().len(), 272);
    assert_eq!(g.tensors()[0].name, "token_embd.weight");
    assert_eq!(g.tensors()[0].ggml_type, GgmlType::Q8_0);
    assert_eq!(g.tensors()[0].dims, vec![576, 49152]);
    match g.get_array("tokenizer.ggml.tokens").unwrap().unwrap() {
        Array::String(v) => assert_eq!(v.len(), 49152),
        other => panic!("tokens: {:?}", other.elem_type()),
    }
}

/// A small valid file: three tensors of different types, a few metadata kinds.
fn sample(alignment: Option<u32>) -> Vec<u8> {
    let f32_data: Vec<u8> = (0..8).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let q8 = vec![7u8; 34 * 2];
    let odd = vec![1u8, 2, 3, 4, 5];
    let mut metadata = vec![
        ("general.architecture".to_owned(), Value::String("llama".into())),
        ("test.bool".to_owned(), Value::Bool(true)),
        ("test.f32".to_owned(), Value::F32(-0.5)),
        ("test.arr".to_owned(), Value::Array(Array::String(vec!["a".into(), "βγ".into()]))),
        (
            "test.nested".to_owned(),
            Value::Array(Array::Array(vec![Array::I32(vec![1, -2]), Array::U8(vec![])])),
        ),
    ];
    if let Some(a) = alignment {
        metadata.push(("general.alignment".to_owned(), Value::U32(a)));
    }
    let w = GgufWriter {
        version: 3,
        metadata,
        tensors: vec![
            WriterTensor { name: "a".into(), dims: vec![4, 2], ggml_type: GgmlType::F32, data: &f32_data },
            WriterTensor { name: "b".into(), dims: vec![64], ggml_type: GgmlType::Q8_0, data: &q8 },
            WriterTensor { name: "c".into(), dims: vec![5], ggml_type: GgmlType::Unknown(200), data: &odd },
        ],
    };
    let mut out = Vec::new();
    w.write(&mut out).unwrap();
    out
}

#[test]
fn gguf_version_2_reads_and_writes() {
    let mut b = sample(None);
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    let g = Gguf::parse(&b, &Limits::default()).unwrap();
    assert_eq!(g.version, 2);
    let mut again = Vec::new();
    GgufWriter::from_gguf(&g, &b).write(&mut again).unwrap();
    assert_eq!(again, b);
}

#[test]
fn synthetic_roundtrip_and_unknown_type_passthrough() {
    for align in [None, Some(64), Some(1)] {
        let bytes = sample(align);
        let g = Gguf::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(g.tensors().len(), 3);
        let c = g.tensor("c").unwrap();
        assert_eq!(c.ggml_type, GgmlType::Unknown(200));
        assert_eq!(&g.tensor_data(&bytes, c)[..5], &[1, 2, 3, 4, 5]);
        let mut again = Vec::new();
        GgufWriter::from_gguf(&g, &bytes).write(&mut again).unwrap();
        assert_eq!(again, bytes, "alignment {align:?}");
    }
}

fn parse_err(bytes: &[u8]) -> String {
    match Gguf::parse(bytes, &Limits::default()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample(None);
    // The data section of the last tensor is the tail; any cut inside the header or data fails.
    let g = Gguf::parse(&bytes, &Limits::default()).unwrap();
    let last_needed = g.data_offset + g.tensor("b").unwrap().offset + 68;
    for n in 0..last_needed as usize {
        assert!(Gguf::parse(&bytes[..n], &Limits::default()).is_err(), "prefix {n} parsed");
    }
}

#[test]
fn bad_magic_version_and_endianness() {
    assert!(parse_err(b"GGML\x03\0\0\0").contains("not a gguf file"));
    let mut b = sample(None);
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(parse_err(&b).contains("unsupported gguf version 1"));
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(parse_err(&b).contains("big-endian"));
}

/// Header with the given counts and nothing else.
fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn kv_string_header(key: &str, ty: u32) -> Vec<u8> {
    let mut b = header(0, 1);
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b
}

#[test]
fn absurd_counts_fail_before_allocating() {
    assert!(parse_err(&header(0, u64::MAX)).contains("metadata count"));
    assert!(parse_err(&header(u64::MAX, 0)).contains("tensor count"));
    assert!(parse_err(&header(1 << 40, 0)).contains("tensor count"));
    // An array claiming 2^60 u64 elements.
    let mut b = kv_string_header("k", 9);
    b.extend_from_slice(&10u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(parse_err(&b).contains("array length of key \"k\""));
    // A string claiming 2^63 bytes.
    let mut b = kv_string_header("s", 8);
    b.extend_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(parse_err(&b).contains("limit"));
}

#[test]
fn invalid_values_name_the_key() {
    let mut b = kv_string_header("flag", 7);
    b.push(2);
    assert!(parse_err(&b).contains("\"flag\""));
    let mut b = kv_string_header("x", 99);
    b.push(0);
    assert!(parse_err(&b).contains("unknown value type 99"));
    let mut b = kv_string_header("general.alignment", 4);
    b.extend_from_slice(&3u32.to_le_bytes());
    assert!(parse_err(&b).contains("general.alignment"));
    // Duplicate key.
    let mut b = header(0, 2);
    for _ in 0..2 {
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'k');
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(1);
    }
    assert!(parse_err(&b).contains("duplicate key"));
}

fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = header(1, 0);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b't');
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

#[test]
fn tensor_faults_name_the_tensor() {
    assert!(Gguf::parse(&one_tensor(&[8], 0, 0, 32), &Limits::default()).is_ok());
    let cases: &[(&[u64], u32, u64, usize, &str)] = &[
        (&[8], 0, 0, 16, "past the end"),
        (&[8], 0, 7, 64, "not a multiple of the alignment"),
        (&[8], 0, u64::MAX - 31, 64, "data end overflows"),
        (&[1 << 62, 1 << 62], 0, 0, 32, "overflows"),
        (&[1, 1, 1, 1, 1], 0, 0, 32, "dimensions"),
        (&[33], 8, 0, 64, "block size"),
        (&[u64::MAX], 0, 0, 32, "out of range"),
    ];
    for (dims, ty, off, len, want) in cases {
        let e = parse_err(&one_tensor(dims, *ty, *off, *len));
        assert!(e.contains("tensor \"t\"") && e.contains(want), "{dims:?}: {e}");
    }
}

#[test]
fn overlapping_tensors_are_refused() {
    let data = vec![0u8; 64];
    let w = GgufWriter {
        version: 3,
        metadata: vec![],
        tensors: vec![
            WriterTensor { name: "a".into(), dims: vec![16], ggml_type: GgmlType::F32, data: &data },
            WriterTensor { name: "b".into(), dims: vec![16], ggml_type: GgmlType::F32, data: &data },
        ],
    };
    let mut out = Vec::new();
    w.write(&mut out).unwrap();
    // Point b's offset (the last u64 of its info) at a's data.
    let g = Gguf::parse(&out, &Limits::default()).unwrap();
    let info_end = (g.data_offset as usize) - ((g.data_offset as usize) % 32);
    let pos = out[..info_end + 32].windows(8).rposition(|w| w == 64u64.to_le_bytes()).unwrap();
    out[pos..pos + 8].copy_from_slice(&32u64.to_le_bytes());
    assert!(parse_err(&out).contains("overlaps"));
}

#[test]
fn writer_refuses_wrong_data_size() {
    let data = vec![0u8; 10];
    let w = GgufWriter {
        version: 3,
        metadata: vec![],
        tensors: vec![WriterTensor { name: "a".into(), dims: vec![4], ggml_type: GgmlType::F32, data: &data }],
    };
    let e = w.write(&mut Vec::new()).unwrap_err();
    assert!(matches!(e, Error::Tensor { .. }) && e.to_string().contains("\"a\""), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Any mutation of a valid file parses or fails cleanly; if it parses, every tensor's data
    /// lies inside the buffer.
    #[test]
    fn mutated_files_never_panic(muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                 cut in any::<prop::sample::Index>()) {
        let mut b = sample(None);
        for (i, v) in muts {
            let i = i.index(b.len());
            b[i] = v;
        }
        let end = cut.index(b.len() + 1);
        if let Ok(g) = Gguf::parse(&b[..end], &Limits::default()) {
            for t in g.tensors() {
                prop_assert!(g.data_offset + t.offset + t.size <= end as u64);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(mut b in prop::collection::vec(any::<u8>(), 0..512)) {
        if b.len() >= 8 {
            b[..4].copy_from_slice(b"GGUF");
            b[4..8].copy_from_slice(&3u32.to_le_bytes());
        }
        let _ = Gguf::parse(&b, &Limits::default());
    }
}

/// Regression (found by cargo-fuzz, gguf_parse): a NaN f32 metadata value must survive a round
/// trip bit for bit, even though NaN != NaN.
#[test]
fn regression_fuzz_nan_metadata_roundtrips_bitwise() {
    let path = glassbox_testdata::repo_root().join("crates/glassbox-gguf/tests/regressions/fuzz-nan-metadata.gguf");
    let bytes = std::fs::read(path).unwrap();
    let g = Gguf::parse(&bytes, &Limits::default()).unwrap();
    let Value::F32(v) = g.metadata()[0].1 else { panic!("expected an f32") };
    assert!(v.is_nan());
    let mut out = Vec::new();
    GgufWriter::from_gguf(&g, &bytes).write(&mut out).unwrap();
    let again = Gguf::parse(&out, &Limits::default()).unwrap();
    let Value::F32(w) = again.metadata()[0].1 else { panic!("expected an f32") };
    assert_eq!(v.to_bits(), w.to_bits());
}
