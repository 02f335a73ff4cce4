/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Running helper programs (qemu-img, mkfs.*, mount): posix_spawn with an argv
 * array, a fixed PATH and LC_ALL=C, stdin from /dev/null, stdout and stderr
 * captured.  Never a shell.
 */
#ifndef PROC_H
#define PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PROC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct proc_result {
	int status;	/* exit code; 128+N when killed by signal N */
	char *out;	/* captured stdout, NUL-terminated (never NULL) */
	char *err;	/* captured stderr, NUL-terminated (never NULL) */
};

/*
 * Run argv[0] (looked up in PROC_PATH) to completion.  Returns 0 when the
 * program ran (whatever its exit status, see ret->status) or -errno when it
 * could not be started.  ret is always initialised; release it.
 */
int proc_run(const char *const argv[], struct proc_result *ret);
void proc_result_release(struct proc_result *r);

/*
 * proc_run() and require exit status 0.  On failure logs the command, the
 * status and the last line of stderr, and returns -EIO (-ENOENT when the
 * program is missing): the verdict comes from the exit status alone, never
 * from the program's words (a caller that must know why asks the system,
 * e.g. statvfs for a full disk).
 * 'err_line' (optional, size len) receives the last stderr line.
 */
int proc_run_checked(const char *const argv[], char *err_line, size_t len);

/* The last non-empty line of a program's output, for messages. */
void proc_last_line(const char *s, char *out, size_t len);

/*
 * Start argv[0] (an absolute path) detached: its own session, stdin and
 * stdout on /dev/null (a plugin's stdout is xapi's JSON), stderr appended
 * to stderr_path or /dev/null, and ready_fd (>= 0) as its fd 3.  Its
 * environment is PATH=PROC_PATH and LC_ALL=C, plus our own XSNG_*
 * variables and the sanitizers' settings when pass_xsng is set (the
 * plugin's configuration and test hooks).  It outlives the caller, which does not wait for it.
 */
struct proc_detached {
	const char *stderr_path;
	int ready_fd;
	bool pass_xsng;
};
int proc_spawn_detached(const char *const argv[],
			const struct proc_detached *opt, pid_t *pid);

#endif
