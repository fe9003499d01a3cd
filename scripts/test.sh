#!/usr/bin/env bash
# Everything CI runs: install what the tests need, build the module (and
# the static build), unit tests with published vectors, a bounded fuzz
# run of every parser, then the real-peer tests in network namespaces.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/deps.sh
bash scripts/test-deps.sh

make module
make static

make -C t/unit test
make -C fuzz run SECONDS="${FUZZ_SECONDS:-15}"

exec python3 -m pytest -q t/ "$@"
