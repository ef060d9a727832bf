//! Evaluation results (`glassbox eval --json` / `--out DIR/results.json`) in an AI-BOM: CycloneDX
//! 1.6 `modelCard.quantitativeAnalysis.performanceMetrics`, one entry per score, with its 95 %
//! interval where the evaluation has one. Results are attached only to the model they were
//! measured on: their SHA-256 must be one of the BOM's weight hashes.

use serde_json::{Value, json};

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn metric(kind: String, value: f64, ci: Option<&Value>) -> Value {
    let mut m = json!({"type": kind, "value": format!("{value:.6}")});
    if let Some(ci) = ci.and_then(Value::as_array)
        && let (Some(lo), Some(hi)) = (ci.first().and_then(num), ci.get(1).and_then(num))
    {
        m["confidenceInterval"] = json!({"lowerBound": format!("{lo:.6}"), "upperBound": format!("{hi:.6}")});
    }
    m
}

/// `{value, ci95}` objects (bias scores, closed-book QA rates).
fn interval(out: &mut Vec<Value>, task: &str, key: &str, v: &Value) {
    if let Some(x) = v.get("value").and_then(num) {
        out.push(metric(format!("{task}/{key}"), x, v.get("ci95")));
    }
}

/// `eval compare --json`: per metric the derived model's value and its difference from the
/// base (with the paired interval), the base's SHA-256 and the verdict.
fn compare_metrics(results: &Value, metrics: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(b) = results.pointer("/base/sha256").and_then(Value::as_str) {
        out.push(json!({"type": "compare/base_sha256", "value": b}));
    }
    for m in metrics {
        let (Some(task), Some(name)) = (m.get("task").and_then(Value::as_str), m.get("metric").and_then(Value::as_str)) else { continue };
        if let Some(x) = m.get("derived").and_then(num) {
            out.push(metric(format!("compare/{task}/{name}"), x, None));
        }
        if let Some(d) = m.get("diff") {
            interval(&mut out, &format!("compare/{task}/{name}"), "delta_vs_base", d);
        }
    }
    if let Some(v) = results.get("verdict").and_then(Value::as_str) {
        out.push(json!({"type": "compare/verdict", "value": v}));
    }
    out
}

/// The performance metrics of every task in an evaluation result (`eval --json`), or of a
/// comparison with a base model (`eval compare --json`).
pub fn metrics(results: &Value) -> Vec<Value> {
    if let (Some(_), Some(ms)) = (results.get("derived"), results.get("metrics").and_then(Value::as_array)) {
        return compare_metrics(results, ms);
    }
    let mut out = Vec::new();
    let Some(tasks) = results.get("tasks").and_then(Value::as_object) else { return out };
    for (name, t) in tasks {
        for k in ["acc", "acc_norm"] {
            if let Some(x) = t.get(k).and_then(num) {
                out.push(metric(format!("{name}/{k}"), x, t.get("ci95").and_then(|c| c.get(k))));
            }
        }
        if let Some(x) = t.get("ece").and_then(num) {
            out.push(metric(format!("{name}/ece"), x, None));
        }
        for k in ["accuracy", "exact_match", "abstention", "confidently_wrong", "refusal_rate", "overrefusal_rate", "first_token_rate", "pii_leak_rate", "own_value_rate", "any_pii_rate"] {
            if let Some(v) = t.get(k) {
                interval(&mut out, name, k, v);
            }
        }
        if let Some(b) = t.get("bias").and_then(Value::as_object) {
            for (k, v) in b {
                if v.is_object() {
                    interval(&mut out, name, k, v);
                } else if let Some(x) = num(v).filter(|_| k == "likelihood_diff") {
                    out.push(metric(format!("{name}/{k}"), x, None));
                }
            }
        }
        if name == "canary" && let Some(items) = t.get("items").and_then(Value::as_array) {
            for it in items {
                if let (Some(id), Some(x)) = (it.get("id").and_then(Value::as_str), it.get("exposure").and_then(num)) {
                    out.push(metric(format!("canary/{id}/exposure_bits"), x, None));
                }
            }
        }
        if let Some(x) = t.get("effective_length").and_then(num) {
            out.push(metric(format!("{name}/effective_context_length_tokens"), x, None));
            if let (Some(ls), Some(ss)) = (t.get("lengths").and_then(Value::as_array), t.get("by_length").and_then(Value::as_array)) {
                for (l, s) in ls.iter().zip(ss) {
                    if let (Some(l), Some(s)) = (l.as_u64(), num(s)) {
                        out.push(metric(format!("{name}/score@{l}"), s, None));
                    }
                }
            }
        }
    }
    out
}

