/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Handing a volume to kernel blkback through /dev/nbdN (XCP-ng's dom0 has
 * nbd.ko): attach reserves a free device, activate opens N connections to
 * the volume's server, does the NBD handshake on each and gives the sockets
 * to the kernel over generic netlink (NBD_CMD_CONNECT), deactivate sends
 * NBD_CMD_DISCONNECT.  Where the kernel has no NBD client this reports why,
 * and attach returns the NBD URI only.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "dp.h"
#include "fileio.h"
#include "log.h"

#define NBD_MAX_DEVICES 1024
#define NBD_MAX_CONNECTIONS 8

bool nbd_kernel_available(char *why, size_t len)
{
	if (getenv("XSNG_NO_KERNEL_NBD")) {
		snprintf(why, len, "disabled by XSNG_NO_KERNEL_NBD");
		return false;
	}
	if (access("/sys/module/nbd", F_OK) < 0) {
		snprintf(why, len, "the kernel has no NBD client (nbd.ko is "
			 "not loaded: modprobe nbd)");
		return false;
	}
	if (access("/dev/nbd0", F_OK) < 0) {
		snprintf(why, len, "nbd.ko is loaded but /dev/nbd0 is missing");
		return false;
	}
	return true;
}

static void index_file(const struct dp_target *t, char *out, size_t len)
{
	snprintf(out, len, "%s/nbd-index", t->run_dir);
}

static void claim_file(int index, char *out, size_t len)
{
	snprintf(out, len, "%s/nbd/%d", sr_paths()->run_dir, index);
}

int nbd_kernel_index(const struct dp_target *t)
{
	CLEANUP_FREE char *buf = NULL;
	char path[PATH_MAX];

	index_file(t, path, sizeof(path));
	if (read_file_at(AT_FDCWD, path, 64, &buf, NULL) < 0)
		return -1;
	return atoi(buf);
}

