#!/usr/bin/env bash
# Build the image without a Docker engine (Debian's buildah, chroot isolation) and, with `test`, run the
# pipeline inside it against the bundled twin. Usage: scripts/image.sh build|test
#
# The base is a local Debian bookworm with Python, made once with debootstrap and imported with podman
# (cached in the containers store afterwards); the Dockerfile itself defaults to the official slim image.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/persons-pipeline:latest}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-python:bookworm}"
MIRROR="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

for tool in buildah podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "image: $tool is missing (apt-get install buildah podman debootstrap)" >&2; exit 3; }
done

base() {
    if podman image exists "$BASE_IMAGE"; then return; fi
    local root
    root="$(mktemp -d)"
    echo "image: building the base $BASE_IMAGE from $MIRROR (once)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$root" "$MIRROR" >/dev/null
    tar -C "$root" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
}

build() {
    base
    echo "image: building $IMAGE"
    # Docker's image format: the OCI format has no HEALTHCHECK, and buildah would drop the Dockerfile's.
    buildah bud --isolation chroot --layers --quiet --format docker \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -v "$CA_BUNDLE:$CA_BUNDLE:ro" \
        -t "$IMAGE" .
    local healthcheck
    healthcheck="$(buildah inspect --type image --format '{{if .Docker.Config.Healthcheck}}{{.Docker.Config.Healthcheck.Test}}{{end}}' "$IMAGE")"
    [ -n "$healthcheck" ] || { echo "image: $IMAGE lost the Dockerfile's HEALTHCHECK" >&2; exit 1; }
    echo "image: healthcheck $healthcheck"
}

run_test() {
    build
    # The twin is a development tool, not part of the image: it runs on the host (chroot isolation shares the
    # host's network), and one trap stops it and removes the container whatever happens.
    # Not local: the EXIT trap runs after this function has returned.
    workdir="$(mktemp -d)" twin="" container=""
    cleanup() {
        if [ -n "${twin:-}" ]; then kill "$twin" 2>/dev/null || true; wait "$twin" 2>/dev/null || true; fi
        if [ -n "${container:-}" ]; then buildah rm "$container" >/dev/null 2>&1 || true; fi
        rm -rf "${workdir:-}"
    }
    trap cleanup EXIT
    "${TWIN:-faker-twin}" --port 0 --port-file "$workdir/port" >"$workdir/twin.log" 2>&1 &
    twin=$!
    for _ in $(seq 1 100); do [ -s "$workdir/port" ] && break; sleep 0.2; done
    [ -s "$workdir/port" ] || { cat "$workdir/twin.log" >&2; echo "image: the Faker twin did not start" >&2; exit 1; }
    container="$(buildah from --quiet "$IMAGE")"
    local user
    user="$(buildah inspect --format '{{.OCIv1.Config.User}}' "$container")"
    echo "image: running the pipeline inside $IMAGE as user $user"
    # Inside the image: run 2,000 persons against the host's twin, print the report's total.
    buildah run --isolation chroot --user "$user" --env "TWIN_URL=http://127.0.0.1:$(cat "$workdir/port")/api/v2" \
        "$container" -- sh -c '
        set -e
        export HOME=/home/pipeline PREFECT_HOME=/home/pipeline/.prefect PERSONS_DATA_DIR=/home/pipeline/data
        # The image has no key of its own (a deployment names a Secret block or an AWS secret): this try-out
        # asks for the offline demo key explicitly.
        export PERSONS_ALLOW_DEMO_SECRET=true
        # No PREFECT_API_URL here (on ECS the work pool sets it): the run starts the local server; stop it after.
        trap "persons-pipeline server stop >/dev/null 2>&1 || true" EXIT
        persons-pipeline run --api-url "$TWIN_URL" --total 2000 --report-json /home/pipeline/data/report.json
        python -c "import json; r = json.load(open(\"/home/pipeline/data/report.json\")); print(\"report.json total_persons =\", r[\"total_persons\"])"
    '
}

case "${1:-test}" in
    build) build ;;
    test) run_test ;;
    *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
