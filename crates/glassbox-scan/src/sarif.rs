//! SARIF 2.1.0 output (what code-scanning tools ingest).

use serde_json::{Value, json};

use crate::{Report, Severity};

pub fn to_sarif(r: &Report) -> Value {
    let level = |s: Severity| match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Info => "note",
    };
    let mut rules: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "glassbox", "version": env!("CARGO_PKG_VERSION"), "rules": rules.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}},
            "results": r.findings.iter().map(|f| {
                let (file, member) = f.location.split_once('!').map_or((f.location.as_str(), None), |(a, b)| (a, Some(b)));
                let mut region = json!({});
                if let Some(o) = f.offset { region = json!({"byteOffset": o}); }
                json!({
                    "ruleId": f.rule,
                    "level": level(f.severity),
                    "message": {"text": match member { Some(m) => format!("{} (archive member {m})", f.message), None => f.message.clone() }},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": file}, "region": region}}],
                    "properties": {"severity": f.severity, "import": f.import},
                })
            }).collect::<Vec<_>>(),
        }],
    })
}
