#!/usr/bin/env bash
# Serve the dashboard, record an experiment to it, and print where to look. Run from the repo root:
#   pip install -e packages/evsys-core -e 'packages/evsys-dashboard[server]'
#   bash examples/dashboard/run.sh
set -euo pipefail
DB=${DB:-./outputs/dashboard/dashboard.db}
PORT=${PORT:-8765}
mkdir -p "$(dirname "$DB")"

# 1. an API key for project "demo" (the key is the last word printed)
KEY=$(evsys dashboard create-key --project demo --db "$DB" | tail -n 1 | awk '{print $NF}')

# 2. the server (loopback only), in the background
evsys dashboard serve --db "$DB" --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill $SERVER' EXIT
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz')" 2>/dev/null; do
  sleep 0.2
done

export EVSYS_API_URL=http://127.0.0.1:$PORT EVSYS_API_KEY=$KEY EVSYS_PROJECT_ID=demo
export EVSYS_LOG_DIR=./outputs/dashboard/mirror

# 3. a whole experiment (matrix x 3 seeds, validation and test benchmarks) recorded to the server
evsys run examples/experiment/config.yaml --store dashboard

# 4. a hand-written training loop logging through ExperimentRun
python3 examples/dashboard/log_by_hand.py

echo "open http://127.0.0.1:$PORT/ (Ctrl-C to stop the server)"
wait $SERVER
