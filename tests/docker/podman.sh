#!/bin/sh
# podman on the private store the image is built in (build/podman):
#   tests/docker/podman.sh images
#   tests/docker/podman.sh save postern:latest -o postern.tar
set -eu
cd "$(dirname "$0")/../.."
ENGINE=podman
. tests/docker/engine.sh
exec podman $PODMAN_OPTS "$@"
