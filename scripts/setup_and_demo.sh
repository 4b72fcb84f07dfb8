#!/usr/bin/env bash
# README command 1: set up .venv and segment the bundled sample with the bundled model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install.sh"
cd "$root"
.venv/bin/innerear-seg demo -o "${1:-output/demo}"
