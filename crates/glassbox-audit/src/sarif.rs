//! SARIF 2.1.0: findings and failed policy checks as results, for code-scanning dashboards.

use serde_json::{Value, json};

use crate::{Report, Severity};

pub fn to_sarif(r: &Report) -> Value {
    let level = |s: Severity| match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Info => "note",
    };
    let uri = |sources: &[String]| -> String {
        // A source names a file first ("LICENSE lines 1-20", "README.md front matter …").
        sources.first().and_then(|s| s.split_whitespace().next()).map(str::to_owned).unwrap_or_else(|| r.path.display().to_string())
    };
    let mut results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.code,
                "level": level(f.severity),
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(&f.sources)}}}],
                "properties": {"severity": f.severity, "sources": f.sources},
            })
        })
        .collect();
    for c in r.failures() {
        results.push(json!({
            "ruleId": format!("policy/{}", c.rule),
            "level": "error",
            "message": {"text": c.reason},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.path.display().to_string()}}}],
        }));
    }
    let mut rules: Vec<String> = results.iter().filter_map(|v| v["ruleId"].as_str().map(str::to_owned)).collect();
    rules.sort();
    rules.dedup();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "glassbox audit", "version": env!("CARGO_PKG_VERSION"), "rules": rules.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}},
            "results": results,
        }],
    })
}
