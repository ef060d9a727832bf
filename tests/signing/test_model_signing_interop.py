"""OpenSSF model-signing interop, both directions, offline, with the `model_signing` CLI
(model-signing 1.1.1 from PyPI, plus pyopenssl which it imports without declaring)."""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "glassbox"
CORPUS = ROOT / "tests" / "corpora" / "model-signing"
MS = [sys.executable, "-m", "model_signing"]


@pytest.fixture
def model(tmp_path):
    m = tmp_path / "model"
    shutil.copytree(CORPUS / "model", m)
    return m


def ms_verify(model, sig, key):
    return subprocess.run(MS + ["verify", "key", str(model), "--signature", str(sig), "--public_key", str(key)], capture_output=True, text=True)


def gb(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)


def test_glassbox_signature_verifies_with_model_signing(model, tmp_path):
    sig = tmp_path / "model.sig"
    assert gb("sign", model, "--private-key", CORPUS / "key-p256.pem", "-o", sig).returncode == 0
    r = ms_verify(model, sig, CORPUS / "key-p256.pub.pem")
    assert r.returncode == 0, r.stdout + r.stderr
    (model / "weights.bin").write_text("tampered\n")
    assert ms_verify(model, sig, CORPUS / "key-p256.pub.pem").returncode != 0


def test_glassbox_signature_inside_the_folder(model):
    sig = model / "model.sig"
    assert gb("sign", model, "--private-key", CORPUS / "key-p256.pem", "-o", sig).returncode == 0
    r = ms_verify(model, sig, CORPUS / "key-p256.pub.pem")
    assert r.returncode == 0, r.stdout + r.stderr


def test_model_signing_signature_verifies_with_glassbox(model, tmp_path):
    sig = tmp_path / "py.sig"
    r = subprocess.run(MS + ["sign", "key", str(model), "--private_key", str(CORPUS / "key-p384.pem"), "--signature", str(sig)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = gb("verify", model, "--signature", sig, "--public-key", CORPUS / "key-p384.pub.pem", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"] is True
    (model / "extra.bin").write_text("x")
    r = gb("verify", model, "--signature", sig, "--public-key", CORPUS / "key-p384.pub.pem")
    assert r.returncode == 1 and "extra.bin is not covered" in r.stdout
    r = gb("verify", model, "--signature", sig, "--public-key", CORPUS / "key-p256.pub.pem")
    assert r.returncode == 1 and "does not verify" in r.stdout
