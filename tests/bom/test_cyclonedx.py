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
