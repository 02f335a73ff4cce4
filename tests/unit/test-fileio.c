/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: atomic writes and staged commits (src/util/fileio.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fileio.h"

struct scratch {
	char path[64];
	int fd;
};

static int setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	strcpy(s->path, "/tmp/xsng-unit.XXXXXX");
	if (!mkdtemp(s->path))
		return -1;
	s->fd = open(s->path, O_RDONLY | O_DIRECTORY);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct scratch *s = *state;
	char cmd[128];
	DIR *d = opendir(s->path);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
			unlinkat(s->fd, de->d_name, 0);
	if (d)
		closedir(d);
	close(s->fd);
	snprintf(cmd, sizeof(cmd), "%s", s->path);
	rmdir(cmd);
	free(s);
	return 0;
}

static int count_entries(int dirfd)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;
	int n = 0;

	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char *slurp(int dirfd, const char *name)
{
	char *buf = NULL;

	assert_int_equal(read_file_at(dirfd, name, 1 << 20, &buf, NULL), 0);
	return buf;
}

static void test_atomic_replace(void **state)
{
	struct scratch *s = *state;
	char *b;

	assert_int_equal(write_file_atomic_at(s->fd, "f.json", "one", 3), 0);
	assert_int_equal(write_file_atomic_at(s->fd, "f.json", "second", 6), 0);
	b = slurp(s->fd, "f.json");
	assert_string_equal(b, "second");
	free(b);
	assert_int_equal(count_entries(s->fd), 1);	/* no temp left */
}

/* by path: the directory is the path's own, never the current one */
static void test_atomic_by_path(void **state)
{
	struct scratch *s = *state;
	char path[128];
	char *b;

	snprintf(path, sizeof(path), "%s/mark", s->path);
	assert_int_equal(write_file_atomic(path, "1 why\n", 6), 0);
	assert_int_equal(write_file_atomic(path, "2 why\n", 6), 0);
	b = slurp(s->fd, "mark");
	assert_string_equal(b, "2 why\n");
	free(b);
	assert_int_equal(count_entries(s->fd), 1);
	snprintf(path, sizeof(path), "%s/", s->path);
	assert_int_equal(write_file_atomic(path, "x", 1), -EISDIR);
	snprintf(path, sizeof(path), "%s/no-such-dir/mark", s->path);
	assert_int_equal(write_file_atomic(path, "x", 1), -ENOENT);
	assert_int_equal(count_entries(s->fd), 1);
}

static void test_staged_commit_in_order(void **state)
{
	struct scratch *s = *state;
	struct staged_file f[2];
	char *b;

	assert_int_equal(stage_file_at(s->fd, "a", "A", 1, &f[0]), 0);
	assert_int_equal(stage_file_at(s->fd, "b", "B", 1, &f[1]), 0);
	/* staged files are invisible under their names until commit */
	assert_int_equal(faccessat(s->fd, "a", F_OK, 0), -1);
	assert_int_equal(commit_staged_at(s->fd, f, 2), 0);
	b = slurp(s->fd, "a");
	assert_string_equal(b, "A");
	free(b);
	assert_int_equal(count_entries(s->fd), 2);
}

static void test_abort_and_stale_temps(void **state)
{
	struct scratch *s = *state;
	struct staged_file f;

	assert_int_equal(stage_file_at(s->fd, "x", "X", 1, &f), 0);
	/* a crashed writer leaves its temp: the sweep removes it */
	assert_int_equal(remove_stale_temps_at(s->fd), 1);
	assert_int_equal(count_entries(s->fd), 0);
	assert_int_equal(stage_file_at(s->fd, "y", "Y", 1, &f), 0);
	abort_staged_at(s->fd, &f, 1);
	assert_int_equal(count_entries(s->fd), 0);
}

static void test_read_limit(void **state)
{
	struct scratch *s = *state;
	char *b = NULL;
	char big[10000];

	memset(big, 'x', sizeof(big));
	assert_int_equal(write_file_atomic_at(s->fd, "big", big, sizeof(big)), 0);
	assert_int_equal(read_file_at(s->fd, "big", 4096, &b, NULL), -EFBIG);
	assert_null(b);
	assert_int_equal(read_file_at(s->fd, "missing", 4096, &b, NULL), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atomic_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_by_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staged_commit_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_stale_temps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_limit, setup, teardown),
	};

	return cmocka_run_group_tests_name("fileio", tests, NULL, NULL) ? 1 : 0;
}
