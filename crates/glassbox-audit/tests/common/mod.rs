//! Synthetic model folders: a tiny GGUF with chosen metadata, cards, licence files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use glassbox_gguf::{GgufWriter, Value};

pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-audit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A GGUF with no tensors and these `general.*` string keys (plus the architecture).
pub fn gguf(path: &Path, meta: &[(&str, &str)]) {
    let mut metadata = vec![("general.architecture".to_owned(), Value::String("llama".into()))];
    for (k, v) in meta {
        metadata.push(((*k).to_owned(), Value::String((*v).to_owned())));
    }
    if meta.iter().any(|(k, _)| k.starts_with("general.base_model.0")) {
        metadata.push(("general.base_model.count".into(), Value::U32(1)));
    }
    let w = GgufWriter { version: 3, metadata, tensors: vec![] };
    let mut f = std::fs::File::create(path).unwrap();
    w.write(&mut f).unwrap();
}

pub fn card(dir: &Path, front: &str) {
    std::fs::write(dir.join("README.md"), format!("---\n{front}\n---\n\n# A model\n")).unwrap();
}

/// The text of a licence from the shared corpus (ScanCode file: front matter removed).
pub fn corpus_licence(key: &str) -> String {
    let s = std::fs::read_to_string(glassbox_testdata::corpus("licenses").join(format!("{key}.LICENSE"))).unwrap();
    let r = s.strip_prefix("---\n").unwrap();
    r[r.find("\n---\n").unwrap() + 5..].to_owned()
}
