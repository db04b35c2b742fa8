/*
 * test_proxy_admin.c: the admin command table (proxy/admin_cmd.c) is one
 * closed set: every command has a name, arguments, help and handlers; the
 * server's request parser maps each word to its entry and refuses any
 * other; and the man page names exactly the table's commands.
 */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "admin_cmd.h"
#include "admin_impl.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static void
every_command_has_a_name_arguments_help_and_handlers(void **state)
{
	(void)state;
	for (int i = 0; i < ADMIN_CMD__COUNT; i++) {
		const struct admin_cmd_def *d = &admin_cmds[i];
		bool socket = d->via == ADMIN_VIA_SOCKET;

		assert_non_null(d->name); /* a row left out of the table */
		assert_int_equal(d->id, i);
		assert_true(d->name[0] != '\0');
		assert_non_null(d->synopsis);
		assert_non_null(d->help);
		assert_true(d->help[0] != '\0');
		assert_true(d->via < ADMIN_VIA__COUNT);
		assert_non_null(d->run);
		/* The socket's commands have both sides; the store's neither. */
		assert_true((d->request != NULL) == socket);
		assert_true((d->serve != NULL) == socket);
		assert_true(!(d->flags & (ADMIN_CMD_NO_ARGS | ADMIN_CMD_SLOW)) || socket);
		assert_true(!(d->flags & ADMIN_CMD_NO_ARGS) || d->synopsis[0] == '\0');
	}
}

