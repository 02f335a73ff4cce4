/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Test client that misbehaves on purpose: bad magics, oversized and unknown
 * options, out-of-range, huge and unknown requests, writes on a read-only
 * export, disconnects in the middle of a payload.  After each case a
 * well-behaved client must still be served.
 *
 * usage: nbd-evil SOCKET   (export "" must be writable, size >= 1 MiB)
 *
 * Other modes (one case each, for the shell tests):
 *   nbd-evil SOCKET pipeline ROFF RLEN WOFF WLEN PATTERN
 *       send a READ and a WRITE (bytes PATTERN) in one packet, then wait
 *       for both replies; exit 0 when both succeed.
 *   nbd-evil SOCKET flood N LEN
 *       send N READs of LEN bytes and never read a reply; print "sent"
 *       once all are sent (or the server stopped reading), then sleep
 *       until killed.
 *   nbd-evil SOCKET optflood N
 *       send N NBD_OPT_LIST options and never read the replies; as flood.
 *   nbd-evil SOCKET good
 *       one well-behaved client (write, read back, disconnect).
 *   nbd-evil SOCKET hold N
 *       open N connections and do nothing; print "connected N", then
 *       sleep until killed.
 */
#include <fcntl.h>
#include <poll.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-proto.h"

static const char *sock_path;
static int passed, failed;
static uint64_t export_size;

static int dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool xwrite(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return true;
}

/* 1: got n bytes, 0: EOF, -1: error/timeout */
static int xread(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r == 0)
			return 0;
		if (r < 0)
			return -1;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 1;
}

static void check(bool ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (ok)
		passed++;
	else
		failed++;
}

/* Read the greeting, send client flags. */
static bool greet(int fd, uint32_t cflags)
{
	uint8_t g[18], f[4];

	if (xread(fd, g, sizeof(g)) != 1 || nbd_get64(g) != NBD_MAGIC ||
	    nbd_get64(g + 8) != NBD_OPTS_MAGIC)
		return false;
	nbd_put32(f, cflags);
	return xwrite(fd, f, 4);
}

static bool send_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[16];

	nbd_put64(h, NBD_OPTS_MAGIC);
	nbd_put32(h + 8, opt);
	nbd_put32(h + 12, len);
	return xwrite(fd, h, 16) && (!len || xwrite(fd, data, len));
}

/* Read one option reply; returns its type (0 on failure), skips data. */
static uint32_t opt_reply(int fd, uint8_t *data, uint32_t *len)
{
	uint8_t h[20], skip[4096];
	uint32_t l, type;

	if (xread(fd, h, 20) != 1 || nbd_get64(h) != NBD_REP_MAGIC)
		return 0;
	type = nbd_get32(h + 12);
	l = nbd_get32(h + 16);
	if (len)
		*len = l;
	while (l) {
		uint32_t n = l > sizeof(skip) ? sizeof(skip) : l;

		if (xread(fd, data ? data : skip, n) != 1)
			return 0;
		if (data && n >= 12 && nbd_get16(data) == NBD_INFO_EXPORT)
			export_size = nbd_get64(data + 2);
		data = NULL;
		l -= n;
	}
	return type;
}

/* NBD_OPT_GO on name; returns true when the export is open. */
static bool go(int fd, const char *name)
{
	uint8_t d[512], rep[4096];
	uint32_t nl = (uint32_t)strlen(name), t;

	nbd_put32(d, nl);
	memcpy(d + 4, name, nl);
	nbd_put16(d + 4 + nl, 0);
	if (!send_opt(fd, NBD_OPT_GO, d, 6 + nl))
		return false;
	while ((t = opt_reply(fd, rep, NULL)) == NBD_REP_INFO)
		;
	return t == NBD_REP_ACK;
}

