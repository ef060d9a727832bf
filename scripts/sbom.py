#!/usr/bin/env python3
"""CycloneDX 1.6 SBOM of the glassbox binary: every crate linked into it (the normal-dependency
closure of the `glassbox` package in `cargo metadata --locked`, for this host's target), each
with its version, package URL, licence expression as its manifest declares it, and the SHA-256
that Cargo.lock pins for it (crates.io's checksum of the .crate file); the workspace's own
crates as components of the application; and the dependency graph.

Usage: python3 scripts/sbom.py [-o glassbox.cdx.json]
The output validates against CycloneDX's 1.6 JSON schema (tests/bom/test_sbom.py checks it with
cyclonedx-python-lib, in CI).
"""
import argparse, json, subprocess, sys, tomllib, uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path)
    a = ap.parse_args()
    host = next(l.split(": ", 1)[1] for l in subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout.splitlines() if l.startswith("host: "))
    meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", host],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(i for i, p in pkgs.items() if p["name"] == "glassbox" and p["source"] is None)
    # The crates linked into the binary: normal dependencies only (no dev or build ones).
    seen, todo, edges = {root}, [root], {}
    while todo:
        i = todo.pop()
        deps = [d["pkg"] for d in nodes[i]["deps"] if any(k["kind"] is None for k in d["dep_kinds"])]
        edges[i] = sorted(set(deps))
        for d in deps:
            if d not in seen:
                seen.add(d)
                todo.append(d)

    def ref(i):
        p = pkgs[i]
        return f"pkg:cargo/{p['name']}@{p['version']}" if p["source"] else f"glassbox-workspace/{p['name']}@{p['version']}"

    def component(i):
        p = pkgs[i]
        c = {"type": "library" if i != root else "application", "bom-ref": ref(i), "name": p["name"], "version": p["version"]}
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"].replace("/", " OR ")}]
        if p["source"]:
            c["purl"] = f"pkg:cargo/{p['name']}@{p['version']}"
            if (ck := checksums.get((p["name"], p["version"]))):
                c["hashes"] = [{"alg": "SHA-256", "content": ck}]
            if p.get("repository"):
                c["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
        else:
            c["description"] = "a crate of the glassbox workspace"
        return c

    app = component(root)
    bom = {
        "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py (glassbox)"}]},
            "component": app,
            "properties": [{"name": "cargo:target", "value": host}],
        },
        "components": [component(i) for i in sorted(seen - {root}, key=lambda i: (pkgs[i]["name"], pkgs[i]["version"]))],
        "dependencies": [{"ref": ref(i), "dependsOn": [ref(d) for d in edges.get(i, [])]} for i in sorted(seen, key=ref)],
    }
    text = json.dumps(bom, indent=1)
    if a.output:
        a.output.write_text(text + "\n")
        print(f"wrote {a.output}: {len(bom['components'])} components ({sum(1 for c in bom['components'] if 'purl' in c)} from crates.io)", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
