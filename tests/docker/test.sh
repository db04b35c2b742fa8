#!/bin/sh
# `make docker-test`: the image test (tests/docker/test_image.py), or a clear
# SKIPPED line when this machine cannot build images: no docker daemon and
# no podman, or (podman) no base image and no way to make one.  A failure
# of the test itself fails.  Prints the image summary and how long it took.
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
start=$(date +%s)
. tests/docker/engine.sh || { echo "docker-test: SKIPPED: no container engine (docker daemon or podman)"; exit 0; }
if [ "$ENGINE" = podman ] && ! sh tests/docker/base-image.sh $PODMAN_OPTS; then
	echo "docker-test: SKIPPED: podman cannot get debian:bookworm-slim (debootstrap from the Debian mirror failed, see build/docker/debootstrap.log)"
	exit 0
fi
export ENGINE
"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/docker
rc=$?
echo "--- build/docker/summary.txt"
cat build/docker/summary.txt 2>/dev/null
echo "docker-test: $ENGINE, $(($(date +%s) - start)) s"
exit $rc
