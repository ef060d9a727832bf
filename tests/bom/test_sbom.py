"""glassbox's own SBOM (scripts/sbom.py) validates with CycloneDX's validator (schema 1.6,
strict) and says what is in the binary: every crate Cargo.lock pins from crates.io that the
binary links, with Cargo.lock's SHA-256, its licence and a dependency graph rooted at glassbox."""
import json, subprocess, sys, tomllib
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

ROOT = Path(__file__).resolve().parents[2]


def test_sbom_of_the_binary(tmp_path):
    out = tmp_path / "glassbox.cdx.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "sbom.py"), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, repr(errors)
    bom = json.loads(text)
    assert bom["metadata"]["component"]["name"] == "glassbox"
    comps = {c["name"]: c for c in bom["components"]}
    lock = {(p["name"], p["version"]): p.get("checksum") for p in tomllib.loads((ROOT / "Cargo.lock").read_text())["package"]}
    # Crates the binary certainly links (the HTTP server, hashing, the workspace's engine).
    for name in ["hyper", "axum", "sha2", "tokio", "glassbox-engine", "glassbox-server"]:
        assert name in comps, name
    for c in bom["components"]:
        if "purl" in c:
            assert c["hashes"][0]["content"] == lock[(c["name"], c["version"])], c["name"]
            assert c["licenses"], c["name"]
    # No test-only crate (dev-dependencies) is claimed to be in the binary.
    assert "proptest" not in comps and "glassbox-testdata" not in comps
    refs = {d["ref"] for d in bom["dependencies"]}
    assert bom["metadata"]["component"]["bom-ref"] in refs
