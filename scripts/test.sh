#!/usr/bin/env bash
# Runs every test: installs dependencies, then typecheck + lint + unit and integration tests (npm test).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export HANGAR_QUIET="${HANGAR_QUIET:-${CI:+1}}"
npm test