static int open_export(const char *name)
{
	int fd = dial();

	if (!greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) ||
	    !go(fd, name)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_req(int fd, uint32_t magic, uint16_t flags, uint16_t type,
		     uint64_t cookie, uint64_t off, uint32_t len)
{
	uint8_t h[28];

	nbd_put32(h, magic);
	nbd_put16(h + 4, flags);
	nbd_put16(h + 6, type);
	nbd_put64(h + 8, cookie);
	nbd_put64(h + 16, off);
	nbd_put32(h + 24, len);
	return xwrite(fd, h, 28);
}

/* Simple reply: returns the error (or -1 on a broken reply). */
static int64_t simple_reply(int fd, uint64_t cookie, void *data, size_t len)
{
	uint8_t h[16];
	uint32_t err;

	if (xread(fd, h, 16) != 1 || nbd_get32(h) != NBD_SIMPLE_REPLY_MAGIC ||
	    nbd_get64(h + 8) != cookie)
		return -1;
	err = nbd_get32(h + 4);
	if (!err && len && xread(fd, data, len) != 1)
		return -1;
	return err;
}

static bool closed_by_server(int fd)
{
	uint8_t b[64];
	ssize_t r;

	/* drain anything, then expect EOF (or reset) */
	while ((r = read(fd, b, sizeof(b))) > 0)
		;
	return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* A well-behaved client: write, read back, disconnect. */
static bool good_client(void)
{
	static uint8_t w[4096], r[4096];
	int fd = open_export("");
	bool ok;

	if (fd < 0)
		return false;
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(rand() & 0xff);
	ok = send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 1, 8192,
		      sizeof(w)) && xwrite(fd, w, sizeof(w)) &&
	     simple_reply(fd, 1, NULL, 0) == 0 &&
	     send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 2, 8192,
		      sizeof(r)) && simple_reply(fd, 2, r, sizeof(r)) == 0 &&
	     !memcmp(w, r, sizeof(w)) &&
	     send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_DISC, 3, 0, 0) &&
	     closed_by_server(fd);
	close(fd);
	return ok;
}

static void after(const char *what)
{
	char m[256];

	snprintf(m, sizeof(m), "good client after %s", what);
	check(good_client(), m);
}

static void handshake_cases(void)
{
	uint8_t d[64];
	int fd;

	fd = dial();
	check(greet(fd, 0) && closed_by_server(fd),
	      "oldstyle/non-fixed client flags refused");
	close(fd);
	after("non-fixed client");

	fd = dial();
	check(greet(fd, 0xff) && closed_by_server(fd), "unknown client flags");
	close(fd);

	fd = dial();
	greet(fd, 1);
	memset(d, 0x41, 16);
	xwrite(fd, d, 16);
	check(closed_by_server(fd), "bad option magic drops the connection");
	close(fd);
	after("bad option magic");

	fd = dial();
	greet(fd, 1);
	send_opt(fd, NBD_OPT_GO, NULL, 0);
	{
		uint8_t h[16];

		nbd_put64(h, NBD_OPTS_MAGIC);
		nbd_put32(h + 8, NBD_OPT_GO);
		nbd_put32(h + 12, 1U << 20);
		/* the first (empty GO) gets ERR_INVALID; then 1 MiB option */
		check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_INVALID,
		      "GO without data is invalid");
		xwrite(fd, h, 16);
	}
	check(closed_by_server(fd), "oversized option drops the connection");
	close(fd);
	after("oversized option");

	fd = dial();
	greet(fd, 1);
	send_opt(fd, 4242, "abc", 3);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_UNSUP,
	      "unknown option gets ERR_UNSUP");
	send_opt(fd, NBD_OPT_LIST, "x", 1);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_INVALID,
	      "LIST with data gets ERR_INVALID");
	send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_UNSUP,
	      "STARTTLS unsupported");
	nbd_put32(d, 1000);	/* name length beyond the data */
	send_opt(fd, NBD_OPT_INFO, d, 8);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_INVALID,
	      "INFO with inconsistent lengths");
	nbd_put32(d, 8);
	nbd_put32(d + 4, 0);
	nbd_put32(d + 8, 99);	/* query longer than the data */
	send_opt(fd, NBD_OPT_LIST_META_CONTEXT, d, 12);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ERR_INVALID,
	      "LIST_META_CONTEXT with bad query length");
	check(!go(fd, "no-such-export"), "unknown export refused");
	check(go(fd, ""), "GO still works after errors");
	close(fd);

	fd = dial();
	greet(fd, 1);
	send_opt(fd, NBD_OPT_ABORT, NULL, 0);
	check(opt_reply(fd, NULL, NULL) == NBD_REP_ACK && closed_by_server(fd),
	      "ABORT acknowledged and closed");
	close(fd);

	fd = dial();
	xwrite(fd, "\0\0", 2);	/* half the client flags, then gone */
	close(fd);
	after("disconnect during handshake");
}

