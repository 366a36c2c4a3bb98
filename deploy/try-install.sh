#!/usr/bin/env bash
# The Dockerfile's install steps in a fresh venv, for a machine without a container
# engine: the lock installs with --no-deps, pip check finds nothing missing, and the
# installed package's doctor loads the bundled model and embedder offline.
#   deploy/try-install.sh [VENV]          (default: a new temp folder)
# TORCH_INDEX= (empty) skips PyTorch's index when the CPU wheel is on PIP_FIND_LINKS.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-$(mktemp -d)/venv}"
index="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
python3 -m venv "$venv"
start=$SECONDS
"$venv/bin/pip" install --quiet --no-deps ${index:+--extra-index-url "$index"} -r requirements/lock.txt
"$venv/bin/pip" install --quiet --no-deps --no-build-isolation .
echo "installed from requirements/lock.txt in $((SECONDS - start)) s"
"$venv/bin/pip" check
data="$(mktemp -d)"
(cd "$data" && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PERSONABOT_DATA_DIR="$data" "$venv/bin/personabot" doctor)
du -sh "$venv"
