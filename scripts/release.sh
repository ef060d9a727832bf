#!/usr/bin/env bash
# A release of the glassbox binary, reproducible and signed:
#   1. built twice, each time from an emptied target folder (the same path: CARGO_TARGET_DIR =
#      $WORK/target), with source and registry paths remapped (no checkout or home directory in
#      the binary) and no debug info; the two binaries must have the same SHA-256 (else the
#      script stops and says so);
#   2. dist/: the binary, its CycloneDX SBOM (scripts/sbom.py) and SHA256SUMS;
#   3. the folder signed with glassbox's own OpenSSF model-signing signature (key method, P-256:
#      the format `model_signing` and sigstore-python read) and verified back.
# Usage: scripts/release.sh SIGNING_KEY.pem [OUT_DIR]     (a P-256 key: openssl ecparam -name
# prime256v1 -genkey -noout -out key.pem; publish its public half). Not run in CI (two full builds).
set -euo pipefail
cd "$(dirname "$0")/.."
key=${1:?usage: scripts/release.sh SIGNING_KEY.pem [OUT_DIR]}
out=${2:-dist}
WORK=${WORK:-$(mktemp -d)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export CARGO_PROFILE_RELEASE_DEBUG=false
export RUSTFLAGS="--remap-path-prefix=$PWD=/glassbox --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo ${RUSTFLAGS:-}"
for n in 1 2; do
  echo "== build $n (clean $WORK/target)" >&2
  rm -rf "$WORK/target"
  CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked -p glassbox >&2
  cp "$WORK/target/release/glassbox" "$WORK/glassbox$n"
done
a=$(sha256sum "$WORK/glassbox1" | cut -d' ' -f1)
b=$(sha256sum "$WORK/glassbox2" | cut -d' ' -f1)
echo "build 1: $a"
echo "build 2: $b"
if [ "$a" != "$b" ]; then
  echo "error: the two clean builds differ; not releasing" >&2
  exit 1
fi
rm -rf "$out" && mkdir -p "$out"
install -m 0755 "$WORK/glassbox1" "$out/glassbox"
python3 scripts/sbom.py -o "$out/glassbox.cdx.json"
(cd "$out" && sha256sum glassbox glassbox.cdx.json > SHA256SUMS)
"$out/glassbox" sign "$out" --private-key "$key" -o "$out.sig" >&2
openssl ec -in "$key" -pubout -out "$out.pub" 2>/dev/null
"$out/glassbox" verify "$out" --signature "$out.sig" --public-key "$out.pub"
echo "released: $out (binary sha256 $a), signature $out.sig, public key $out.pub"
