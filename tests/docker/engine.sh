# Sourced by the tests/docker scripts: picks ENGINE (docker when a daemon
# answers, else podman when installed; ENGINE=... overrides) and, for
# podman, PODMAN_OPTS, the private store under build/podman.  Exits 3 with
# a message when neither is usable.
: "${PODMAN_ROOT:=$(pwd)/build/podman}"
PODMAN_OPTS="--root $PODMAN_ROOT/root --runroot $PODMAN_ROOT/runroot --storage-driver vfs"
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
