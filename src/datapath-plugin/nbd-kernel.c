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
#include <inttypes.h>
#include <time.h>
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
#include "nbd-proto.h"
#include "proc.h"
#include "sock.h"

#define NBD_MAX_DEVICES 1024
#define NBD_MAX_CONNECTIONS 8
/* enough for every disk of a host's VMs and dom0's own users */
#define NBD_MODPROBE_DEVICES "nbds_max=256"
/* a dead server's replacement is started by the next activate: until then
 * the kernel holds the guest's I/O instead of failing it */
#define NBD_DEAD_CONN_TIMEOUT_S 120
#define NBD_SETTLE_MS (15 * 1000)

static int nbd_family(int sock);
static int genl_socket(void);

static int load_module(char *why, size_t len)
{
	const char *const argv[] = { "modprobe", "nbd", NBD_MODPROBE_DEVICES,
				     NULL };
	struct proc_result res;
	char line[300];
	int r;

	r = proc_run(argv, &res);
	if (r < 0) {
		snprintf(why, len, "nbd.ko is not loaded and modprobe cannot "
			 "be run (%s): install kmod, or load nbd.ko at boot",
			 strerror(-r));
		proc_result_release(&res);
		return r;
	}
	if (res.status != 0) {
		proc_last_line(res.err[0] ? res.err : res.out, line,
			       sizeof(line));
		snprintf(why, len, "the kernel NBD client (nbd.ko) is not "
			 "loaded and 'modprobe nbd' failed (exit status %d: "
			 "%s): install this kernel's nbd module or use a "
			 "kernel built with CONFIG_BLK_DEV_NBD",
			 res.status, line[0] ? line : "no message");
		proc_result_release(&res);
		return -ENODEV;
	}
	proc_result_release(&res);
	log_info("loaded nbd.ko (modprobe nbd %s)", NBD_MODPROBE_DEVICES);
	return 0;
}

int nbd_kernel_prepare(char *why, size_t len)
{
	int sock, family, r;

	why[0] = '\0';
	if (getenv("XSNG_NO_KERNEL_NBD")) {
		snprintf(why, len, "the kernel NBD client is disabled by "
			 "XSNG_NO_KERNEL_NBD in the plugin's environment");
		return -ENODEV;
	}
	if (access("/sys/module/nbd", F_OK) < 0) {
		r = load_module(why, len);
		if (r < 0)
			return r;
		if (access("/sys/module/nbd", F_OK) < 0) {
			snprintf(why, len, "'modprobe nbd' succeeded but the "
				 "kernel has no nbd module (/sys/module/nbd "
				 "is missing)");
			return -ENODEV;
		}
	}
	sock = genl_socket();
	if (sock < 0) {
		snprintf(why, len, "cannot open a generic netlink socket to "
			 "drive nbd.ko: %s", strerror(-sock));
		return sock;
	}
	family = nbd_family(sock);
	close(sock);
	if (family < 0) {
		snprintf(why, len, "nbd.ko is loaded but has no netlink "
			 "interface (%s): the kernel must be Linux 4.12 or "
			 "later", strerror(-family));
		return family;
	}
	return 0;
}

/* <run dir>/d-<domain>.nbd: the device of one domain's activation */
static void index_name(const struct dp_target *t, char *out, size_t len)
{
	snprintf(out, len, "d-%s.nbd", t->domain);
}

static void claim_file(int index, char *out, size_t len)
{
	snprintf(out, len, "%s/nbd/%d", host_paths()->run_dir, index);
}

static int read_index(const char *dir, const char *name)
{
	CLEANUP_FREE char *buf = NULL;
	char path[PATH_MAX + 80], *end;
	long v;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_file_at(AT_FDCWD, path, 64, &buf, NULL) < 0)
		return -1;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || *end || v < 0 || v >= NBD_MAX_DEVICES)
		return -1;
	return (int)v;
}

