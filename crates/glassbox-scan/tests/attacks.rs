//! Attacks beyond picklescan's corpus, built opcode by opcode (nothing here is ever unpickled).

use glassbox_scan::{Severity, scan_bytes};

/// SHORT_BINUNICODE push.
fn s(text: &str) -> Vec<u8> {
    let mut v = vec![0x8c, text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

fn proto4(body: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![0x80, 4];
    for b in body {
        v.extend_from_slice(b);
    }
    v.push(b'.');
    v
}

fn imports(data: &[u8]) -> Vec<String> {
    scan_bytes(data, "t.pkl").findings.iter().filter_map(|f| f.import.clone()).collect()
}

fn high(data: &[u8]) -> bool {
    scan_bytes(data, "t.pkl").has_high()
}

#[test]
fn importlib_and_getattr_static_chain_is_flagged() {
    // importlib.import_module("os") then inspect.getattr_static(<os>, "system")("id")
    let p = proto4(&[&s("importlib"), &s("import_module"), &[0x93], &s("os"), &[0x85, b'R'], &s("inspect"), &s("getattr_static"), &[0x93], &[0x94], &s("system"), &[0x86, b'R']]);
    let got = imports(&p);
    assert!(got.contains(&"importlib.import_module".into()) && got.contains(&"inspect.getattr_static".into()), "{got:?}");
}

#[test]
fn marshal_code_object_is_flagged() {
    let p = proto4(&[&s("marshal"), &s("loads"), &[0x93], &[b'C', 3, 0xe3, 0, 0], &[0x85, b'R'], &s("types"), &s("FunctionType"), &[0x93]]);
    let got = imports(&p);
    assert!(got.contains(&"marshal.loads".into()) && got.contains(&"types.FunctionType".into()), "{got:?}");
}

#[test]
fn memo_tricks_are_resolved() {
    // Strings stored with MEMOIZE / BINPUT, then fetched with BINGET for STACK_GLOBAL.
    let p = proto4(&[&s("subprocess"), &[0x94], b"0", &s("check_output"), &[b'q', 7], b"0", &[b'h', 0], &[b'h', 7], &[0x93]]);
    assert_eq!(imports(&p), vec!["subprocess.check_output".to_string()]);
}

#[test]
fn unresolvable_stack_global_is_flagged() {
    // Module name produced by a call: cannot be known without running the pickle.
    let p = proto4(&[&s("builtins"), &s("str"), &[0x93], &s("o"), &[0x85, b'R'], &s("system"), &[0x93]]);
    let r = scan_bytes(&p, "t.pkl");
    assert!(r.has_high());
    assert!(r.findings.iter().any(|f| f.message.contains("cannot be resolved")), "{:?}", r.findings);
}

#[test]
fn submodule_disguises_are_flagged() {
    // Only exact (module, name) pairs are allowed: neighbours of allowed names are not.
    for (m, n) in [("torch._utils", "_rebuild_tensor_v2.__globals__"), ("torch", "load"), ("numpy.core.multiarray", "_reconstruct_evil"), ("os.path", "join"), ("collections", "OrderedDict.__init__")] {
        let p = proto4(&[&s(m), &s(n), &[0x93]]);
        assert!(high(&p), "{m}.{n}");
    }
}

#[test]
fn benign_state_dict_pickle_passes() {
    // OrderedDict() with a tensor rebuilt by torch._utils._rebuild_tensor_v2 from a FloatStorage.
    let p = proto4(&[&s("collections"), &s("OrderedDict"), &[0x93], b")R", &s("torch._utils"), &s("_rebuild_tensor_v2"), &[0x93], &s("torch"), &s("FloatStorage"), &[0x93], b"00"]);
    let r = scan_bytes(&p, "t.pkl");
    assert!(!r.has_high(), "{:?}", r.findings);
}

#[test]
fn content_decides_not_the_extension() {
    let p = proto4(&[&s("os"), &s("system"), &[0x93]]);
    assert!(scan_bytes(&p, "weights.txt").has_high());
    assert!(scan_bytes(&p, "README").has_high());
    // Text that is not a pickle is at most informational.
    let r = scan_bytes(b"hello world, just text\n", "notes.pkl");
    assert!(r.findings.iter().all(|f| f.severity < Severity::High), "{:?}", r.findings);
}

#[test]
fn hostile_lengths_never_panic_or_allocate_by_claim() {
    for p in [vec![0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], vec![0x80, 4, b'X', 0xff, 0xff, 0xff, 0x7f], vec![0x80, 9], vec![b'c', b'o', b's'], vec![0x80, 4, b'h']] {
        let r = scan_bytes(&p, "t.pkl");
        assert!(!r.findings.is_empty());
    }
    // Deeply nested marks.
    let mut p = vec![0x80, 4];
    p.extend(std::iter::repeat_n(b'(', 100_000));
    p.push(b'.');
    let _ = scan_bytes(&p, "t.pkl");
}
