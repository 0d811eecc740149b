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
    buildah bud --isolation chroot --layers --quiet \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -v "$CA_BUNDLE:$CA_BUNDLE:ro" \
        -t "$IMAGE" .
}

run_test() {
    build
    container="$(buildah from --quiet "$IMAGE")"
    trap 'buildah rm "${container:-}" >/dev/null 2>&1 || true' EXIT
    local user
    user="$(buildah inspect --format '{{.OCIv1.Config.User}}' "$container")"
    echo "image: running the pipeline inside $IMAGE as user $user"
    # Inside the image: start the twin, run 2,000 persons against it (a temporary local Prefect), print the report.
    buildah run --isolation chroot --user "$user" "$container" -- sh -c '
        set -e
        export HOME=/home/pipeline PREFECT_HOME=/home/pipeline/.prefect PERSONS_DATA_DIR=/home/pipeline/data
        persons-pipeline twin --port 0 --port-file /tmp/twin.port >/tmp/twin.log 2>&1 &
        twin=$!
        for _ in $(seq 1 100); do [ -s /tmp/twin.port ] && break; sleep 0.2; done
        persons-pipeline run --api-url "http://127.0.0.1:$(cat /tmp/twin.port)/api/v2" --total 2000 \
            --report-json /home/pipeline/data/report.json
        status=$?
        kill "$twin" 2>/dev/null || true
        python -c "import json; r = json.load(open(\"/home/pipeline/data/report.json\")); print(\"report.json total_persons =\", r[\"total_persons\"])"
        exit $status
    '
}

case "${1:-test}" in
    build) build ;;
    test) run_test ;;
    *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
