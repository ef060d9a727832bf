//! Model cards are untrusted: any README.md must be audited (front matter parsed with limits)
//! or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("glassbox-fuzz-card-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("README.md"), data).is_ok() {
        let _ = glassbox_audit::audit(&dir, None);
    }
});
