#!/usr/bin/env bash
# Run deploy/Dockerfile's runtime stage here with podman (Debian's package; runc, vfs storage,
# cgroupfs, the host's loopback network — what this sandbox allows). Base images cannot be
# pulled here (no registry but the package registries), so the image is built FROM scratch with
# target/release/glassbox and exactly the shared libraries distroless/cc provides for it (glibc,
# libm, libgcc_s, the loader); everything after that stage's FROM is the Dockerfile's own.
#
# Checks: the container runs as 65532 on a read-only root filesystem with every capability
# dropped and no shell in the image; the model (mounted read-only) is verified against the
# lockfile at start and served; `podman stop` (SIGTERM) drains and exits 0; a model the lockfile
# does not pin is refused at start, naming the mismatch.
#
# Usage: deploy/container_test.sh   (needs podman + runc: apt-get install podman runc; the
# pinned test models: scripts/fetch_models.py). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:=$(python3 -c 'import sys; sys.path.insert(0,"scripts"); from fetch_models import default_cache; print(default_cache())')/SmolLM2-135M-Instruct.Q4_1.gguf}"
PORT=${PORT:-18080}
podman=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
cargo build --release --locked -p glassbox >&2
work=$(mktemp -d)
trap '"${podman[@]}" rm -f glassbox-ct >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The image: the runtime stage of deploy/Dockerfile over a scratch base with the libraries.
ctx=$work/ctx
mkdir -p "$ctx/out"
install -m 0555 target/release/glassbox "$ctx/out/glassbox"
for lib in $(ldd target/release/glassbox | grep -o '/[^ ]*'); do install -D -m 0555 "$lib" "$ctx/rootfs$lib"; done
{
  echo "FROM scratch"
  echo "COPY rootfs/ /"
  sed -n '/^FROM \${RUNTIME_IMAGE}/,$p' deploy/Dockerfile | tail -n +2 | sed 's|COPY --from=build /out/glassbox|COPY out/glassbox|'
} > "$ctx/Containerfile"
"${podman[@]}" build -q -t localhost/glassbox:test -f "$ctx/Containerfile" "$ctx" >/dev/null
echo "image: $("${podman[@]}" image inspect localhost/glassbox:test --format '{{.Size}}') bytes, user $("${podman[@]}" image inspect localhost/glassbox:test --format '{{.Config.User}}')"

# Mounts: the model, the lockfile pinning it at its in-container path, one API key.
mkdir -p "$work/models" "$work/config" "$work/secrets"
cp "$MODEL" "$work/models/model.gguf"
sha=$(sha256sum "$work/models/model.gguf" | cut -d' ' -f1)
size=$(stat -c %s "$work/models/model.gguf")
printf 'version = 1\n\n[[file]]\npath = "/models/model.gguf"\nsize = %s\nsha256 = "%s"\n' "$size" "$sha" > "$work/config/glassbox.lock"
key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '[[key]]\nname = "test"\nsha256 = "%s"\n' "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" > "$work/secrets/keys.toml"
chmod -R a+rX "$work"

run() {
  "${podman[@]}" run -d --name glassbox-ct --network host --read-only --user 65532:65532 --cap-drop ALL \
    --security-opt no-new-privileges -v "$work/models:/models:ro" -v "$work/config:/config:ro" \
    -v "$work/secrets:/secrets:ro" localhost/glassbox:test \
    serve /models/model.gguf --lock /config/glassbox.lock --locked --host 127.0.0.1 --port "$PORT" \
    --api-key-file /secrets/keys.toml --drain-delay 2 --shutdown-grace 10 -t 2 >/dev/null
}
run
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null || { "${podman[@]}" logs glassbox-ct; echo "FAIL: never ready" >&2; exit 1; }
echo "ready; user in the container: $("${podman[@]}" top glassbox-ct user | tail -1 | tr -s ' ')"
reply=$(curl -fsS "http://127.0.0.1:$PORT/v1/completions" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"model":"model","prompt":"The capital of France is","max_tokens":8,"temperature":0}')
echo "completion: $(echo "$reply" | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["choices"][0]["text"]))')"
if "${podman[@]}" exec glassbox-ct /bin/sh -c true >/dev/null 2>&1; then echo "FAIL: the image has a shell" >&2; exit 1; fi
echo "no shell in the image: ok"
"${podman[@]}" logs glassbox-ct 2>&1 | grep -E "^verified" | head -1
t0=$(date +%s.%N)
"${podman[@]}" stop -t 30 glassbox-ct >/dev/null
code=$("${podman[@]}" inspect glassbox-ct --format '{{.State.ExitCode}}')
echo "SIGTERM: exit code $code after $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s (drain delay 2 s)"
[ "$code" = 0 ] || { "${podman[@]}" logs glassbox-ct; echo "FAIL: exit code $code" >&2; exit 1; }
"${podman[@]}" rm glassbox-ct >/dev/null
# A model the lockfile does not pin (one byte changed) is refused at start.
printf '\x00' | dd of="$work/models/model.gguf" bs=1 seek=$((size - 1)) conv=notrunc status=none
run
"${podman[@]}" wait glassbox-ct >/dev/null || true
code=$("${podman[@]}" inspect glassbox-ct --format '{{.State.ExitCode}}')
msg=$("${podman[@]}" logs glassbox-ct 2>&1 | grep -i -m1 "sha256\|mismatch" || true)
echo "tampered model: exit code $code: $msg"
[ "$code" != 0 ] && [ -n "$msg" ] || { echo "FAIL: a tampered model was not refused" >&2; exit 1; }
echo "container test passed"
