#!/bin/sh
# Install the Debian packages postern's build, tests and demo need; idempotent.
# Runs apt-get only when something is missing (as root, or through sudo).
# podman, buildah and debootstrap build and check the container image
# (make docker-test) where no Docker engine runs.  Extra package names given
# as arguments are installed the same way (tests/bench/deps.sh: the peers).
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev libssl-dev libev-dev
libconfig-dev libcmocka-dev liblmdb-dev libhiredis-dev libsystemd-dev libmicrohttpd-dev openssl
libcurl4-openssl-dev libjansson-dev nginx libnginx-mod-mail
curl python3 python3-pytest python3-prometheus-client dovecot-imapd dovecot-pop3d
dovecot-managesieved dovecot-sieve sieve-connect python3-sievelib sslscan haproxy
redis-server podman buildah debootstrap libcap2-bin $*"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
# Packaged daemons (dovecot) must not start system-wide services on install:
# the tests and the demo run their own instances on loopback.
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
