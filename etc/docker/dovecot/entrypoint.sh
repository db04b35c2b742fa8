#!/bin/sh
# The compose stack's Dovecot: DOVECOT_USERS="user:password user2:password2"
# becomes /etc/dovecot/users (plain passwords: a demo), and each user with
# an empty mailbox gets three messages, so that the README's curl commands
# have something to fetch.
set -eu
id vmail >/dev/null 2>&1 || useradd --system --uid 5000 --user-group --home-dir /srv/mail vmail
mkdir -p /srv/mail
: >/etc/dovecot/users
for entry in ${DOVECOT_USERS:-}; do
	user=${entry%%:*} pw=${entry#*:}
	printf '%s:{PLAIN}%s::::::\n' "$user" "$pw" >>/etc/dovecot/users
	md=/srv/mail/$user/Maildir
	if [ ! -d "$md" ]; then
		mkdir -p "$md/new" "$md/cur" "$md/tmp"
		for n in 1 2 3; do
			printf 'From: Demo <demo@example.com>\r\nTo: <%s>\r\nSubject: message %s for %s on %s\r\nMessage-ID: <%s.%s.%s@postern.demo>\r\n\r\nHello %s, this is message %s, stored on %s.\r\n' \
				"$user" "$n" "$user" "$(hostname)" "$n" "$(hostname)" "$(echo "$user" | tr @ .)" "$user" "$n" "$(hostname)" \
				>"$md/new/$((1700000000 + n)).M${n}P1.$(hostname)"
		done
	fi
done
chown -R vmail:vmail /srv/mail
chmod 0640 /etc/dovecot/users
chgrp dovecot /etc/dovecot/users
exec "$@"
