#!/usr/bin/env python3
"""glassbox's PII recognisers side by side with Microsoft Presidio's on presidio-evaluator's
synthetic sentences: precision, recall and F2 per entity type.

Data: presidio-evaluator 0.3.2's `PresidioSentenceFaker` (its 209 templates and 3,000 synthetic
identities, MIT, no real people) with a fixed seed. Reference: presidio-analyzer 2.2.366's
predefined recognisers (no NLP model: `NoOpNlpEngine`), the same configuration
`scripts/gen_fixtures.py pii` uses. Scoring (the same for both): a prediction counts when it has
the gold span's type and a character-level IoU >= 0.9 with it (presidio-evaluator's
`SpanEvaluator` defaults: char-based IoU, threshold 0.9, F-beta with beta = 2); each gold span
matches at most one prediction.

Writes `tests/fixtures/redact/evaluator.json` (sentences, gold spans of the types glassbox covers,
Presidio's predictions), which `crates/glassbox-redact/tests/evaluator.rs` scores glassbox's
recognisers against in CI, with no Python, printing both tables
(`cargo test -p glassbox-redact --test evaluator -- --nocapture`). This script prints Presidio's.

Reproducible with the same seed (fixed hashing, `random` seeded before the identity table is
drawn) except Faker's date-times, which are relative to the moment of generation; they hold no
entity of the types scored, but their digits are phone candidates, so Presidio's phone precision
moves in the third decimal between generations (the fixture keeps one generation, with Presidio's
output on exactly its sentences).

Regenerate (never in CI; needs the registry packages):
  python3 -m venv /tmp/piiv && /tmp/piiv/bin/pip install presidio-evaluator==0.3.2 presidio-analyzer==2.2.366
  /tmp/piiv/bin/python scripts/pii_eval_vs_presidio.py [--n 3000] [--seed 42]
"""

import argparse
import json
import logging
import os
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COVERED = ["EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER", "MAC_ADDRESS", "CRYPTO"]
IOU = 0.9
BETA = 2.0


def iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def score(cases, key):
    """Per type: (gold, predicted, true positives)."""
    out = {}
    for c in cases:
        for t in COVERED:
            gold = [(s, e) for (ty, s, e) in c["gold"] if ty == t]
            pred = [(p[1], p[2]) for p in c[key] if p[0] == t]
            used = set()
            tp = 0
            for g in gold:
                best, best_iou = None, 0.0
                for i, p in enumerate(pred):
                    if i not in used and iou(g, p) > best_iou:
                        best, best_iou = i, iou(g, p)
                if best is not None and best_iou >= IOU:
                    used.add(best)
                    tp += 1
            o = out.setdefault(t, [0, 0, 0])
            o[0] += len(gold)
            o[1] += len(pred)
            o[2] += tp
    return out


def prf(gold, pred, tp):
    p = tp / pred if pred else (1.0 if not gold else 0.0)
    r = tp / gold if gold else 1.0
    f = (1 + BETA**2) * p * r / (BETA**2 * p + r) if p + r else 0.0
    return p, r, f


def main() -> None:
    # The generator iterates sets of strings: fixed hashing makes its sentences reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/redact/evaluator.json"))
    ap.add_argument("--throughput", action="store_true",
                    help="also time Presidio's analyzer on the sentences, one per line in 4 KB pieces "
                         "(the Rust side: cargo test --release -p glassbox-redact --test throughput -- --ignored)")
    a = ap.parse_args()
    for pkg, want in [("presidio-evaluator", "0.3.2"), ("presidio-analyzer", "2.2.366")]:
        if version(pkg) != want:
            sys.exit(f"error: {pkg} {version(pkg)}, the pin is {want}")
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    import tldextract
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # the bundled list, offline
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    # Its identity table draws middle initials from `random` before the seed it is given is set.
    import random
    random.seed(a.seed)
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=a.seed)
    samples = faker.generate_new_fake_sentences(a.n)
    an = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}]))
    cases = []
    for s in samples:
        gold = sorted((sp.entity_type, sp.start_position, sp.end_position) for sp in s.spans if sp.entity_type in COVERED)
        found = an.analyze(text=s.full_text, language="en", entities=COVERED)
        pres = sorted((r.entity_type, r.start, r.end, round(r.score, 4)) for r in found)
        cases.append({"text": s.full_text, "gold": [list(g) for g in gold], "presidio": [list(p) for p in pres]})
    Path(a.out).write_text(json.dumps({
        "generator": f"presidio-evaluator 0.3.2 PresidioSentenceFaker('en_US', lower_case_ratio=0.05, random_seed={a.seed}), {a.n} sentences; "
                     "presidio-analyzer 2.2.366 AnalyzerEngine(NoOpNlpEngine)",
        "offsets": "characters (Python str indices)",
        "scoring": f"same type and character IoU >= {IOU}; F{BETA:g}",
        "cases": cases,
    }, ensure_ascii=False, indent=None).replace('{"text"', '\n{"text"') + "\n")
    print(f"wrote {a.out}", file=sys.stderr)
    if a.throughput:
        import time
        text = "".join(c["text"] + "\n" for c in cases)
        pieces, at = [], 0
        while at < len(text):
            piece = text[at:at + 4096]
            while len(piece.encode()) > 4096:
                piece = piece[:-1]
            pieces.append(piece)
            at += len(piece)
        an.analyze(text=pieces[0], language="en", entities=COVERED)
        t0 = time.perf_counter()
        for p in pieces:
            an.analyze(text=p, language="en", entities=COVERED)
        secs = time.perf_counter() - t0
        print(f"presidio-analyzer: {len(text.encode())} bytes in {secs:.2f} s: {len(text.encode()) / secs / 1e6:.3f} MB/s on one thread")
    keys = ["presidio"]
    tables = {k: score(cases, k) for k in keys}
    print(f"{'type':14} {'gold':>5} " + " ".join(f"{k + ' P/R/F2':>26}" for k in keys))
    for t in COVERED:
        g = tables["presidio"][t][0]
        cells = []
        for k in keys:
            _, pred, tp = tables[k][t]
            p, r, f = prf(g, pred, tp)
            cells.append(f"{p:8.3f} {r:8.3f} {f:8.3f}")
        print(f"{t:14} {g:5d} " + " ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
