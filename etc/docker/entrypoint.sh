#!/bin/sh
# postern-entrypoint: the image's ENTRYPOINT.  Arguments that start with "-"
# (the CMD is "-c /etc/postern/postern.conf") are postern's; anything else
# runs as given (`docker run IMAGE postern -V`, `... sh`).  Before starting
# the daemon it checks that the config file is there and readable, and if
# not says which file it wants and how to provide it, and exits 78
# (EX_CONFIG).  postern replaces this shell (exec): it is PID 1, gets
# SIGTERM/SIGHUP directly and logs on stderr.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- /usr/local/bin/postern "$@"
fi

case "$1" in
postern | /usr/local/bin/postern) ;;
*) exec "$@" ;;
esac

# The file after -c, and whether a subcommand (health, lock, ...) follows.
conf="" sub="" prev=""
for a in "$@"; do
	if [ "$prev" = "-c" ]; then
		conf=$a
	elif [ -n "$conf" ] && [ "${a#-}" = "$a" ]; then
		sub=$a
		break
	fi
	prev=$a
done

if [ -n "$conf" ] && [ -z "$sub" ] && [ ! -r "$conf" ]; then
	if [ -e "$conf" ]; then
		why="exists but user $(id -un 2>/dev/null || id -u) (uid $(id -u)) cannot read it"
	else
		why="is missing"
	fi
	cat >&2 <<MSG
postern: the configuration file $conf $why.

Mount a directory holding postern.conf and the files it names (TLS
certificate and key) on $(dirname "$conf"), readable by uid $(id -u):

    docker run -v /srv/postern/etc:$(dirname "$conf"):ro -p 993:993 -p 995:995 IMAGE

Mount the directory, not the single file: SIGHUP re-reads the file, and an
editor that replaces it would leave a single-file mount on the old copy.
An example written for this image's paths:

    docker run --rm --entrypoint cat IMAGE /usr/share/postern/postern.conf
MSG
	exit 78
fi
exec "$@"
