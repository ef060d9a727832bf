//! Our recognisers beside Microsoft Presidio's on presidio-evaluator's synthetic sentences
//! (`tests/fixtures/redact/evaluator.json`, made by `scripts/pii_eval_vs_presidio.py`: 3,000
//! sentences from presidio-evaluator 0.3.2's templates and synthetic identities, gold spans, and
//! presidio-analyzer 2.2.366's predictions). Scored the same way for both: a prediction counts
//! when it has the gold span's type and a character IoU >= 0.9 (presidio-evaluator's span
//! evaluator defaults), each gold span matched once; precision, recall and F2 per type. Ours must
//! be at least Presidio's on every type. See the table: `-- --nocapture`.

use std::collections::BTreeMap;

use serde_json::Value;

const TYPES: [&str; 8] = ["EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER", "MAC_ADDRESS", "CRYPTO"];

type Span = (String, usize, usize);

fn iou(a: (usize, usize), b: (usize, usize)) -> f64 {
    let inter = a.1.min(b.1).saturating_sub(a.0.max(b.0));
    let union = a.1.max(b.1) - a.0.min(b.0);
    if union == 0 { 0.0 } else { inter as f64 / union as f64 }
}

/// Per type: (gold, predicted, true positives).
fn score(cases: &[(Vec<Span>, Vec<Span>)]) -> BTreeMap<&'static str, (usize, usize, usize)> {
    let mut out = BTreeMap::new();
    for (gold, pred) in cases {
        for t in TYPES {
            let g: Vec<(usize, usize)> = gold.iter().filter(|s| s.0 == t).map(|s| (s.1, s.2)).collect();
            let p: Vec<(usize, usize)> = pred.iter().filter(|s| s.0 == t).map(|s| (s.1, s.2)).collect();
            let mut used = vec![false; p.len()];
            let mut tp = 0;
            for &gs in &g {
                let best = p.iter().enumerate().filter(|(i, _)| !used[*i]).map(|(i, &ps)| (i, iou(gs, ps))).fold(None, |acc: Option<(usize, f64)>, x| match acc {
                    Some(a) if a.1 >= x.1 => Some(a),
                    _ if x.1 > 0.0 => Some(x),
                    a => a,
                });
                if let Some((i, v)) = best
                    && v >= 0.9
                {
                    used[i] = true;
                    tp += 1;
                }
            }
            let e = out.entry(t).or_insert((0, 0, 0));
            e.0 += g.len();
            e.1 += p.len();
            e.2 += tp;
        }
    }
    out
}

fn prf((gold, pred, tp): (usize, usize, usize)) -> (f64, f64, f64) {
    let p = if pred > 0 { tp as f64 / pred as f64 } else if gold == 0 { 1.0 } else { 0.0 };
    let r = if gold > 0 { tp as f64 / gold as f64 } else { 1.0 };
    let f = if p + r > 0.0 { 5.0 * p * r / (4.0 * p + r) } else { 0.0 };
    (p, r, f)
}

fn spans(v: &Value) -> Vec<Span> {
    v.as_array().unwrap().iter().map(|s| (s[0].as_str().unwrap().to_string(), s[1].as_u64().unwrap() as usize, s[2].as_u64().unwrap() as usize)).collect()
}

#[test]
fn ours_at_least_presidio_on_every_type() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/redact/evaluator.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture json");
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for c in fx["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let gold = spans(&c["gold"]);
        let chars = |b: usize| text[..b].chars().count();
        let found: Vec<Span> = glassbox_redact::analyze(text).unwrap().into_iter().map(|f| (f.entity.name().to_string(), chars(f.start), chars(f.end))).collect();
        theirs.push((gold.clone(), spans(&c["presidio"])));
        ours.push((gold, found));
    }
    assert!(ours.len() >= 3000);
    let (t, o) = (score(&theirs), score(&ours));
    eprintln!("{:14} {:>5}   presidio P / R / F2        glassbox P / R / F2", "type", "gold");
    let mut worse = Vec::new();
    for ty in TYPES {
        let (a, b) = (prf(t[ty]), prf(o[ty]));
        eprintln!("{ty:14} {:5}   {:.3} {:.3} {:.3}        {:.3} {:.3} {:.3}", t[ty].0, a.0, a.1, a.2, b.0, b.1, b.2);
        if b.0 < a.0 || b.1 < a.1 || b.2 < a.2 {
            worse.push(ty);
        }
    }
    assert!(t["PHONE_NUMBER"].0 > 100 && t["CREDIT_CARD"].0 > 100 && t["EMAIL_ADDRESS"].0 > 50, "the data set covers the main types");
    assert!(worse.is_empty(), "below Presidio on {worse:?}");
}
