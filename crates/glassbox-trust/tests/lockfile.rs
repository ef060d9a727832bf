//! Lockfiles are untrusted input too: malformed ones are refused with the file and entry named.

use glassbox_trust::{Error, Lockfile, Policy, Verdict, hash_files, open_verified};

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-trust-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load(text: &str) -> String {
    let p = dir().join("glassbox.lock");
    std::fs::write(&p, text).unwrap();
    Lockfile::load(&p).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn malformed_lockfiles_are_refused() {
    let digest = "a".repeat(64);
    assert!(load("version = 2\n").contains("unsupported version 2"));
    assert!(load("version = 1\n[[file]]\npath = \"x\"\nsize = 1\nsha256 = \"zz\"\n").contains("entry \"x\""));
    let dup = format!("version = 1\n[[file]]\npath = \"x\"\nsize = 1\nsha256 = \"{digest}\"\n[[file]]\npath = \"x\"\nsize = 1\nsha256 = \"{digest}\"\n");
    assert!(load(&dup).contains("appears twice"));
    assert!(load("this is not toml").contains("glassbox.lock"));
    let big = dir().join("big.lock");
    std::fs::write(&big, vec![b'#'; 17 << 20]).unwrap();
    assert!(Lockfile::load(&big).err().unwrap().to_string().contains("limit"));
}

#[test]
fn write_then_verify_roundtrip_with_relative_paths() {
    let d = dir();
    std::fs::create_dir_all(d.join("m")).unwrap();
    let f = d.join("m").join("w.bin");
    std::fs::write(&f, b"weights").unwrap();
    let hashed = hash_files(std::slice::from_ref(&f), 2).unwrap();
    std::fs::create_dir_all(d.join("locks")).unwrap();
    let lock = d.join("locks").join("glassbox.lock");
    Lockfile::write(&lock, &hashed).unwrap();
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains("path = \"../m/w.bin\""), "{text}");
    let l = Lockfile::load(&lock).unwrap();
    let v = open_verified(&f, &Policy { lockfile: Some(l.clone()), locked: true, ..Policy::default() }).unwrap();
    assert!(matches!(v.verdict, Verdict::Lockfile(_)));
    std::fs::write(&f, b"weightz").unwrap();
    let e = open_verified(&f, &Policy { lockfile: Some(l), locked: true, ..Policy::default() }).unwrap_err();
    assert!(matches!(e, Error::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("w.bin"));
    let e = open_verified(&f, &Policy { sha256: Some("xyz".into()), ..Policy::default() }).unwrap_err();
    assert!(matches!(e, Error::BadDigest(_)));
}
