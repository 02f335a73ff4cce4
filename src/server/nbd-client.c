/* SPDX-License-Identifier: LGPL-2.1-only */
/* NBD client for the mirror job: handshake, request headers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nbd-proto.h"
#include "nbd-client.h"

#define NBD_CLIENT_REPLY_MAX	(64 * 1024)	/* option reply we accept */

uint8_t *nbd_client_put_request(uint8_t *p, uint16_t flags, uint16_t type,
				uint64_t cookie, uint64_t offset,
				uint32_t length)
{
	p = nbd_put32(p, NBD_REQUEST_MAGIC);
	p = nbd_put16(p, flags);
	p = nbd_put16(p, type);
	p = nbd_put64(p, cookie);
	p = nbd_put64(p, offset);
	return nbd_put32(p, length);
}

/* ---------------------------------------------------------- handshake */

struct hs {
	int fd;
	uint64_t deadline_ms;
	char *why;
	size_t why_len;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int hs_fail(struct hs *h, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int hs_fail(struct hs *h, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->why, h->why_len, fmt, ap);
	va_end(ap);
	return err;
}

/* Wait for events on the socket, until the handshake's deadline. */
static int hs_wait(struct hs *h, short events)
{
	struct pollfd pfd = { .fd = h->fd, .events = events };
	uint64_t now = now_ms();
	int r;

	if (now >= h->deadline_ms)
		return -ETIMEDOUT;
	r = poll(&pfd, 1, (int)(h->deadline_ms - now));
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return -ETIMEDOUT;
	return 0;
}

static int hs_send(struct hs *h, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(h->fd, (const char *)buf + done, len - done,
				 MSG_NOSIGNAL);

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return hs_fail(h, -errno, "cannot send to the remote: %s",
				       strerror(errno));
		n = hs_wait(h, POLLOUT);
		if (n < 0)
			return hs_fail(h, (int)n, "the remote's handshake timed out");
	}
	return 0;
}

static int hs_recv(struct hs *h, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = recv(h->fd, (char *)buf + done, len - done, 0);

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return hs_fail(h, -ECONNRESET, "the remote closed the "
				       "connection during the handshake");
		if (errno != EAGAIN && errno != EINTR)
			return hs_fail(h, -errno, "cannot read from the remote: %s",
				       strerror(errno));
		n = hs_wait(h, POLLIN);
		if (n < 0)
			return hs_fail(h, (int)n, "the remote's handshake timed out");
	}
	return 0;
}

static int hs_send_option(struct hs *h, uint32_t opt, const char *export,
			  bool go)
{
	size_t nlen = strlen(export), len = go ? 4 + nlen + 2 : nlen;
	uint8_t *b = malloc(NBD_OPTION_HDR_SIZE + len), *p;
	int r;

	if (!b)
		return hs_fail(h, -ENOMEM, "out of memory");
	p = nbd_put64(b, NBD_OPTS_MAGIC);
	p = nbd_put32(p, opt);
	p = nbd_put32(p, (uint32_t)len);
	if (go)
		p = nbd_put32(p, (uint32_t)nlen);
	memcpy(p, export, nlen);
	p += nlen;
	if (go)
		p = nbd_put16(p, 0);	/* no information requests */
	r = hs_send(h, b, (size_t)(p - b));
	free(b);
	return r;
}

