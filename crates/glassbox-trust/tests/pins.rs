//! Pins never silently disagree, and the verified bytes are the bytes used: after
//! `open_verified` nothing is read from the file system again.

use std::io::Write;
use std::path::{Path, PathBuf};

use glassbox_trust::{Error, Lockfile, Policy, Verdict, hash_files, open_verified, sha256_hex, sha256_of};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-pins-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model file, a lockfile pinning it and a trust store pinning it (possibly to other bytes).
fn setup(name: &str, store_bytes: &[u8]) -> (PathBuf, Lockfile, PathBuf) {
    let d = dir(name);
    let model = d.join("model.gguf");
    std::fs::write(&model, b"the real weights").unwrap();
    Lockfile::write(&d.join("glassbox.lock"), &hash_files(std::slice::from_ref(&model), 1).unwrap()).unwrap();
    let lock = Lockfile::load(&d.join("glassbox.lock")).unwrap();
    let store = d.join("trust.toml");
    let canonical = std::fs::canonicalize(&model).unwrap();
    std::fs::write(
        &store,
        format!(
            "version = 1\n\n[[file]]\npath = {:?}\nsize = {}\nsha256 = \"{}\"\n",
            canonical.display().to_string(),
            store_bytes.len(),
            sha256_hex(&sha256_of(store_bytes))
        ),
    )
    .unwrap();
    (model, lock, store)
}

fn conflict(e: Error) -> String {
    assert!(matches!(e, Error::ConflictingPins { .. }), "{e}");
    e.to_string()
}

#[test]
fn regression_lockfile_and_trust_store_disagree_refused_naming_both() {
    // Today the lockfile (e.g. an implicit ./glassbox.lock) simply wins over the store.
    let (model, lock, store) = setup("lock-vs-store", b"older weights");
    let e = open_verified(&model, &Policy { lockfile: Some(lock), store: Some(store.clone()), ..Policy::default() }).unwrap_err();
    let msg = conflict(e);
    assert!(msg.contains("glassbox.lock") && msg.contains(&store.display().to_string()), "{msg}");
    assert!(msg.contains(&sha256_hex(&sha256_of(b"older weights"))) && msg.contains(&sha256_hex(&sha256_of(b"the real weights"))), "{msg}");
}

#[test]
fn explicit_digest_and_lockfile_disagree_refused() {
    let (model, lock, _) = setup("sha-vs-lock", b"the real weights");
    let other = sha256_hex(&sha256_of(b"something else"));
    let e = open_verified(&model, &Policy { sha256: Some(other.clone()), lockfile: Some(lock), ..Policy::default() }).unwrap_err();
    let msg = conflict(e);
    assert!(msg.contains("--sha256") && msg.contains("lockfile") && msg.contains(&other), "{msg}");
}

#[test]
fn agreeing_pins_verify_with_the_strongest_source() {
    let (model, lock, store) = setup("agree", b"the real weights");
    let digest = sha256_hex(&sha256_of(b"the real weights"));
    let p = Policy { sha256: Some(digest.clone()), lockfile: Some(lock), store: Some(store), locked: true };
    let v = open_verified(&model, &p).unwrap();
    assert_eq!(v.verdict, Verdict::ExplicitDigest);
    assert_eq!(v.sha256, digest);
}

#[test]
fn a_store_pin_alone_does_not_satisfy_locked() {
    let (model, _, store) = setup("locked-store", b"the real weights");
    let e = open_verified(&model, &Policy { store: Some(store), locked: true, ..Policy::default() }).unwrap_err();
    assert!(matches!(e, Error::Unpinned { .. }), "{e}");
}

fn overwrite(path: &Path, byte: u8) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&vec![byte; len]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn regression_verified_bytes_do_not_change_when_the_file_does() {
    // Today the file is mapped shared: an in-place overwrite shows through the mapping, and a
    // truncation makes reading it raise SIGBUS.
    let d = dir("overwrite");
    let model = d.join("model.bin");
    let content: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(&model, &content).unwrap();
    let digest = sha256_hex(&sha256_of(&content));
    let v = open_verified(&model, &Policy { sha256: Some(digest.clone()), ..Policy::default() }).unwrap();
    overwrite(&model, 0xAA);
    assert!(v.map[..] == content[..], "an overwrite of the file changed the verified bytes");
    std::fs::OpenOptions::new().write(true).open(&model).unwrap().set_len(0).unwrap();
    assert_eq!(sha256_hex(&sha256_of(&v.map)), digest, "truncation changed the verified bytes");
}

#[test]
fn empty_file_verifies() {
    let d = dir("empty");
    let model = d.join("empty.bin");
    std::fs::write(&model, b"").unwrap();
    let v = open_verified(&model, &Policy { sha256: Some(sha256_hex(&sha256_of(b""))), ..Policy::default() }).unwrap();
    assert_eq!(v.map.len(), 0);
}
