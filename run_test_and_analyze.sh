#!/usr/bin/env bash
# Load-test the running API instances, then check every key they returned for duplicates.
#
#   ./run_test_and_analyze.sh                      # full scenario, ~2 min, ports 8080-8082
#   SCALE=0.1 ./run_test_and_analyze.sh            # every stage 10x shorter and smaller
#   BASE_URLS=http://127.0.0.1:9000,http://127.0.0.1:9001 ./run_test_and_analyze.sh
#
# Runs k6 with k6_load_test.js when k6 is installed, otherwise `mini-forge loadtest` with
# the same scenario. Writes every key to results.log and all output to test_output.log in
# the current directory. Exit status: 0 when every key is unique and every threshold is
# met; 1 on a duplicate key (or no key at all); otherwise the load test's own status
# (99: a threshold was crossed, as with k6).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
scale="${SCALE:-1}"
base_urls="${BASE_URLS:-http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082}"
results=results.log
output=test_output.log

if [ -n "${MINI_FORGE:-}" ]; then
  mini_forge="$MINI_FORGE"
elif [ -x "$here/.venv/bin/mini-forge" ]; then
  mini_forge="$here/.venv/bin/mini-forge"
elif command -v mini-forge >/dev/null; then
  mini_forge=mini-forge
else
  echo "run_test_and_analyze.sh: mini-forge not found: run 'make run' once, or set MINI_FORGE" >&2
  exit 2
fi

if command -v k6 >/dev/null; then
  echo "🚀 Starting k6 load test (SCALE=$scale) against $base_urls" | tee "$output"
  k6 run -e SCALE="$scale" -e BASE_URLS="$base_urls" "$here/k6_load_test.js" 2>&1 \
    | tee -a "$output"
  load_status=${PIPESTATUS[0]}
  # k6 logs each key as KEY:<key> inside its own log line; keep only the key.
  grep -oE 'KEY:[0-9A-Za-z]+' "$output" | cut -c5- >"$results"
else
  echo "🚀 k6 is not installed: starting mini-forge loadtest (SCALE=$scale)" | tee "$output"
  url_args=()
  IFS=',' read -ra urls <<<"$base_urls"
  for url in "${urls[@]}"; do
    url_args+=(--url "${url// /}")
  done
  "$mini_forge" loadtest "${url_args[@]}" --scale "$scale" --keys-file "$results" 2>&1 \
    | tee -a "$output"
  load_status=${PIPESTATUS[0]}
fi

echo "" | tee -a "$output"
echo "📊 Analyzing keys for duplicates..." | tee -a "$output"
echo "" | tee -a "$output"
"$mini_forge" analyze "$results" 2>&1 | tee -a "$output"
analyze_status=${PIPESTATUS[0]}

echo ""
echo "📁 All keys saved to: $results"
echo "📁 Full test output saved to: $output"

if [ "$analyze_status" -ne 0 ]; then
  exit "$analyze_status"
fi
if [ "$load_status" -ne 0 ]; then
  echo "❌ The load test failed (status $load_status; 99 means a threshold was crossed)"
  exit "$load_status"
fi
exit 0