int nbd_kernel_reserve(const struct dp_target *t, int *ret_index)
{
	char path[PATH_MAX], claim[PATH_MAX], dir[PATH_MAX], num[16];
	int i, fd, r;

	i = nbd_kernel_index(t);
	if (i >= 0) {
		*ret_index = i;	/* attach again: same device */
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/nbd", sr_paths()->run_dir);
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	for (i = 0; i < NBD_MAX_DEVICES; i++) {
		snprintf(path, sizeof(path), "/dev/nbd%d", i);
		if (access(path, F_OK) < 0)
			break;
		/* connected to something (not ours, or stale): skip */
		snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", i);
		if (access(path, F_OK) == 0)
			continue;
		claim_file(i, claim, sizeof(claim));
		fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			continue;
		(void)write_all(fd, t->key, strlen(t->key));
		close(fd);
		index_file(t, path, sizeof(path));
		snprintf(num, sizeof(num), "%d", i);
		r = write_file_atomic_at(AT_FDCWD, path, num, strlen(num));
		if (r < 0) {
			unlink(claim);
			return r;
		}
		*ret_index = i;
		return 0;
	}
	return -ENOSPC;
}

void nbd_kernel_release(const struct dp_target *t)
{
	char path[PATH_MAX];
	int i = nbd_kernel_index(t);

	if (i < 0)
		return;
	claim_file(i, path, sizeof(path));
	unlink(path);
	index_file(t, path, sizeof(path));
	unlink(path);
}

/* ------------------------------------------------------------ handshake */

#define NBD_MAGIC 0x4e42444d41474943ULL		/* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454F5054ULL
#define NBD_REPLY_MAGIC 0x3e889045565a9ULL
#define NBD_OPT_GO 7
#define NBD_REP_ACK 1
#define NBD_REP_INFO 3
#define NBD_INFO_EXPORT 0

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Fixed-newstyle handshake up to the transmission phase (NBD_OPT_GO). */
static int nbd_handshake(int fd, const char *export, uint64_t *size,
			 uint16_t *flags)
{
	uint64_t magic, opt;
	uint16_t hflags;
	uint32_t cflags, hdr[2], namelen = (uint32_t)strlen(export);
	uint8_t req[16 + 4 + 256 + 2];
	size_t n = 0;
	int r;

	if ((r = read_full(fd, &magic, 8)) < 0 ||
	    (r = read_full(fd, &opt, 8)) < 0 ||
	    (r = read_full(fd, &hflags, 2)) < 0)
		return r;
	if (be64toh(magic) != NBD_MAGIC || be64toh(opt) != NBD_IHAVEOPT ||
	    !(be16toh(hflags) & 1) || namelen > 255)
		return -EPROTO;
	cflags = htobe32(be16toh(hflags) & 3);	/* fixed newstyle, no zeroes */
	if ((r = write_all(fd, &cflags, 4)) < 0)
		return r;
	opt = htobe64(NBD_IHAVEOPT);
	memcpy(req, &opt, 8);
	hdr[0] = htobe32(NBD_OPT_GO);
	hdr[1] = htobe32(4 + namelen + 2);
	memcpy(req + 8, hdr, 8);
	n = 16;
	hdr[0] = htobe32(namelen);
	memcpy(req + n, hdr, 4);
	n += 4;
	memcpy(req + n, export, namelen);
	n += namelen;
	req[n++] = 0;	/* no information requests */
	req[n++] = 0;
	if ((r = write_all(fd, req, n)) < 0)
		return r;
	for (;;) {
		uint8_t rep[20], info[12];
		uint32_t type, len;

		if ((r = read_full(fd, rep, 20)) < 0)
			return r;
		memcpy(&magic, rep, 8);
		memcpy(&type, rep + 12, 4);
		memcpy(&len, rep + 16, 4);
		type = be32toh(type);
		len = be32toh(len);
		if (be64toh(magic) != NBD_REPLY_MAGIC || len > 65536)
			return -EPROTO;
		if (type & 0x80000000u)
			return -ENOENT;	/* the server refused the export */
		if (type == NBD_REP_INFO && len == 12) {
			uint16_t it;
			uint64_t sz;

			if ((r = read_full(fd, info, 12)) < 0)
				return r;
			memcpy(&it, info, 2);
			if (be16toh(it) == NBD_INFO_EXPORT) {
				memcpy(&sz, info + 2, 8);
				memcpy(&it, info + 10, 2);
				*size = be64toh(sz);
				*flags = be16toh(it);
			}
			continue;
		}
		while (len > 0) {	/* skip other replies' payload */
			uint8_t skip[256];
			uint32_t k = len > sizeof(skip) ? sizeof(skip) : len;

			if ((r = read_full(fd, skip, k)) < 0)
				return r;
			len -= k;
		}
		if (type == NBD_REP_ACK)
			return *size ? 0 : -EPROTO;
	}
}

/* ------------------------------------------------------------ netlink */

struct nlbuf {
	uint8_t data[4096];
	size_t len;
};

static struct nlattr *nl_put(struct nlbuf *b, uint16_t type, const void *v,
			     size_t len)
{
	struct nlattr *a = (struct nlattr *)(b->data + b->len);

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (v)
		memcpy((uint8_t *)a + NLA_HDRLEN, v, len);
	b->len += NLA_ALIGN(a->nla_len);
	return a;
}

static void nl_end(struct nlbuf *b, struct nlattr *nest)
{
	nest->nla_len = (uint16_t)((b->data + b->len) - (uint8_t *)nest);
}

static void nl_start(struct nlbuf *b, uint16_t family, uint8_t cmd)
{
	struct nlmsghdr *h = (struct nlmsghdr *)b->data;
	struct genlmsghdr *g = (struct genlmsghdr *)(b->data + NLMSG_HDRLEN);

	memset(b->data, 0, sizeof(b->data));
	h->nlmsg_type = family;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = 1;
	g->cmd = cmd;
	g->version = 1;
	b->len = NLMSG_HDRLEN + GENL_HDRLEN;
}

/* Send and wait for the ack (or the first reply, copied to reply). */
static int nl_talk(int sock, struct nlbuf *b, struct nlbuf *reply)
{
	struct nlmsghdr *h = (struct nlmsghdr *)b->data;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	uint8_t in[8192];
	ssize_t n;

	h->nlmsg_len = (uint32_t)b->len;
	if (sendto(sock, b->data, b->len, 0, (struct sockaddr *)&kernel,
		   sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		struct nlmsghdr *m = (struct nlmsghdr *)in;

		n = recv(sock, in, sizeof(in), 0);
		if (n < 0)
			return -errno;
		for (; NLMSG_OK(m, (size_t)n); m = NLMSG_NEXT(m, n)) {
			if (m->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(m);

				return e->error;	/* 0 is the ack */
			}
			if (reply && m->nlmsg_len <= sizeof(reply->data)) {
				memcpy(reply->data, m, m->nlmsg_len);
				reply->len = m->nlmsg_len;
			}
		}
	}
}

static int nbd_family(int sock)
{
	struct nlbuf b, reply = { .len = 0 };
	struct nlattr *a;
	size_t off;
	int r;

	nl_start(&b, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
	nl_put(&b, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME,
	       strlen(NBD_GENL_FAMILY_NAME) + 1);
	r = nl_talk(sock, &b, &reply);
	if (r < 0)
		return r;
	for (off = NLMSG_HDRLEN + GENL_HDRLEN; off + NLA_HDRLEN <= reply.len;
	     off += NLA_ALIGN(a->nla_len)) {
		a = (struct nlattr *)(reply.data + off);
		if (a->nla_len < NLA_HDRLEN)
			break;
		if (a->nla_type == CTRL_ATTR_FAMILY_ID)
			return *(uint16_t *)((uint8_t *)a + NLA_HDRLEN);
	}
	return -ENOENT;
}

static int genl_socket(void)
{
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);

	return s < 0 ? -errno : s;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int nbd_kernel_connect(const struct dp_target *t, int index,
		       const char *socket_path, const char *export_name,
		       unsigned int connections)
{
	int fds[NBD_MAX_CONNECTIONS], nfd = 0, sock = -1, family, r = 0;
	uint64_t size = 0, v64;
	uint16_t flags = 0;
	uint32_t v32;
	struct nlattr *socks, *item;
	struct nlbuf b;
	unsigned int i;

	(void)t;
	if (connections > NBD_MAX_CONNECTIONS)
		connections = NBD_MAX_CONNECTIONS;
	for (i = 0; i < connections; i++) {
		fds[nfd] = connect_unix(socket_path);
		if (fds[nfd] < 0) {
			r = fds[nfd];
			goto out;
		}
		nfd++;
		r = nbd_handshake(fds[nfd - 1], export_name, &size, &flags);
		if (r < 0)
			goto out;
	}
	sock = genl_socket();
	if (sock < 0) {
		r = sock;
		goto out;
	}
	family = nbd_family(sock);
	if (family < 0) {
		r = family;
		goto out;
	}
	nl_start(&b, (uint16_t)family, NBD_CMD_CONNECT);
	v32 = (uint32_t)index;
	nl_put(&b, NBD_ATTR_INDEX, &v32, 4);
	nl_put(&b, NBD_ATTR_SIZE_BYTES, &size, 8);
	v64 = 4096;	/* blkback and guests are happiest with 4 KiB */
	nl_put(&b, NBD_ATTR_BLOCK_SIZE_BYTES, &v64, 8);
	v64 = flags;
	nl_put(&b, NBD_ATTR_SERVER_FLAGS, &v64, 8);
	v64 = 0;	/* no request timeout: a slow disk is not a dead one */
	nl_put(&b, NBD_ATTR_TIMEOUT, &v64, 8);
	socks = nl_put(&b, NBD_ATTR_SOCKETS, NULL, 0);
	for (i = 0; i < (unsigned int)nfd; i++) {
		item = nl_put(&b, NBD_SOCK_ITEM, NULL, 0);
		v32 = (uint32_t)fds[i];
		nl_put(&b, NBD_SOCK_FD, &v32, 4);
		nl_end(&b, item);
	}
	nl_end(&b, socks);
	r = nl_talk(sock, &b, NULL);
	if (r == 0)
		log_info("/dev/nbd%d connected to %s (%d connections)", index,
			 socket_path, nfd);
out:
	/* the kernel holds its own references to the sockets */
	while (nfd > 0)
		close(fds[--nfd]);
	if (sock >= 0)
		close(sock);
	return r;
}

bool nbd_kernel_connected(int index)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", index);
	return access(path, F_OK) == 0;
}

int nbd_kernel_disconnect(int index)
{
	int sock = genl_socket(), family, r;
	struct nlbuf b;
	uint32_t v32 = (uint32_t)index;

	if (sock < 0)
		return sock;
	family = nbd_family(sock);
	if (family < 0) {
		close(sock);
		return family;
	}
	nl_start(&b, (uint16_t)family, NBD_CMD_DISCONNECT);
	nl_put(&b, NBD_ATTR_INDEX, &v32, 4);
	r = nl_talk(sock, &b, NULL);
	close(sock);
	return r;
}
