#!/usr/bin/env bash
# make demo: install what is needed, build, and run nginx with the module
# proxying into a wireguard-go peer in a network namespace on this machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh
bash scripts/test-deps.sh
make module
exec python3 t/harness/demo.py "$@"
