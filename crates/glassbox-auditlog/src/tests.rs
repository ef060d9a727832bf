use std::path::{Path, PathBuf};

use serde_json::json;

use crate::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("glassbox-auditlog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("audit.jsonl")
}

fn write(path: &Path, n: usize, opts: Options) -> AuditLog {
    let log = AuditLog::open(path, opts).unwrap();
    for i in 0..n {
        log.reserve().unwrap().write(json!({"request": i, "model": "m", "tokens": i * 3}));
    }
    log
}

fn check(path: &Path) -> std::result::Result<Verified, String> {
    verify(&files_of(path).unwrap(), false).map_err(|e| e.to_string())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

fn put(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

#[test]
fn a_written_log_verifies_and_any_edit_deletion_insertion_or_reordering_is_caught() {
    let path = tmp("edits");
    write(&path, 5, Options { sync: false, ..Options::default() }).close();
    let v = check(&path).unwrap();
    assert_eq!((v.records, v.first_seq, v.last_seq, v.partial_tail), (5, Some(0), Some(4), 0));
    let good = lines(&path);
    // An edit anywhere (the last record too) breaks that record's hash.
    for k in [0, 2, 4] {
        let mut l = good.clone();
        l[k] = l[k].replace("\"tokens\":", "\"tokens\":1");
        put(&path, &l);
        let e = check(&path).unwrap_err();
        assert!(e.contains(&format!("record {}", k + 1)) && e.contains("edited"), "{e}");
    }
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("deleted", good.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| l.clone()).collect()),
        ("inserted", { let mut l = good.clone(); l.insert(3, good[1].clone()); l }),
        ("reordered", { let mut l = good.clone(); l.swap(1, 2); l }),
        ("first deleted", good[1..].to_vec()),
    ];
    for (what, l) in cases {
        put(&path, &l);
        let e = check(&path).unwrap_err();
        assert!(e.contains("deleted, inserted or reordered") || e.contains("missing"), "{what}: {e}");
    }
    // Retention: a log whose oldest records were removed verifies with `from_any` only.
    put(&path, &good[2..]);
    assert!(verify(std::slice::from_ref(&path), true).is_ok());
}

#[test]
fn a_crash_mid_record_verifies_up_to_the_last_whole_record_and_is_recovered_on_open() {
    let path = tmp("crash");
    write(&path, 3, Options { sync: false, ..Options::default() }).close();
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(b"{\"seq\":3,\"prev\":\"ab");
    std::fs::write(&path, &data).unwrap();
    let v = check(&path).unwrap();
    assert_eq!((v.records, v.partial_tail), (3, 19));
    // Reopened: the partial line is cut, the cut recorded, the chain continues.
    let log = write(&path, 2, Options { sync: false, ..Options::default() });
    log.close();
    let v = check(&path).unwrap();
    assert_eq!((v.records, v.partial_tail), (6, 0));
    assert!(lines(&path)[3].contains("\"recovered\""));
    // A broken chain is never appended to.
    let mut l = lines(&path);
    l.swap(0, 1);
    put(&path, &l);
    assert!(AuditLog::open(&path, Options::default()).is_err());
}

#[test]
fn rotation_keeps_the_chain_across_files() {
    let path = tmp("rotate");
    write(&path, 40, Options { max_bytes: 1000, sync: false, ..Options::default() }).close();
    let files = files_of(&path).unwrap();
    assert!(files.len() >= 4, "{files:?}");
    let v = check(&path).unwrap();
    assert_eq!((v.records, v.last_seq), (40, Some(39)));
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 1000);
    }
    // Reopening continues the chain in the active file.
    write(&path, 5, Options { max_bytes: 1000, sync: false, ..Options::default() }).close();
    assert_eq!(check(&path).unwrap().records, 45);
    // A missing middle file is caught.
    std::fs::remove_file(&files[1]).unwrap();
    assert!(check(&path).unwrap_err().contains("deleted, inserted or reordered"));
}

#[test]
fn capacity_is_reserved_before_a_request_and_a_failed_log_refuses() {
    let path = tmp("capacity");
    let log = AuditLog::open(&path, Options { capacity: 2, sync: false, ..Options::default() }).unwrap();
    let a = log.reserve().unwrap();
    let b = log.reserve().unwrap();
    assert!(matches!(log.reserve(), Err(Unavailable::Full(2))));
    drop(a);
    let c = log.reserve().unwrap();
    b.write(json!({"x": 1}));
    c.write(json!({"x": 2}));
    let t = std::time::Instant::now();
    while log.written() < 2 {
        assert!(t.elapsed().as_secs() < 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(log.head().0, Some(1));
    // The disk fails: the batch is not written and every later request is refused.
    assert!(AuditLog::open(Path::new("/dev/null"), Options::default()).is_err(), "a device is not a log file");
    let failing = tmp("failing");
    let bad = AuditLog::open(&failing, Options { sync: false, ..Options::default() }).unwrap();
    crate::writer::FAIL_WRITES.store(true, std::sync::atomic::Ordering::SeqCst);
    bad.reserve().unwrap().write(json!({"x": 1}));
    let t = std::time::Instant::now();
    while bad.failure().is_none() {
        assert!(t.elapsed().as_secs() < 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(matches!(bad.reserve(), Err(Unavailable::Failed(_))));
    assert_eq!(bad.written(), 0);
    log.close();
}

#[test]
fn a_line_names_its_fields_in_order_and_hashes_its_prefix() {
    let (l, h) = line(0, GENESIS, "2026-12-01T00:00:00Z", &json!({"a": "x\"y"}));
    assert!(l.starts_with("{\"seq\":0,\"prev\":\"000") && l.ends_with(&format!(",\"hash\":\"{h}\"}}")));
    assert_eq!(parse_line(l.as_bytes()).unwrap(), (0, GENESIS.to_string(), h));
    assert!(parse_line(b"{}").is_err());
}

proptest::proptest! {
    /// Any single-byte change to a log either leaves it verifying identically (no change of
    /// meaning is possible: the bytes are the same) or is reported — never a panic.
    #[test]
    fn any_byte_flip_is_caught(pos in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
        let path = tmp(&format!("flip-{pos}-{byte}"));
        write(&path, 4, Options { sync: false, ..Options::default() }).close();
        let mut data = std::fs::read(&path).unwrap();
        let p = pos % data.len();
        let changed = data[p] != byte;
        data[p] = byte;
        std::fs::write(&path, &data).unwrap();
        let r = verify(std::slice::from_ref(&path), false);
        if changed {
            // A flip in the final newline only makes the last record "incomplete": still reported.
            proptest::prop_assert!(r.is_err() || r.as_ref().unwrap().partial_tail > 0 || r.as_ref().unwrap().records < 4);
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
