//! Regression tests for issue 9 item 2: the pickle/zip scanner fails closed. Each test is named
//! after the defect it pins; all of them failed on the scanner before the fix (see the notes).

mod common;

use std::time::{Duration, Instant};

use common::*;
use glassbox_scan::{Severity, scan_bytes};

fn imports(r: &glassbox_scan::Report) -> Vec<String> {
    r.findings.iter().filter_map(|f| f.import.clone()).collect()
}

/// Before: "stack grows past its limit" ended the analysis as an Info "not a valid pickle;
/// nothing in it can run" — a clean verdict after an incomplete analysis.
#[test]
fn stack_limit_hit_is_high_not_clean() {
    let mut body = vec![b')'; (1 << 20) + 16];
    body.extend_from_slice(&evil4()[2..]);
    let r = scan_bytes(&pickle(4, &[&body]), "t.pkl");
    let inc = incomplete(&r);
    assert!(inc.iter().any(|m| m.contains("stack")), "{}", show(&r));
}

/// Before: "memo grows past its limit" was reported as Info (clean). A memoized string is
/// charged to the tracked-value budget per memo slot, so memoizing one string millions of times
/// hits that budget first.
#[test]
fn memo_limit_hit_is_high_not_clean() {
    for (first, limit) in [(vec![b')'], "memo"), (s("x"), "tracked value")] {
        let mut body = first;
        body.extend(std::iter::repeat_n(0x94, 1 << 22));
        let r = scan_bytes(&pickle(4, &[&body]), "t.pkl");
        assert!(incomplete(&r).iter().any(|m| m.contains(limit)), "{limit}: {}", show(&r));
    }
}

/// MEMOIZE stores at the memo's length, which counts every memoized object, not only the
/// values the analysis tracks (a defect of the first version of this fix, kept as a guard).
#[test]
fn memoize_indices_count_every_memoized_object() {
    let p = pickle(4, &[&s("collections"), &[0x94], &s("OrderedDict"), &[0x94], &[0x93, 0x94], &[b')', 0x94], &s("os"), &[0x94], &s("system"), &[0x94], &[b'h', 4, b'h', 5, 0x93]]);
    let r = scan_bytes(&p, "t.pkl");
    assert_eq!(imports(&r), vec!["os.system".to_string()], "{}", show(&r));
}

/// Before: the nesting limit was High but did not say that the analysis was incomplete.
#[test]
fn nesting_limit_hit_says_could_not_fully_analyse() {
    let mut z = zip(&[Member::stored("data.pkl", &evil4())]);
    for i in 0..6 {
        z = zip(&[Member::stored(&format!("level{i}.zip"), &z)]);
    }
    let r = scan_bytes(&z, "t.zip");
    assert!(incomplete(&r).iter().any(|m| m.contains("nested") && m.contains('4')), "{}", show(&r));
}

/// Before: after the first pickle, bytes not starting with PROTO (0x80) were ignored, so a
/// protocol 0/1 pickle after a benign one was never analysed.
#[test]
fn malicious_protocol0_after_benign_protocol2_is_flagged() {
    let mut data = benign2();
    data.extend_from_slice(&evil0());
    let r = scan_bytes(&data, "t.pkl");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
    // Protocol 1 (binary opcodes, still no PROTO) after two benign pickles.
    let mut data = benign2();
    data.extend_from_slice(&benign2());
    data.extend_from_slice(b"cposix\nsystem\nq\x00(X\x02\x00\x00\x00idq\x01tR.");
    let r = scan_bytes(&data, "t.pkl");
    assert!(imports(&r).contains(&"posix.system".to_string()), "{}", show(&r));
}

/// Before: a tail that is not a pickle was silently ignored.
#[test]
fn trailing_garbage_after_a_pickle_is_flagged() {
    let mut data = benign2();
    data.extend_from_slice(b"\x00\x01garbage that is not a pickle");
    let r = scan_bytes(&data, "t.pkl");
    assert!(r.has_high() && !incomplete(&r).is_empty(), "{}", show(&r));
}

