#!/usr/bin/env bash
# Runs every test: installs dependencies, builds (or reuses from the cache) the desktop and browser images the
# integration tests boot, then `npm test` (typecheck, lint, unit and integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export HANGAR_QUIET="${HANGAR_QUIET:-${CI:+1}}"
npm run build --silent
node bin/hangar.js image build --profile desktop ${HANGAR_QUIET:+--quiet}
# The browser profile (Chromium in the guest) for the CDP tests (test/control/cdp.int.test.ts): the kernel is
# shared, its rootfs build takes ~4 min on a fresh machine (downloads included).
node bin/hangar.js image build --profile browser ${HANGAR_QUIET:+--quiet}
npm test
