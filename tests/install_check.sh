#!/bin/sh
# make install-check: `make install` into temporary directories, once with the
# defaults (PREFIX=/usr/local, DESTDIR) and once as a packager would
# (PREFIX=/usr SYSCONFDIR=/etc).  Each file must land where postern(8)'s
# FILES section says, carry the installed paths, and the man page must
# render without warnings.  Where systemd-analyze exists, the unit is
# verified against a real installed binary and man page too.
set -eu
MAKE=${MAKE:-make}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/postern-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "install-check: FAIL: $*"; fail=1; }

check_tree() { # root sbindir sysconfdir mandir unitdir
	r=$1 sbin=$2 etc=$3 man=$4 unit=$5
	for f in "$sbin/postern" "$etc/postern/postern.conf.sample" "$man/man8/postern.8" \
	    "$unit/postern.service" "$unit/postern@.service"; do
		[ -f "$r$f" ] || bad "missing $r$f"
	done
	[ -x "$r$sbin/postern" ] || bad "$sbin/postern is not executable"
	"$r$sbin/postern" -V >/dev/null || bad "the installed postern -V fails"
	cmp -s etc/postern.conf "$r$etc/postern/postern.conf.sample" ||
		bad "the sample config differs from etc/postern.conf"
	[ ! -e "$r$etc/postern/postern.conf" ] || bad "install wrote a live postern.conf"
	grep -qx "ExecStart=$sbin/postern -c $etc/postern/postern.conf" "$r$unit/postern.service" ||
		bad "postern.service: ExecStart does not name $sbin and $etc"
	cmp -s "$r$unit/postern.service" "$r$unit/postern@.service" ||
		bad "postern@.service differs from postern.service"
	grep -q "^\.It Pa $etc/postern/postern.conf$" "$r$man/man8/postern.8" ||
		bad "postern.8 FILES does not name $etc/postern/postern.conf"
	grep -q "^\.It Pa $sbin/postern$" "$r$man/man8/postern.8" ||
		bad "postern.8 FILES does not name $sbin/postern"
	# Renders, and without a warning (STYLE notes such as an outdated
	# mandoc.db on this host are not about the page).
	if command -v mandoc >/dev/null; then
		mandoc -Tlint -W warning "$r$man/man8/postern.8" || bad "mandoc -Tlint warns"
		mandoc -Tascii "$r$man/man8/postern.8" | grep -q "TLS-terminating IMAP and POP3" ||
			bad "mandoc does not render postern.8"
	fi
	out=$(MANWIDTH=80 man -l "$r$man/man8/postern.8" 2>&1 >/dev/null) || bad "man -l fails"
	[ -z "$out" ] || bad "man -l says: $out"
	MANWIDTH=80 man -l "$r$man/man8/postern.8" 2>/dev/null | grep -q "SIGNALS" ||
		bad "man -l does not render postern.8"
	out=$(groff -mdoc -ww -z "$r$man/man8/postern.8" 2>&1) || bad "groff fails"
	[ -z "$out" ] || bad "groff -ww says: $out"
}

echo "install-check: make install DESTDIR=$tmp/a (defaults)"
$MAKE --no-print-directory -s install DESTDIR="$tmp/a" >/dev/null
check_tree "$tmp/a" /usr/local/sbin /usr/local/etc /usr/local/share/man \
	/usr/local/lib/systemd/system

echo "install-check: make install DESTDIR=$tmp/b PREFIX=/usr SYSCONFDIR=/etc"
$MAKE --no-print-directory -s install DESTDIR="$tmp/b" PREFIX=/usr SYSCONFDIR=/etc >/dev/null
check_tree "$tmp/b" /usr/sbin /etc /usr/share/man /usr/lib/systemd/system
grep -rq /usr/local "$tmp/b/usr/lib/systemd/system/postern.service" &&
	bad "packager layout: the unit still names /usr/local"

$MAKE --no-print-directory -s uninstall DESTDIR="$tmp/a" >/dev/null
left=$(find "$tmp/a" -type f)
[ -z "$left" ] || bad "uninstall left: $left"

# systemd-analyze verify checks that ExecStart's binary exists and that
# Documentation= resolves: install without DESTDIR under a temporary PREFIX
# so the unit names real files.
if command -v systemd-analyze >/dev/null; then
	p="$tmp/p"
	$MAKE --no-print-directory -s install PREFIX="$p" >/dev/null
	cp "$p/lib/systemd/system/postern@.service" "$p/lib/systemd/system/postern@a.service"
	for u in postern.service postern@a.service; do
		out=$(cd "$tmp" && MANPATH="$p/share/man:" \
			systemd-analyze verify "$p/lib/systemd/system/$u" 2>&1) ||
			bad "systemd-analyze verify $u: $out"
		[ -z "$out" ] || bad "systemd-analyze verify $u says: $out"
	done
else
	echo "install-check: no systemd-analyze here, the unit is not verified"
fi

[ "$fail" = 0 ] || exit 1
echo "install-check: ok"
