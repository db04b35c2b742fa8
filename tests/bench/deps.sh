#!/bin/sh
# Install what `make bench` needs: the test dependencies (tests/deps.sh) and
# the peers a user would pick instead of postern.  The packaged nginx does
# not start a system-wide service (tests/deps.sh blocks that while it
# installs): the bench runs its own instances on loopback.
set -eu
exec sh "$(dirname "$0")/../deps.sh" haproxy nginx libnginx-mod-mail procps iproute2