int nbd_kernel_index(const struct dp_target *t)
{
	char name[160];

	index_name(t, name, sizeof(name));
	return read_index(t->run_dir, name);
}

/* A claim is stale when the index file it names is gone or names another
 * device: a crash between the two writes, or a run directory removed. */
static bool claim_is_stale(int index)
{
	CLEANUP_FREE char *owner = NULL;
	char claim[PATH_MAX], *slash;

	claim_file(index, claim, sizeof(claim));
	if (read_file_at(AT_FDCWD, claim, PATH_MAX, &owner, NULL) < 0)
		return false;	/* being written, or unreadable: leave it */
	slash = strrchr(owner, '/');
	if (!slash || owner[0] != '/')
		return true;
	*slash = '\0';
	return read_index(owner, slash + 1) != index;
}

bool nbd_kernel_connected(int index)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", index);
	return access(path, F_OK) == 0;
}

static bool device_exists(int index)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/block/nbd%d", index);
	return access(path, F_OK) == 0;
}

/* Claim device 'index' for t's domain: the claim file (O_EXCL), then the
 * domain's index file.  1 taken, 0 not available, -errno. */
static int try_claim(const struct dp_target *t, int index)
{
	char claim[PATH_MAX], owner[PATH_MAX + 160], name[160], num[16];
	CLEANUP_CLOSE int dirfd = -1;
	int fd, r, tries;

	claim_file(index, claim, sizeof(claim));
	index_name(t, name, sizeof(name));
	snprintf(owner, sizeof(owner), "%s/%s", t->run_dir, name);
	for (tries = 0; tries < 2; tries++) {
		fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
			  O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST)
			return -errno;
		if (tries > 0 || !claim_is_stale(index))
			return 0;
		log_warn("dropping the stale claim on /dev/nbd%d", index);
		unlink(claim);
	}
	r = write_all(fd, owner, strlen(owner));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		goto undo;
	dirfd = open(t->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		goto undo;
	}
	snprintf(num, sizeof(num), "%d", index);
	r = write_file_atomic_at(dirfd, name, num, strlen(num));
	if (r < 0)
		goto undo;
	return 1;
undo:
	unlink(claim);
	return r;
}

