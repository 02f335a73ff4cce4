/* SPDX-License-Identifier: LGPL-2.1-only */
/* Run helper programs with posix_spawn: argv array, fixed PATH, no shell. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "proc.h"

#define CAPTURE_MAX (4 * 1024 * 1024)

/* Resolve a bare program name in PROC_PATH (not the caller's PATH). */
static int find_program(const char *name, char *out, size_t len)
{
	const char *p = PROC_PATH;

	if (strchr(name, '/')) {
		snprintf(out, len, "%s", name);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	while (*p) {
		size_t n = strcspn(p, ":");

		snprintf(out, len, "%.*s/%s", (int)n, p, name);
		if (access(out, X_OK) == 0)
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

struct capture {
	char *buf;
	size_t len, cap;
};

static int capture_read(int fd, struct capture *c)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (n == 0)
		return 0;
	if (c->len + (size_t)n + 1 > c->cap && c->len < CAPTURE_MAX) {
		size_t ncap = (c->cap ? c->cap * 2 : 8192);
		char *nb;

		while (ncap < c->len + (size_t)n + 1)
			ncap *= 2;
		nb = realloc(c->buf, ncap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = ncap;
	}
	/* past CAPTURE_MAX we keep draining but drop the bytes */
	if (c->len + (size_t)n + 1 <= c->cap) {
		memcpy(c->buf + c->len, tmp, (size_t)n);
		c->len += (size_t)n;
	}
	return 1;
}

static char *capture_take(struct capture *c)
{
	char *s = c->buf ? c->buf : malloc(1);

	if (s)
		s[c->len] = '\0';
	c->buf = NULL;
	return s;
}

static void log_argv(const char *const argv[])
{
	char line[1024];
	size_t off = 0;
	int i;

	for (i = 0; argv[i] && off < sizeof(line) - 1; i++) {
		int n = snprintf(line + off, sizeof(line) - off, "%s'%s'",
				 i ? " " : "", argv[i]);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	line[sizeof(line) - 1] = '\0';
	log_debug("run: %s", line);
}

int proc_run(const char *const argv[], struct proc_result *ret)
{
	static const char *const envp[] = { "PATH=" PROC_PATH, "LC_ALL=C",
					     NULL };
	posix_spawn_file_actions_t fa;
	struct capture out = { 0 }, err = { 0 };
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 };
	char path[PATH_MAX];
	int r, wstatus;
	pid_t pid;

	ret->status = -1;
	ret->out = ret->err = NULL;
	log_argv(argv);
	r = find_program(argv[0], path, sizeof(path));
	if (r < 0)
		goto fill;
	if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
		r = -errno;
		goto close_pipes;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
	r = -posix_spawn(&pid, path, &fa, NULL, (char *const *)argv,
			  (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	if (r < 0)
		goto close_pipes;

	/* drain both pipes together so neither can fill up and block */
	{
		struct pollfd pfd[2] = { { .fd = opipe[0], .events = POLLIN },
					 { .fd = epipe[0], .events = POLLIN } };
		int open_fds = 2;

		while (open_fds > 0) {
			int i;

			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			for (i = 0; i < 2; i++) {
				int rr;

				if (pfd[i].fd < 0 || !pfd[i].revents)
					continue;
				rr = capture_read(pfd[i].fd, i ? &err : &out);
				if (rr <= 0) {
					pfd[i].fd = -1;
					open_fds--;
				}
			}
		}
	}
	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			goto close_pipes;
		}
	}
	if (WIFEXITED(wstatus))
		ret->status = WEXITSTATUS(wstatus);
	else if (WIFSIGNALED(wstatus))
		ret->status = 128 + WTERMSIG(wstatus);
	r = 0;
close_pipes:
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
	}
fill:
	ret->out = capture_take(&out);
	ret->err = capture_take(&err);
	free(out.buf);
	free(err.buf);
	if (!ret->out || !ret->err) {
		proc_result_release(ret);
		return -ENOMEM;
	}
	return r;
}

void proc_result_release(struct proc_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

void proc_last_line(const char *s, char *out, size_t len)
{
	const char *end = s + strlen(s), *start;

	while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > s && start[-1] != '\n')
		start--;
	snprintf(out, len, "%.*s", (int)(end - start), start);
}

int proc_run_checked(const char *const argv[], char *err_line, size_t len)
{
	struct proc_result res;
	char line[512];
	int r;

	r = proc_run(argv, &res);
	if (r < 0) {
		log_error("cannot run %s: %s", argv[0], strerror(-r));
		if (err_line)
			snprintf(err_line, len, "cannot run %s: %s", argv[0],
				 strerror(-r));
		proc_result_release(&res);
		return r;
	}
	if (res.status == 0) {
		proc_result_release(&res);
		return 0;
	}
	proc_last_line(res.err[0] ? res.err : res.out, line, sizeof(line));
	log_error("%s failed (status %d): %s", argv[0], res.status, line);
	if (err_line)
		snprintf(err_line, len, "%s", line);
	/* judged by the exit status alone: what a program prints is for
	 * people (and changes with its version and language) */
	proc_result_release(&res);
	return -EIO;
}

extern char **environ;

#define DETACHED_ENV_MAX 32

/* A sanitized build's settings reach its children too (make SANITIZE=1). */
static bool is_sanitizer_env(const char *e)
{
	return !strncmp(e, "ASAN_OPTIONS=", 13) ||
	       !strncmp(e, "UBSAN_OPTIONS=", 14) ||
	       !strncmp(e, "LSAN_OPTIONS=", 13);
}

int proc_spawn_detached(const char *const argv[],
			const struct proc_detached *opt, pid_t *pid)
{
	const char *envp[DETACHED_ENV_MAX + 3];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	size_t n = 0;
	char **e;
	int r;

	envp[n++] = "PATH=" PROC_PATH;
	envp[n++] = "LC_ALL=C";
	for (e = environ; opt->pass_xsng && e && *e; e++)
		if ((!strncmp(*e, "XSNG_", 5) || is_sanitizer_env(*e)) &&
		    n < DETACHED_ENV_MAX + 2)
			envp[n++] = *e;
	envp[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, opt->stderr_path ?
					 opt->stderr_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (opt->ready_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, opt->ready_fd, 3);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
	r = -posix_spawn(pid, argv[0], &fa, &attr, (char *const *)argv,
			 (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return r;
}
