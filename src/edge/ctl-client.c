/* SPDX-License-Identifier: LGPL-2.1-only */
/* Client side of the datapath server's control socket. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl-client.h"
#include "ctl-proto.h"
#include "fileio.h"
#include "json-io.h"

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 +
	       (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int control_call(const char *path, json_object *req, int timeout_ms,
		 json_object **ret)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	CLEANUP_CLOSE int fd = -1;
	CLEANUP_FREE char *buf = NULL;
	const char *text = json_to_text(req);
	size_t len = 0, cap = 0;
	struct timespec t0;
	json_object *reply;
	bool ok;
	int r;

	*ret = NULL;
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	/* one send, no SIGPIPE: the server may answer and close as soon as
	 * it has parsed a whole object */
	{
		CLEANUP_FREE char *line = NULL;
		size_t len_line;

		if (asprintf(&line, "%s\n", text) < 0)
			return -ENOMEM;
		len_line = strlen(line);
		if (send(fd, line, len_line, MSG_NOSIGNAL) != (ssize_t)len_line)
			return -errno ? -errno : -EIO;
	}
	shutdown(fd, SHUT_WR);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = timeout_ms - ms_since(&t0);
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > CTL_REPLY_MAX)
				return -EFBIG;
			nb = realloc(buf, cap);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf)
		return -EPROTO;
	buf[len] = '\0';
	r = json_parse_exact(buf, len, &reply);
	if (r < 0 || !json_object_is_type(reply, json_type_object)) {
		if (r == 0)
			json_object_put(reply);
		return -EPROTO;
	}
	if (json_get_bool(reply, CTL_KEY_OK, &ok) < 0)
		ok = false;
	*ret = reply;
	return ok ? 0 : -EREMOTEIO;
}
