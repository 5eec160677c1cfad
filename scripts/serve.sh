#!/usr/bin/env bash
# Builds everything (see build-web.sh) and serves dist/ on http://127.0.0.1:${PORT:-8080}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
PORT="${PORT:-8080}"
echo "== serving http://127.0.0.1:$PORT (Ctrl-C to stop)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
