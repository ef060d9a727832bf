use proptest::prelude::*;

use super::*;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn a_written_file_reads_back() {
    let a = f32_bytes(&[1.0, -2.5, 3.25, 0.0]);
    let b: Vec<u8> = [1.5f32, -0.25].iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
    let c: Vec<u8> = [0.5f32, 65504.0].iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
    let file = serialize(&[("a", Dtype::F32, &[2, 2], &a), ("b", Dtype::BF16, &[2], &b), ("c", Dtype::F16, &[1, 2], &c)], &[("format", "pt")]);
    let st = parse(&file).unwrap();
    assert_eq!(st.metadata, vec![("format".to_string(), "pt".to_string())]);
    assert_eq!(st.tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(st.get("a").unwrap().shape, [2, 2]);
    assert_eq!(st.get("a").unwrap().to_f32().unwrap(), [1.0, -2.5, 3.25, 0.0]);
    assert_eq!(st.get("b").unwrap().to_f32().unwrap(), [1.5, -0.25]);
    assert_eq!(st.get("c").unwrap().to_f32().unwrap(), [0.5, 65504.0]);
    assert_eq!(st.get("c").unwrap().elements(), 2);
}

fn raw(header: &str, data_len: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data_len));
    v
}

#[test]
fn bad_headers_are_refused_naming_the_fault() {
    let cases = [
        (r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, "shape holds -2"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}}"#, 8, "data_offsets holds 8.5"),
        (r#"{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}"#, 8, "9 dimensions"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4, "past the 4 bytes"),
        (r#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, "is not a string"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, "are not [begin, end]"),
        (r#"[1,2]"#, 0, "start with"),
        (r#"{"a":1"#, 0, "not a JSON object"),
    ];
    for (h, n, want) in cases {
        let e = parse(&raw(h, n)).unwrap_err().to_string();
        assert!(e.contains(want), "{h}: {e}");
    }
    assert!(parse(&[1, 2, 3]).unwrap_err().to_string().contains("shorter than"));
    let a = f32_bytes(&[1.0]);
    let file = serialize(&[("x", Dtype::I32, &[1], &a)], &[]);
    let t = parse(&file).unwrap();
    assert!(t.tensors[0].to_f32().unwrap_err().to_string().contains("tensor \"x\": dtype I32"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&data);
    }

    /// A header mutated anywhere is either refused or read with every range inside the data.
    #[test]
    fn mutated_headers_fail_closed(pos in 8usize..120, byte in any::<u8>()) {
        let a = f32_bytes(&[1.0, 2.0, 3.0]);
        let mut file = serialize(&[("a", Dtype::F32, &[3], &a), ("b", Dtype::F32, &[1, 3], &a)], &[]);
        if pos < file.len() {
            file[pos] = byte;
        }
        if let Ok(st) = parse(&file) {
            let total: usize = st.tensors.iter().map(|t| t.data.len()).sum();
            prop_assert!(total <= file.len());
            for t in &st.tensors {
                prop_assert_eq!(t.data.len() as u64, t.shape.iter().product::<u64>() * t.dtype.size());
            }
        }
    }
}
