#!/bin/sh
# Make the base image `debian:bookworm-slim` offline, for podman/buildah on a
# machine that can reach Debian's mirror but no container registry:
# debootstrap --variant=minbase from the mirror apt already uses, trimmed like
# the official -slim image (no docs, man pages or locales), then `podman
# import`.  Does nothing when the name exists.  The tarball is cached in
# build/docker/ so a rerun (or a fresh podman store) takes seconds.
#
#   tests/docker/base-image.sh [podman global options, e.g. --root DIR --runroot DIR]
set -eu
NAME="debian:bookworm-slim"
SUITE=bookworm
HERE=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$HERE/build/docker"
TAR="$CACHE/$SUITE-minbase.tar"

if podman "$@" image exists "$NAME" 2>/dev/null; then
	exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TAR" ]; then
	[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }
	command -v debootstrap >/dev/null || { echo "base-image: debootstrap is not installed (make deps)" >&2; exit 1; }
	# The mirror apt uses: deb822 sources (URIs:) or the one-line format.
	MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }
		     /^deb / && $0 ~ / '"$SUITE"' / { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }')
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
	ROOT="$CACHE/rootfs.$$"
	trap 'rm -rf "$ROOT"' EXIT
	echo "base-image: debootstrap --variant=minbase $SUITE from $MIRROR"
	debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
		{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
	# As debian:bookworm-slim does: no docs, man pages or translations now or
	# from later apt-get installs; no apt lists or caches in the layer.
	cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIM
	find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	rm -rf "$ROOT/usr/share/man"/* "$ROOT/usr/share/info"/* "$ROOT/usr/share/lintian"
	find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
		>"$ROOT/etc/apt/apt.conf.d/docker-no-recommends"
	rm -rf "$ROOT/var/lib/apt/lists"/* "$ROOT/var/cache/apt"/*.bin "$ROOT/var/cache/apt/archives"/*.deb \
		"$ROOT/var/log"/*.log "$ROOT/var/log/apt"/*
	# The image's apt uses the same mirror as this machine.
	printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" \
		>"$ROOT/etc/apt/sources.list"
	SEC=$(echo "$MIRROR" | sed 's#/debian/*$#/debian-security#')
	printf 'deb %s %s-security main\n' "$SEC" "$SUITE" >>"$ROOT/etc/apt/sources.list"
	tar --numeric-owner --xattrs -C "$ROOT" -cf "$TAR.tmp" .
	mv "$TAR.tmp" "$TAR"
fi
podman "$@" import --change 'CMD ["bash"]' "$TAR" "$NAME" >/dev/null
echo "base-image: imported $NAME from $TAR"
