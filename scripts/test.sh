#!/usr/bin/env bash
# README command 2: the whole test suite (sets up .venv first when it is missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install.sh"
cd "$root"
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest Testing -q "$@"
