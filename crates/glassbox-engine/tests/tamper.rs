//! Verification before use: a copy of the SmolLM2 file with single bytes flipped at 200+
//! offsets (header, metadata, tensor data, last byte), truncated or extended, is refused by
//! `Engine::load_verified` every time — before any of it is parsed, so before any token.

use std::io::{Read, Seek, SeekFrom, Write};

use glassbox_engine::{Engine, EngineOptions, Error};
use glassbox_trust::{Lockfile, Policy, Verdict};

const PINNED: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn opts() -> EngineOptions {
    EngineOptions { threads: 1, ctx_size: 64, batch_size: 64, ..Default::default() }
}

fn flip(path: &std::path::Path, offset: u64) {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x5a;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
}

#[test]
fn every_tampered_copy_is_refused_before_use() {
    let src = glassbox_testdata::model(glassbox_testdata::SMOLLM2);
    let dir = std::env::temp_dir().join(format!("glassbox-tamper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy.gguf");
    std::fs::copy(&src, &copy).unwrap();
    let size = std::fs::metadata(&copy).unwrap().len();
    let policy = Policy { sha256: Some(PINNED.into()), ..Policy::default() };
    let (_, v) = Engine::load_verified(&copy, &opts(), &policy).expect("the pristine copy loads");
    assert_eq!((v.sha256.as_str(), v.verdict), (PINNED, Verdict::ExplicitDigest));

    // Offsets: header and every byte of the first 64, then spread over metadata and tensors.
    let mut offsets: Vec<u64> = (0..64).collect();
    let mut s = 0x9e3779b97f4a7c15u64;
    while offsets.len() < 220 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        offsets.push(s % size);
    }
    offsets.extend([2 << 20, size / 2, size - 1]);
    for &off in &offsets {
        flip(&copy, off);
        let err = Engine::load_verified(&copy, &opts(), &policy).err().unwrap_or_else(|| panic!("flipped byte at {off} was accepted"));
        let msg = err.to_string();
        assert!(matches!(err, Error::Trust(glassbox_trust::Error::Mismatch { .. })), "offset {off}: {msg}");
        assert!(msg.contains("copy.gguf") && msg.contains(PINNED) && msg.contains("refusing"), "{msg}");
        flip(&copy, off); // restore
    }
    assert!(Engine::load_verified(&copy, &opts(), &policy).is_ok(), "restored copy loads again");

    // Truncated and extended, against a digest pin and against a lockfile pin (size check first).
    let lock = dir.join("glassbox.lock");
    Lockfile::write(&lock, &[(copy.clone(), size, PINNED.into())]).unwrap();
    let by_lock = Policy { lockfile: Some(Lockfile::load(&lock).unwrap()), locked: true, ..Policy::default() };
    assert!(matches!(Engine::load_verified(&copy, &opts(), &by_lock).unwrap().1.verdict, Verdict::Lockfile(_)));
    let f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    f.set_len(size - 1).unwrap();
    for p in [&policy, &by_lock] {
        let e = Engine::load_verified(&copy, &opts(), p).err().expect("truncated file refused").to_string();
        assert!(e.contains("mismatch"), "{e}");
    }
    f.set_len(size + 1).unwrap();
    for p in [&policy, &by_lock] {
        let e = Engine::load_verified(&copy, &opts(), p).err().expect("extended file refused").to_string();
        assert!(e.contains("mismatch"), "{e}");
    }
    let e = Engine::load_verified(&copy, &opts(), &by_lock).err().unwrap().to_string();
    assert!(e.contains(&format!("pinned {size} bytes")) && e.contains(&format!("file has {}", size + 1)), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
