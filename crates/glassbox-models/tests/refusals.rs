//! Unsupported architectures and tensor types, and inconsistent shapes, are errors naming them.

use glassbox_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use glassbox_models::Model;

fn load_edited(edit: impl Fn(&mut GgufWriter)) -> String {
    let f = GgufFile::open(&glassbox_testdata::fixture("tiny/tiny-qwen2.gguf")).unwrap();
    let mut w = GgufWriter::from_gguf(f.gguf(), f.bytes());
    edit(&mut w);
    let dir = std::env::temp_dir().join(format!("glassbox-refusals-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edited.gguf");
    let mut out = std::fs::File::create(&path).unwrap();
    w.write(&mut out).unwrap();
    drop(out);
    match Model::load(&path) {
        Ok(_) => panic!("edited model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_architecture_is_named() {
    let e = load_edited(|w| w.metadata[0] = ("general.architecture".into(), Value::String("mamba".into())));
    assert!(e.contains("unsupported architecture \"mamba\""), "{e}");
}

#[test]
fn unsupported_tensor_type_is_named() {
    // Re-label a tensor as IQ4_NL (same block size as Q4_0, not supported by the kernels).
    let e = load_edited(|w| {
        let t = w.tensors.iter_mut().find(|t| t.ggml_type == GgmlType::Q4_0).unwrap();
        t.ggml_type = GgmlType::Iq4Nl;
    });
    assert!(e.contains("IQ4_NL") && e.contains("not supported"), "{e}");
}

#[test]
fn wrong_shape_and_missing_tensor_are_named() {
    let e = load_edited(|w| {
        w.tensors.retain(|t| t.name != "blk.1.ffn_up.weight");
    });
    assert!(e.contains("missing tensor \"blk.1.ffn_up.weight\""), "{e}");
    let e = load_edited(|w| {
        let i = w.metadata.iter().position(|(k, _)| k == "qwen2.feed_forward_length").unwrap();
        w.metadata[i].1 = Value::U32(96);
    });
    assert!(e.contains("shape") && e.contains("ffn_"), "{e}");
    let e = load_edited(|w| {
        let i = w.metadata.iter().position(|(k, _)| k == "qwen2.attention.head_count_kv").unwrap();
        w.metadata[i].1 = Value::U32(3);
    });
    assert!(e.contains("head_count_kv"), "{e}");
}