static void
command_names_are_distinct(void **state)
{
	(void)state;
	for (int i = 0; i < ADMIN_CMD__COUNT; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(admin_cmds[i].name, admin_cmds[j].name);
}

static void
find_maps_each_name_to_its_entry_and_nothing_else(void **state)
{
	static const char *const unknown[] = {"",          "frobnicate",   "SESSIONS", "session",
	                                      "sessions ", "backend list", "-h"};
	(void)state;
	for (int i = 0; i < ADMIN_CMD__COUNT; i++)
		assert_ptr_equal(admin_cmd_find(admin_cmds[i].name), &admin_cmds[i]);
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_null(admin_cmd_find(unknown[i]));
}

static enum admin_parse
parse(const char *text, struct admin_parsed *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s", text);
	return admin_request_parse(buf, p);
}

static void
request_parser_maps_each_socket_command_to_its_entry(void **state)
{
	char line[ADMIN_REQUEST_MAX];
	struct admin_parsed p;

	(void)state;
	for (int i = 0; i < ADMIN_CMD__COUNT; i++) {
		const struct admin_cmd_def *d = &admin_cmds[i];

		if (d->via != ADMIN_VIA_SOCKET) {
			/* lock and route are the store's: the socket does not know them */
			assert_int_equal(parse(d->name, &p, line, sizeof(line)),
			                 ADMIN_PARSE_UNKNOWN);
			assert_null(p.cmd);
			continue;
		}
		assert_int_equal(parse(d->name, &p, line, sizeof(line)), ADMIN_PARSE_OK);
		assert_ptr_equal(p.cmd, d);
		assert_int_equal(p.nargs, 0);
		snprintf(line, sizeof(line), "%s a%%20b c", d->name);
		assert_int_equal(admin_request_parse(line, &p), d->flags & ADMIN_CMD_NO_ARGS
		                                                    ? ADMIN_PARSE_NO_ARGS
		                                                    : ADMIN_PARSE_OK);
		assert_ptr_equal(p.cmd, d);
		assert_int_equal(p.nargs, 2);
		assert_string_equal(p.args[0], "a b");
		assert_string_equal(p.args[1], "c");
	}
}

static void
request_parser_refuses_unknown_words_and_bad_lines(void **state)
{
	static const struct {
		const char *line;
		enum admin_parse rc;
	} rows[] = {
	    {"frobnicate", ADMIN_PARSE_UNKNOWN},
	    {"Sessions", ADMIN_PARSE_UNKNOWN},
	    {"frobnicate user=a", ADMIN_PARSE_UNKNOWN},
	    {"", ADMIN_PARSE_EMPTY},
	    {"   ", ADMIN_PARSE_EMPTY},
	    {"sessions \x01", ADMIN_PARSE_BAD_BYTE},
	    {"sessions user=%zz", ADMIN_PARSE_BAD_ESCAPE},
	    {"sessions user=%00", ADMIN_PARSE_BAD_ESCAPE},
	    {"sessions 1 2 3 4 5 6 7 8 9", ADMIN_PARSE_TOO_MANY},
	    {"reload now", ADMIN_PARSE_NO_ARGS},
	};
	char line[ADMIN_REQUEST_MAX];
	struct admin_parsed p;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(parse(rows[i].line, &p, line, sizeof(line)), rows[i].rc);
	assert_int_equal(parse("sessions \x7f", &p, line, sizeof(line)), ADMIN_PARSE_BAD_BYTE);
	assert_int_equal(p.bad_byte, 0x7f);
}

/* ---- the man page and the table -------------------------------------------- */

static char *
read_man(void)
{
	return unit_read_file(SRCDIR "/man/postern.8");
}

/* The first word of ".Cm word ..." at line, into buf; false when line is
 * not such a line. */
static bool
cm_word(const char *line, const char *prefix, char *buf, size_t len)
{
	size_t k = strlen(prefix), n = 0;

	if (strncmp(line, prefix, k) != 0)
		return false;
	line += k;
	while (line[n] != '\0' && line[n] != ' ' && line[n] != '\n' && n + 1 < len)
		n++;
	memcpy(buf, line, n);
	buf[n] = '\0';
	return n > 0;
}

static void
man_page_synopsis_names_exactly_the_table_commands(void **state)
{
	char *man = read_man(), *syn, *end, word[64];
	bool seen[ADMIN_CMD__COUNT] = {false};

	(void)state;
	syn = strstr(man, "\n.Sh SYNOPSIS\n");
	assert_non_null(syn);
	end = strstr(syn + 1, "\n.Sh ");
	assert_non_null(end);
	*end = '\0';
	/* Each command line of the synopsis: ".Fl c Ar file" then ".Cm word". */
	for (char *l = strstr(syn, "\n.Fl c Ar file\n"); l != NULL;
	     l = strstr(l + 1, "\n.Fl c Ar file\n")) {
		const struct admin_cmd_def *d;

		if (!cm_word(l + strlen("\n.Fl c Ar file\n"), ".Cm ", word, sizeof(word)))
			continue; /* postern [-t] -c file: the daemon itself */
		d = admin_cmd_find(word);
		if (d == NULL)
			fail_msg("postern.8 SYNOPSIS has \"%s\", the command table does not", word);
		seen[d->id] = true;
	}
	for (int i = 0; i < ADMIN_CMD__COUNT; i++)
		if (!seen[i])
			fail_msg("the command table has \"%s\", postern.8 SYNOPSIS does not",
			         admin_cmds[i].name);
	free(man);
}

static void
man_page_describes_each_socket_command(void **state)
{
	char *man = read_man(), *list, *end, word[64];
	bool seen[ADMIN_CMD__COUNT] = {false};

	(void)state;
	/* The list after "through its admin socket". */
	list = strstr(man, "admin socket\n.Pq the Cm admin.socket");
	assert_non_null(list);
	end = strstr(list, "\n.El\n");
	assert_non_null(end);
	*end = '\0';
	for (char *l = strstr(list, "\n.It Cm "); l != NULL; l = strstr(l + 1, "\n.It Cm ")) {
		const struct admin_cmd_def *d;

		assert_true(cm_word(l + 1, ".It Cm ", word, sizeof(word)));
		d = admin_cmd_find(word);
		if (d == NULL || d->via != ADMIN_VIA_SOCKET)
			fail_msg("postern.8 lists \"%s\" among the socket's commands", word);
		seen[d->id] = true;
	}
	for (int i = 0; i < ADMIN_CMD__COUNT; i++)
		if (admin_cmds[i].via == ADMIN_VIA_SOCKET && !seen[i])
			fail_msg("postern.8 does not describe \"%s\"", admin_cmds[i].name);
	free(man);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_command_has_a_name_arguments_help_and_handlers),
	    cmocka_unit_test(command_names_are_distinct),
	    cmocka_unit_test(find_maps_each_name_to_its_entry_and_nothing_else),
	    cmocka_unit_test(request_parser_maps_each_socket_command_to_its_entry),
	    cmocka_unit_test(request_parser_refuses_unknown_words_and_bad_lines),
	    cmocka_unit_test(man_page_synopsis_names_exactly_the_table_commands),
	    cmocka_unit_test(man_page_describes_each_socket_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
