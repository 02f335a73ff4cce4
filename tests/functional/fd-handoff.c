/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Test helper for Datapath.import_activate: plays xapi's part of the
 * import socket.
 *
 *   fd-handoff serve LISTEN IMPORT
 *       listen on the Unix socket LISTEN; pass each accepted connection to
 *       the import socket IMPORT with SCM_RIGHTS plus the text "dp" (as
 *       xapi does), then close our copy.  Runs until killed.
 *   fd-handoff proxy LISTEN TARGET
 *       listen on LISTEN and relay each connection's bytes both ways to a
 *       new connection to the Unix socket TARGET (xapi's NBD proxy); the
 *       relays die with it (kill it to cut the mirror's remote).
 *   fd-handoff junk IMPORT nofd|twofds|notsock|pipe|silent
 *       one bad client: text without an fd; two fds; a regular file; a
 *       pipe; or connect and say nothing for 30 s.  Exit 0 once sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		fprintf(stderr, "fd-handoff: %s: path too long\n", path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (unix_addr(path, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "fd-handoff: connect %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send "dp" with fds[0..n) attached. */
static int send_fds(int sock, const int *fds, int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} u;
	char text[] = "dp";
	struct iovec iov = { .iov_base = text, .iov_len = 2 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	if (n > 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
	}
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 2) {
		fprintf(stderr, "fd-handoff: sendmsg: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	int lfd;

	if (unix_addr(path, &sa) < 0)
		return -1;
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0) {
		fprintf(stderr, "fd-handoff: listen %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return lfd;
}

/* Copy both ways until either side closes. */
static void relay(int a, int b)
{
	char buf[65536];

	for (;;) {
		struct pollfd p[2] = { { .fd = a, .events = POLLIN },
				       { .fd = b, .events = POLLIN } };
		int i;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (i = 0; i < 2; i++) {
			ssize_t n, w, done = 0;

			if (!p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			while (done < n) {
				w = write(p[1 - i].fd, buf + done,
					  (size_t)(n - done));
				if (w <= 0)
					return;
				done += w;
			}
		}
	}
}

static int proxy(const char *listen_path, const char *target)
{
	int lfd = listen_on(listen_path);

	if (lfd < 0)
		return 1;
	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), out;
		pid_t pid;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		out = connect_unix(target);
		if (out >= 0 && (pid = fork()) == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(1);
			relay(fd, out);
			_exit(0);
		}
		if (out >= 0)
			close(out);
		close(fd);
	}
}

static int serve(const char *listen_path, const char *import)
{
	int lfd = listen_on(listen_path);

	if (lfd < 0)
		return 1;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), sock;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "fd-handoff: accept: %s\n",
				strerror(errno));
			return 1;
		}
		sock = connect_unix(import);
		if (sock >= 0) {
			(void)send_fds(sock, &fd, 1);
			close(sock);
		}
		close(fd);
	}
}

static int junk(const char *import, const char *kind)
{
	int sock = connect_unix(import), fds[2] = { -1, -1 }, n = 0, r;

	if (sock < 0)
		return 1;
	if (!strcmp(kind, "silent")) {
		sleep(30);
		return 0;
	}
	if (!strcmp(kind, "twofds")) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
			return 1;
		n = 2;
	} else if (!strcmp(kind, "notsock")) {
		fds[0] = open("/dev/null", O_RDWR);
		n = 1;
	} else if (!strcmp(kind, "pipe")) {
		if (pipe(fds) < 0)
			return 1;
		n = 1;
	} else if (strcmp(kind, "nofd")) {
		fprintf(stderr, "fd-handoff: unknown junk '%s'\n", kind);
		return 2;
	}
	r = send_fds(sock, fds, n);
	close(sock);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "proxy"))
		return proxy(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "junk"))
		return junk(argv[2], argv[3]);
	fprintf(stderr, "usage: fd-handoff serve LISTEN IMPORT | "
		"fd-handoff proxy LISTEN TARGET | "
		"fd-handoff junk IMPORT nofd|twofds|notsock|pipe|silent\n");
	return 2;
}
