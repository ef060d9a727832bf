//! The command-line contract, exercised on the real SmolLM2 file: stdout carries only results,
//! `--json` shapes, greedy output equal to llama.cpp's, and clear errors (never a panic).

use std::process::{Command, Output};

use serde_json::Value;

/// Tests pin into their own trust store, never the user's.
fn test_store() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("glassbox-cli-trust-{}.toml", std::process::id()))
}

fn glassbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).env("GLASSBOX_TRUST_STORE", test_store()).output().expect("run glassbox")
}

fn glassbox_in(dir: &std::path::Path, store: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).current_dir(dir).env("GLASSBOX_TRUST_STORE", store).output().expect("run glassbox")
}

fn smollm2() -> String {
    glassbox_testdata::model(glassbox_testdata::SMOLLM2).display().to_string()
}

fn stdout_json(o: &Output) -> Value {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&o.stdout)))
}

fn fixture(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(glassbox_testdata::fixture(rel)).unwrap()).unwrap()
}

#[test]
fn run_raw_greedy_json_matches_llama_cpp() {
    // "Water boils at": every step of llama.cpp's greedy continuation is unambiguous.
    let fx = fixture("greedy/smollm2.json");
    let case = fx["cases"].as_array().unwrap().iter().find(|c| c["prompt"] == "Water boils at").unwrap();
    let m = smollm2();
    let o = glassbox(&["run", &m, "--raw", "--prompt", "Water boils at", "--max-tokens", "32", "--temperature", "0", "--json"]);
    let v = stdout_json(&o);
    assert_eq!(v["ids"], case["ids"]);
    assert_eq!(v["prompt_tokens"], case["prompt_ids"].as_array().unwrap().len());
    assert_eq!(v["completion_tokens"], 32);
    assert_eq!(v["finish_reason"], "length");
    assert!(v["text"].as_str().unwrap().len() > 10);
}

#[test]
fn run_prints_only_generated_text_on_stdout() {
    let m = smollm2();
    let o = glassbox(&["run", &m, "--raw", "--prompt", "The capital of France is", "-n", "3", "--temperature", "0"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8(o.stdout).unwrap(), " Paris.\n\n");
}

#[test]
fn run_with_chat_template_and_seed_is_reproducible() {
    let m = smollm2();
    let args = ["run", &m, "--prompt", "Name a colour.", "-n", "16", "--seed", "42", "--json"];
    // Everything but the timings.
    let untimed = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("elapsed_s").is_some() && o.remove("decode_tok_s").is_some());
        v
    };
    let a = untimed(stdout_json(&glassbox(&args)));
    let b = untimed(stdout_json(&glassbox(&args)));
    assert_eq!(a, b);
    // The chat template wraps the prompt: many more prompt tokens than the raw text has.
    assert!(a["prompt_tokens"].as_u64().unwrap() > 20);
}

#[test]
fn tokenize_json_matches_llama_cpp() {
    let fx = fixture("tokenize/smollm2.json");
    let m = smollm2();
    for case in fx["cases"].as_array().unwrap().iter().take(40) {
        let text = case["text"].as_str().unwrap();
        let v = stdout_json(&glassbox(&["tokenize", &m, "--text", text, "--json"]));
        assert_eq!(v["ids"], case["ids"], "{text:?}");
    }
}

#[test]
fn info_describes_the_file() {
    let m = smollm2();
    let v = stdout_json(&glassbox(&["info", &m, "--json"]));
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["tokenizer"]["model"], "gpt2");
    assert_eq!(v["tokenizer"]["vocab_size"], 49152);
    assert_eq!(v["tensor_types"]["Q4_1"]["tensors"], 210);
    assert!(v["chat_template"].as_str().unwrap().contains("im_start"));
    let human = glassbox(&["info", &m]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("architecture  llama"));
}