/* NBD_OPT_GO: 0 done, 1 unsupported (try EXPORT_NAME), -errno. */
static int hs_go(struct hs *h, const char *export, struct nbd_export_info *info)
{
	bool have_export = false;
	uint8_t hdr[20], data[12];
	int r = hs_send_option(h, NBD_OPT_GO, export, true);

	while (r == 0) {
		uint32_t type, len;

		r = hs_recv(h, hdr, sizeof(hdr));
		if (r < 0)
			return r;
		if (nbd_get64(hdr) != NBD_REP_MAGIC ||
		    nbd_get32(hdr + 8) != NBD_OPT_GO)
			return hs_fail(h, -EPROTO, "the remote sent a malformed "
				       "option reply");
		type = nbd_get32(hdr + 12);
		len = nbd_get32(hdr + 16);
		if (len > NBD_CLIENT_REPLY_MAX)
			return hs_fail(h, -EPROTO, "the remote sent an oversized "
				       "option reply");
		if (type == NBD_REP_INFO && len >= 2) {
			uint8_t *rest;
			size_t keep = len < sizeof(data) ? len : sizeof(data);

			r = hs_recv(h, data, keep);
			if (r == 0 && len > keep) {
				rest = malloc(len - keep);
				r = rest ? hs_recv(h, rest, len - keep) :
					   hs_fail(h, -ENOMEM, "out of memory");
				free(rest);
			}
			if (r < 0)
				return r;
			if (nbd_get16(data) == NBD_INFO_EXPORT) {
				if (len != 12)
					return hs_fail(h, -EPROTO, "the remote "
						"sent a malformed export "
						"information");
				info->size = nbd_get64(data + 2);
				info->flags = nbd_get16(data + 10);
				have_export = true;
			}
			continue;
		}
		if (len) {
			uint8_t *rest = malloc(len);

			r = rest ? hs_recv(h, rest, len) :
				   hs_fail(h, -ENOMEM, "out of memory");
			free(rest);
			if (r < 0)
				return r;
		}
		if (type == NBD_REP_ACK) {
			if (!have_export)
				return hs_fail(h, -EPROTO, "the remote accepted "
					       "the export without saying its "
					       "size");
			return 0;
		}
		if (type == NBD_REP_ERR_UNSUP)
			return 1;
		if (type == NBD_REP_ERR_UNKNOWN)
			return hs_fail(h, -ENOENT, "the remote has no export "
				       "named '%s'", export);
		if (type & 0x80000000U)
			return hs_fail(h, -EPROTO, "the remote refused the "
				       "export '%s' (option error %#x)", export,
				       type);
		/* another informational reply: ignored */
	}
	return r;
}

static int hs_export_name(struct hs *h, const char *export, bool no_zeroes,
			  struct nbd_export_info *info)
{
	uint8_t b[10 + 124];
	int r = hs_send_option(h, NBD_OPT_EXPORT_NAME, export, false);

	if (r == 0)
		r = hs_recv(h, b, no_zeroes ? 10 : sizeof(b));
	if (r < 0)
		return r;
	info->size = nbd_get64(b);
	info->flags = nbd_get16(b + 8);
	return 0;
}

int nbd_client_connect(const char *sock, const char *export, int timeout_ms,
		       int *ret_fd, struct nbd_export_info *info, char *why,
		       size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hs h = { .why = why, .why_len = why_len,
			.deadline_ms = now_ms() + (uint64_t)timeout_ms };
	uint8_t greet[18], cflags[4];
	uint16_t hflags;
	int r;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return hs_fail(&h, -ENAMETOOLONG, "socket path too long");
	strcpy(sa.sun_path, sock);
	h.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h.fd < 0)
		return hs_fail(&h, -errno, "cannot create a socket: %s",
			       strerror(errno));
	/* a Unix socket connects at once or fails (EAGAIN: backlog full) */
	if (connect(h.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = hs_fail(&h, -errno, "cannot connect to the remote's socket "
			    "'%s': %s", sock, strerror(errno));
		goto fail;
	}
	r = hs_recv(&h, greet, sizeof(greet));
	if (r < 0)
		goto fail;
	if (nbd_get64(greet) != NBD_MAGIC ||
	    nbd_get64(greet + 8) != NBD_OPTS_MAGIC) {
		r = hs_fail(&h, -EPROTO, "the remote is not a newstyle NBD "
			    "server");
		goto fail;
	}
	hflags = nbd_get16(greet + 16);
	if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
		r = hs_fail(&h, -EPROTO, "the remote does not speak fixed "
			    "newstyle NBD");
		goto fail;
	}
	nbd_put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE |
		  (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
	r = hs_send(&h, cflags, sizeof(cflags));
	if (r == 0)
		r = hs_go(&h, export, info);
	if (r == 1)
		r = hs_export_name(&h, export,
				   hflags & NBD_FLAG_NO_ZEROES, info);
	if (r < 0)
		goto fail;
	*ret_fd = h.fd;
	return 0;
fail:
	close(h.fd);
	return r;
}
