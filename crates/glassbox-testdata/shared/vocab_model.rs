//! A tiny random-weight fixture rebuilt with a real vocabulary: llama.cpp's `ggml-vocab-*.gguf`
//! tokenizer metadata, embedding and output matrices of that vocabulary's size (a fixed
//! pseudo-random pattern), and optionally a chat template. Included by path (`#[path]`) from the
//! test crates that need it, which depend on glassbox-gguf themselves.

use std::path::{Path, PathBuf};

use glassbox_gguf::{GgmlType, Gguf, GgufFile, GgufWriter, Value, WriterTensor};

/// `tests/fixtures/{fixture}` with `ggml-vocab-{vocab}.gguf`'s tokenizer (and `template` as its
/// chat template, if given), written to `dst`.
pub fn with_vocab(fixture: &str, vocab: &str, template: Option<&str>, dst: &Path) -> PathBuf {
    let src = std::fs::read(glassbox_testdata::fixture(fixture)).unwrap();
    let g = Gguf::parse(&src, &Default::default()).unwrap();
    let voc_file = GgufFile::open(&glassbox_testdata::llama_vocab(&format!("ggml-vocab-{vocab}.gguf"))).unwrap();
    let voc = voc_file.gguf();
    let n_vocab = match voc.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => a.len(),
        _ => panic!("{vocab}: no token list"),
    };
    let arch = g.get_str("general.architecture").unwrap().unwrap().to_owned();
    let vocab_key = format!("{arch}.vocab_size");
    let mut w = GgufWriter::from_gguf(&g, &src);
    w.metadata.retain(|(k, _)| !k.starts_with("tokenizer.") && *k != vocab_key);
    w.metadata.extend(voc.metadata().iter().filter(|(k, _)| k.starts_with("tokenizer.") && (template.is_none() || *k != "tokenizer.chat_template")).map(|(k, v)| (k.clone(), v.clone())));
    if let Some(t) = template {
        w.metadata.push(("tokenizer.chat_template".into(), Value::String(t.to_owned())));
    }
    if g.get_u64(&vocab_key).unwrap().is_some() {
        w.metadata.push((vocab_key, Value::U32(n_vocab as u32)));
    }
    let n_embd = g.get_u64(&format!("{arch}.embedding_length")).unwrap().unwrap() as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<u8> = (0..n_vocab * n_embd)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6).to_le_bytes()
        })
        .collect();
    for t in w.tensors.iter_mut().filter(|t| t.name == "token_embd.weight" || t.name == "output.weight") {
        *t = WriterTensor { name: t.name.clone(), dims: vec![n_embd as u64, n_vocab as u64], ggml_type: GgmlType::F32, data: &values };
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(dst).unwrap());
    w.write(&mut f).unwrap();
    std::io::Write::flush(&mut f).unwrap();
    dst.to_path_buf()
}
