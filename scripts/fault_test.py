#!/usr/bin/env python3
"""Replicas behind a real load balancer, under faults, on loopback only (issue 17).

Three `glassbox serve` replicas of one model behind HAProxy (Debian's `haproxy` package), which
health-checks each replica's `/ready` and retries a request whose replica dropped it before
answering. A bounded load generator — the official `openai` client, N threads, streaming and
non-streaming chat completions in turn — runs for DURATION seconds. A quarter of the way in,
replica 1 gets SIGTERM (it drains: /ready turns 503 at once, new requests are still served for
its drain delay, in-flight streams finish) and is started again once it has exited; halfway,
replica 2 gets SIGKILL and is started again at once.

Printed (and with --json, one JSON object): requests by outcome, first attempts that failed and
how (status, connection dropped before the reply, stream cut mid-way), requests lost (failed
after the client's one retry on a retryable failure), hung requests (none may pass the client
timeout), and completed requests per 5-second window, so the dip and the recovery are visible.
Exit status 1 if any request was lost or hung, or throughput did not recover.

Usage (after `scripts/test.sh` made target/py-test-venv and fetched the models):
  target/py-test-venv/bin/python scripts/fault_test.py [--model FILE] [--duration 40] [--clients 6]
Needs: haproxy on PATH (apt-get install haproxy), target/release/glassbox. Not run in CI.
"""
import argparse, json, os, signal, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import default_cache  # noqa: E402

REQUEST_TIMEOUT = 60.0  # seconds: a request past this is hung
WINDOW = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, limit: float) -> bool:
    import urllib.request
    end = time.time() + limit
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


class Replica:
    def __init__(self, i, model, port, tmp, threads):
        self.i, self.model, self.port, self.tmp, self.threads = i, model, port, tmp, threads
        self.proc = None
        self.starts = 0

    def start(self):
        log = open(self.tmp / f"replica{self.i}.log", "a")
        env = dict(os.environ, GLASSBOX_TRUST_STORE=str(self.tmp / "trust.toml"))
        self.proc = subprocess.Popen(
            [str(ROOT / "target" / "release" / "glassbox"), "serve", str(self.model), "--port", str(self.port),
             "--parallel", "4", "-t", str(self.threads), "-c", "1024", "--drain-delay", "2", "--shutdown-grace", "30",
             # With keys the replicas take any Host header (the balancer's); /ready needs none.
             "--api-key-file", str(self.tmp / "keys.txt")],
            stdout=log, stderr=log, env=env)
        self.starts += 1


