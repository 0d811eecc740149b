#!/usr/bin/env bash
# Offline quickstart: serve the bundled Faker API twin on 127.0.0.1, run the pipeline against it, stop the twin.
# Extra arguments go to `persons-pipeline run` (e.g. --total 100000 --reference-date 2026-01-01).
set -euo pipefail

export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect-home}"
workdir="$(mktemp -d)"
twin_pid=""
cleanup() {
    if [[ -n "$twin_pid" ]]; then kill "$twin_pid" 2>/dev/null || true; wait "$twin_pid" 2>/dev/null || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

faker-twin --port 0 --port-file "$workdir/port" >"$workdir/twin.log" 2>&1 &
twin_pid=$!
for _ in $(seq 1 100); do
    [[ -s "$workdir/port" ]] && break
    kill -0 "$twin_pid" 2>/dev/null || { cat "$workdir/twin.log" >&2; exit 1; }
    sleep 0.1
done
[[ -s "$workdir/port" ]] || { echo "the Faker twin did not start" >&2; exit 1; }
api_url="http://127.0.0.1:$(cat "$workdir/port")/api/v2"
echo "Faker API twin at $api_url; Prefect client home $PREFECT_HOME"
# The offline try-out asks for the demo key explicitly, unless a key of your own is configured.
if [[ -z "${PERSONS_HMAC_SECRET:-}${PERSONS_HMAC_SECRET_BLOCK:-}${PERSONS_HMAC_SECRET_AWS_SECRET:-}" ]]; then
    export PERSONS_ALLOW_DEMO_SECRET="${PERSONS_ALLOW_DEMO_SECRET:-true}"
    echo "person_key: the offline demo key (PERSONS_ALLOW_DEMO_SECRET=true); set PERSONS_HMAC_SECRET for real data"
fi
# Without PREFECT_API_URL the run starts (once) or reuses the local Prefect server; `persons-pipeline server stop`.

persons-pipeline run --api-url "$api_url" --report-json "${REPORT_JSON:-data/report.json}" "$@"