static void transmission_cases(void)
{
	static uint8_t buf[1 << 20];
	int fd = open_export("");

	check(fd >= 0, "open export");
	if (fd < 0)
		return;
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 10, export_size, 512);
	check(simple_reply(fd, 10, buf, 512) == NBD_EINVAL,
	      "read beyond the end: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 11, UINT64_MAX - 10,
		 512);
	check(simple_reply(fd, 11, buf, 512) == NBD_EINVAL,
	      "read at offset overflow: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 12, export_size - 100,
		 512);
	xwrite(fd, buf, 512);
	check(simple_reply(fd, 12, NULL, 0) == NBD_ENOSPC,
	      "write beyond the end: ENOSPC (payload skipped)");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 13, 0, 0);
	check(simple_reply(fd, 13, NULL, 0) == 0, "zero-length read");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 14, 0, 0);
	check(simple_reply(fd, 14, NULL, 0) == 0, "zero-length write");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 15, 0, 64U << 20);
	check(simple_reply(fd, 15, NULL, 0) == NBD_EINVAL,
	      "64 MiB read: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 0, 42, 16, 0, 512);
	check(simple_reply(fd, 16, NULL, 0) == NBD_EINVAL,
	      "unknown command: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 1U << 12, NBD_CMD_READ, 17, 0, 512);
	check(simple_reply(fd, 17, NULL, 0) == NBD_EINVAL,
	      "unknown flag: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE,
		 18, 0, 512);
	xwrite(fd, buf, 512);
	check(simple_reply(fd, 18, NULL, 0) == NBD_EINVAL,
	      "NO_HOLE on WRITE: EINVAL (payload skipped)");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_BLOCK_STATUS, 19, 0, 512);
	check(simple_reply(fd, 19, NULL, 0) == NBD_EINVAL,
	      "BLOCK_STATUS without meta context: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_TRIM, 20, export_size, 4096);
	check(simple_reply(fd, 20, NULL, 0) == NBD_EINVAL,
	      "TRIM beyond the end: EINVAL");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_FLUSH, 21, 0, 0);
	check(simple_reply(fd, 21, NULL, 0) == 0, "flush");
	send_req(fd, NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 22,
		 1000, 3000);
	memset(buf, 0x5a, 3000);
	xwrite(fd, buf, 3000);
	check(simple_reply(fd, 22, NULL, 0) == 0, "unaligned FUA write");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 23, 1000, 3000);
	memset(buf, 0, 3000);
	check(simple_reply(fd, 23, buf, 3000) == 0 && buf[0] == 0x5a &&
	      buf[2999] == 0x5a, "unaligned read back");
	/* a write larger than 32 MiB: we do not read 4 GiB, we hang up */
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 24, 0, 64U << 20);
	check(closed_by_server(fd), "64 MiB write drops the connection");
	close(fd);
	after("huge write");

	fd = open_export("");
	send_req(fd, 0xdeadbeef, 0, NBD_CMD_READ, 30, 0, 512);
	check(closed_by_server(fd), "bad request magic drops the connection");
	close(fd);
	after("bad request magic");

	fd = open_export("");
	send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 31, 0, 1 << 20);
	xwrite(fd, buf, 1000);
	close(fd);
	after("disconnect in the middle of a payload");

	fd = open_export("");
	xwrite(fd, buf, 10);	/* a third of a header */
	close(fd);
	after("disconnect in the middle of a header");

	fd = open_export("");
	for (int i = 0; i < 200; i++)
		send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 100 + i,
			 (uint64_t)i * 4096, 1 << 16);
	close(fd);	/* gone without reading the replies */
	after("disconnect with requests in flight");

	fd = open_export("@ro");
	check(fd >= 0, "open @ro export");
	if (fd >= 0) {
		send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 40, 0, 512);
		xwrite(fd, buf, 512);
		check(simple_reply(fd, 40, NULL, 0) == NBD_EPERM,
		      "write on @ro: EPERM");
		send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_TRIM, 41, 0, 512);
		check(simple_reply(fd, 41, NULL, 0) == NBD_EPERM,
		      "trim on @ro: EPERM");
		send_req(fd, NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 42, 1000, 3000);
		check(simple_reply(fd, 42, buf, 3000) == 0 && buf[0] == 0x5a,
		      "read on @ro");
		close(fd);
	}
	after("@ro export");
}

