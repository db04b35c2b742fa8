#!/bin/sh
# Install what `make bench` needs on top of the test dependencies
# (tests/deps.sh): the peers a user would pick instead of postern.
# Idempotent; runs apt-get only when something is missing.
set -eu
here=$(dirname "$0")
sh "$here/../deps.sh"
PKGS="haproxy nginx libnginx-mod-mail procps iproute2"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

echo "bench deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
# The packaged nginx must not start a system-wide service on install: the
# bench runs its own instances on loopback.
rcd=/usr/sbin/policy-rc.d
made_rcd=0
if [ ! -e "$rcd" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rcd" >/dev/null
	$SUDO chmod 755 "$rcd"
	made_rcd=1
fi
trap '[ "$made_rcd" = 1 ] && $SUDO rm -f "$rcd"' EXIT
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