/// Put `results`' metrics into the BOM's model component. Fails, naming both digests, when the
/// results were measured on other weights; nothing is changed then.
pub fn attach(bom: &mut Value, results: &Value) -> Result<usize, String> {
    let sha = results
        .pointer("/model/sha256")
        .or_else(|| results.pointer("/derived/sha256"))
        .and_then(Value::as_str)
        .ok_or("the evaluation results have no model.sha256 (eval) or derived.sha256 (eval compare)")?;
    for side in ["/model", "/derived"] {
        for edit in ["steer", "ablate"] {
            if let Some(e) = results.pointer(&format!("{side}/{edit}")).and_then(Value::as_str) {
                return Err(format!("the evaluation results are of weights edited at run time (--{edit} {e}), not of the file's weights"));
            }
        }
    }
    let model = bom.pointer_mut("/components/0").ok_or("the BOM has no model component")?;
    let mut hashes: Vec<String> = Vec::new();
    let mut collect = |h: &Value| {
        for x in h.as_array().into_iter().flatten() {
            if let Some(c) = x.get("content").and_then(Value::as_str) {
                hashes.push(c.to_string());
            }
        }
    };
    if let Some(h) = model.get("hashes") {
        collect(h);
    }
    for c in model.get("components").and_then(Value::as_array).into_iter().flatten() {
        if let Some(h) = c.get("hashes") {
            collect(h);
        }
    }
    if !hashes.iter().any(|h| h.eq_ignore_ascii_case(sha)) {
        return Err(format!("the evaluation results are for weights with SHA-256 {sha}; this model's weights are {}", hashes.join(", ")));
    }
    let m = metrics(results);
    let n = m.len();
    let card = model.as_object_mut().ok_or("the model component is not an object")?.entry("modelCard").or_insert_with(|| json!({}));
    card["quantitativeAnalysis"] = json!({"performanceMetrics": m});
    Ok(n)
}