int nbd_kernel_reserve(const struct dp_target *t, int *ret_index, char *why,
		       size_t len)
{
	char dir[PATH_MAX];
	int i, r;

	i = nbd_kernel_index(t);
	if (i >= 0) {
		*ret_index = i;	/* attach again: same device */
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/nbd", host_paths()->run_dir);
	r = mkdir_p(dir, 0700);
	if (r < 0) {
		snprintf(why, len, "cannot create %s: %s", dir, strerror(-r));
		return r;
	}
	/* A device that exists, unconnected and unclaimed, first; an index
	 * past the last device is created by the kernel at NBD_CMD_CONNECT. */
	for (i = 0; i < NBD_MAX_DEVICES; i++) {
		if (device_exists(i) && nbd_kernel_connected(i))
			continue;	/* ours, or another program's */
		r = try_claim(t, i);
		if (r < 0) {
			snprintf(why, len, "cannot claim /dev/nbd%d in %s: %s",
				 i, dir, strerror(-r));
			return r;
		}
		if (r == 1) {
			*ret_index = i;
			return 0;
		}
	}
	snprintf(why, len, "all %d kernel NBD devices are in use",
		 NBD_MAX_DEVICES);
	return -ENOSPC;
}

void nbd_kernel_release(const struct dp_target *t)
{
	char path[PATH_MAX + 160], name[160];
	int i = nbd_kernel_index(t);

	index_name(t, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", t->run_dir, name);
	if (i >= 0) {
		char claim[PATH_MAX];

		claim_file(i, claim, sizeof(claim));
		unlink(claim);
	}
	unlink(path);
}

/* ------------------------------------------------------------ handshake */

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
	if (be64toh(magic) != NBD_MAGIC || be64toh(opt) != NBD_OPTS_MAGIC ||
	    !(be16toh(hflags) & 1) || namelen > 255)
		return -EPROTO;
	cflags = htobe32(be16toh(hflags) & 3);	/* fixed newstyle, no zeroes */
	if ((r = write_all(fd, &cflags, 4)) < 0)
		return r;
	opt = htobe64(NBD_OPTS_MAGIC);
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
		if (be64toh(magic) != NBD_REP_MAGIC || len > 65536)
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

/*
 * The kernel client sends a write's payload through this socket: room for
 * a few whole 1 MiB requests, not the default's 200 KiB pieces.
 */
#define NBD_CLIENT_SNDBUF (4 * 1024 * 1024)

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
	if (sock_grow_sndbuf(fd, NBD_CLIENT_SNDBUF) < 0)
		log_debug("cannot grow the NBD client's send buffer: %m");
	return fd;
}

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The kernel drops a device's configuration (and its pid file) once the
 * disconnect has gone through and no one holds the device open. */
static bool wait_disconnected(int index, int timeout_ms)
{
	int waited = 0;

	while (nbd_kernel_connected(index)) {
		if (waited >= timeout_ms)
			return false;
		nap_ms(20);
		waited += 20;
	}
	return true;
}

static int send_disconnect(int sock, int family, int index)
{
	struct nlbuf b;
	uint32_t v32 = (uint32_t)index;

	nl_start(&b, (uint16_t)family, NBD_CMD_DISCONNECT);
	nl_put(&b, NBD_ATTR_INDEX, &v32, 4);
	return nl_talk(sock, &b, NULL);
}

/* NBD_CMD_CONNECT (new configuration) or NBD_CMD_RECONFIGURE (replace the
 * dead sockets of a live one) with the sockets in fds. */
static int send_config(int sock, int family, uint8_t cmd, int index,
		       uint64_t size, uint16_t flags, const int *fds, int nfd)
{
	struct nlattr *socks, *item;
	struct nlbuf b;
	uint64_t v64;
	uint32_t v32;
	int i;

	nl_start(&b, (uint16_t)family, cmd);
	v32 = (uint32_t)index;
	nl_put(&b, NBD_ATTR_INDEX, &v32, 4);
	if (cmd == NBD_CMD_CONNECT) {
		nl_put(&b, NBD_ATTR_SIZE_BYTES, &size, 8);
		v64 = 4096;	/* blkback and guests are happiest with 4 KiB */
		nl_put(&b, NBD_ATTR_BLOCK_SIZE_BYTES, &v64, 8);
		/* the export's flags: a read-only export gives a read-only
		 * device */
		v64 = flags;
		nl_put(&b, NBD_ATTR_SERVER_FLAGS, &v64, 8);
		v64 = 0;	/* no request timeout: slow is not dead */
		nl_put(&b, NBD_ATTR_TIMEOUT, &v64, 8);
	}
	v64 = NBD_DEAD_CONN_TIMEOUT_S;
	nl_put(&b, NBD_ATTR_DEAD_CONN_TIMEOUT, &v64, 8);
	socks = nl_put(&b, NBD_ATTR_SOCKETS, NULL, 0);
	for (i = 0; i < nfd; i++) {
		item = nl_put(&b, NBD_SOCK_ITEM, NULL, 0);
		v32 = (uint32_t)fds[i];
		nl_put(&b, NBD_SOCK_FD, &v32, 4);
		nl_end(&b, item);
	}
	nl_end(&b, socks);
	return nl_talk(sock, &b, NULL);
}

static int64_t device_bytes(int index)
{
	CLEANUP_FREE char *buf = NULL;
	char path[64];

	snprintf(path, sizeof(path), "/sys/block/nbd%d/size", index);
	if (read_file_at(AT_FDCWD, path, 64, &buf, NULL) < 0)
		return -1;
	return strtoll(buf, NULL, 10) * 512;
}

int nbd_kernel_connect(int index, const char *socket_path,
		       const char *export_name, unsigned int connections,
		       char *why, size_t len)
{
	int fds[NBD_MAX_CONNECTIONS], nfd = 0, sock = -1, family, r = 0;
	uint64_t size = 0;
	uint16_t flags = 0;
	unsigned int i;
	int waited;

	why[0] = '\0';
	if (connections > NBD_MAX_CONNECTIONS)
		connections = NBD_MAX_CONNECTIONS;
	for (i = 0; i < connections; i++) {
		fds[nfd] = connect_unix(socket_path);
		if (fds[nfd] < 0) {
			r = fds[nfd];
			snprintf(why, len, "cannot connect to %s: %s",
				 socket_path, strerror(-r));
			goto out;
		}
		nfd++;
		r = nbd_handshake(fds[nfd - 1], export_name, &size, &flags);
		if (r < 0) {
			snprintf(why, len, "NBD handshake with %s failed: %s",
				 socket_path, strerror(-r));
			goto out;
		}
	}
	sock = genl_socket();
	if (sock < 0) {
		r = sock;
		snprintf(why, len, "netlink socket: %s", strerror(-r));
		goto out;
	}
	family = nbd_family(sock);
	if (family < 0) {
		r = family;
		snprintf(why, len, "nbd.ko's netlink family: %s",
			 strerror(-r));
		goto out;
	}
	if (nbd_kernel_connected(index)) {
		/* a configuration is left from a server that died: give the
		 * kernel the new server's sockets in place of the dead ones
		 * (an opener such as blkback keeps the device meanwhile) */
		r = send_config(sock, family, NBD_CMD_RECONFIGURE, index, size,
				flags, fds, nfd);
		if (r == 0 && device_bytes(index) == (int64_t)size) {
			log_info("/dev/nbd%d reconnected to %s", index,
				 socket_path);
			goto out;
		}
		log_info("/dev/nbd%d: reconfigure failed (%s): disconnecting "
			 "it to connect afresh", index, strerror(-r));
		(void)send_disconnect(sock, family, index);
		if (!wait_disconnected(index, NBD_SETTLE_MS)) {
			r = -EBUSY;
			snprintf(why, len, "/dev/nbd%d keeps an old connection "
				 "(something holds it open)", index);
			goto out;
		}
	}
	/* just after a disconnect the kernel may still be letting go */
	for (waited = 0;; waited += 100) {
		r = send_config(sock, family, NBD_CMD_CONNECT, index, size,
				flags, fds, nfd);
		if (r != -EBUSY || waited >= NBD_SETTLE_MS)
			break;
		nap_ms(100);
	}
	if (r < 0) {
		snprintf(why, len, "the kernel refused NBD_CMD_CONNECT for "
			 "/dev/nbd%d: %s", index, strerror(-r));
		goto out;
	}
	if (device_bytes(index) != (int64_t)size) {
		r = -EIO;
		snprintf(why, len, "/dev/nbd%d has %" PRId64 " bytes after "
			 "connecting, the export %" PRIu64, index,
			 device_bytes(index), size);
		goto out;
	}
	log_info("/dev/nbd%d connected to %s (%d connections%s)", index,
		 socket_path, nfd, flags & 2 ? ", read-only" : "");
out:
	/* the kernel holds its own references to the sockets */
	while (nfd > 0)
		close(fds[--nfd]);
	if (sock >= 0)
		close(sock);
	return r;
}

int nbd_kernel_disconnect(int index)
{
	int sock, family, r;

	if (!nbd_kernel_connected(index))
		return 0;
	sock = genl_socket();
	if (sock < 0)
		return sock;
	family = nbd_family(sock);
	if (family < 0) {
		close(sock);
		return family;
	}
	r = send_disconnect(sock, family, index);
	close(sock);
	if (r < 0)
		return r;
	return wait_disconnected(index, NBD_SETTLE_MS) ? 0 : -EBUSY;
}
