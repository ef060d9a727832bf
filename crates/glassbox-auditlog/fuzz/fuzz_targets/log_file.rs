//! An audit log file is read back by `audit-log verify` and by `serve --audit-log` when it
//! reopens the log (cutting a crash's incomplete last line): any bytes must give an answer, never
//! a panic; and a file that verifies must still verify after the server reopens it and appends.
//! Run: cd crates/glassbox-auditlog/fuzz && cargo +nightly fuzz run log_file
#![no_main]

use glassbox_auditlog::{AuditLog, Options, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("glassbox-auditlog-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("audit.jsonl");
    std::fs::write(&path, data).expect("write");
    let strict = verify(std::slice::from_ref(&path), false);
    let Ok(before) = verify(std::slice::from_ref(&path), true) else {
        assert!(strict.is_err());
        return;
    };
    let opts = Options { sync: false, ..Options::default() };
    let log = AuditLog::open(&path, opts).expect("a log that verifies opens");
    log.reserve().expect("capacity").write(serde_json::json!({"type": "request"}));
    log.close();
    let after = verify(std::slice::from_ref(&path), true).expect("still verifies after reopening and appending");
    let recovered = u64::from(before.partial_tail > 0);
    assert_eq!(after.records, before.records + 1 + recovered);
    assert_eq!(after.partial_tail, 0);
    let _ = std::fs::remove_dir_all(&dir);
});
