"""Our AI-BOMs validate with the CycloneDX project's own validator (cyclonedx-python-lib,
JSON schema 1.6, strict), offline: the real model folders fetched by scripts/fetch_models.py
and synthetic folders for lineage and licences without SPDX ids."""
import json, os, subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "glassbox"
LICENSES = ROOT / "tests" / "corpora" / "licenses"


def cache() -> Path:
    if os.environ.get("GLASSBOX_MODEL_CACHE"):
        return Path(os.environ["GLASSBOX_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glassbox" / "models"


def bom(path: Path) -> str:
    r = subprocess.run([str(BIN), "bom", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def validate(text: str) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, f"{errors!r}\n{text}"


@pytest.mark.parametrize("folder", ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"])
def test_real_model_folders(folder):
    text = bom(cache() / folder)
    validate(text)
    doc = json.loads(text)
    model = doc["components"][0]
    assert model["type"] == "machine-learning-model"
    assert model["hashes"][0]["alg"] == "SHA-256"


def licence_text(key: str) -> str:
    s = (LICENSES / f"{key}.LICENSE").read_text()
    return s.split("\n---\n", 1)[1]


@pytest.mark.parametrize("key", ["llama-3.1-license-2024", "deepseek-la-1.0", "cc-by-sa-4.0", "mit"])
def test_synthetic_folders_with_lineage(tmp_path, key):
    (tmp_path / "model.safetensors").write_bytes(b"{}")
    (tmp_path / "LICENSE").write_text(licence_text(key))
    (tmp_path / "README.md").write_text("---\nlicense: mit\nbase_model: meta-llama/Llama-3.1-8B\ndatasets:\n- a/b\n---\n")
    validate(bom(tmp_path))


def test_evaluation_results_become_performance_metrics(tmp_path):
    folder = cache() / "smollm2-135m-instruct-q4_1"
    q = ROOT / "tests" / "fixtures" / "eval" / "questions.jsonl"
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(l + "\n" for l in q.read_text().splitlines() if '"word-piece"' not in l))
    env = dict(os.environ, GLASSBOX_TRUST_STORE=str(tmp_path / "trust.toml"), GLASSBOX_EVAL_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([str(BIN), "eval", str(folder / "SmolLM2-135M-Instruct.Q4_1.gguf"), "--data", str(data), "--json", "-t", "2"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    results = tmp_path / "results.json"
    results.write_text(r.stdout)
    r = subprocess.run([str(BIN), "bom", str(folder), "--eval", str(results)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    validate(r.stdout)
    metrics = json.loads(r.stdout)["components"][0]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    acc = next(m for m in metrics if m["type"] == "mine/acc")
    assert abs(float(acc["value"]) - json.loads(results.read_text())["tasks"]["mine"]["acc"]) < 1e-6
    assert float(acc["confidenceInterval"]["lowerBound"]) <= float(acc["value"]) <= float(acc["confidenceInterval"]["upperBound"])
    # Results measured on other weights are refused, naming both digests.
    other = json.loads(results.read_text())
    other["model"]["sha256"] = "0" * 64
    results.write_text(json.dumps(other))
    r = subprocess.run([str(BIN), "bom", str(folder), "--eval", str(results)], capture_output=True, text=True)
    assert r.returncode == 2 and "0" * 64 in r.stderr, r.stderr