static int mode_pipeline(char **argv)
{
	uint64_t roff = strtoull(argv[0], NULL, 0), woff = strtoull(argv[2], NULL, 0);
	uint32_t rlen = (uint32_t)strtoul(argv[1], NULL, 0);
	uint32_t wlen = (uint32_t)strtoul(argv[3], NULL, 0);
	int pat = (int)strtol(argv[4], NULL, 0);
	size_t n = 28 + 28 + wlen;
	uint8_t *pkt = malloc(n), *rbuf = malloc(rlen ? rlen : 1);
	uint8_t h[16];
	int fd = open_export(""), got = 0, rc = 1;

	if (fd < 0 || !pkt || !rbuf)
		goto out;
	/* both headers and the payload in one send */
	nbd_put32(pkt, NBD_REQUEST_MAGIC);
	nbd_put16(pkt + 4, 0);
	nbd_put16(pkt + 6, NBD_CMD_READ);
	nbd_put64(pkt + 8, 1);
	nbd_put64(pkt + 16, roff);
	nbd_put32(pkt + 24, rlen);
	nbd_put32(pkt + 28, NBD_REQUEST_MAGIC);
	nbd_put16(pkt + 32, 0);
	nbd_put16(pkt + 34, NBD_CMD_WRITE);
	nbd_put64(pkt + 36, 2);
	nbd_put64(pkt + 44, woff);
	nbd_put32(pkt + 52, wlen);
	memset(pkt + 56, pat, wlen);
	if (!xwrite(fd, pkt, n))
		goto out;
	while (got < 2) {
		uint64_t cookie;

		if (xread(fd, h, 16) != 1 || nbd_get32(h) != NBD_SIMPLE_REPLY_MAGIC)
			goto out;
		cookie = nbd_get64(h + 8);
		if (nbd_get32(h + 4)) {
			fprintf(stderr, "request %llu failed: %u\n",
				(unsigned long long)cookie, nbd_get32(h + 4));
			goto out;
		}
		if (cookie == 1 && xread(fd, rbuf, rlen) != 1)
			goto out;
		got++;
	}
	printf("both replies ok\n");
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(pkt);
	free(rbuf);
	return rc;
}

/* Send as much of p as the server takes within 'ms' of no progress. */
static size_t send_until_stuck(int fd, const uint8_t *p, size_t n, int ms)
{
	size_t done = 0;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (done < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w = send(fd, p + done, n - done, MSG_NOSIGNAL);

		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (poll(&pfd, 1, ms) <= 0)
			break;	/* the server stopped reading */
	}
	return done;
}

static int mode_flood(char **argv, bool opts)
{
	unsigned long n = strtoul(argv[0], NULL, 0), i;
	uint32_t len = opts ? 0 : (uint32_t)strtoul(argv[1], NULL, 0);
	size_t rs = opts ? 16 : 28;
	uint8_t *pkt = calloc(n, rs);
	int fd = opts ? dial() : open_export(""), one = 4096;
	size_t sent;

	if (fd < 0 || !pkt)
		return 1;
	if (opts && !greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
		return 1;
	/* a small receive buffer: replies pile up in the server */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	for (i = 0; i < n; i++) {
		uint8_t *h = pkt + i * rs;

		if (opts) {
			nbd_put64(h, NBD_OPTS_MAGIC);
			nbd_put32(h + 8, NBD_OPT_LIST);
			nbd_put32(h + 12, 0);
		} else {
			nbd_put32(h, NBD_REQUEST_MAGIC);
			nbd_put16(h + 6, NBD_CMD_READ);
			nbd_put64(h + 8, i);
			nbd_put64(h + 16, (i * (uint64_t)len) %
				  (export_size - len + 1) / 4096 * 4096);
			nbd_put32(h + 24, len);
		}
	}
	sent = send_until_stuck(fd, pkt, n * rs, 2000);
	printf("sent %zu of %lu\n", sent / rs, n);
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char *argv[])
{
	if (argc >= 3 && !strcmp(argv[2], "pipeline") && argc == 8) {
		sock_path = argv[1];
		return mode_pipeline(argv + 3);
	}
	if (argc == 5 && !strcmp(argv[2], "flood")) {
		sock_path = argv[1];
		return mode_flood(argv + 3, false);
	}
	if (argc == 4 && !strcmp(argv[2], "optflood")) {
		sock_path = argv[1];
		return mode_flood(argv + 3, true);
	}
	if (argc == 4 && !strcmp(argv[2], "hold")) {
		unsigned long n = strtoul(argv[3], NULL, 0);

		sock_path = argv[1];
		for (unsigned long i = 0; i < n; i++)
			dial();	/* held until we are killed */
		printf("connected %lu\n", n);
		fflush(stdout);
		for (;;)
			pause();
	}
	if (argc == 3 && !strcmp(argv[2], "good")) {
		sock_path = argv[1];
		return good_client() ? 0 : 1;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: nbd-evil SOCKET [MODE ARGS...]\n");
		return 2;
	}
	sock_path = argv[1];
	srand(1);
	check(good_client(), "good client first");
	handshake_cases();
	transmission_cases();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
