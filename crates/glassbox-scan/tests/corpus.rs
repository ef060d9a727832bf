//! picklescan's corpus with its verdicts (tests/corpora/pickle/picklescan-1.0.5-oracle.json):
//! every file picklescan flags must be flagged high here, and every file it passes must pass.

use glassbox_scan::{Severity, scan_path};

#[test]
fn matches_or_beats_picklescan_on_its_corpus() {
    let root = glassbox_testdata::corpus("pickle");
    let oracle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("picklescan-1.0.5-oracle.json")).unwrap()).unwrap();
    let mut wrong = Vec::new();
    let (mut flagged, mut clean) = (0, 0);
    for (key, v) in oracle.as_object().unwrap() {
        let rel = key.strip_prefix("tests/").unwrap_or(key);
        let path = root.join(rel);
        let report = scan_path(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let infected = v["infected"].as_u64().unwrap() > 0;
        let high = report.has_high();
        if infected {
            flagged += 1;
        } else {
            clean += 1;
        }
        if infected != high {
            wrong.push(format!("{rel}: picklescan infected={infected}, glassbox high={high}: {:?}",
                report.findings.iter().map(|f| format!("{:?} {}", f.severity, f.message)).collect::<Vec<_>>()));
        }
        if !infected {
            assert!(report.findings.iter().all(|f| f.severity != Severity::High));
        }
    }
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
    eprintln!("{flagged} malicious files flagged, {clean} benign files pass");
}
