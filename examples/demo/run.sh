#!/usr/bin/env bash
# Build pmr, start the demo ecosystem in a private PMR_HOME, show it working, and stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
export PMR_HOME="${PMR_HOME:-$(mktemp -d)/pmr-demo}"
export DEMO_PORT="${DEMO_PORT:-3000}"
pmr=./target/release/pmr
$pmr start examples/demo/ecosystem.config.js
python3 - <<PY
import time, urllib.request
deadline = time.time() + 10
for i in range(4):
    while True:
        try:
            print(urllib.request.urlopen("http://127.0.0.1:$DEMO_PORT/", timeout=2).read().decode(), end="")
            break
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.05)
PY
$pmr reload web
$pmr logs --nostream --lines 5
$pmr ls
if [ "${KEEP:-}" != 1 ]; then $pmr kill; else echo "Left running: PMR_HOME=$PMR_HOME $pmr ls"; fi
