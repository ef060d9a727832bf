//! CycloneDX 1.6 AI-BOM (JSON): the model as a `machine-learning-model` component with its
//! SHA-256 hashes, licences (SPDX ids where CycloneDX takes them, otherwise names with the
//! `LicenseRef-*` id, the licence URL and the file that holds the text), model-card basics,
//! lineage as pedigree ancestors, and the audit's verdicts as properties. Deterministic: the
//! serial number is derived from the weights' digests.

use serde_json::{Value, json};

use crate::Report;
use crate::assess::Governing;

/// Registry ids that are plain SPDX licence ids (CycloneDX validates `license.id` against the
/// SPDX list; `LicenseRef-*` must go in `name`).
fn spdx_id(g: &Governing) -> Option<&str> {
    let id = g.id.as_str();
    (!id.starts_with("LicenseRef-") && id != "unknown" && !id.contains(' ') && spdx::license_id(id).is_some()).then_some(id)
}

fn licence(g: &Governing, r: &Report) -> Value {
    let ack = if g.basis == "text" { "concluded" } else { "declared" };
    let mut lic = match spdx_id(g) {
        Some(id) => json!({"id": id, "acknowledgement": ack}),
        None => json!({"name": if g.id != "unknown" && g.id != g.name { format!("{} ({})", g.name, g.id) } else { g.name.clone() }, "acknowledgement": ack}),
    };
    if let Some(url) = g.entry().map(|e| e.url.clone()) {
        lic["url"] = url.into();
    }
    let mut props = vec![json!({"name": "glassbox:license:id", "value": g.id})];
    if let Some(f) = &g.file {
        props.push(json!({"name": "glassbox:license:text-file", "value": f.strip_prefix(&r.evidence.root).unwrap_or(f).display().to_string()}));
    }
    for s in &g.sources {
        props.push(json!({"name": "glassbox:license:source", "value": s}));
    }
    lic["properties"] = props.into();
    json!({"license": lic})
}

fn serial(r: &Report) -> String {
    let mut seed = String::new();
    for w in &r.evidence.weights {
        seed.push_str(&w.sha256);
    }
    seed.push_str(&r.path.display().to_string());
    let d = glassbox_trust::sha256_of(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The BOM for an audit report.
pub fn to_cyclonedx(r: &Report) -> Value {
    let ev = &r.evidence;
    let name = ev.name.clone().unwrap_or_else(|| r.path.file_name().unwrap_or_default().to_string_lossy().to_string());
    let hashes = |sha: &str| json!([{"alg": "SHA-256", "content": sha}]);
    let mut model = json!({
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": name,
    });
    if let Some(org) = ev.fact("general.organization") {
        model["supplier"] = json!({"name": org.value});
    }
    if let Some(v) = ev.fact("general.version") {
        model["version"] = v.value.clone().into();
    }
    match ev.weights.as_slice() {
        [w] => model["hashes"] = hashes(&w.sha256),
        ws if !ws.is_empty() => {
            model["components"] = ws
                .iter()
                .map(|w| json!({"type": "file", "name": w.path.strip_prefix(&ev.root).unwrap_or(&w.path).display().to_string(), "hashes": hashes(&w.sha256), "properties": [{"name": "glassbox:format", "value": w.format}, {"name": "glassbox:size", "value": w.size.to_string()}]}))
                .collect::<Vec<_>>()
                .into();
        }
        _ => {}
    }
    if !r.licences.is_empty() {
        model["licenses"] = r.licences.iter().map(|l| licence(&l.governing, r)).collect::<Vec<_>>().into();
    }
    let mut params = serde_json::Map::new();
    if let Some(a) = ev.fact("general.architecture") {
        params.insert("architectureFamily".into(), a.value.clone().into());
    }
    if let Some(t) = ev.fact("card.pipeline_tag") {
        params.insert("task".into(), t.value.clone().into());
    }
    let datasets: Vec<Value> = ev.facts_named("card.datasets").flat_map(|f| f.value.split(", ").map(str::to_owned).collect::<Vec<_>>()).map(|d| json!({"type": "dataset", "name": d})).collect();
    if !datasets.is_empty() {
        params.insert("datasets".into(), datasets.into());
    }
    params.insert("inputs".into(), json!([{"format": "text"}]));
    params.insert("outputs".into(), json!([{"format": "text"}]));
    let considerations: Vec<Value> = r.findings.iter().map(|f| json!({"name": format!("{}: {}", f.severity.as_str(), f.message)})).collect();
    let mut card = json!({"modelParameters": Value::Object(params)});
    if !considerations.is_empty() {
        card["considerations"] = json!({"ethicalConsiderations": considerations});
    }
    model["modelCard"] = card;
    let ancestors: Vec<Value> = r
        .lineage
        .iter()
        .skip(1)
        .map(|l| {
            let mut c = json!({"type": "machine-learning-model", "name": l.name});
            if let (Some(id), Some(n)) = (&l.license_id, &l.license_name) {
                let lic = if !id.starts_with("LicenseRef-") && id != "unknown" && spdx::license_id(id).is_some() { json!({"id": id}) } else { json!({"name": format!("{n} ({id})")}) };
                c["licenses"] = json!([{"license": lic}]);
            }
            let mut props = vec![json!({"name": "glassbox:lineage:source", "value": l.source})];
            if let Some(rel) = &l.relation {
                props.push(json!({"name": "glassbox:lineage:relation", "value": rel}));
            }
            c["properties"] = props.into();
            if let Some(sha) = &l.sha256 {
                c["hashes"] = json!([{"alg": "SHA-256", "content": sha}]);
            }
            c
        })
        .collect();
    if !ancestors.is_empty() {
        model["pedigree"] = json!({"ancestors": ancestors});
    }
    let mut props = vec![json!({"name": "glassbox:openness:verdict", "value": r.openness.verdict}), json!({"name": "glassbox:openness:pseudo-open", "value": r.openness.pseudo_open.to_string()})];
    if let Some(c) = r.openness.class {
        let class = crate::openness::class_name(c);
        props.push(json!({"name": "glassbox:openness:mof-class", "value": class}));
    }
    if !r.policy.is_empty() {
        props.push(json!({"name": "glassbox:policy:result", "value": if r.policy_pass { "pass" } else { "fail" }}));
    }
    model["properties"] = props.into();
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial(r),
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "glassbox", "version": env!("CARGO_PKG_VERSION")}]},
        },
        "components": [model],
    })
}
