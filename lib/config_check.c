/*
 * config_check.c: the readers the sections share (members of a list entry,
 * names, readable files) and the checks of single settings the option table
 * names (user, admin.socket, admin.http).  Each reports through cfg_err()
 * and keeps nothing.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"
#include "config_impl.h"

/* Report members of a list entry g not among keys. */
void
cfg_check_keys(struct ctx *x, const config_setting_t *g, const char *const *keys, const char *noun)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *m = config_setting_get_elem(g, i);
		size_t k;

		for (k = 0; keys[k] != NULL; k++)
			if (strcmp(keys[k], config_setting_name(m)) == 0)
				break;
		if (keys[k] == NULL)
			cfg_err(x, m, "unknown setting '%s' in a %s", config_setting_name(m), noun);
	}
}

/*
 * The string member key of entry g, or NULL: absent (*bad untouched), or
 * not a non-empty string (reported, *bad set).
 */
const char *
cfg_get_string(struct ctx *x, const config_setting_t *g, const char *key, const char *what,
               bool *bad)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *v;

	if (m == NULL)
		return NULL;
	if ((v = config_setting_get_string(m)) == NULL) {
		cfg_err(x, m, "%s: '%s' must be a string", what, key);
		*bad = true;
		return NULL;
	}
	if (*v == '\0') {
		cfg_err(x, m, "%s: '%s' must not be empty", what, key);
		*bad = true;
		return NULL;
	}
	return v;
}

/* A required string member: NULL after reporting when absent or bad. */
const char *
cfg_need_string(struct ctx *x, const config_setting_t *g, const char *key, const char *what)
{
	bool bad = false;
	const char *v = cfg_get_string(x, g, key, what, &bad);

	if (v == NULL && !bad)
		cfg_err(x, g, "%s: missing '%s'", what, key);
	return v;
}

char *
cfg_dup(struct ctx *x, const config_setting_t *s, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		cfg_err(x, s, "out of memory");
	return d;
}

/* Names go unquoted into logs (lst=, backend=): keep them plain. */
bool
cfg_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Readable now, by whoever runs the check; a missing file fails at load,
 * not at the first handshake. */
void
cfg_check_readable(struct ctx *x, const config_setting_t *s, const char *what, const char *path)
{
	if (access(path, R_OK) != 0)
		cfg_err(x, s, "%s \"%s\" is not readable: %s", what, path, strerror(errno));
}

void
cfg_check_user(struct ctx *x, const config_setting_t *s, const char *v)
{
	/* fail at load, not after binding as root */
	if (getpwnam(v) == NULL)
		cfg_err(x, s, "'user': no such user \"%s\"", v);
}

/* admin.http: "host:port" as a listener takes it (numeric host). */
void
cfg_check_admin_http(struct ctx *x, const config_setting_t *s, const char *v)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err = NULL;

	if (config_parse_listen(v, &ss, &len, &err) < 0)
		cfg_err(x, s, "'admin.http': bad address \"%s\": %s", v, err);
}

/*
 * The admin socket ends sessions and drains backends: whoever can create a
 * file beside it could put their own in its place, so a world-writable
 * directory is refused (even with the sticky bit: the name could be taken
 * before postern starts).
 */
void
cfg_check_admin_socket(struct ctx *x, const config_setting_t *s, const char *v)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(v, '/');
	struct stat st;
	struct sockaddr_un sun;

	if (v[0] != '/') {
		cfg_err(x, s, "'admin.socket' must be an absolute path");
		return;
	}
	if (strlen(v) >= sizeof(sun.sun_path)) {
		cfg_err(x, s, "'admin.socket' is longer than %zu bytes", sizeof(sun.sun_path) - 1);
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash == v ? 1 : (int)(slash - v), v);
	if (stat(dir, &st) != 0) {
		cfg_err(x, s, "'admin.socket': directory \"%s\": %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode))
		cfg_err(x, s, "'admin.socket': \"%s\" is not a directory", dir);
	else if (st.st_mode & S_IWOTH)
		cfg_err(x, s,
		        "'admin.socket': directory \"%s\" is world-writable; use a directory "
		        "only root or the postern user can write (e.g. /run/postern)",
		        dir);
}
