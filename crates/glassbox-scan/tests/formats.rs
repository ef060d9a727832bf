//! GGUF chat-template injection (tests/corpora/gguf-templates), no false positives on the 70
//! real templates of popular models, real GGUF models pass, and strict safetensors checks.

use glassbox_scan::{scan_bytes, scan_path, scan_template};

#[test]
fn gguf_template_injection_is_flagged_and_benign_passes() {
    let dir = glassbox_testdata::corpus("gguf-templates");
    assert!(!scan_path(&dir.join("benign.gguf")).unwrap().has_high());
    for evil in ["ssti_lipsum.gguf", "ssti_obfuscated.gguf"] {
        let r = scan_path(&dir.join(evil)).unwrap();
        assert!(r.has_high(), "{evil}: {:?}", r.findings);
        assert!(r.findings.iter().all(|f| f.location.contains("#tokenizer.chat_template")));
    }
}

#[test]
fn real_templates_have_no_high_findings() {
    let dir = glassbox_testdata::corpus("chat-templates");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let src = std::fs::read_to_string(&p).unwrap();
        let r = scan_template(&src, &p.display().to_string());
        assert!(!r.has_high(), "{}: {:?}", p.display(), r.findings);
        n += 1;
    }
    assert!(n >= 70, "{n}");
}

#[test]
fn real_models_pass_and_template_tricks_are_caught() {
    for m in [glassbox_testdata::SMOLLM2, glassbox_testdata::GEMMA3] {
        let r = scan_path(&glassbox_testdata::model(m)).unwrap();
        assert!(!r.has_high(), "{m}: {:?}", r.findings);
    }
    for evil in [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner|attr('x') }}",
        "{% set x = request.application %}",
        "{{ message['content'] }}\u{202e}",
        "{{ x[('_' ~ '_cla') ~ 'ss__'] }}",
    ] {
        assert!(scan_template(evil, "t").has_high(), "{evil}");
    }
    // Ordinary uses of the same words are not template injection.
    for ok in ["{{ messages[0]['content'] | tojson }}", "{% set ns = namespace(found=false) %}{{ ns.found }}", "system: {{ system_message }}"] {
        assert!(!scan_template(ok, "t").has_high(), "{ok}");
    }
}

fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend(std::iter::repeat_n(0u8, data_len));
    v
}

#[test]
fn safetensors_headers_are_strict() {
    let ok = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[4],"data_offsets":[16,24]}}"#;
    assert!(scan_bytes(&safetensors(ok, 24), "m.safetensors").findings.is_empty());
    let bad = [
        (format!(" {ok}"), 24, "start with"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#.to_string(), 16, "duplicate key"),
        (r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#.to_string(), 8, "does not equal"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#.to_string(), 12, "gap or overlap"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#.to_string(), 20, "gap or overlap"),
        (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_string(), 12, "data section has 12"),
        (r#"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#.to_string(), 8, "unknown dtype"),
        (r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#.to_string(), 8, "does not equal"),
    ];
    for (h, n, want) in bad {
        let r = scan_bytes(&safetensors(&h, n), "m.safetensors");
        assert!(r.has_high() && r.findings.iter().any(|f| f.message.contains(want)), "{h}: {:?}", r.findings);
    }
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{\"");
    assert!(scan_bytes(&huge, "m.safetensors").has_high());
}
