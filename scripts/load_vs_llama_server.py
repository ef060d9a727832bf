#!/usr/bin/env python3
"""Throughput side by side: `glassbox serve` and llama.cpp's `llama-server -np 8` on the same
file, same threads, same session, driven by the official openai client with streaming.

For 1, 4 and 8 concurrent clients it reports aggregate generated tokens/s, time to first token
(p50, p95) and request latency (p95), then the ratios glassbox / llama-server. Not part of CI.

Usage: LLAMA_SERVER=/path/to/llama-server target/py-test-venv/bin/python \
           scripts/load_vs_llama_server.py [MODEL.gguf] [--requests 24] [--max-tokens 64]
(build llama-server as scripts/bench_vs_llama.sh describes; the venv comes from scripts/test.sh)
"""
import argparse, os, socket, statistics, subprocess, sys, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import default_cache  # noqa: E402

PROMPTS = ["Once upon a time", "The history of the printing press", "In a distant galaxy", "The best way to learn",
           "Describe a rainy afternoon", "A recipe for soup:", "The rules of chess", "Write a letter to a friend"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, path):
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + path, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.args}")
        time.sleep(0.1)
    sys.exit("server not ready")


def one(client, model, prompt, max_tokens):
    t0 = time.perf_counter()
    first, n = None, 0
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0.8,
                                           seed=1, stream=True):
        for c in chunk.choices:
            if c.text:
                first = first or time.perf_counter()
                n += 1
    return (first or time.perf_counter()) - t0, time.perf_counter() - t0, n


def run_level(base, model, conc, requests, max_tokens):
    client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=600)
    one(client, model, "warm up", 4)
    jobs = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        res = list(ex.map(lambda p: one(client, model, p, max_tokens), jobs))
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in res)
    lat = sorted(r[1] for r in res)
    pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))]
    return {"tok_s": sum(r[2] for r in res) / wall, "ttft_p50": statistics.median(ttft), "ttft_p95": pct(ttft, 0.95),
            "lat_p95": pct(lat, 0.95)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(default_cache() / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    llama = os.environ.get("LLAMA_SERVER") or sys.exit("set LLAMA_SERVER to a llama-server binary")
    results = {}
    for name in ("glassbox", "llama-server"):
        port = free_port()
        if name == "glassbox":
            cmd = [str(ROOT / "target/release/glassbox"), "serve", a.model, "--alias", "m", "--port", str(port),
                   "-t", str(a.threads), "--parallel", "8", "-c", "1024"]
            env, ready = os.environ.copy(), "/ready"
        else:
            cmd = [llama, "-m", a.model, "--alias", "m", "--port", str(port), "-t", str(a.threads), "-np", "8",
                   "-c", str(8 * 1024), "--log-disable"]
            env = dict(os.environ, LD_LIBRARY_PATH=str(Path(llama).parent)); ready = "/health"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, proc, ready)
            results[name] = {c: run_level(base, "m", c, a.requests, a.max_tokens) for c in (1, 4, 8)}
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{'clients':>7} {'server':>13} {'tok/s':>8} {'ttft p50':>9} {'ttft p95':>9} {'lat p95':>8}")
    for c in (1, 4, 8):
        for name in ("glassbox", "llama-server"):
            r = results[name][c]
            print(f"{c:>7} {name:>13} {r['tok_s']:8.1f} {r['ttft_p50']*1000:8.0f}ms {r['ttft_p95']*1000:8.0f}ms {r['lat_p95']:7.2f}s")
        g, l = results["glassbox"][c], results["llama-server"][c]
        print(f"{c:>7} {'ratio':>13} {g['tok_s']/l['tok_s']:8.2f} {g['ttft_p50']/l['ttft_p50']:9.2f} {g['ttft_p95']/l['ttft_p95']:9.2f} {g['lat_p95']/l['lat_p95']:8.2f}")


if __name__ == "__main__":
    main()
