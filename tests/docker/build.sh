#!/bin/sh
# Build the postern image from the top-level Dockerfile with whichever engine
# works here: docker when its daemon answers, else podman (rootful, chroot
# isolation: no daemon, no user namespaces, works inside a container).
#
#   tests/docker/build.sh [TAG]         TAG defaults to postern:latest
#   ENGINE=docker|podman                force one
#
# With podman the image lives in a private store under build/podman
# (overlay or vfs, see engine.sh), so nothing global changes; podman.sh runs
# podman on that store, e.g.  tests/docker/podman.sh images
# The base image debian:bookworm-slim is pulled by docker; for podman it is
# made offline by tests/docker/base-image.sh (debootstrap) when missing.
# Prints the engine on the last line ("engine=podman tag=postern:latest").
set -eu
cd "$(dirname "$0")/../.."
TAG=${1:-postern:latest}
. tests/docker/engine.sh

VERSION=$(sed -n 's/^#define POSTERN_VERSION "\(.*\)"/\1/p' proxy/main.c | head -1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || REVISION="$REVISION-dirty"
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The labels also as --label: buildah's layer cache keeps a LABEL step whose
# build args changed, so the Dockerfile's own would show a stale revision.
ARGS="--build-arg VERSION=${VERSION:-0.1.0} --build-arg REVISION=$REVISION --build-arg CREATED=$CREATED
 --label org.opencontainers.image.version=${VERSION:-0.1.0}
 --label org.opencontainers.image.revision=$REVISION --label org.opencontainers.image.created=$CREATED"

case "$ENGINE" in
docker)
	docker build $ARGS -t "$TAG" .
	;;
podman)
	sh tests/docker/base-image.sh $PODMAN_OPTS
	# --format docker: the OCI image format has no HEALTHCHECK.
	# --pull=never: the base comes from the store, never a registry.
	podman $PODMAN_OPTS build --isolation chroot --format docker --pull=never --layers \
		$ARGS -t "$TAG" .
	;;
esac
echo "engine=$ENGINE tag=$TAG"
