/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: spawning helpers without a shell (src/util/proc.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proc.h"

static void test_status_and_output(void **state)
{
	const char *const ok[] = { "echo", "hello", NULL };
	const char *const bad[] = { "false", NULL };
	struct proc_result r;

	(void)state;
	assert_int_equal(proc_run(ok, &r), 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "hello\n");
	proc_result_release(&r);
	assert_int_equal(proc_run(bad, &r), 0);
	assert_int_equal(r.status, 1);
	proc_result_release(&r);
}

static void test_no_shell(void **state)
{
	/* metacharacters reach the program as they are */
	const char *const argv[] = { "echo", "$(id) ; rm -rf / `x` | y", NULL };
	struct proc_result r;

	(void)state;
	assert_int_equal(proc_run(argv, &r), 0);
	assert_string_equal(r.out, "$(id) ; rm -rf / `x` | y\n");
	proc_result_release(&r);
}

static void test_stderr_and_checked(void **state)
{
	const char *const argv[] = { "ls", "/nonexistent-xsng", NULL };
	const char *const full[] = { "sh", "-c", "echo 'No space left on device' >&2; exit 1", NULL };
	char line[256];

	(void)state;
	assert_int_equal(proc_run_checked(argv, line, sizeof(line)), -EIO);
	assert_non_null(strstr(line, "nonexistent-xsng"));
	/* (this test itself may use sh: the point is what the parser sees)
	 * the verdict is the exit status: words on stderr do not change it */
	assert_int_equal(proc_run_checked(full, line, sizeof(line)), -EIO);
	assert_non_null(strstr(line, "No space left"));
}

static void test_missing_program(void **state)
{
	const char *const argv[] = { "no-such-program-xsng", NULL };
	struct proc_result r;

	(void)state;
	assert_int_equal(proc_run(argv, &r), -ENOENT);
	assert_non_null(r.out);
	proc_result_release(&r);
}

static void test_large_output(void **state)
{
	const char *const argv[] = { "head", "-c", "300000", "/dev/zero", NULL };
	struct proc_result r;

	(void)state;
	assert_int_equal(proc_run(argv, &r), 0);
	assert_int_equal(r.status, 0);
	proc_result_release(&r);
}

/* A detached child sees a fixed PATH, our XSNG_* variables and nothing
 * else of our environment; its fd 3 is the one we hand it. */
static void test_detached_environment(void **state)
{
	const char *const argv[] = { "/usr/bin/env", "sh", "-c",
				     "printenv >&3", NULL };
	struct proc_detached opt = { .pass_xsng = true };
	char buf[8192];
	size_t got = 0;
	ssize_t n;
	int fds[2], status;
	pid_t pid;

	(void)state;
	setenv("XSNG_UNIT_TEST", "passed-on", 1);
	setenv("NOT_OURS_UNIT_TEST", "kept-back", 1);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	opt.ready_fd = fds[1];
	assert_int_equal(proc_spawn_detached(argv, &opt, &pid), 0);
	close(fds[1]);
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(strstr(buf, "XSNG_UNIT_TEST=passed-on\n"));
	assert_non_null(strstr(buf, "PATH=" PROC_PATH "\n"));
	assert_null(strstr(buf, "NOT_OURS_UNIT_TEST"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_and_output),
		cmocka_unit_test(test_no_shell),
		cmocka_unit_test(test_stderr_and_checked),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_large_output),
		cmocka_unit_test(test_detached_environment),
	};

	return cmocka_run_group_tests_name("proc", tests, NULL, NULL) ? 1 : 0;
}
