//! The verified bytes are the bytes used: once a model is loaded through `load_verified`, the
//! file on disk can be overwritten or truncated and the model answers exactly as before (no
//! weights re-read from disk, no SIGBUS). Both models: SmolLM2 (separate output matrix) and
//! Gemma 3 (output tied to the token embedding, which is looked up raw while also packed).

use std::io::Write;

use glassbox_engine::{Engine, EngineOptions, GenerateRequest, SamplingParams};

fn answer(e: &mut Engine, prompt: &[u32]) -> Vec<u32> {
    let req = GenerateRequest { constraint: None,
        prompt: prompt.to_vec(),
        max_tokens: 24,
        sampling: SamplingParams { temperature: 0.0, ..SamplingParams::default() },
        stop: vec![],
    };
    e.generate(&req, |_| {}).unwrap().ids
}

fn survives_file_changes(file: &str) {
    let src = glassbox_testdata::model(file);
    let dir = std::env::temp_dir().join(format!("glassbox-verified-{}-{file}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(file);
    std::fs::copy(&src, &copy).unwrap();
    let digest = glassbox_trust::hash_files(std::slice::from_ref(&copy), 1).unwrap()[0].2.clone();
    let policy = glassbox_trust::Policy { sha256: Some(digest), ..Default::default() };
    let opts = EngineOptions { threads: 2, ctx_size: 256, batch_size: 64, ..Default::default() };
    let (mut e, _) = Engine::load_verified(&copy, &opts, &policy).unwrap();
    let prompt = e.tokenizer.encode("The capital of France is");
    let before = answer(&mut e, &prompt);
    // The verified copy (anonymous memory, pages released as matrices are repacked) answers as
    // the plain file mapping does: releasing never touches bytes still in use.
    let mut plain = Engine::load(&src, &opts).unwrap();
    assert_eq!(answer(&mut plain, &prompt), before, "{file}: the verified load answers differently from the plain one");
    drop(plain);

    // Overwrite every byte in place (same inode, same length), as a careless copy would.
    let len = std::fs::metadata(&copy).unwrap().len() as usize;
    let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    f.write_all(&vec![0x5A; len]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(answer(&mut e, &prompt), before, "{file}: overwriting the file changed the answer");

    // Truncate it: with a shared file mapping the next page fault past the end is SIGBUS.
    std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(0).unwrap();
    assert_eq!(answer(&mut e, &prompt), before, "{file}: truncating the file changed the answer");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_smollm2_answers_unchanged_after_file_overwritten_and_truncated() {
    survives_file_changes(glassbox_testdata::SMOLLM2);
}

#[test]
fn regression_gemma3_answers_unchanged_after_file_overwritten_and_truncated() {
    survives_file_changes(glassbox_testdata::GEMMA3);
}
