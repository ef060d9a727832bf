#!/usr/bin/env python3
"""What `serve --redact input,output` costs: the same model, threads and load on a plain server and
on a redacting one (input redacted before the template, output filtered as it streams), in
alternating rounds in one session, driven by the official openai client with streaming. Prompts
carry personal data (e-mail, phone, card, IBAN) so the input redaction has work to do; the plain
server is sent them already redacted, so both models see the same tokens and generate the same
text, and the difference is what redaction itself costs.

Reports per server and round: aggregate generated tokens/s at N concurrent clients, TTFT p50 /
p95; then the ratios redacting / plain over all rounds. Not part of CI.

Usage: target/py-test-venv/bin/python scripts/redact_cost.py [MODEL.gguf] [--clients 8]
           [--requests 32] [--max-tokens 64] [--rounds 3]
"""
import argparse, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import load_vs_llama_server as lv  # noqa: E402
from fetch_models import default_cache  # noqa: E402

RAW = [
    "Write a short reply to jane.doe@example.com confirming the refund to card 4111 1111 1111 1111.",
    "Summarise: call +44 20 7946 0958 before Friday, the IBAN is DE89 3704 0044 0532 0130 00.",
    "The committee met on Tuesday and agreed to postpone the decision until the next meeting.",
    "Draft a letter to maria.rossi@example.org about the server at 10.20.30.40 being down.",
]


def one(client, model, prompt, max_tokens):
    """One streamed request: (TTFT, latency, generated tokens from the usage chunk). The redacting
    server holds back text that could still complete a finding and sends it in fewer, longer
    chunks, so chunks are not tokens."""
    t0 = time.perf_counter()
    first, n = None, 0
    for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0.8, seed=1,
                                           stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            n = chunk.usage.completion_tokens
        for c in chunk.choices:
            if c.text:
                first = first or time.perf_counter()
    return (first or time.perf_counter()) - t0, time.perf_counter() - t0, n


lv.one = one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(default_cache() / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    servers = {}
    for name, extra in (("plain", []), ("redact", ["--redact", "input,output"])):
        port = lv.free_port()
        cmd = [str(ROOT / "target/release/glassbox"), "serve", a.model, "--alias", "m", "--port", str(port),
               "-t", str(a.threads), "--parallel", str(a.clients), "-c", "1024", *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers[name] = (proc, f"http://127.0.0.1:{port}")
    try:
        for proc, base in servers.values():
            lv.wait_ready(base, proc, "/ready")
        # The plain server gets the prompts as the redacting one hands them to the model (its
        # placeholders, from `glassbox redact`): both models see the same tokens and generate
        # the same text, so the difference is the redaction machinery alone.
        redacted = [subprocess.run([str(ROOT / "target/release/glassbox"), "redact", "--text", p], capture_output=True, text=True,
                                   check=True).stdout.rstrip("\n") for p in RAW]
        prompts = {"plain": redacted, "redact": RAW}
        rows = {name: [] for name in servers}
        for r in range(a.rounds):
            for name, (_, base) in servers.items():
                lv.PROMPTS = prompts[name]
                res = lv.run_level(base, "m", a.clients, a.requests, a.max_tokens)
                rows[name].append(res)
                print(f"round {r + 1} {name:>7}: {res['tok_s']:7.1f} tok/s, TTFT p50 {res['ttft_p50'] * 1000:6.1f} ms, p95 {res['ttft_p95'] * 1000:6.1f} ms", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    mean = lambda name, k: statistics.mean(x[k] for x in rows[name])
    print(f"{a.clients} clients, {a.rounds} rounds: tok/s redact/plain {mean('redact', 'tok_s') / mean('plain', 'tok_s'):.3f}; "
          f"TTFT p50 {mean('plain', 'ttft_p50') * 1000:.1f} -> {mean('redact', 'ttft_p50') * 1000:.1f} ms "
          f"({(mean('redact', 'ttft_p50') - mean('plain', 'ttft_p50')) * 1000:+.1f} ms)")


if __name__ == "__main__":
    main()