#[test]
fn bench_json_reports_speeds() {
    let m = smollm2();
    let v = stdout_json(&glassbox(&["bench", &m, "--prompt-tokens", "32", "--gen-tokens", "4", "-r", "1", "--json"]));
    assert!(v["prefill_tok_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn errors_are_clear_and_never_panics() {
    let m = smollm2();
    let dir = std::env::temp_dir().join(format!("glassbox-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into(), "/nonexistent/model.gguf".into(), "-p".into(), "x".into()], "/nonexistent/model.gguf"),
        (vec!["run".into(), junk.display().to_string(), "-p".into(), "x".into()], "not a gguf file"),
        (vec!["info".into(), truncated.display().to_string()], "extends past the end"),
        (vec!["run".into(), m.clone(), "--raw".into(), "-p".into(), "word ".repeat(50), "-c".into(), "16".into()], "context size is 16"),
        (vec!["run".into(), m.clone(), "-p".into(), "x".into(), "--temperature".into(), "-1".into()], "temperature"),
        (vec!["run".into(), m.clone(), "-p".into(), "x".into(), "--threads".into(), "0".into()], "--threads"),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = glassbox(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn chat_keeps_history_and_exits_cleanly() {
    use std::io::Write;
    let m = smollm2();
    for input in ["What is 2+2?\nAnd times three?\n/exit\nnever read\n", "Hello\n"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
            .args(["chat", &m, "-n", "24", "--seed", "1"])
            .env("GLASSBOX_TRUST_STORE", test_store())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let turns = input.lines().take_while(|l| *l != "/exit").count();
        // One answer per user turn, each ending in a newline; the prompt marker goes to stderr.
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(out.matches('\n').count() >= turns, "{out:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr).matches("> ").count(), turns + 1);
    }
}

#[test]
fn serve_refuses_an_open_non_loopback_bind() {
    let m = smollm2();
    let o = glassbox(&["serve", &m, "--host", "0.0.0.0", "--port", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to bind 0.0.0.0 without API keys"), "{err}");
    let dir = std::env::temp_dir().join(format!("glassbox-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "short\n").unwrap();
    let o = glassbox(&["serve", &m, "--api-key-file", keys.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("too short"));
}

#[test]
fn trust_on_first_use_then_refuse_a_changed_file() {
    use std::io::Write as _;
    let dir = std::env::temp_dir().join(format!("glassbox-tofu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("trust.toml");
    let copy = dir.join("model.gguf");
    std::fs::copy(smollm2(), &copy).unwrap();
    let c = copy.to_str().unwrap();
    let run = |args: &[&str]| glassbox_in(&dir, &store, args);
    let o = run(&["run", c, "--raw", "-p", "Hi", "-n", "1", "--temperature", "0"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pinned on first use as sha256 b179c9523d0e"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["run", c, "--raw", "-p", "Hi", "-n", "1", "--temperature", "0"]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("pinned on first use"));
    // --locked refuses what only the trust store pins.
    let o = run(&["run", c, "--locked", "--raw", "-p", "Hi", "-n", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--locked refuses unpinned files"));
    // A changed file is refused, naming it and both digests.
    std::fs::OpenOptions::new().append(true).open(&copy).unwrap().write_all(b"x").unwrap();
    let o = run(&["run", c, "--raw", "-p", "Hi", "-n", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("model.gguf") && err.contains("size mismatch") && err.contains("trust store"), "{err}");
    assert!(o.stdout.is_empty());
    let o = run(&["info", c]);
    assert!(o.status.success(), "info does not run the model and needs no pin");
    // Pins never silently disagree: --sha256 for the changed bytes against the store's older pin
    // is refused naming both, until the stale store entry is removed.
    let changed = glassbox_trust::hash_files(std::slice::from_ref(&copy), 1).unwrap()[0].2.clone();
    let o = run(&["run", c, "--sha256", &changed, "--raw", "-p", "Hi", "-n", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("pins disagree") && err.contains("--sha256") && err.contains("trust store") && err.contains(&changed), "{err}");
    std::fs::remove_file(&store).unwrap();
    let wrong = "0".repeat(64);
    let o = run(&["run", c, "--sha256", &wrong, "--raw", "-p", "Hi", "-n", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha256 mismatch"));
    let o = run(&["run", c, "--sha256", &changed, "--raw", "-p", "Hi", "-n", "1", "--temperature", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_and_verify_exit_codes() {
    use std::io::Write as _;
    let dir = std::env::temp_dir().join(format!("glassbox-lock-{}", std::process::id()));
    let models = dir.join("models");
    std::fs::create_dir_all(models.join("sub")).unwrap();
    std::fs::write(models.join("a.bin"), b"alpha").unwrap();
    std::fs::write(models.join("sub/b.bin"), b"beta").unwrap();
    let store = dir.join("trust.toml");
    let run = |args: &[&str]| glassbox_in(&dir, &store, args);
    assert!(run(&["lock", "models"]).status.success());
    let lock = std::fs::read_to_string(dir.join("glassbox.lock")).unwrap();
    assert!(lock.contains("path = \"models/a.bin\"") && lock.find("models/a.bin") < lock.find("models/sub/b.bin"), "{lock}");
    // alpha's sha256
    assert!(lock.contains("8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8"), "{lock}");
    let o = run(&["verify", "models", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    // changed file → 1, naming the file
    std::fs::write(models.join("a.bin"), b"alphA").unwrap();
    let o = run(&["verify", "models"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a.bin: sha256 mismatch"));
    // added (unpinned) file → 1
    std::fs::write(models.join("a.bin"), b"alpha").unwrap();
    std::fs::File::create(models.join("new.bin")).unwrap().write_all(b"n").unwrap();
    let o = run(&["verify", "models"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("new.bin is not pinned"));
    // missing lockfile or path → 2
    assert_eq!(run(&["verify", "models", "--lock", "nope.lock"]).status.code(), Some(2));
    assert_eq!(run(&["verify", "missing"]).status.code(), Some(2));
    // --sha256 on one file
    let o = run(&["verify", "models/sub/b.bin", "--sha256", "sha256:F44E64E76F60C7A4D0E2F71F2B8C3EC4D1B7ECA5AB8F7B0B1B4C1F6C1A0AA0B9"]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scan_exit_codes_and_formats() {
    let corpus = glassbox_testdata::corpus("pickle/data");
    let bad = corpus.join("malicious2_v4.pkl");
    let good = corpus.join("pytorch_model.bin");
    let o = glassbox(&["scan", bad.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["high"], true);
    assert_eq!(v["findings"][0]["import"], "posix.system");
    let o = glassbox(&["scan", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = glassbox(&["scan", bad.to_str().unwrap(), "--sarif"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["runs"][0]["results"][0]["level"], "error");
    assert_eq!(glassbox(&["scan", "/nonexistent/x"]).status.code(), Some(2));
}

#[test]
fn verify_keyless_signature_exit_codes() {
    let v = glassbox_testdata::corpus("model-signing/upstream/v1.1.0-sigstore");
    let (dir, sig) = (v.display().to_string(), v.join("model.sig").display().to_string());
    let issuer = "https://sigstore.verify.ibm.com/oauth2";
    let o = glassbox(&["verify", &dir, "--signature", &sig, "--identity", "stefanb@us.ibm.com", "--issuer", issuer, "--json"]);
    let j = stdout_json(&o);
    assert_eq!((j["ok"].as_bool(), j["files"].as_u64()), (Some(true), Some(2)));
    assert_eq!(j["keyless"]["identity"], "stefanb@us.ibm.com");
    // Another signer → 1, naming the mismatch.
    let o = glassbox(&["verify", &dir, "--signature", &sig, "--identity", "eve@example.com", "--issuer", issuer]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("identity mismatch"));
    // Missing --issuer, or an unreadable trusted root → 2.
    assert_eq!(glassbox(&["verify", &dir, "--signature", &sig, "--identity", "stefanb@us.ibm.com"]).status.code(), Some(2));
    let o = glassbox(&["verify", &dir, "--signature", &sig, "--identity", "stefanb@us.ibm.com", "--issuer", issuer, "--trusted-root", "/nonexistent/root.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/root.json"));
}

#[test]
fn audit_exit_codes_formats_and_the_run_policy_gate() {
    let dir = std::env::temp_dir().join(format!("glassbox-audit-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = smollm2();
    let deny = dir.join("deny.toml");
    std::fs::write(&deny, "[licenses]\ndeny = [\"Apache-2.0\"]\n").unwrap();
    let allow = dir.join("allow.toml");
    std::fs::write(&allow, "[licenses]\nallow = [\"Apache-2.0\"]\n[use]\ncommercial = true\n").unwrap();
    // No policy: 0 and a report; JSON and SARIF parse.
    let o = glassbox(&["audit", &model]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Apache License 2.0"));
    assert!(!String::from_utf8_lossy(&o.stdout).contains('\x1b'), "no colour when stdout is not a TTY");
    let j = stdout_json(&glassbox(&["audit", &model, "--json"]));
    assert_eq!(j["licences"][0]["id"], "Apache-2.0");
    let s = stdout_json(&glassbox(&["audit", &model, "--format", "sarif"]));
    assert_eq!(s["version"], "2.1.0");
    let b = stdout_json(&glassbox(&["bom", &model]));
    assert_eq!(b["specVersion"], "1.6");
    // A failing policy: 1, with the reason; a passing one: 0.
    let o = glassbox(&["audit", &model, "--policy", deny.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("denied"));
    assert_eq!(glassbox(&["audit", &model, "--policy", allow.to_str().unwrap()]).status.code(), Some(0));
    // Usage and input errors: 2, naming the problem.
    let o = glassbox(&["audit", "/nonexistent/model"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/model"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[licenses]\nalow = []\n").unwrap();
    let o = glassbox(&["audit", &model, "--policy", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("alow"), "{}", String::from_utf8_lossy(&o.stderr));
    // run refuses a model that fails the policy, before any token, and runs one that passes.
    let o = glassbox(&["run", &model, "--raw", "-p", "Hello", "-n", "4", "--policy", deny.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fails policy") && err.contains("licenses.deny"), "{err}");
    let o = glassbox(&["run", &model, "--raw", "-p", "Hello", "-n", "4", "--temperature", "0", "--policy", allow.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!o.stdout.is_empty());
    // serve refuses before binding.
    let o = glassbox(&["serve", &model, "--port", "1", "--policy", deny.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fails policy"), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_speculative_lookup_and_draft_give_the_same_output() {
    let m = smollm2();
    // Raw text whose greedy continuation repeats it on every kernel path (an instruction to
    // repeat is answered differently by different paths at a near-tie, and not always by
    // repeating), so prompt lookup has something to find.
    let prompt = "apples, pears, plums, cherries, apples, pears, plums, cherries, apples, pears, plums, cherries, apples,";
    let base = ["run", &m, "--raw", "--prompt", prompt, "-n", "40", "--temperature", "0", "--json"];
    let plain = stdout_json(&glassbox(&base));
    assert!(plain.get("speculative").is_none());
    let look = stdout_json(&glassbox(&[&base[..], &["--lookup", "--draft-max", "6"]].concat()));
    assert_eq!(look["ids"], plain["ids"]);
    assert_eq!(look["speculative"]["drafter"], "lookup");
    assert!(look["speculative"]["passes"].as_u64().unwrap() < plain["completion_tokens"].as_u64().unwrap());
    let draft = stdout_json(&glassbox(&[&base[..], &["--draft", &m]].concat()));
    assert_eq!(draft["ids"], plain["ids"]);
    assert_eq!(draft["speculative"]["drafter"], "model");
    // A draft with another vocabulary is refused by name.
    let gemma = glassbox_testdata::model(glassbox_testdata::GEMMA3).display().to_string();
    let o = glassbox(&[&base[..], &["--draft", &gemma]].concat());
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("cannot load draft model") && e.contains("vocabularies must match"), "{e}");
    let o = glassbox(&[&base[..], &["--draft", &m, "--lookup"]].concat());
    assert_eq!(o.status.code(), Some(2), "--draft and --lookup conflict");
}

#[test]
fn bench_times_speculative_decoding_on_a_real_prompt() {
    let dir = std::env::temp_dir().join(format!("glassbox-bench-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prompt = dir.join("edit.txt");
    std::fs::write(&prompt, "Rename `total` to `sum` in this function and return it whole:\n\ndef add(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n").unwrap();
    let m = smollm2();
    let o = glassbox(&["bench", &m, "--lookup", "--prompt-file", prompt.to_str().unwrap(), "--gen-tokens", "48", "-r", "1", "-t", "2", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identical_output"], true);
    assert_eq!(v["drafter"], "lookup");
    let n_gen = v["gen_tokens"].as_u64().unwrap();
    assert!(n_gen > 1 && v["passes"].as_u64().unwrap() <= n_gen, "{v}");
    assert!(v["plain_decode_tok_s"].as_f64().unwrap() > 0.0 && v["speedup"].as_f64().unwrap() > 0.0);
    let o = glassbox(&["bench", &m, "--lookup"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--prompt-file"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `glassbox redact`: placeholders stable per value, character offsets (not bytes), a type
/// filter, masks, and bad flags refused by name.
#[test]
fn redact_replaces_personal_data_with_character_offsets() {
    let text = "Grüße: jane@example.com, karte 4111 1111 1111 1111, wieder jane@example.com";
    let o = glassbox(&["redact", "--text", text, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["text"], "Grüße: [EMAIL_1], karte [CARD_1], wieder [EMAIL_1]");
    for e in v["entities"].as_array().unwrap() {
        let (s, end) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
        assert_eq!(text.chars().skip(s).take(end - s).collect::<String>(), e["text"].as_str().unwrap());
    }
    assert_eq!(v["entities"][0]["start"], 7);
    let o = glassbox(&["redact", "--text", text, "--entities", "card", "--mode", "mask"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Grüße: jane@example.com, karte *******************, wieder jane@example.com");
    let o = glassbox(&["redact", "--text", text, "--entities", "NAME"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--entities NAME"));
    let o = glassbox(&["redact", "--text", text, "--mode", "erase"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--mode erase"));
}