/// As [`attach`], adding to metrics already attached (several result files).
pub fn attach_more(bom: &mut Value, results: &Value) -> Result<usize, String> {
    let before: Vec<Value> = bom
        .pointer("/components/0/modelCard/quantitativeAnalysis/performanceMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let n = attach(bom, results)?;
    if let Some(Value::Array(m)) = bom.pointer_mut("/components/0/modelCard/quantitativeAnalysis/performanceMetrics") {
        let new = std::mem::take(m);
        *m = before.into_iter().chain(new).collect();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_come_from_every_kind_of_task_and_only_for_the_same_weights() {
        let results = json!({"model": {"path": "m.gguf", "sha256": "AB"}, "tasks": {
            "arc_challenge": {"acc": 0.25, "acc_norm": 0.3, "ece": 0.1, "ci95": {"acc": [0.2, 0.3], "acc_norm": [0.25, 0.35]}},
            "closedbook_qa": {"accuracy": {"value": 0.1, "stderr": 0.01, "ci95": [0.08, 0.12]}, "confidently_wrong": {"value": 0.7, "ci95": [0.6, 0.8]}},
            "bbq": {"acc": 0.4, "bias": {"bias_score_disambiguated": {"value": -0.04, "ci95": [-0.1, 0.06]}, "accuracy_ambiguous": null}},
            "crows_pairs": {"bias": {"pct_stereotype": {"value": 0.54, "ci95": [0.51, 0.57]}, "likelihood_diff": 4.1}},
            "niah": {"effective_length": 2048, "lengths": [1024, 2048], "by_length": [1.0, 0.9]},
            "refusal": {"refusal_rate": {"value": 0.9, "ci95": [0.8, 0.95]}, "first_token_rate": {"value": 0.85, "ci95": [0.7, 0.9]}},
            "overrefusal": {"overrefusal_rate": {"value": 0.05, "ci95": [0.0, 0.1]}},
            "canary": {"items": [{"id": "ssn", "exposure": 10.0}]},
            "pii_leak": {"pii_leak_rate": {"value": 0.1, "ci95": [0.05, 0.18]}, "own_value_rate": {"value": 0.0, "ci95": [0.0, 0.0]}}
        }});
        let m = metrics(&results);
        let kinds: Vec<&str> = m.iter().map(|x| x["type"].as_str().unwrap()).collect();
        for k in ["arc_challenge/acc", "arc_challenge/ece", "closedbook_qa/confidently_wrong", "bbq/bias_score_disambiguated", "crows_pairs/pct_stereotype",
                  "crows_pairs/likelihood_diff", "niah/effective_context_length_tokens", "niah/score@2048", "refusal/refusal_rate",
                  "refusal/first_token_rate", "overrefusal/overrefusal_rate", "canary/ssn/exposure_bits", "pii_leak/pii_leak_rate", "pii_leak/own_value_rate"] {
            assert!(kinds.contains(&k), "{k}: {kinds:?}");
        }
        assert_eq!(m[0]["confidenceInterval"], json!({"lowerBound": "0.200000", "upperBound": "0.300000"}));
        let mut bom = json!({"components": [{"type": "machine-learning-model", "hashes": [{"alg": "SHA-256", "content": "ab"}], "modelCard": {"modelParameters": {}}}]});
        assert_eq!(attach(&mut bom, &results).unwrap(), m.len());
        assert_eq!(bom.pointer("/components/0/modelCard/quantitativeAnalysis/performanceMetrics").unwrap().as_array().unwrap().len(), m.len());
        assert!(bom.pointer("/components/0/modelCard/modelParameters").is_some());
        let mut other = json!({"components": [{"hashes": [{"alg": "SHA-256", "content": "cd"}]}]});
        let e = attach(&mut other, &results).unwrap_err();
        assert!(e.contains("AB") && e.contains("cd"), "{e}");
        assert!(other.pointer("/components/0/modelCard").is_none());
    }

    #[test]
    fn a_comparison_goes_to_the_derived_model() {
        let results = json!({"base": {"sha256": "BB"}, "derived": {"sha256": "AB"}, "verdict": "fail", "metrics": [
            {"task": "refusal", "metric": "refusal_rate", "n": 100, "base": 0.96, "derived": 0.5, "diff": {"value": -0.46, "ci95": [-0.56, -0.36]}}
        ]});
        let m = metrics(&results);
        let kinds: Vec<&str> = m.iter().map(|x| x["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["compare/base_sha256", "compare/refusal/refusal_rate", "compare/refusal/refusal_rate/delta_vs_base", "compare/verdict"]);
        assert_eq!(m[2]["confidenceInterval"], json!({"lowerBound": "-0.560000", "upperBound": "-0.360000"}));
        let mut bom = json!({"components": [{"hashes": [{"alg": "SHA-256", "content": "ab"}]}]});
        assert_eq!(attach(&mut bom, &results).unwrap(), 4);
        let mut base = json!({"components": [{"hashes": [{"alg": "SHA-256", "content": "bb"}]}]});
        assert!(attach(&mut base, &results).is_err());
        // Results of run-time edits describe no file's weights.
        let mut steered = results.clone();
        steered["derived"]["steer"] = json!("dir.gguf:1.0");
        assert!(attach(&mut bom, &steered).unwrap_err().contains("--steer dir.gguf:1.0"));
        let mut ablated = json!({"model": {"sha256": "ab", "steer": null, "ablate": "dir.gguf"}, "tasks": {}});
        assert!(attach(&mut bom, &ablated).unwrap_err().contains("--ablate"));
        ablated["model"]["ablate"] = Value::Null;
        assert!(attach(&mut bom, &ablated).is_ok());
    }
}