/// Before: the raw storage data after a legacy `torch.save` file's five pickles stopped the
/// analysis, so anything appended after it was never looked at.
#[test]
fn pickle_appended_after_legacy_torch_storage_data_is_flagged() {
    let legacy = std::fs::read(glassbox_testdata::corpus("pickle/data/pytorch_model.bin")).unwrap();
    assert!(!scan_bytes(&legacy, "m.bin").has_high());
    let mut data = legacy.clone();
    data.extend_from_slice(&evil0());
    let r = scan_bytes(&data, "m.bin");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
    // Storage data that does not match the storages the pickles declare is not accounted for.
    let r = scan_bytes(&legacy[..legacy.len() - 1], "m.bin");
    assert!(!incomplete(&r).is_empty(), "{}", show(&r));
}

/// Before: PUT/GET indices were parsed more strictly than CPython's unpickler parses them
/// (`1_0`, `+10`, spaces, a NUL ending the number), so the analysis stopped as "not a pickle"
/// while CPython went on to import and call os.system.
#[test]
fn protocol0_memo_index_written_like_python_ints_is_followed() {
    let p = b"Vos\np1_0\n0Vsystem\np+2\x00x\n0g 1_0 \ng2\n\x93(Vid\ntR.";
    let r = scan_bytes(p, "t.pkl");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
}

fn bomb_member(name: &str, compressed: &[u8]) -> Member {
    Member { method: 8, data: compressed.to_vec(), ..Member::stored(name, &[]) }
}

/// Before: each member could inflate to 4 GiB on its own, with no budget across members or
/// nesting levels; now the total inflated bytes are budgeted and hitting the budget is high.
#[test]
fn zip_bomb_across_members_and_nesting_is_high_within_budget() {
    // 8 MiB of NONE, POP: a valid, harmless pickle body that compresses ~1000:1.
    let mut raw = vec![0x80, 2];
    raw.extend(b"N0".repeat(4 << 20));
    raw.push(b'.');
    let c = deflate(&raw);
    let members: Vec<Member> = (0..48).map(|i| bomb_member(&format!("m{i}.pkl"), &c)).collect();
    let flat = zip(&members);
    let inner: Vec<Member> = (0..4).map(|i| Member::stored(&format!("inner{i}.zip"), &zip(&members[..12]))).collect();
    let nested = zip(&inner);
    for (what, z) in [("members", flat), ("nesting", nested)] {
        let t = Instant::now();
        let r = scan_bytes(&z, "bomb.zip");
        let took = t.elapsed();
        assert!(incomplete(&r).iter().any(|m| m.contains("inflate")), "{what}: {}", show(&r));
        assert!(took < Duration::from_secs(20), "{what}: {took:?}");
    }
}

/// Before: one member inflating to 64 MiB of pickle was held in memory and analysed in full.
#[test]
fn single_member_bomb_is_high() {
    let mut raw = vec![0x80, 2];
    raw.extend(b"N0".repeat(32 << 20));
    raw.push(b'.');
    let z = zip(&[bomb_member("archive/data.pkl", &deflate(&raw))]);
    let r = scan_bytes(&z, "bomb.zip");
    assert!(!incomplete(&r).is_empty(), "{}", show(&r));
}

/// Before: the walk searched for `PK\x03\x04` everywhere, including inside compressed data, and
/// reported members that exist for no zip reader.
#[test]
fn phantom_member_from_pk_signature_inside_deflated_data_is_not_reported() {
    let m = Member { method: 8, data: deflate_stored(&phantom()), ..Member::stored("notes.txt", &[]) };
    let r = scan_bytes(&zip(&[m.clone(), Member::stored("archive/data.pkl", &benign2())]), "t.zip");
    assert!(!r.has_high() && r.findings.iter().all(|f| !f.location.contains("evil.pkl")), "{}", show(&r));
    let r = scan_bytes(&zip(&[m.torch_style(), Member::stored("archive/data.pkl", &benign2()).torch_style()]), "t.zip");
    assert!(!r.has_high() && r.findings.iter().all(|f| !f.location.contains("evil.pkl")), "{}", show(&r));
}

