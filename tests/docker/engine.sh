# Sourced by the tests/docker scripts: picks ENGINE (docker when a daemon
# answers, else podman when installed; ENGINE=... overrides) and, for
# podman, PODMAN_OPTS: a private store under build/podman, so that nothing
# global changes, with the overlay driver when this kernel lets us mount
# overlayfs here, else vfs (slower: a full copy per layer).  The choice is
# kept in build/podman/driver, as a store cannot change driver.
# PODMAN_STORAGE_DRIVER=... overrides.  Exits 3 when neither engine is usable.
: "${PODMAN_ROOT:=$(pwd)/build/podman}"
if [ -z "${PODMAN_STORAGE_DRIVER:-}" ]; then
	if [ -s "$PODMAN_ROOT/driver" ]; then
		PODMAN_STORAGE_DRIVER=$(cat "$PODMAN_ROOT/driver")
	else
		PODMAN_STORAGE_DRIVER=vfs
		probe=$(mktemp -d)
		mkdir "$probe/l" "$probe/u" "$probe/w" "$probe/m"
		if unshare -m sh -c "mount -t overlay overlay -o lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w $probe/m" 2>/dev/null; then
			PODMAN_STORAGE_DRIVER=overlay
		fi
		rm -rf "$probe"
		mkdir -p "$PODMAN_ROOT"
		echo "$PODMAN_STORAGE_DRIVER" >"$PODMAN_ROOT/driver"
	fi
fi
PODMAN_OPTS="--root $PODMAN_ROOT/root --runroot $PODMAN_ROOT/runroot --storage-driver $PODMAN_STORAGE_DRIVER"
if [ -z "${ENGINE:-}" ]; then
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		ENGINE=docker
	elif command -v podman >/dev/null 2>&1; then
		ENGINE=podman
	else
		echo "docker: neither a docker daemon nor podman here (make deps installs podman)" >&2
		exit 3
	fi
fi