def haproxy_config(lb_port, replicas) -> str:
    servers = "\n".join(f"  server r{r.i} 127.0.0.1:{r.port} check" for r in replicas)
    return f"""global
  maxconn 1024
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-request 10s
  option http-buffer-request
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout 503
frontend fe
  bind 127.0.0.1:{lb_port}
  default_backend be
backend be
  balance leastconn
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 250ms fall 2 rise 2
{servers}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_cache() / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="threads per replica")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from openai import OpenAI
    import openai

    tmp = Path(tempfile.mkdtemp(prefix="glassbox-fault-"))
    key = os.urandom(16).hex()
    (tmp / "keys.txt").write_text(key + "\n")
    replicas = [Replica(i, a.model, free_port(), tmp, a.threads) for i in (1, 2, 3)]
    lb_port = free_port()
    for r in replicas:
        r.start()
    for r in replicas:
        if not wait_ready(r.port, 120):
            sys.exit(f"error: replica {r.i} never became ready (see {tmp}/replica{r.i}.log)")
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config(lb_port, replicas))
    lb = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=open(tmp / "haproxy.log", "w"), stderr=subprocess.STDOUT)
    if not wait_ready(lb_port, 10):
        sys.exit(f"error: HAProxy never answered (see {tmp}/haproxy.log)")
    model_id = a.model.stem

    results = []  # (start, end, kind, outcome, first_failure)
    lock = threading.Lock()
    t0 = time.time()
    stop_at = t0 + a.duration

    def one(client, stream, i):
        """One attempt: (outcome, detail). outcome: ok | retryable | cut | failed."""
        msgs = [{"role": "user", "content": f"Write one sentence about the number {i}."}]
        try:
            if stream:
                finish = None
                for ch in client.chat.completions.create(model=model_id, messages=msgs, max_tokens=a.max_tokens, temperature=0, stream=True):
                    if ch.choices and ch.choices[0].finish_reason:
                        finish = ch.choices[0].finish_reason
                return ("ok", None) if finish else ("cut", "stream ended without a finish reason")
            r = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=a.max_tokens, temperature=0)
            return ("ok", None) if r.choices[0].finish_reason else ("failed", "no finish reason")
        except openai.APIStatusError as e:
            retry_after = e.response.headers.get("retry-after")
            if e.status_code in (429, 503) and retry_after:
                return ("retryable", f"{e.status_code} retry-after {retry_after}")
            return ("failed", f"status {e.status_code}")
        except openai.APITimeoutError:
            return ("hung", "timeout")
        except openai.APIConnectionError as e:
            # A reply cut by a killed replica: the client sees the connection drop.
            return ("cut", f"connection: {type(e).__name__}")
        except Exception as e:  # noqa: BLE001 - classified by what it is
            name = type(e).__name__
            if any(w in name for w in ("Protocol", "Connection", "Read", "Incomplete", "Chunked")):
                return ("cut", f"connection: {name}")
            return ("failed", f"{name}: {e}")

    def worker(w):
        client = OpenAI(base_url=f"http://127.0.0.1:{lb_port}/v1", api_key=key, max_retries=0, timeout=REQUEST_TIMEOUT)
        i = 0
        while time.time() < stop_at:
            stream = (i + w) % 2 == 0
            start = time.time()
            outcome, detail = one(client, stream, i)
            first = None
            if outcome in ("retryable", "cut"):
                # The client's retry policy: once, after Retry-After (or at once for a drop).
                first = detail
                if outcome == "retryable":
                    time.sleep(min(float(detail.split()[-1]), 5.0))
                outcome, detail = one(client, stream, i)
                if outcome in ("retryable", "cut"):
                    outcome = "lost"
            with lock:
                results.append((start, time.time(), "stream" if stream else "plain", outcome, first, detail))
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(a.clients)]
    for t in threads:
        t.start()
    events = []
    # SIGTERM replica 1 a quarter in; restart it once it exits.
    time.sleep(max(0.0, t0 + a.duration * 0.25 - time.time()))
    r1 = replicas[0]
    r1.proc.send_signal(signal.SIGTERM)
    events.append((time.time() - t0, "SIGTERM replica 1"))
    r1.proc.wait(timeout=60)
    events.append((time.time() - t0, f"replica 1 exited ({r1.proc.returncode}); restarting"))
    r1.start()
    # SIGKILL replica 2 halfway; restart at once.
    time.sleep(max(0.0, t0 + a.duration * 0.5 - time.time()))
    r2 = replicas[1]
    r2.proc.send_signal(signal.SIGKILL)
    r2.proc.wait()
    events.append((time.time() - t0, "SIGKILL replica 2; restarting"))
    r2.start()
    for r in (r1, r2):
        ok = wait_ready(r.port, 60)
        events.append((time.time() - t0, f"replica {r.i} ready again" if ok else f"replica {r.i} NOT ready"))
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT * 3)
    hung_threads = sum(t.is_alive() for t in threads)

    # Report.
    by = {}
    for r in results:
        by[r[3]] = by.get(r[3], 0) + 1
    firsts = {}
    for r in results:
        if r[4]:
            firsts[r[4].split(":")[0]] = firsts.get(r[4].split(":")[0], 0) + 1
    n_win = int(a.duration // WINDOW) + 1
    windows = [0] * n_win
    for r in results:
        if r[3] == "ok":
            k = int((r[1] - t0) // WINDOW)
            if 0 <= k < n_win:
                windows[k] += 1
    full = [w for w in windows[: int(a.duration // WINDOW)]]
    before = sum(full[: max(1, len(full) // 4)]) / max(1, len(full) // 4)
    after = full[-1] if full else 0
    lost = by.get("lost", 0) + by.get("failed", 0)
    hung = by.get("hung", 0) + hung_threads
    recovered = after >= 0.7 * before
    lat = sorted(r[1] - r[0] for r in results if r[3] == "ok")
    report = {
        "model": a.model.name, "replicas": 3, "clients": a.clients, "duration_s": a.duration, "load_balancer": "haproxy " + subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()[2],
        "requests": len(results), "outcomes": by, "first_attempt_failures": firsts,
        "lost": lost, "hung": hung, "events": [[round(t, 2), e] for t, e in events],
        "ok_per_5s": windows, "throughput_before_per_5s": round(before, 1), "throughput_last_window": after, "recovered": recovered,
        "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None, "latency_max_s": round(lat[-1], 3) if lat else None,
        "logs": str(tmp),
    }
    lb.terminate()
    for r in replicas:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
    for r in replicas:
        try:
            r.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            r.proc.kill()
    if a.json:
        print(json.dumps(report))
    else:
        print(f"{report['requests']} requests from {a.clients} clients over {a.duration:.0f} s through HAProxy to 3 replicas of {a.model.name}")
        for t, e in report["events"]:
            print(f"  t={t:6.2f} s  {e}")
        print(f"outcomes: {by}")
        print(f"first attempts that failed (then retried once): {firsts or 'none'}")
        print(f"lost (failed after the retry, or without a retryable status): {lost}; hung: {hung}")
        print(f"completed per {WINDOW:.0f} s: {windows}  (before the faults {before:.1f}, last window {after}: {'recovered' if recovered else 'NOT recovered'})")
        print(f"latency p50 {report['latency_p50_s']} s, max {report['latency_max_s']} s; logs in {tmp}")
    return 0 if lost == 0 and hung == 0 and recovered else 1


if __name__ == "__main__":
    sys.exit(main())
