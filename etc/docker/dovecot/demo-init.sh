#!/bin/sh
# The compose stack's "init" service, once before postern starts: fills the
# config volume (mounted here on /etc/postern) when it is empty:
# postern.conf from /seed/postern.conf (etc/docker/postern.conf) and a demo
# CA with a server certificate for localhost, 127.0.0.1 and $DEMO_NAMES, all
# owned by postern's uid 10993.  An existing file is never overwritten, so
# edits and real certificates survive `docker compose up`.
set -eu
ETC=/etc/postern
UID_GID=10993:10993
mkdir -p "$ETC/tls"
if [ ! -e "$ETC/postern.conf" ]; then
	cp /seed/postern.conf "$ETC/postern.conf"
	echo "init: wrote $ETC/postern.conf"
fi
if [ ! -e "$ETC/tls/fullchain.pem" ]; then
	cd "$ETC/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.crt -days 365 -subj "/CN=postern demo CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	san="DNS:localhost,IP:127.0.0.1"
	for n in ${DEMO_NAMES:-}; do san="$san,DNS:$n"; done
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" >server.ext
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout key.pem -out server.csr -subj "/CN=localhost" 2>/dev/null
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 0x$(openssl rand -hex 8) \
		-days 365 -sha256 -extfile server.ext -out server.crt 2>/dev/null
	cat server.crt ca.crt >fullchain.pem
	rm -f server.csr server.ext ca.key
	echo "init: made a demo CA ($ETC/tls/ca.crt) and a certificate for $san"
fi
chown -R "$UID_GID" "$ETC"
chmod 0750 "$ETC" "$ETC/tls"
chmod 0640 "$ETC/tls/key.pem"
