#!/usr/bin/env bash
# One command from a fresh clone to trained-and-evaluated: set up, then `vaecf demo` with the given
# options (e.g. --data ../shared/data/ml-1m/ml1m_pairs_rating_ge4.tsv --held-out 600).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js demo "$@"
