use glassbox_gguf::{GgmlType, GgufWriter, WriterTensor};
use glassbox_safetensors::{Dtype, serialize};

use super::*;

/// A base model: llama, 2 heads (1 KV head), width 8: attn_q [8→8], attn_k [8→4].
fn base(arch: &str) -> Vec<u8> {
    let q = vec![0u8; 8 * 8 * 4];
    let k = vec![0u8; 8 * 4 * 4];
    let w = GgufWriter {
        version: 3,
        metadata: vec![
            ("general.architecture".into(), Value::String(arch.into())),
            (format!("{arch}.attention.head_count"), Value::U32(2)),
            (format!("{arch}.attention.head_count_kv"), Value::U32(1)),
        ],
        tensors: vec![
            WriterTensor { name: "blk.0.attn_q.weight".into(), dims: vec![8, 8], ggml_type: GgmlType::F32, data: &q },
            WriterTensor { name: "blk.0.attn_k.weight".into(), dims: vec![8, 4], ggml_type: GgmlType::F32, data: &k },
        ],
    };
    let mut out = Vec::new();
    w.write(&mut out).unwrap();
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Peft {
    config: serde_json::Value,
    /// (name, shape, values)
    tensors: Vec<(String, Vec<u64>, Vec<f32>)>,
}

impl Peft {
    /// Rank 2 on q (B values 1..=16) and rank 2 on k, alpha 4.
    fn new() -> Peft {
        let m = "base_model.model.model.layers.0.self_attn";
        Peft {
            config: serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": false, "bias": "none", "target_modules": ["q_proj", "k_proj"]}),
            tensors: vec![
                (format!("{m}.q_proj.lora_A.weight"), vec![2, 8], (0..16).map(|i| i as f32 * 0.01).collect()),
                (format!("{m}.q_proj.lora_B.weight"), vec![8, 2], (1..=16).map(|i| i as f32).collect()),
                (format!("{m}.k_proj.lora_A.weight"), vec![2, 8], vec![0.5; 16]),
                (format!("{m}.k_proj.lora_B.weight"), vec![4, 2], (1..=8).map(|i| i as f32).collect()),
            ],
        }
    }

    fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("adapter_config.json"), serde_json::to_vec(&self.config).unwrap()).unwrap();
        let data: Vec<Vec<u8>> = self.tensors.iter().map(|t| f32s(&t.2)).collect();
        let list: Vec<(&str, Dtype, &[u64], &[u8])> = self.tensors.iter().zip(&data).map(|(t, d)| (t.0.as_str(), Dtype::F32, t.1.as_slice(), d.as_slice())).collect();
        std::fs::write(dir.join("adapter_model.safetensors"), serialize(&list, &[])).unwrap();
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-peft-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(p: &Peft, name: &str, arch: &str) -> Result<(Conversion, Adapter)> {
    let dir = tmp(name);
    p.write(&dir);
    let b = base(arch);
    let g = Gguf::parse(&b, &Limits::default()).unwrap();
    let c = convert(&dir, &g, "base.gguf", QType::F32, &[])?;
    let ga = Gguf::parse(&c.bytes, &Limits::default()).unwrap();
    let a = Adapter::from_gguf(&dir, &ga, &c.bytes).unwrap();
    Ok((c, a))
}

fn values(part: &crate::Part) -> Vec<f32> {
    part.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn llama_rows_of_b_follow_the_converters_rope_permutation() {
    let (c, a) = run(&Peft::new(), "perm", "llama").unwrap();
    assert_eq!((c.alpha, c.pairs, a.pairs.len()), (4.0, 2, 2));
    let q = a.pairs.iter().find(|p| p.target == "blk.0.attn_q.weight").unwrap();
    // 2 heads of 4 rows: per head, rows [0,1,2,3] -> [0,2,1,3] (halves interleaved); B rows are (2i+1, 2i+2).
    let rows: Vec<f32> = values(&q.b).chunks(2).map(|r| r[0]).collect();
    assert_eq!(rows, [1.0, 5.0, 3.0, 7.0, 9.0, 13.0, 11.0, 15.0]);
    let k = a.pairs.iter().find(|p| p.target == "blk.0.attn_k.weight").unwrap();
    let rows: Vec<f32> = values(&k.b).chunks(2).map(|r| r[0]).collect();
    assert_eq!(rows, [1.0, 5.0, 3.0, 7.0], "one KV head of 4 rows");
    // A is never permuted; qwen2-style bases keep B's rows as they are.
    assert_eq!(values(&q.a), (0..16).map(|i| i as f32 * 0.01).collect::<Vec<_>>());
    let (_, a) = run(&Peft::new(), "noperm", "qwen2").unwrap();
    let q = a.pairs.iter().find(|p| p.target == "blk.0.attn_q.weight").unwrap();
    assert_eq!(values(&q.b), (1..=16).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn rslora_and_alpha_pattern_keep_peft_s_scale() {
    // rsLoRA: scale alpha/sqrt(r) = 4/sqrt(2); llama.cpp applies alpha_file/r, so alpha_file = 4·sqrt(2).
    let mut p = Peft::new();
    p.config["use_rslora"] = true.into();
    let (c, a) = run(&p, "rslora", "qwen2").unwrap();
    assert!((c.alpha - 4.0 * 2f32.sqrt()).abs() < 1e-6 && c.rescaled.is_empty(), "{c:?}");
    assert!((a.scale(&a.pairs[0], 1.0) - 4.0 / 2f32.sqrt()).abs() < 1e-6);
    // A module at another rank (rank_pattern) under rsLoRA: its B carries the difference.
    let mut p = Peft::new();
    p.config["use_rslora"] = true.into();
    p.config["rank_pattern"] = serde_json::json!({"k_proj": 1});
    p.tensors[2] = (p.tensors[2].0.clone(), vec![1, 8], vec![0.5; 8]);
    p.tensors[3] = (p.tensors[3].0.clone(), vec![4, 1], vec![1.0; 4]);
    let (c, a) = run(&p, "rslora-rank", "qwen2").unwrap();
    let k = a.pairs.iter().find(|p| p.target == "blk.0.attn_k.weight").unwrap();
    let effective = a.scale(k, 1.0) * values(&k.b)[0];
    assert!((effective - 4.0 / 1f32.sqrt()).abs() < 1e-5, "{effective} {c:?}");
    assert_eq!(c.rescaled.len(), 1);
    // alpha_pattern: q_proj trained with alpha 8 instead of 4 -> its B doubled, alpha stays 4.
    let mut p = Peft::new();
    p.config["alpha_pattern"] = serde_json::json!({"q_proj": 8});
    let (c, a) = run(&p, "alpha-pattern", "qwen2").unwrap();
    assert_eq!((c.alpha, c.rescaled.clone()), (4.0, vec![("blk.0.attn_q.weight".to_string(), 2.0)]));
    let q = a.pairs.iter().find(|p| p.target == "blk.0.attn_q.weight").unwrap();
    assert_eq!(values(&q.b)[0], 2.0);
    let mut p = Peft::new();
    p.config["alpha_pattern"] = serde_json::json!({"^model.*q_proj$": 8});
    assert!(run(&p, "alpha-regex", "qwen2").unwrap_err().to_string().contains("regular expression"));
}

#[test]
fn what_cannot_be_converted_is_refused_by_name() {
    let cfg = |k: &str, v: serde_json::Value| {
        let mut p = Peft::new();
        p.config[k] = v;
        p
    };
    let cases: Vec<(&str, Peft, &str)> = vec![
        ("dora", cfg("use_dora", true.into()), "use_dora"),
        ("fifo", cfg("fan_in_fan_out", true.into()), "fan_in_fan_out"),
        ("bias", cfg("bias", "all".into()), "bias is \"all\""),
        ("mts", cfg("modules_to_save", serde_json::json!(["lm_head"])), "modules_to_save"),
        ("ia3", cfg("peft_type", "IA3".into()), "peft_type"),
        ("alpha0", cfg("lora_alpha", 0.into()), "lora_alpha"),
        ("r0", cfg("r", 0.into()), "r is"),
        ("nan", { let mut p = Peft::new(); p.tensors[1].2[5] = f32::NAN; p }, "q_proj.lora_B.weight: non-finite value NaN at element 5"),
        ("half", { let mut p = Peft::new(); p.tensors.remove(1); p }, "q_proj: the pair has no lora_B half"),
        ("rank", { let mut p = Peft::new(); p.tensors[1] = (p.tensors[1].0.clone(), vec![4, 4], vec![1.0; 16]); p }, "the ranks must agree"),
        ("embed", { let mut p = Peft::new(); p.tensors.push(("base_model.model.model.embed_tokens.lora_embedding_A".into(), vec![2, 8], vec![0.0; 16])); p }, "embeddings"),
        ("norm", { let mut p = Peft::new(); p.tensors.push(("base_model.model.model.layers.0.input_layernorm.weight".into(), vec![8], vec![1.0; 8])); p }, "norm vector"),
        ("module", { let mut p = Peft::new(); p.tensors[0].0 = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight".into(); p }, "qkv_proj is not one glassbox adapts"),
        // Shapes against the base: an adapter for a wider model.
        ("wide", { let mut p = Peft::new(); p.tensors[0] = (p.tensors[0].0.clone(), vec![2, 16], vec![0.0; 32]); p }, "blk.0.attn_q.weight: the base tensor has shape"),
        // A target the base lacks.
        ("layer", { let mut p = Peft::new(); for t in &mut p.tensors { t.0 = t.0.replace("layers.0", "layers.7"); } p }, "blk.7.attn_k.weight: the base has no such tensor"),
    ];
    for (name, p, want) in cases {
        let e = run(&p, name, "llama").unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
}

#[test]
fn pickles_are_never_opened_and_other_towers_are_listed() {
    let dir = tmp("pickle");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), b"{}").unwrap();
    std::fs::write(dir.join("adapter_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let b = base("llama");
    let g = Gguf::parse(&b, &Limits::default()).unwrap();
    let e = convert(&dir, &g, "base.gguf", QType::F32, &[]).unwrap_err().to_string();
    assert!(e.contains("adapter_model.bin is a pickle") && e.contains("glassbox scan"), "{e}");
    let mut p = Peft::new();
    p.tensors.push(("base_model.model.model.vision_tower.encoder.layers.0.self_attn.q_proj.lora_A.weight".into(), vec![2, 8], vec![0.0; 16]));
    for t in &mut p.tensors[..4] {
        t.0 = t.0.replace("model.model.layers", "model.model.language_model.layers");
    }
    let (c, _) = run(&p, "towers", "llama").unwrap();
    assert_eq!((c.pairs, c.skipped.len()), (2, 1));
    assert!(c.skipped[0].contains("vision_tower"));
    assert!(convert(&tmp("missing"), &g, "base.gguf", QType::F32, &[]).unwrap_err().to_string().contains("adapter_model.safetensors not found"));
    assert!(convert(&dir, &g, "base.gguf", QType::Q4_0, &[]).unwrap_err().to_string().contains("output type Q4_0"));
}
