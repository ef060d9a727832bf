"""Fixtures: a live `glassbox serve` on the pinned SmolLM2 file, on a free loopback port."""
import json, os, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_models import default_cache  # noqa: E402

BIN = ROOT / "target" / "release" / "glassbox"
MODEL = default_cache() / "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "smollm2"
# A model whose chat template renders tools (Hermes <tool_call> format), with Qwen2.5's
# 151,936-token vocabulary: structured output and tool calls are tested on it.
# Opt-in: GLASSBOX_STRUCTURED_MODEL=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf runs the same tests
# on the 1.5B model (fetch it by name first), plus the `auto` tool-call test.
QWEN = default_cache() / os.environ.get("GLASSBOX_STRUCTURED_MODEL", "qwen2.5-coder-0.5b-instruct-q5_0.gguf")
KEY = "sk-test-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *extra: str, api_key: bool = True, model: Path = MODEL, name: str = NAME):
        assert BIN.exists(), f"build first: cargo build --release ({BIN} missing)"
        assert model.exists(), "run scripts/fetch_models.py first"
        self.port = free_port()
        keys = tmp / f"keys-{self.port}.txt"
        keys.write_text(KEY + "\n")
        self.log = open(tmp / f"serve-{self.port}.log", "w")
        # Extra arguments may add models (paths) and their aliases after the default one.
        auth = ["--api-key-file", str(keys)] if api_key else []
        self.proc = subprocess.Popen([str(BIN), "serve", str(model), "--alias", name, "--port", str(self.port),
                                      *auth, "-c", "1024", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, GLASSBOX_TRUST_STORE=str(tmp / "trust.toml")))
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, "server exited during start"
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def get(self, path: str, key: str | None = KEY):
        req = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self) -> int:
        self.proc.terminate()
        rc = self.proc.wait(timeout=30)
        self.log.close()
        return rc


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="session")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.base + "/v1", api_key=KEY, max_retries=0, timeout=120)


def tokenize(text: str) -> list[int]:
    out = subprocess.run([str(BIN), "tokenize", str(MODEL), "--text", text, "--json"], capture_output=True, check=True, text=True)
    return json.loads(out.stdout)["ids"]