#[test]
fn phantom_member_from_pk_signature_inside_stored_data_is_not_reported() {
    for m in [Member::stored("notes.txt", &phantom()), Member::stored("notes.txt", &phantom()).torch_style()] {
        let r = scan_bytes(&zip(&[m, Member::stored("archive/data.pkl", &benign2())]), "t.zip");
        assert!(!r.has_high() && r.findings.iter().all(|f| !f.location.contains("evil.pkl")), "{}", show(&r));
    }
}

/// Before: only the local header's size was used; PyTorch and Python's zipfile read a member
/// with the central directory's size, so a short local size hid the rest of the pickle.
#[test]
fn central_directory_size_disagreeing_with_local_header_is_analysed_both_ways() {
    let evil = evil0();
    let short = Member { local_csize: Some(3), ..Member::stored("archive/data.pkl", &evil) };
    let r = scan_bytes(&zip(&[short]), "t.zip");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
    let short_cd = Member { cd_csize: Some(3), ..Member::stored("archive/data.pkl", &evil) };
    let r = scan_bytes(&zip(&[short_cd]), "t.zip");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
}

/// Before: a member flagged "encrypted" whose content did not start with one of a few opcodes
/// was reported as unreadable and skipped, although PyTorch ignores the flag and unpickles it.
#[test]
fn encrypted_flag_does_not_hide_a_protocol0_pickle() {
    let p = b"Vos\np0\n0Vsystem\np1\n0g0\ng1\n\x93(Vid\ntR.";
    let m = Member { flags: 1, ..Member::stored("archive/data.pkl", p) };
    let r = scan_bytes(&zip(&[m]), "t.zip");
    assert!(imports(&r).contains(&"os.system".to_string()), "{}", show(&r));
}

/// Not a regression (it passed before): members hidden from the central directory, or listed
/// only there at an offset inside another member's data, are still found.
#[test]
fn members_hidden_from_either_directory_are_found() {
    let hidden = Member { listed: false, ..Member::stored("archive/data.pkl", &evil4()) };
    let r = scan_bytes(&zip(&[Member::stored("a.txt", b"hello"), hidden]), "t.zip");
    assert!(r.has_high(), "{}", show(&r));
    // The central directory points inside a.txt's data, where a local header for data.pkl sits.
    let inner = zip(&[Member::stored("archive/data.pkl", &evil4())]);
    let cd_at = inner.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let mut outer = zip(&[Member { cd_name: Some("archive/data.pkl".into()), ..Member::stored("a.txt", &inner[..cd_at]) }]);
    // Point the only central-directory entry at a.txt's data (30-byte header + 5-byte name).
    let cd = outer.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    outer[cd + 42..cd + 46].copy_from_slice(&35u32.to_le_bytes());
    let r = scan_bytes(&outer, "t.zip");
    assert!(r.has_high(), "{}", show(&r));
}

/// Real PyTorch archives (flag bit 3, sizes only in the central directory and data
/// descriptors, one pickle in data.pkl) still pass.
#[test]
fn torch_style_archive_with_descriptors_passes() {
    let z = zip(&[
        Member::stored("archive/data.pkl", &benign2()).torch_style(),
        Member::stored("archive/data/0", &[0x80; 4096]).torch_style(),
        Member::stored("archive/version", b"3\n").torch_style(),
    ]);
    let r = scan_bytes(&z, "m.pt");
    assert!(r.findings.iter().all(|f| f.severity < Severity::Medium), "{}", show(&r));
    let real = glassbox_testdata::corpus("pickle/data/new_pytorch_model.bin");
    let r = glassbox_scan::scan_path(&real).unwrap();
    assert!(r.findings.iter().all(|f| f.severity < Severity::Medium), "{}", show(&r));
}
