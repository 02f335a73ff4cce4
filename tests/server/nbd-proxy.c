/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Test helper: nbd-proxy LISTEN TARGET
 * Listens on the Unix socket LISTEN; each connection is forwarded to a new
 * connection to the Unix socket TARGET, byte for byte both ways, until
 * either side closes.  One process (poll), so that killing its PID cuts
 * every forwarded connection at once (xapi's NBD proxy going away).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PAIRS 16

static int unix_socket(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		fprintf(stderr, "nbd-proxy: path too long: %s\n", path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Copy what fd has to peer; -1 when either side is done. */
static int pump(int fd, int peer)
{
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

	if (n <= 0)
		return n < 0 && errno == EINTR ? 0 : -1;
	while (off < n) {
		ssize_t w = write(peer, buf + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int pairs[MAX_PAIRS][2], npairs = 0, lfd;
	struct sockaddr_un sa, ta;

	if (argc != 3) {
		fprintf(stderr, "usage: nbd-proxy LISTEN TARGET\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = unix_socket(argv[1], &sa);
	if (lfd < 0 || unix_socket(argv[2], &ta) < 0)
		return 1;
	unlink(argv[1]);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 8) < 0) {
		perror("nbd-proxy: listen");
		return 1;
	}
	for (;;) {
		struct pollfd p[1 + 2 * MAX_PAIRS];
		int n = 1;

		p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < npairs; i++) {
			p[n++] = (struct pollfd){ .fd = pairs[i][0],
						  .events = POLLIN };
			p[n++] = (struct pollfd){ .fd = pairs[i][1],
						  .events = POLLIN };
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("nbd-proxy: poll");
			return 1;
		}
		for (int i = npairs - 1; i >= 0; i--) {
			struct pollfd *a = &p[1 + 2 * i], *b = &p[2 + 2 * i];
			int r = 0;

			if (a->revents)
				r = pump(pairs[i][0], pairs[i][1]);
			if (r == 0 && b->revents)
				r = pump(pairs[i][1], pairs[i][0]);
			if (r < 0) {
				close(pairs[i][0]);
				close(pairs[i][1]);
				pairs[i][0] = pairs[npairs - 1][0];
				pairs[i][1] = pairs[npairs - 1][1];
				npairs--;
			}
		}
		if (p[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), t;

			if (c < 0)
				continue;
			t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (npairs == MAX_PAIRS || t < 0 ||
			    connect(t, (struct sockaddr *)&ta, sizeof(ta)) < 0) {
				close(c);
				if (t >= 0)
					close(t);
				continue;
			}
			pairs[npairs][0] = c;
			pairs[npairs][1] = t;
			npairs++;
		}
	}
}
