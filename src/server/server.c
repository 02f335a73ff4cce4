/* SPDX-License-Identifier: LGPL-2.1-only */
/* ngdp-server core: request scheduling, data I/O, flush barriers, loop. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <sys/file.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl-proto.h"
#include "iovec.h"
#include "log.h"
#include "server/server.h"
#include "server/nbd.h"
#include "control.h"
#include "conn.h"
#include "listen.h"
#include "mirror.h"
#include "io/engine.h"

#define ZERO_BUF_SIZE		(1024 * 1024)
#define BLOCK_STATUS_MAX	(1024ULL * 1024 * 1024)
#define BUF_MIN_SHIFT		12
#define BUF_MAX_SHIFT		25
#define BUF_MMAP_SHIFT		17	/* 128 KiB and more: mmap */
/* 64 KiB and more: registered with the engine where it can (pinning 16
 * pages or more per I/O is worth a slot; small buffers churn more) */
#define BUF_REG_SHIFT		16
#define BUF_POOL_MAX		(32UL * 1024 * 1024)	/* pooled bytes */
#define REQ_POOL_MAX		1024	/* free requests kept */
#define REQ_KEEP_RBUF		4096
#define REQ_KEEP_IOV		64
#define REQ_KEEP_EXTENTS	64
#define SUSPEND_DEFAULT_MS	(10 * 60 * 1000)	/* with a record */
#define ACCEPT_BACKOFF_MS	100
#define ACCEPT_LOG_MS		10000

static uint64_t server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int server_epoll_add(struct server *srv, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int server_epoll_mod(struct server *srv, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

static const char *server_engine_name(const struct server *srv)
{
	return srv->eng->ops->name;
}

static unsigned int server_in_flight(const struct server *srv)
{
	return srv->active;
}

void server_set_loop_hook(struct server *srv, server_loop_hook_fn *fn,
			  void *opaque)
{
	srv->loop_hook = fn;
	srv->loop_hook_opaque = opaque;
}

void server_set_stop_hold(struct server *srv, server_stop_hold_fn *fn,
			  void *opaque)
{
	srv->stop_hold = fn;
	srv->stop_hold_opaque = opaque;
}

void server_set_ring_control(struct server *srv,
			     server_ring_release_fn *release,
			     server_ring_state_fn *state, void *opaque)
{
	srv->ring_release = release;
	srv->ring_state = state;
	srv->ring_opaque = opaque;
}

void server_epoll_del(struct server *srv, int fd)
{
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void server_set_control(struct server *srv, server_suspend_hook_fn *hook,
			void *opaque)
{
	srv->suspend_hook = hook;
	srv->suspend_hook_opaque = opaque;
}

int server_listener_add(struct server *srv, int fd, struct ev_tag *tag)
{
	for (int i = 0; i < SERVER_HOOK_LISTENERS; i++) {
		if (srv->hook_listen_fd[i] >= 0)
			continue;
		int r = server_epoll_add(srv, fd,
					 srv->accept_paused ? 0 : EPOLLIN, tag);

		if (r < 0)
			return r;
		srv->hook_listen_fd[i] = fd;
		srv->hook_listen_tag[i] = tag;
		return 0;
	}
	return -ENOSPC;
}

void server_listener_del(struct server *srv, int fd)
{
	for (int i = 0; i < SERVER_HOOK_LISTENERS; i++)
		if (srv->hook_listen_fd[i] == fd) {
			server_epoll_del(srv, fd);
			srv->hook_listen_fd[i] = -1;
			srv->hook_listen_tag[i] = NULL;
		}
}

int server_listen(struct server *srv, enum server_listener which,
		  const char *addr)
{
	int r = which == LISTEN_TCP ?
		listen_tcp(addr, &srv->listen_fd[which]) :
		listen_unix(addr, &srv->listen_fd[which]);

	if (r < 0)
		return r;
	return server_epoll_add(srv, srv->listen_fd[which], EPOLLIN,
				&srv->tag_listen);
}

bool server_listening(const struct server *srv, enum server_listener which)
{
	return srv->listen_fd[which] >= 0;
}

void server_exit_when_idle(struct server *srv)
{
	srv->exit_when_idle = true;
}

int server_add_conn(struct server *srv, int fd, bool readonly)
{
	return conn_new(srv->conns, fd, readonly);
}

uint64_t server_size(const struct server *srv)
{
	return srv->size;
}

bool server_readonly(const struct server *srv)
{
	return srv->cfg.readonly;
}

bool server_fast_zero(const struct server *srv)
{
	return srv->fast_zero;
}

const char *server_export_name(const struct server *srv)
{
	return srv->cfg.export_name;
}

bool server_stopping(const struct server *srv)
{
	return srv->stopping;
}

void server_get_status(const struct server *srv, struct server_status *st)
{
	uint64_t conn_errors;

	conn_set_stats(srv->conns, &st->connections_total, &conn_errors);
	st->image = srv->img->path;
	st->format = srv->img->fmt->name;
	st->engine = server_engine_name(srv);
	st->size = srv->size;
	st->readonly = srv->cfg.readonly;
	st->connections = conn_set_count(srv->conns);
	st->in_flight = server_in_flight(srv);
	st->suspended = srv->suspended;
	st->suspend_expired = srv->suspend_expired;
	st->dirty = srv->dirty;
	st->reads = srv->n_reads;
	st->writes = srv->n_writes;
	st->flushes = srv->n_flushes;
	st->trims = srv->n_trims;
	st->write_zeroes = srv->n_zeroes;
	st->block_status = srv->n_block_status;
	st->errors = srv->n_errors + conn_errors;
	st->slow_path = srv->n_slow;
	st->registered_ios = srv->n_registered_ios;
	st->direct_reads = srv->n_direct_reads;
	st->bounced_reads = srv->n_bounced_reads;
	st->grant_cache_evictions = srv->n_grant_cache_evictions;
	st->direct_read_faults = srv->n_direct_read_faults;
	st->blkif_failures = srv->n_blkif_failures;
	st->blkif_rings = srv->n_blkif_rings;
	st->blkif_device = srv->blkif_device;
	st->blkif_ring = srv->ring_state ? srv->ring_state(srv->ring_opaque) :
			 NULL;
	st->bytes_read = srv->bytes_read;
	st->bytes_written = srv->bytes_written;
	st->backing = srv->img->backing ? srv->img->backing->path : NULL;
	st->co_state = st->co_error = NULL;
	st->co_copied = srv->co.copied;
	st->co_offset = srv->co.offset;
	switch (srv->co.state) {
	case CO_NONE:
		break;
	case CO_RUNNING:
		st->co_state = CTL_CO_RUNNING;
		break;
	case CO_DONE:
		st->co_state = CTL_CO_DONE;
		break;
	case CO_FAILED:
		st->co_state = CTL_CO_FAILED;
		st->co_error = srv->co.error;
		break;
	}
	st->co_parent = srv->co.parent;
	st->cbt_bitmap = srv->cbt_name[0] ? srv->cbt_name : NULL;
	st->cbt_tracking = srv->cbt_tracking;
	st->cbt_consistent = srv->cbt_consistent;
	mirror_get_status(srv->mirror, st);
}

struct mirror_job *server_mirror(const struct server *srv)
{
	return srv->mirror;
}

void server_set_mirror(struct server *srv, struct mirror_job *job)
{
	srv->mirror = job;
}

bool server_suspended(const struct server *srv)
{
	return srv->suspended;
}

/* ------------------------------------------------------------ pools */

static unsigned int buf_class(size_t len)
{
	unsigned int c = BUF_MIN_SHIFT;

	while (((size_t)1 << c) < len)
		c++;
	return c;
}

size_t server_buf_size(size_t len)
{
	return len ? (size_t)1 << buf_class(len) : 0;
}

/*
 * Big buffers are mapped, not malloc'ed: glibc raises its mmap threshold
 * after such frees and would then keep them in a heap that never shrinks.
 */
static void *buf_alloc(unsigned int c)
{
	void *p;

	if (c >= BUF_MMAP_SHIFT) {
		p = mmap(NULL, (size_t)1 << c, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	if (posix_memalign(&p, 4096, (size_t)1 << c))
		return NULL;
	return p;
}

static void buf_free(struct server *srv, void *p, unsigned int c, int slot)
{
	if (slot >= 0)
		srv->eng->ops->buf_unregister(srv->eng, slot);
	if (c >= BUF_MMAP_SHIFT)
		munmap(p, (size_t)1 << c);
	else
		free(p);
}

int server_buf_get(struct server *srv, struct req *req, size_t len)
{
	unsigned int c;
	int slot = -1;
	void *p;

	req->buf = NULL;
	req->buf_slot = -1;
	if (len == 0)
		return 0;
	c = buf_class(len);
	if (c > BUF_MAX_SHIFT)
		return -EINVAL;
	if (srv->pool.nfree[c]) {
		--srv->pool.nfree[c];
		p = srv->pool.free[c][srv->pool.nfree[c]];
		slot = srv->pool.slot[c][srv->pool.nfree[c]];
		srv->pool.bytes -= (size_t)1 << c;
	} else if (!(p = buf_alloc(c))) {
		return -ENOMEM;
	} else if (c >= BUF_REG_SHIFT && srv->eng->ops->buf_register) {
		slot = srv->eng->ops->buf_register(srv->eng, p, (size_t)1 << c);
		if (slot < 0)
			slot = -1;	/* served unregistered */
	}
	req->buf = p;
	req->buf_class = c;
	req->buf_slot = slot;
	return 0;
}

static void buf_put(struct server *srv, struct req *req)
{
	unsigned int c = req->buf_class;
	size_t size = (size_t)1 << c;
	/* keep many small buffers, few big ones, and a bounded total: the
	 * pool shrinks back after a burst */
	unsigned int keep = c <= 20 ? 32 : 2;

	if (!req->buf)
		return;
	if (srv->pool.nfree[c] < keep &&
	    srv->pool.bytes + size <= BUF_POOL_MAX) {
		srv->pool.slot[c][srv->pool.nfree[c]] = req->buf_slot;
		srv->pool.free[c][srv->pool.nfree[c]++] = req->buf;
		srv->pool.bytes += size;
	} else {
		buf_free(srv, req->buf, c, req->buf_slot);
	}
	req->buf = NULL;
	req->buf_slot = -1;
}

struct req *server_req_get(struct server *srv)
{
	struct req *req = srv->free_reqs;

	if (req) {
		srv->free_reqs = req->next;
		srv->nfree_reqs--;
	} else {
		req = calloc(1, sizeof(*req));
		if (!req)
			return NULL;
	}
	req->next = req->out_next = NULL;
	req->conn = NULL;
	req->owner = NULL;
	req->done = NULL;
	req->readonly = false;
	req->wire_err = 0;
	req->excl = false;
	req->buf = NULL;
	req->buf_slot = -1;
	req->payload_got = 0;
	req->dst = NULL;
	req->ndst = 0;
	extent_list_clear(&req->el);
	req->next_ext = 0;
	req->next_pos = 0;
	req->ops_pending = 0;
	req->io_err = 0;
	req->niov = req->iov_idx = 0;
	req->out_meta = 0;
	req->mirror = NULL;
	return req;
}

static void req_destroy(struct req *req)
{
	extent_list_release(&req->el);
	free(req->rbuf);
	free(req->iov);
	free(req->dst_ops);
	free(req);
}

void server_req_put(struct server *srv, struct req *req)
{
	buf_put(srv, req);
	req->state = REQ_FREE;
	/* after a burst, keep a bounded number of small requests */
	if (srv->nfree_reqs >= REQ_POOL_MAX) {
		req_destroy(req);
		return;
	}
	if (req->rbuf_cap > REQ_KEEP_RBUF) {
		free(req->rbuf);
		req->rbuf = NULL;
		req->rbuf_cap = 0;
	}
	if (req->iov_cap > REQ_KEEP_IOV) {
		free(req->iov);
		req->iov = NULL;
		req->iov_cap = 0;
	}
	if (req->el.cap > REQ_KEEP_EXTENTS)
		extent_list_release(&req->el);
	req->next = srv->free_reqs;
	srv->free_reqs = req;
	srv->nfree_reqs++;
}

static void req_free_all(struct server *srv)
{
	while (srv->free_reqs) {
		struct req *req = srv->free_reqs;

		srv->free_reqs = req->next;
		req_destroy(req);
	}
}

/* ------------------------------------------------------------ queues */

static void q_push(struct req **head, struct req **tail, struct req *req)
{
	req->next = NULL;
	if (*tail)
		(*tail)->next = req;
	else
		*head = req;
	*tail = req;
}

static struct req *q_pop(struct req **head, struct req **tail)
{
	struct req *req = *head;

	if (req) {
		*head = req->next;
		if (!*head)
			*tail = NULL;
		req->next = NULL;
	}
	return req;
}

static bool is_write_type(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_WRITE_ZEROES;
}

static void mark_dirty(struct server *srv)
{
	if (!srv->dirty) {
		srv->dirty = true;
		srv->dirty_since_ms = server_now_ms();
	}
}

/*
 * Changed block tracking: the guest changes [offset, offset + length)
 * (dispatch_check keeps it within srv->size, the bitmap's size).  Set
 * before the request can reach the disk: a write that fails may leave
 * its bits set (over-reporting is harmless, under-reporting never).
 */
static void cbt_mark(struct server *srv, const struct req *req)
{
	if (srv->cbt_tracking)
		dirty_bitmap_set_range(&srv->cbt_bm, req->h.offset,
				       req->h.length);
}

static void cbt_stop(struct server *srv);

static void finish_req(struct server *srv, struct req *req, int err)
{
	req->wire_err = nbd_errno_to_wire(err);
	if (err) {
		srv->n_errors++;
		log_debug("request type %u offset %llu length %u failed: %s",
			  req->h.type, (unsigned long long)req->h.offset,
			  req->h.length, strerror(-err));
	}
	if (!err && (req->h.flags & NBD_CMD_FLAG_FUA) &&
	    is_write_type(req->h.type)) {
		/* FUA: reply only after the barrier flush made it durable */
		req->state = REQ_FLUSHWAIT;
		q_push(&srv->flushq, &srv->flushq_tail, req);
		return;
	}
	req->done(req);
}

void server_submit(struct server *srv, struct req *req)
{
	req->state = REQ_WAITING;
	q_push(&srv->waitq, &srv->waitq_tail, req);
}

/* ------------------------------------------------------------ data I/O */

static struct image *chain_owner(struct image *img, int fd)
{
	for (; img; img = img->backing)
		if (img->fd == fd)
			return img;
	return NULL;
}

static bool needs_excl(const struct server *srv, const struct req *req)
{
	switch (req->h.type) {
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		return req->h.length != 0;
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return req->excl || req->h.offset % srv->align ||
		       req->h.length % srv->align;
	default:
		return false;
	}
}

/*
 * Run a mapping synchronously: data extents read into (or written from)
 * buf, zero extents zeroed (reads), the rest left as the mapping filled
 * it.  0 when the extents cover exactly len bytes.
 */
static int extents_sync(struct server *srv, const struct extent_list *el,
			void *buf, uint64_t len, bool write)
{
	uint64_t pos = 0;

	for (size_t i = 0; i < el->n; i++) {
		const struct extent *e = &el->v[i];
		char *p = (char *)buf + pos;
		struct image *owner;
		int r = 0;

		if (e->kind == EXTENT_DATA) {
			owner = chain_owner(srv->img, e->fd);
			if (!owner)
				return -EIO;
			r = write ? image_pwrite(owner, p, e->length,
						 e->host_offset) :
				    image_pread(owner, p, e->length,
						e->host_offset);
		} else if (write) {
			r = -EIO;	/* map_write must return data extents */
		} else if (e->kind == EXTENT_ZERO) {
			memset(p, 0, e->length);
		}
		if (r < 0)
			return r;
		pos += e->length;
	}
	return pos == len ? 0 : -EIO;
}

/* Synchronous path for requests that O_DIRECT cannot take as they are. */
static int rw_sync(struct server *srv, struct req *req, bool write)
{
	srv->n_slow++;
	return extents_sync(srv, &req->el, req->buf, req->h.length, write);
}

int server_read_guest(struct server *srv, uint64_t offset, uint64_t len,
		      void *buf, bool *zero)
{
	struct extent_list el = { 0 };
	int r;

	*zero = true;
	r = image_map_read(srv->img, offset, len, buf, &el);
	for (size_t i = 0; r == 0 && i < el.n; i++)
		if (el.v[i].kind != EXTENT_ZERO)
			*zero = false;
	if (r == 0)
		r = extents_sync(srv, &el, buf, len, false);
	extent_list_release(&el);
	return r;
}

static bool extents_aligned(const struct server *srv, const struct req *req,
			    bool write)
{
	uint64_t pos = 0, a = srv->align;

	for (size_t i = 0; i < req->el.n; i++) {
		const struct extent *e = &req->el.v[i];

		if (e->kind == EXTENT_DATA &&
		    (e->host_offset % a || e->length % a || pos % a))
			return false;
		if (write && e->kind != EXTENT_DATA)
			return false;
		pos += e->length;
	}
	return pos == req->h.length;
}

#ifdef NGDP_FAULT_INJECT
/* NGDP_FAULT=sync-writes: every write takes the synchronous path, as if
 * its mapping were not aligned for O_DIRECT. */
static bool fault_sync_rw(bool write)
{
	return write && io_fault("sync-writes");
}
#else
static bool fault_sync_rw(bool write)
{
	(void)write;
	return false;
}
#endif

/*
 * Can a read with a destination vector go straight into it?  Every data
 * extent must be O_DIRECT-aligned, the vector's pieces too, and no extent
 * may need the format to produce the bytes (compression).  Then dst_ops
 * gets room for the slices: each extent boundary splits at most one piece.
 */
static bool dst_direct(struct server *srv, struct req *req)
{
	int need = req->ndst + (int)req->el.n;

	for (size_t i = 0; i < req->el.n; i++)
		if (req->el.v[i].kind == EXTENT_FILLED)
			return false;
	if (!extents_aligned(srv, req, false) ||
	    !iov_aligned(req->dst, req->ndst, srv->align))
		return false;
	if (req->dst_ops_cap < need) {
		struct iovec *v = realloc(req->dst_ops, sizeof(*v) * (size_t)need);

		if (!v)
			return false;	/* the pooled buffer will do */
		req->dst_ops = v;
		req->dst_ops_cap = need;
	}
	req->dst_ops_used = 0;
	return true;
}

/*
 * Map a read.  A request with a destination vector is mapped without a
 * buffer first; if it cannot be read straight into the vector it gets a
 * pooled buffer and is mapped again, as any other read.
 */
static int map_read_req(struct server *srv, struct req *req)
{
	int r;

	if (req->dst && !srv->direct_reads_off) {
		r = image_map_read(srv->img, req->h.offset, req->h.length,
				   NULL, &req->el);
		if (r < 0)
			return r;
		if (dst_direct(srv, req)) {
			srv->n_direct_reads++;
			return 0;
		}
		extent_list_clear(&req->el);
	}
	if (req->dst) {
		r = server_buf_get(srv, req, req->h.length);
		if (r < 0)
			return r;
		srv->n_bounced_reads++;
	}
	return image_map_read(srv->img, req->h.offset, req->h.length,
			      req->buf, &req->el);
}

static bool start_mapped(struct server *srv, struct req *req, bool write);

/* Returns false when the request is held (srv->held) until the I/O in
 * flight is done. */
static bool start_rw(struct server *srv, struct req *req)
{
	bool write = req->h.type == NBD_CMD_WRITE;
	int r;

	if (req->h.length == 0) {
		finish_req(srv, req, 0);
		return true;
	}
	extent_list_clear(&req->el);
	if (write) {
		mark_dirty(srv);
		cbt_mark(srv, req);
		r = image_map_write(srv->img, req->h.offset, req->h.length,
				    &req->el);
		srv->n_writes++;
		srv->bytes_written += req->h.length;
	} else {
		r = map_read_req(srv, req);
		srv->n_reads++;
		srv->bytes_read += req->h.length;
	}
	if (r < 0) {
		finish_req(srv, req, r);
		return true;
	}
	return start_mapped(srv, req, write);
}

/* Issue a mapped request; false when it is held (see start_rw). */
static bool start_mapped(struct server *srv, struct req *req, bool write)
{
	uint64_t pos = 0;

	if (!extents_aligned(srv, req, write) || fault_sync_rw(write)) {
		if (srv->active) {
			/*
			 * The synchronous path must wait for the I/O in
			 * flight.  The request stays mapped (a write may have
			 * allocated clusters): it is held, and issued before
			 * any other request and before any barrier (flush,
			 * suspend), so a suspend can never leave a cluster
			 * allocated but never written in what becomes a
			 * snapshot, nor send the write to the image resumed
			 * on with a mapping of the old one.
			 */
			req->state = REQ_WAITING;
			srv->held = req;
			return false;
		}
		finish_req(srv, req, rw_sync(srv, req, write));
		return true;
	}
	for (size_t i = 0; i < req->el.n; i++) {
		const struct extent *e = &req->el.v[i];

		if (e->kind == EXTENT_ZERO && req->buf)
			memset((char *)req->buf + pos, 0, e->length);
		else if (e->kind == EXTENT_ZERO)
			iov_memset(req->dst, req->ndst, pos, 0, e->length);
		pos += e->length;
	}
	req->state = REQ_ACTIVE;
	req->next_ext = 0;
	req->next_pos = 0;
	srv->active++;
	q_push(&srv->submitq, &srv->submitq_tail, req);
	return true;
}

/*
 * A read into the destination vector failed with EFAULT: the kernel could
 * not take those pages for O_DIRECT (a dom0 whose grant mappings
 * get_user_pages cannot resolve).  Read it again through a buffer, and
 * every read after it: slower, but the guest sees no error.
 */
static void reread_bounced(struct server *srv, struct req *req)
{
	int r;

	if (!srv->direct_reads_off)
		log_warn("a read into the frontend's pages failed (%s): "
			 "reading through buffers from now on",
			 strerror(EFAULT));
	srv->direct_reads_off = true;
	srv->n_direct_read_faults++;
	req->io_err = 0;
	extent_list_clear(&req->el);
	r = map_read_req(srv, req);
	if (r < 0) {
		finish_req(srv, req, r);
		return;
	}
	/*
	 * A read has no order to keep with the I/O in flight, so one that
	 * now needs the synchronous path takes it at once, not srv->held.
	 */
	if (!extents_aligned(srv, req, false)) {
		finish_req(srv, req, rw_sync(srv, req, false));
		return;
	}
	start_mapped(srv, req, false);
}

static void finish_active(struct server *srv, struct req *req)
{
	srv->active--;
	if (req->io_err == -EFAULT && req->dst && !req->buf) {
		reread_bounced(srv, req);
		return;
	}
	finish_req(srv, req, req->io_err);
}

/* A data operation of a direct read: its slice of the vector. */
static void dst_op(struct req *req, struct io_op *op)
{
	int n = iov_slice(req->dst, req->ndst, req->next_pos, op->len,
			  req->dst_ops + req->dst_ops_used,
			  req->dst_ops_cap - req->dst_ops_used);

	/* dst_direct made room for every slice; a failure is a bug */
	assert(n > 0);
	op->buf = NULL;
	op->buf_slot = -1;
	op->iov = req->dst_ops + req->dst_ops_used;
	op->niov = n;
	req->dst_ops_used += n;
}

static void pump_submitq(struct server *srv)
{
	struct req *req;

	while ((req = srv->submitq) && srv->free_ops) {
		while (req->next_ext < req->el.n && srv->free_ops) {
			const struct extent *e = &req->el.v[req->next_ext];

			if (e->kind == EXTENT_DATA) {
				struct io_op *op = srv->free_ops;

				srv->free_ops = op->next;
				op->fd = e->fd;
				op->write = req->h.type == NBD_CMD_WRITE;
				op->len = e->length;
				op->off = e->host_offset;
				if (req->buf) {
					op->buf = (char *)req->buf +
						  req->next_pos;
					op->buf_slot = req->buf_slot;
					op->niov = 0;
				} else {
					dst_op(req, op);
				}
				if (op->buf_slot >= 0)
					srv->n_registered_ios++;
				op->owner = req;
				req->ops_pending++;
				srv->eng->ops->queue(srv->eng, op);
			}
			req->next_pos += e->length;
			req->next_ext++;
		}
		if (req->next_ext < req->el.n)
			break;
		q_pop(&srv->submitq, &srv->submitq_tail);
		if (req->ops_pending == 0)
			finish_active(srv, req);
	}
}

static void on_complete(struct io_op *op, int res, void *opaque)
{
	struct server *srv = opaque;
	struct req *req = op->owner;

	if (res < 0) {
		if (!req->io_err)
			req->io_err = res;
		/* finish_active reads it again through a buffer */
		if (res == -EFAULT && op->niov)
			goto done;
		log_error("%s of %zu bytes at %llu failed: %s",
			  op->write ? "write" : "read", op->len,
			  (unsigned long long)op->off, strerror(-res));
	} else if ((size_t)res < op->len) {
		/*
		 * Short transfer: O_DIRECT reads stop short at the end of a
		 * file, and some filesystems return less at any time.  Go on
		 * with the remainder, from an aligned position (re-reading or
		 * re-writing at most one block).  Only a read that brings no
		 * whole block is the end of the file, which reads as zeros.
		 */
		size_t keep = (size_t)res / srv->align * srv->align;

		if (keep) {
			if (op->niov)
				iov_advance(&op->iov, &op->niov, keep);
			else
				op->buf = (char *)op->buf + keep;
			op->len -= keep;
			op->off += keep;
			srv->eng->ops->queue(srv->eng, op);
			return;
		}
		if (!op->write && op->niov)
			iov_memset(op->iov, op->niov, (size_t)res, 0,
				   op->len - (size_t)res);
		else if (!op->write)
			memset((char *)op->buf + res, 0, op->len - (size_t)res);
		else if (!req->io_err)
			req->io_err = -EIO;
	}
done:
	op->next = srv->free_ops;
	srv->free_ops = op;
	if (--req->ops_pending == 0 && req->next_ext == req->el.n &&
	    req->state == REQ_ACTIVE && srv->submitq != req)
		finish_active(srv, req);
}

#ifdef NGDP_FAULT_INJECT
/*
 * Test binary only: with NGDP_FAULT=short-io, report every data transfer
 * longer than one block as done for half its length (rounded down to the
 * alignment), as a filesystem returning short reads or writes would.  The
 * bytes beyond were transferred, so a server that zero-fills the rest of
 * a short read returns wrong data.
 */
static struct io_op *fault_stalled;

/*
 * NGDP_FAULT=stall-reads: read completions are held back until a suspend
 * was requested, so that a suspend surely arrives while a read is in
 * flight.
 */
static void fault_release(struct server *srv)
{
	while (fault_stalled && srv->suspended) {
		struct io_op *op = fault_stalled;

		fault_stalled = op->next;
		on_complete(op, (int)op->len, srv);
	}
}

static void fault_complete(struct io_op *op, int res, void *opaque)
{
	struct server *srv = opaque;

	if (res == (int)op->len && !op->write && !srv->suspended &&
	    io_fault("stall-reads")) {
		op->next = fault_stalled;
		fault_stalled = op;
		return;
	}

	/* NGDP_FAULT=efault-direct: reads into a destination vector fail as
	 * if the kernel could not pin its pages, after spoiling them, so
	 * that only a complete re-read gives the right data */
	if (op->niov && !op->write && io_fault("efault-direct")) {
		iov_memset(op->iov, op->niov, 0, 0xee, op->len);
		res = -EFAULT;
	}
	if (res > 0 && (size_t)res == op->len && op->len > srv->align &&
	    io_fault("short-io"))
		res = (int)(op->len / 2 / srv->align * srv->align);
	on_complete(op, res, opaque);
}
#define COMPLETE_FN fault_complete
#else
static void fault_release(struct server *srv)
{
	(void)srv;
}
#define COMPLETE_FN on_complete
#endif

/* ------------------------------------------------------------ sync ops */

static int write_zeros(struct server *srv, struct req *req)
{
	uint64_t off = req->h.offset, end = off + req->h.length;
	int r = 0;

	while (off < end && r == 0) {
		uint64_t n = end - off < ZERO_BUF_SIZE ? end - off :
							 ZERO_BUF_SIZE;

		extent_list_clear(&req->el);
		r = image_map_write(srv->img, off, n, &req->el);
		for (size_t i = 0; r == 0 && i < req->el.n; i++) {
			const struct extent *e = &req->el.v[i];
			struct image *owner = chain_owner(srv->img, e->fd);

			if (e->kind != EXTENT_DATA || !owner)
				r = -EIO;
			else
				r = image_pwrite(owner, srv->zero_buf,
						 e->length, e->host_offset);
		}
		off += n;
	}
	return r;
}

static int do_zero(struct server *srv, struct req *req)
{
	int r;

	srv->n_zeroes++;
	mark_dirty(srv);
	cbt_mark(srv, req);
	r = image_zero(srv->img, req->h.offset, req->h.length,
		       !(req->h.flags & NBD_CMD_FLAG_NO_HOLE));
	if (r != -ENOTSUP)
		return r;
	if (req->h.flags & NBD_CMD_FLAG_FAST_ZERO)
		return -ENOTSUP;
	return write_zeros(srv, req);
}

static int do_trim(struct server *srv, struct req *req)
{
	int r;

	srv->n_trims++;
	mark_dirty(srv);
	cbt_mark(srv, req);
	r = image_discard(srv->img, req->h.offset, req->h.length);
	if (r != -ENOTSUP)
		return r;
	r = image_zero(srv->img, req->h.offset, req->h.length, true);
	if (r != -ENOTSUP)
		return r;
	return 0;	/* TRIM is only a hint */
}

static int do_block_status(struct server *srv, struct req *req)
{
	uint64_t len = req->h.length;

	srv->n_block_status++;
	if (len > BLOCK_STATUS_MAX)
		len = BLOCK_STATUS_MAX;
	extent_list_clear(&req->el);
	return image_block_status(srv->img, req->h.offset, len, &req->el);
}

/*
 * Where calls are dispatched, as nbdkit's backend_pread/pwrite do: the
 * range must lie inside the image served now and writes need a writable
 * view.  conn.c validated the request against its connection's view
 * (nbd_request_validate: same errors), and a resume never shrinks the
 * image, so this does not fire today; but the formats are asked for
 * exactly [offset, offset + length), never for something to clip.
 */
static int dispatch_check(const struct server *srv, const struct req *req)
{
	const struct nbd_request *h = &req->h;

	if (is_write_type(h->type) && req->readonly)
		return -EPERM;
	if (h->offset > srv->size || h->length > srv->size - h->offset)
		return h->type == NBD_CMD_WRITE ||
		       h->type == NBD_CMD_WRITE_ZEROES ? -ENOSPC : -EINVAL;
	return 0;
}

/* Start one request.  Returns false if it had to go back to the queue. */
static bool start_req(struct server *srv, struct req *req)
{
	int r = dispatch_check(srv, req);

	if (r < 0) {
		finish_req(srv, req, r);
		return true;
	}
	if (is_write_type(req->h.type))
		mirror_guest_write(srv->mirror, req);
	switch (req->h.type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return start_rw(srv, req);
	case NBD_CMD_TRIM:
		finish_req(srv, req, req->h.length ? do_trim(srv, req) : 0);
		return true;
	case NBD_CMD_WRITE_ZEROES:
		finish_req(srv, req, req->h.length ? do_zero(srv, req) : 0);
		return true;
	case NBD_CMD_BLOCK_STATUS:
		finish_req(srv, req, do_block_status(srv, req));
		return true;
	default:
		finish_req(srv, req, -EINVAL);
		return true;
	}
}

/* ------------------------------------------------------------ barriers */

#ifdef NGDP_FAULT_INJECT
/* NGDP_FAULT=flush-fail: flushes fail with ENOSPC while the file
 * $NGDP_FAULT_FILE exists (a full filesystem, until space is freed). */
static bool fault_flush(void)
{
	const char *f = getenv("NGDP_FAULT_FILE");

	return io_fault("flush-fail") && f && access(f, F_OK) == 0;
}
#else
static bool fault_flush(void)
{
	return false;
}
#endif

static void flush_barrier(struct server *srv)
{
	struct req *req;
	int r = 0;

	if (srv->dirty || srv->flushq) {
		r = fault_flush() ? -ENOSPC : image_flush(srv->img);
		srv->n_flushes++;
		if (r < 0)
			log_error("flush of '%s' failed: %s", srv->img->path,
				  strerror(-r));
		else
			srv->dirty = false;
	}
	srv->flush_wanted = false;
	while ((req = q_pop(&srv->flushq, &srv->flushq_tail))) {
		req->wire_err = nbd_errno_to_wire(r);
		req->done(req);
	}
	if (srv->suspend_flush_pending) {
		srv->suspend_flush_pending = false;
		if (r < 0 && srv->suspended) {
			/*
			 * The suspender gets the error and will not snapshot;
			 * a server left suspended would fail the VM's I/O
			 * for good.  Serve on: the next flush retries.
			 */
			log_error("suspend of '%s' failed (%s): serving on",
				  srv->img->path, strerror(-r));
			srv->suspended = false;
			srv->suspend_expired = false;
		} else if (srv->suspended) {
			/* the epoch is sealed (a snapshot may follow) before
			 * the suspender hears of it; a resume starts again */
			cbt_stop(srv);
		}
	}
	if (srv->suspend_hook)
		srv->suspend_hook(srv->suspend_hook_opaque, r);
}

static void fail_req(struct server *srv, struct req *req, int err)
{
	srv->n_errors++;
	req->wire_err = nbd_errno_to_wire(err);
	req->done(req);
}

static void coalesce_step(struct server *srv);
static bool coalesce_wanted(const struct server *srv, uint64_t now);

static void schedule(struct server *srv)
{
	bool co_ran = false;	/* at most one chunk per loop turn */
	bool mi_ran = false;	/* the same for the mirror job */
	struct req *req;

	for (;;) {
		pump_submitq(srv);
		if (srv->held) {
			/* mapped, waiting for the synchronous path: first */
			if (srv->active)
				return;
			req = srv->held;
			srv->held = NULL;
			finish_req(srv, req,
				   rw_sync(srv, req,
					   req->h.type == NBD_CMD_WRITE));
			continue;
		}
		if (srv->flushq || srv->flush_wanted) {
			if (srv->active)
				return;
			flush_barrier(srv);
			continue;
		}
		if (!co_ran && coalesce_wanted(srv, server_now_ms())) {
			/* a barrier: no new guest request until it ran */
			if (srv->active) {
				srv->co.guest_waited = true;
				return;
			}
			coalesce_step(srv);
			co_ran = true;
			continue;
		}
		if (!mi_ran && mirror_chunk_wanted(srv->mirror)) {
			/* a barrier too: the chunk is read with no write in
			 * flight (ordering: mirror.c) */
			if (srv->active)
				return;
			mirror_chunk_step(srv->mirror);
			mi_ran = true;
			continue;
		}
		req = srv->waitq;
		if (!req)
			return;
		if (srv->suspended && !srv->suspend_expired) {
			if (!srv->stopping)
				return;
			/* shutting down while suspended: never write */
			q_pop(&srv->waitq, &srv->waitq_tail);
			fail_req(srv, req, -ESHUTDOWN);
			continue;
		}
		if (srv->suspended && (is_write_type(req->h.type) ||
				       req->h.type == NBD_CMD_FLUSH)) {
			/* suspend timed out: the old top may be a snapshot */
			q_pop(&srv->waitq, &srv->waitq_tail);
			fail_req(srv, req, -EIO);
			continue;
		}
		/* overlaps remote I/O of the mirror in flight: waits for its
		 * reply, at the head of the queue */
		if (is_write_type(req->h.type) &&
		    mirror_write_blocked(srv->mirror, req))
			return;
		if (req->h.type == NBD_CMD_FLUSH) {
			q_pop(&srv->waitq, &srv->waitq_tail);
			req->state = REQ_FLUSHWAIT;
			q_push(&srv->flushq, &srv->flushq_tail, req);
			continue;
		}
		if (needs_excl(srv, req) && srv->active)
			return;
		if (srv->submitq || !srv->free_ops)
			return;
		q_pop(&srv->waitq, &srv->waitq_tail);
		if (!start_req(srv, req))
			return;
	}
}

/* ------------------------------------------------------------ suspend */

int server_suspend(struct server *srv, uint64_t timeout_ms)
{
	/* with a record to resume from, never suspended without an end */
	if (!timeout_ms && srv->cfg.volume_record)
		timeout_ms = SUSPEND_DEFAULT_MS;
	srv->suspend_flush_pending = true;
	srv->suspended = true;
	srv->suspend_expired = false;
	srv->suspend_deadline_ms = timeout_ms ? server_now_ms() + timeout_ms :
						0;
	srv->flush_wanted = true;
	log_info("suspending '%s' (timeout %llu ms)", srv->img->path,
		 (unsigned long long)timeout_ms);
	return 0;
}

static unsigned int chain_align(const struct image *img)
{
	unsigned int a = 1;

	for (; img; img = img->backing)
		if (img->direct && img->dio_align > a)
			a = img->dio_align;
	return a;
}

static void adopt_image(struct server *srv, struct image *img)
{
	srv->img = img;
	srv->size = img->virtual_size;
	/* tracking across a reopen of the same top (a coalesce switch):
	 * the bitmap covers the disk as it is */
	if (srv->cbt_tracking && srv->cbt_bm.virtual_size != srv->size &&
	    dirty_bitmap_resize(&srv->cbt_bm, srv->size) < 0) {
		log_error("'%s': out of memory resizing the changed block "
			  "bitmap '%s': it is left flagged in use",
			  img->path, srv->cbt_name);
		srv->cbt_tracking = false;
		srv->cbt_consistent = false;
		dirty_bitmap_free(&srv->cbt_bm);
	}
	srv->align = chain_align(img);
	srv->fast_zero = !img->readonly && img->fmt->zero;
}

/*
 * The format of an image we serve: what the caller said (--format), else
 * what the file name says (the volume plugin names images <id>.<format>).
 * Never the content: a guest can write any header into a raw disk.
 */
static const char *format_of(const char *given, const char *path)
{
	const char *dot = strrchr(path, '.');

	if (given)
		return given;
	if (dot && !strchr(dot, '/')) {
		if (!strcmp(dot, ".qcow2"))
			return "qcow2";
		if (!strcmp(dot, ".raw") || !strcmp(dot, ".img"))
			return "raw";
		if (!strcmp(dot, ".vhd"))
			return "vpc";
	}
	return NULL;
}

static int open_chain(const struct server *srv, const char *path,
		      const char *format, struct image **ret)
{
	struct image_open_options opt = {
		.readonly = srv->cfg.readonly,
		.no_direct = srv->cfg.no_direct,
		.confine_dir = srv->cfg.confine,
		.format = format,
	};

	if (!format) {
		log_error("'%s': no --format and no .qcow2/.raw/.vhd name: the format is never guessed",
			  path);
		return -EINVAL;
	}
	return image_open(path, &opt, ret);
}

static int resume_on(struct server *srv, const char *image,
		     const char *format);

int server_resume(struct server *srv, const char *image)
{
	return resume_on(srv, image, NULL);
}

/*
 * Close the chain and serve the one whose top is image instead (format
 * NULL: the file name's), never smaller than the current one.  Called with
 * no data I/O in flight.  When image cannot be served, the old top is
 * opened again; when even that fails there is nothing left to serve and
 * the server stops (exit status 1).  Either way any coalesce job is over:
 * its caller cancelled it, or it is the job's own switch.
 */
static int reopen_chain(struct server *srv, const char *image,
			const char *format)
{
	struct image *nimg = NULL;
	const char *old_format;
	char *old_path;
	uint64_t old_size = srv->size;
	int r;

	old_path = strdup(srv->img->path);
	if (!old_path)
		return -ENOMEM;
	old_format = srv->img->fmt->name;	/* static strings */
	image_close(srv->img);
	srv->img = NULL;
	r = open_chain(srv, image, format_of(format, image), &nimg);
	if (r == 0 && nimg->virtual_size < old_size) {
		log_error("'%s' is smaller than the image served until now",
			  image);
		image_close(nimg);
		r = -EINVAL;
	}
	if (r < 0) {
		int r2 = open_chain(srv, old_path, old_format, &nimg);

		if (r2 < 0) {
			/* cannot serve anything any more */
			log_error("cannot reopen '%s': %s", old_path,
				  strerror(-r2));
			free(old_path);
			srv->exit_status = 1;
			server_request_stop(srv);
			return r;
		}
		adopt_image(srv, nimg);
		free(old_path);
		return r;
	}
	free(old_path);
	adopt_image(srv, nimg);
	return 0;
}

static void coalesce_fail(struct server *srv, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cbt_start(struct server *srv);
static void cbt_follow_record(struct server *srv);

static int resume_on(struct server *srv, const char *image,
		     const char *format)
{
	int r;

	if (!image) {
		srv->suspended = false;
		srv->suspend_expired = false;
		log_info("resumed '%s'", srv->img->path);
		cbt_start(srv);
		return 0;
	}
	if (!srv->suspended) {
		struct stat st, cur;

		/* resumed already (suspend timeout, --volume-record) on
		 * this very image: a late resume is answered yes */
		if (stat(image, &st) == 0 && fstat(srv->img->fd, &cur) == 0 &&
		    st.st_dev == cur.st_dev && st.st_ino == cur.st_ino) {
			log_info("resume on '%s': serving it already", image);
			/* the record may have changed since the self-resume
			 * (CBT enabled or disabled): follow it */
			cbt_follow_record(srv);
			return 0;
		}
		log_error("resume with a new image needs a suspend first");
		return -EINVAL;
	}
	if (srv->active || srv->submitq || srv->held || srv->flushq ||
	    srv->flush_wanted || srv->dirty) {
		log_error("resume: I/O still in flight, retry");
		return -EBUSY;
	}
	/* the chain the job merges is closed: it must never write into the
	 * old top (a snapshot now), nor go on in the new one */
	if (srv->co.state == CO_RUNNING)
		coalesce_fail(srv, 0, "chain changed");
	cbt_stop(srv);	/* stopped at the suspend already: a no-op */
	r = reopen_chain(srv, image, format);
	if (r < 0)
		return r;
	srv->suspended = false;
	srv->suspend_expired = false;
	log_info("resumed on '%s'", image);
	cbt_start(srv);
	return 0;
}

/* ------------------------------------------------------------ record */

#define RECORD_RETRY_MS		1000
#define RECORD_LOG_MS		30000

static bool serving_overlay(const struct server *srv)
{
	const char *b = strrchr(srv->img->path, '/');

	return !strncmp(b ? b + 1 : srv->img->path, ".np-", 4);
}

/*
 * A suspend was not followed by a resume in time: resume on the image the
 * volume record names now (the current top if the snapshot did not
 * happen, the new leaf if it was committed), never staying suspended.
 * Under a shared lock of the SR, so never in the middle of a snapshot
 * that holds it exclusively.  -EAGAIN: try again later.
 */
static int resume_from_record(struct server *srv)
{
	char path[PATH_MAX], lockpath[PATH_MAX];
	const char *format = NULL;
	struct stat st, cur;
	int lockfd, r;

	if (srv->active || srv->submitq || srv->held || srv->flushq ||
	    srv->flush_wanted)
		return -EAGAIN;
	snprintf(lockpath, sizeof(lockpath), "%s/.sr/lock", srv->sr_dir);
	lockfd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (lockfd < 0 && errno != ENOENT)
		return -errno;
	if (lockfd >= 0 && flock(lockfd, LOCK_SH | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		close(lockfd);
		return r;
	}
	if (serving_overlay(srv)) {
		/* reset-on-boot: the overlay stays the top whatever the
		 * record says (snapshots do not pause such a server) */
		log_warn("suspend of '%s' not resumed in time: resuming on "
			 "the same reset-on-boot overlay", srv->img->path);
		r = resume_on(srv, NULL, NULL);
		goto out;
	}
	r = control_record_image(srv->cfg.volume_record, srv->sr_dir, path,
				 sizeof(path), &format);
	if (r < 0)
		goto out;
	if (stat(path, &st) == 0 && fstat(srv->img->fd, &cur) == 0 &&
	    st.st_dev == cur.st_dev && st.st_ino == cur.st_ino) {
		log_warn("suspend of '%s' not resumed in time: %s still names "
			 "it, resuming on it", srv->img->path,
			 srv->cfg.volume_record);
		r = resume_on(srv, NULL, NULL);
		goto out;
	}
	log_warn("suspend of '%s' not resumed in time: resuming on '%s', "
		 "which %s names now", srv->img->path, path,
		 srv->cfg.volume_record);
	r = resume_on(srv, path, format);
out:
	if (lockfd >= 0)
		close(lockfd);	/* releases the lock */
	return r;
}

static void record_retry(struct server *srv, uint64_t now)
{
	int r;

	if (!srv->suspended || !srv->suspend_expired ||
	    !srv->cfg.volume_record || now < srv->record_retry_ms ||
	    srv->stopping)
		return;
	r = resume_from_record(srv);
	if (r == 0)
		return;
	srv->record_retry_ms = now + (r == -EAGAIN ? 100 : RECORD_RETRY_MS);
	if (r != -EAGAIN && now >= srv->record_log_ms) {
		log_error("cannot resume from %s: %s; retrying every %d ms",
			  srv->cfg.volume_record, strerror(-r),
			  RECORD_RETRY_MS);
		srv->record_log_ms = now + RECORD_LOG_MS;
	}
}

static int server_set_record(struct server *srv, const char *record)
{
	char *d = strdup(record), *p;

	if (!d)
		return -ENOMEM;
	/* <SR>/meta/v-<key>.json */
	p = strrchr(d, '/');
	if (!p || strncmp(p + 1, "v-", 2) || p == d) {
		free(d);
		return -EINVAL;
	}
	*p = '\0';
	p = strrchr(d, '/');
	if (!p || strcmp(p + 1, "meta")) {
		free(d);
		return -EINVAL;
	}
	*p = '\0';
	if (!*d)
		strcpy(d, "/");
	srv->cfg.volume_record = record;
	srv->sr_dir = d;
	return 0;
}

/* ------------------------------------------------------------ CBT */

/* Is the top we serve the image the volume record names? */
static bool serving_record_image(const struct server *srv)
{
	char path[PATH_MAX];
	const char *format = NULL;
	struct stat st, cur;

	return control_record_image(srv->cfg.volume_record, srv->sr_dir,
				    path, sizeof(path), &format) == 0 &&
	       stat(path, &st) == 0 && fstat(srv->img->fd, &cur) == 0 &&
	       st.st_dev == cur.st_dev && st.st_ino == cur.st_ino;
}

/*
 * The chain was (re)opened: track the guest's writes into the epoch
 * bitmap the volume record names, if it names one and the top served is
 * its image (never a reset-on-boot overlay, never read-only).  The bitmap
 * is stored flagged in use before any write is served: a server that
 * dies leaves it so, and the epoch is reported as unknown.  One found in
 * use already is never tracked into nor stored (it stays flagged).
 * Tracking already (a coalesce switch reopened the same top): go on.
 */
static void cbt_start(struct server *srv)
{
	char name[CBT_BITMAP_NAME_MAX + 1];
	bool in_use = false;
	int r;

	if (srv->cbt_tracking)
		return;
	srv->cbt_name[0] = '\0';
	srv->cbt_consistent = true;
	if (!srv->cfg.volume_record || srv->cfg.readonly ||
	    srv->img->readonly || serving_overlay(srv))
		return;
	r = control_record_cbt(srv->cfg.volume_record, name, sizeof(name));
	if (r == -ENOENT)
		return;
	if (r < 0) {
		log_error("%s: cannot read its cbt_bitmap (%s): the changes "
			  "to '%s' are not tracked", srv->cfg.volume_record,
			  strerror(-r), srv->img->path);
		return;
	}
	if (!serving_record_image(srv)) {
		log_warn("'%s' is not the image %s names: its changes are "
			 "not tracked into '%s'", srv->img->path,
			 srv->cfg.volume_record, name);
		return;
	}
	strcpy(srv->cbt_name, name);
	r = image_bitmap_load(srv->img, name, &srv->cbt_bm, &in_use);
	if (r == 0 && in_use) {
		log_warn("'%s': changed block bitmap '%s' is flagged in use: "
			 "a previous server did not close it; it is left so "
			 "(its changes are unknown) and not tracked into",
			 srv->img->path, name);
		dirty_bitmap_free(&srv->cbt_bm);
		srv->cbt_consistent = false;
		return;
	}
	if (r == -ENOENT)
		r = dirty_bitmap_init(&srv->cbt_bm, CBT_GRANULARITY,
				      srv->size);
	else if (r == 0 && srv->cbt_bm.virtual_size != srv->size)
		r = dirty_bitmap_resize(&srv->cbt_bm, srv->size);
	if (r == 0) {
		r = image_bitmap_store(srv->img, name, &srv->cbt_bm, true);
		if (r < 0) {
			/* never leave a bitmap that claims to be complete */
			int r2 = image_bitmap_remove(srv->img, name);

			if (r2 < 0 && r2 != -ENOENT)
				log_error("'%s': cannot remove changed block "
					  "bitmap '%s' either: %s",
					  srv->img->path, name,
					  strerror(-r2));
		}
	}
	if (r < 0) {
		log_error("'%s': cannot set up changed block bitmap '%s' "
			  "(%s): the changes are not tracked",
			  srv->img->path, name, strerror(-r));
		dirty_bitmap_free(&srv->cbt_bm);
		srv->cbt_consistent = false;
		return;
	}
	srv->cbt_tracking = true;
	log_info("'%s': tracking changed blocks into '%s' (%llu set)",
		 srv->img->path, name,
		 (unsigned long long)dirty_bitmap_count(&srv->cbt_bm));
}

/*
 * Seal the epoch (at a suspend, after its flush; at a clean stop, after
 * the final flush): stored without the in-use flag.  If that fails the
 * flag stays set on disk: the epoch is reported as unknown.
 */
static void cbt_stop(struct server *srv)
{
	int r;

	if (!srv->cbt_tracking)
		return;
	r = srv->img ? image_bitmap_store(srv->img, srv->cbt_name,
					  &srv->cbt_bm, false) : -EBADF;
	if (r < 0) {
		log_error("'%s': cannot store changed block bitmap '%s' (%s): "
			  "it stays flagged in use",
			  srv->img ? srv->img->path : "?",
			  srv->cbt_name, strerror(-r));
		srv->cbt_consistent = false;
	} else {
		log_info("'%s': changed block bitmap '%s' stored (%llu set)",
			 srv->img->path, srv->cbt_name,
			 (unsigned long long)dirty_bitmap_count(&srv->cbt_bm));
	}
	srv->cbt_tracking = false;
	dirty_bitmap_free(&srv->cbt_bm);
}

/*
 * A late resume on the image served already: the record may name another
 * epoch (or none) than the one tracked.  The epoch tracked is sealed as it
 * is (writes in flight have their bits set already) and the record's
 * followed.
 */
static void cbt_follow_record(struct server *srv)
{
	char name[CBT_BITMAP_NAME_MAX + 1] = "";

	if (!srv->cfg.volume_record)
		return;
	if (control_record_cbt(srv->cfg.volume_record, name,
			       sizeof(name)) < 0)
		name[0] = '\0';
	if (srv->cbt_tracking && !strcmp(name, srv->cbt_name))
		return;
	cbt_stop(srv);
	cbt_start(srv);
}

/* ------------------------------------------------------------ coalesce */

/*
 * Live coalesce (issue 13): the top C is writable over a hidden parent H
 * that nothing else needs.  The job pulls H's own data down into C, 1 MiB
 * at a time, each chunk at a barrier in the loop thread; at the end it
 * flushes C, rewrites C's header to name H's backing file (or none) and
 * reopens the chain from C.
 *
 * A guest write racing a chunk is never overwritten by older data from H:
 * a chunk runs only with no data I/O in flight and nothing held (every
 * guest write mapped so far has its data in C; those not mapped yet are
 * mapped, and so written, after the chunk), and image_pull_backing never
 * writes a range the top holds itself.  So where the guest wrote, C holds
 * the range and the chunk skips it; where it writes later, the guest's
 * data lands over the chunk's.
 *
 * Guest I/O has priority: when the guest had requests since the last
 * chunk or waited for this one, the next chunk is due only after nine
 * times the last chunk's duration (>= 90% of the time is the guest's);
 * an idle guest lets the chunks run back to back, one per loop turn.
 */
#define CO_CHUNK		(1024 * 1024)
#define CO_DUTY			9
#define CO_FLUSH_RETRY_MS	1000

static uint64_t server_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Guest requests started so far. */
static uint64_t guest_ops(const struct server *srv)
{
	return srv->n_reads + srv->n_writes + srv->n_trims + srv->n_zeroes +
	       srv->n_block_status;
}

static void coalesce_fail(struct server *srv, int err, const char *fmt, ...)
{
	struct coalesce_job *co = &srv->co;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(co->error, sizeof(co->error), fmt, ap);
	va_end(ap);
	n = strlen(co->error);
	if (err)
		snprintf(co->error + n, sizeof(co->error) - n, ": %s",
			 strerror(-err));
	co->state = CO_FAILED;
	log_error("coalesce of '%s' failed: %s", co->parent, co->error);
}

/* Is the top's backing file still the job's parent? */
static bool coalesce_chain_same(const struct server *srv)
{
	const struct coalesce_job *co = &srv->co;
	struct stat st;

	return srv->img->backing && fstat(srv->img->backing->fd, &st) == 0 &&
	       st.st_dev == co->dev && st.st_ino == co->ino;
}

#ifdef NGDP_FAULT_INJECT
/* NGDP_FAULT=coalesce-slow: every chunk takes 10 ms more, so that guest
 * writes surely race the chunks; coalesce-crawl: 100 ms more, so that a
 * test can kill the server in the middle of a coalesce. */
static void fault_coalesce(void)
{
	if (io_fault("coalesce-crawl"))
		usleep(100000);
	else if (io_fault("coalesce-slow"))
		usleep(10000);
}
#else
static void fault_coalesce(void)
{
}
#endif

/* A chunk or the switch is due now (the caller waits for no I/O). */
static bool coalesce_wanted(const struct server *srv, uint64_t now)
{
	return srv->co.state == CO_RUNNING && !srv->suspended &&
	       !srv->stopping && now >= srv->co.due_ms;
}

/* The walk is over: make C durable, skip H in its header, reopen. */
static void coalesce_switch(struct server *srv)
{
	struct coalesce_job *co = &srv->co;
	const char *format = srv->img->fmt->name;
	char *path;
	int r;

	r = fault_flush() ? -ENOSPC : image_flush(srv->img);
	srv->n_flushes++;
	if (r < 0) {
		log_error("coalesce: flush of '%s' failed (%s): retrying in %d ms",
			  srv->img->path, strerror(-r), CO_FLUSH_RETRY_MS);
		co->due_ms = server_now_ms() + CO_FLUSH_RETRY_MS;
		return;
	}
	srv->dirty = false;
	/* the parent's sealed epochs live on in the top (its merge must
	 * not lose them); the tracked one is re-stored in case the parent
	 * held a bitmap of that name */
	r = image_bitmap_adopt(srv->img, srv->img->backing);
	if (r == 0 && srv->cbt_tracking)
		r = image_bitmap_store(srv->img, srv->cbt_name, &srv->cbt_bm,
				       true);
	if (r < 0) {
		coalesce_fail(srv, r, "cannot move the changed block bitmaps "
			      "of '%s' into '%s'", srv->img->backing->path,
			      srv->img->path);
		return;
	}
	r = image_skip_backing(srv->img);
	if (r < 0) {
		coalesce_fail(srv, r, "cannot rewrite the header of '%s'",
			      srv->img->path);
		return;
	}
	path = strdup(srv->img->path);
	if (!path) {
		coalesce_fail(srv, -ENOMEM, "cannot reopen the chain");
		return;
	}
	r = reopen_chain(srv, path, format);
	if (r < 0) {
		coalesce_fail(srv, r, "cannot reopen '%s'", path);
		free(path);
		return;
	}
	cbt_start(srv);
	co->state = CO_DONE;
	log_info("coalesced '%s' into '%s' (%llu bytes copied); its backing "
		 "file is now %s", co->parent, path,
		 (unsigned long long)co->copied,
		 srv->img->backing ? srv->img->backing->path : "none");
	free(path);
}

/* One step of the job, at a barrier: no data I/O in flight. */
static void coalesce_step(struct server *srv)
{
	struct coalesce_job *co = &srv->co;
	bool busy = co->guest_waited || srv->waitq ||
		    guest_ops(srv) != co->guest_ops;
	uint64_t n, t0, dur;
	int r;

	co->guest_waited = false;
	if (!coalesce_chain_same(srv)) {
		coalesce_fail(srv, 0, "chain changed");
		return;
	}
	if (co->offset >= co->end) {
		coalesce_switch(srv);
		return;
	}
	n = co->end - co->offset < CO_CHUNK ? co->end - co->offset : CO_CHUNK;
	t0 = server_now_ns();
	mark_dirty(srv);
	r = image_pull_backing(srv->img, co->offset, n, &co->copied);
	fault_coalesce();
	if (r < 0) {
		coalesce_fail(srv, r, "cannot copy %llu bytes at offset %llu",
			      (unsigned long long)n,
			      (unsigned long long)co->offset);
		return;
	}
	co->offset += n;
	co->chunks++;
	dur = server_now_ns() - t0;
	co->guest_ops = guest_ops(srv);
	co->due_ms = server_now_ms();
	if (busy)
		co->due_ms += (CO_DUTY * dur + 999999) / 1000000;
}

int server_coalesce(struct server *srv, const char *parent,
		    const char **why)
{
	struct coalesce_job *co = &srv->co;
	struct stat pst;
	char *p;

	if ((co->state == CO_RUNNING || co->state == CO_DONE) &&
	    !strcmp(co->parent, parent))
		return 0;	/* asked again: the same job */
	if (srv->cfg.readonly) {
		*why = "the volume is served read-only";
		return -EROFS;
	}
	if (serving_overlay(srv)) {
		*why = "the volume is served through a reset-on-boot overlay, "
		       "whose chain is never merged live";
		return -EINVAL;
	}
	if (srv->stopping) {
		*why = "the server is stopping";
		return -ESHUTDOWN;
	}
	if (!srv->img->backing) {
		*why = "the served image has no backing file";
		return -EINVAL;
	}
	if (stat(parent, &pst) < 0) {
		int r = -errno;

		*why = "the parent image cannot be found";
		return r;
	}
	if (co->state == CO_RUNNING) {
		if (coalesce_chain_same(srv) && pst.st_dev == co->dev &&
		    pst.st_ino == co->ino)
			return 0;	/* the same file by another name */
		*why = "another coalesce is running";
		return -EBUSY;
	}
	co->dev = pst.st_dev;
	co->ino = pst.st_ino;
	if (!coalesce_chain_same(srv)) {
		*why = "the parent is not the backing file of the served image";
		return -EINVAL;
	}
	p = strdup(parent);
	if (!p) {
		*why = "out of memory";
		return -ENOMEM;
	}
	free(co->parent);
	co->parent = p;
	co->state = CO_RUNNING;
	co->end = srv->img->backing->virtual_size < srv->size ?
		  srv->img->backing->virtual_size : srv->size;
	co->offset = co->copied = co->chunks = 0;
	co->due_ms = server_now_ms();
	co->guest_ops = guest_ops(srv);
	co->guest_waited = false;
	co->error[0] = '\0';
	log_info("coalescing '%s' into '%s' (%llu bytes to scan)", parent,
		 srv->img->path, (unsigned long long)co->end);
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

int server_init(struct server *srv, const struct server_config *cfg)
{
	struct image *img = NULL;
	unsigned int depth;
	int r;

	memset(srv, 0, sizeof(*srv));
	srv->cfg = *cfg;
	srv->epfd = srv->sigfd = -1;
	for (int i = 0; i < SERVER_HOOK_LISTENERS; i++)
		srv->hook_listen_fd[i] = -1;
	srv->listen_fd[0] = srv->listen_fd[1] = srv->listen_fd[2] = -1;
	srv->tag_listen.kind = EV_LISTEN;
	srv->tag_engine.kind = EV_ENGINE;
	srv->tag_signal.kind = EV_SIGNAL;
	depth = cfg->queue_depth ? cfg->queue_depth :
				   NGDP_QUEUE_DEPTH_DEFAULT;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0)
		return -errno;
	r = conn_set_new(srv, &srv->conns);
	if (r < 0)
		return r;
	if (cfg->volume_record) {
		r = server_set_record(srv, cfg->volume_record);
		if (r < 0) {
			log_error("--volume-record '%s' is not <SR>/meta/v-<key>.json",
				  cfg->volume_record);
			return r;
		}
	}
	/* the format the plugin recorded (--format): a guest-writable
	 * image is never probed */
	r = open_chain(srv, cfg->image, format_of(cfg->format, cfg->image),
		       &img);
	if (r < 0)
		return r;
	adopt_image(srv, img);
	if (cfg->format && strcmp(cfg->format, img->fmt->name)) {
		log_error("'%s' is %s, not %s", cfg->image, img->fmt->name,
			  cfg->format);
		return -EINVAL;
	}
	srv->cbt_consistent = true;
	cbt_start(srv);
	r = io_engine_create(cfg->engine ? cfg->engine : "auto", depth,
			     &srv->eng);
	if (r < 0) {
		log_error("cannot set up the %s I/O engine: %s",
			  cfg->engine ? cfg->engine : "auto", strerror(-r));
		return r;
	}
	srv->ops = calloc(depth, sizeof(*srv->ops));
	if (!srv->ops)
		return -ENOMEM;
	for (unsigned int i = 0; i < depth; i++) {
		srv->ops[i].next = srv->free_ops;
		srv->free_ops = &srv->ops[i];
	}
	if (posix_memalign(&srv->zero_buf, 4096, ZERO_BUF_SIZE))
		return -ENOMEM;
	memset(srv->zero_buf, 0, ZERO_BUF_SIZE);
	r = server_epoll_add(srv, srv->eng->event_fd, EPOLLIN | EPOLLET,
			     &srv->tag_engine);
	if (r < 0)
		return r;
	log_info("serving '%s' (%s, %llu bytes, align %u, engine %s%s)",
		 img->path, img->fmt->name, (unsigned long long)srv->size,
		 srv->align, srv->eng->ops->name,
		 cfg->readonly ? ", read-only" : "");
	return 0;
}

int server_setup_signals(struct server *srv)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	srv->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->sigfd < 0)
		return -errno;
	return server_epoll_add(srv, srv->sigfd, EPOLLIN, &srv->tag_signal);
}

void server_request_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	log_info("stopping: draining in-flight I/O");
	srv->stopping = true;
}

void server_release(struct server *srv)
{
	conn_set_free(srv->conns);
	srv->conns = NULL;
	for (int i = 0; i < 3; i++)
		if (srv->listen_fd[i] >= 0)
			close(srv->listen_fd[i]);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	io_engine_free(srv->eng);
	if (srv->img)
		image_close(srv->img);
	if (srv->epfd >= 0)
		close(srv->epfd);
	req_free_all(srv);
	free(srv->sr_dir);
	free(srv->co.parent);
	mirror_free(srv->mirror);
	srv->mirror = NULL;
	dirty_bitmap_free(&srv->cbt_bm);	/* not stored: still in use */
	/* the engine is gone, and its registrations with it */
	for (unsigned int c = 0; c <= BUF_MAX_SHIFT; c++)
		while (srv->pool.nfree[c])
			buf_free(srv, srv->pool.free[c][--srv->pool.nfree[c]],
				 c, -1);
	free(srv->ops);
	free(srv->zero_buf);
}

/* Listeners (NBD and control) on or off in epoll. */
static void listeners_enable(struct server *srv, bool on)
{
	for (int i = 0; i < 3; i++)
		if (srv->listen_fd[i] >= 0)
			server_epoll_mod(srv, srv->listen_fd[i], on ? EPOLLIN : 0,
					 &srv->tag_listen);
	for (int i = 0; i < SERVER_HOOK_LISTENERS; i++)
		if (srv->hook_listen_fd[i] >= 0)
			server_epoll_mod(srv, srv->hook_listen_fd[i],
					 on ? EPOLLIN : 0, srv->hook_listen_tag[i]);
	srv->accept_paused = !on;
}

/*
 * accept failed for want of resources (file descriptors at the limit,
 * memory): the connection stays in the backlog and the level-triggered
 * listener would fire again at once.  Stop listening for a while, and
 * say so at most once per ACCEPT_LOG_MS.
 */
void server_accept_failed(struct server *srv, int err)
{
	uint64_t now = server_now_ms();

	if (!srv->accept_paused)
		listeners_enable(srv, false);
	srv->accept_resume_ms = now + ACCEPT_BACKOFF_MS;
	srv->accept_failures++;
	if (now >= srv->accept_log_ms) {
		log_error("cannot accept connections: %s (%u connections open); "
			  "retrying every %d ms (%llu failures so far)",
			  strerror(err), conn_set_count(srv->conns),
			  ACCEPT_BACKOFF_MS,
			  (unsigned long long)srv->accept_failures);
		srv->accept_log_ms = now + ACCEPT_LOG_MS;
	}
}

int server_accept(struct server *srv, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN)
			server_accept_failed(srv, errno);
		return -1;
	}
}

static void accept_all(struct server *srv, int lfd, bool readonly)
{
	int one = 1, fd;

	while ((fd = server_accept(srv, lfd)) >= 0) {
		/* TCP: do not delay small replies (fails harmlessly on Unix) */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (conn_new(srv->conns, fd, readonly) < 0) {
			close(fd);
			server_accept_failed(srv, ENOMEM);
			return;
		}
	}
}

static void on_signal(struct server *srv)
{
	struct signalfd_siginfo si;

	while (read(srv->sigfd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u received", si.ssi_signo);
		server_request_stop(srv);
	}
}

static void stop_progress(struct server *srv)
{
	int r;

	if (srv->listen_fd[0] >= 0 || srv->listen_fd[1] >= 0 ||
	    srv->listen_fd[2] >= 0) {
		for (int i = 0; i < 3; i++) {
			if (srv->listen_fd[i] >= 0)
				close(srv->listen_fd[i]);
			srv->listen_fd[i] = -1;
		}
		conn_stop_reading(srv->conns);
	}
	if (srv->waitq || srv->submitq || srv->held || srv->flushq ||
	    srv->active || srv->flush_wanted)
		return;
	if (!srv->stop_flushed) {
		srv->stop_flushed = true;
		r = srv->suspended ? 0 : image_flush(srv->img);
		srv->stop_flush_err = r;
		if (r < 0) {
			log_error("final flush of '%s' failed: %s",
				  srv->img->path, strerror(-r));
			srv->exit_status = 1;
		} else {
			cbt_stop(srv);
		}
	}
	/* the remote of a synced mirror is flushed too */
	if (!mirror_stop_step(srv->mirror, srv->stop_flush_err))
		return;
	if (srv->stop_hold && srv->stop_hold(srv->stop_hold_opaque))
		return;
	srv->quit = true;
}

/* Could schedule() start or finish something right now? */
static bool can_progress(const struct server *srv)
{
	const struct req *req = srv->waitq;

	if (srv->submitq && srv->free_ops)
		return true;
	if (srv->held)
		return !srv->active;
	if (srv->flushq || srv->flush_wanted)
		return !srv->active;
	if (coalesce_wanted(srv, server_now_ms()))
		return !srv->active;
	if (mirror_chunk_wanted(srv->mirror))
		return !srv->active;
	if (!req)
		return false;
	if (srv->suspended && !srv->suspend_expired)
		return srv->stopping;
	if (srv->suspended && is_write_type(req->h.type))
		return true;	/* failed right away */
	if (is_write_type(req->h.type) &&
	    mirror_write_blocked(srv->mirror, req))
		return false;	/* until the remote's reply */
	if (req->h.type == NBD_CMD_FLUSH)
		return true;
	if (needs_excl(srv, req) && srv->active)
		return false;
	return !srv->submitq && srv->free_ops;
}

static int loop_timeout(struct server *srv)
{
	uint64_t now = server_now_ms(), t = 1000;

	/* requests parsed after schedule() ran (a paused connection) */
	if (can_progress(srv))
		return 0;
	if (srv->stopping)
		return 50;
	/* operations the kernel did not take yet: retried after completions
	 * are reaped, or soon when nothing is in flight */
	if (srv->eng->queued && !srv->eng->in_flight)
		t = 10;
	if (srv->dirty && srv->cfg.flush_interval_ms) {
		uint64_t due = srv->dirty_since_ms + srv->cfg.flush_interval_ms;

		due = due > now ? due - now : 0;
		if (due < t)
			t = due;
	}
	if (srv->suspended && srv->suspend_expired && srv->cfg.volume_record) {
		uint64_t d = srv->record_retry_ms > now ?
			     srv->record_retry_ms - now : 0;

		if (d < t)
			t = d;
	}
	/* a chunk due later (one due now: can_progress, or completions) */
	if (srv->co.state == CO_RUNNING && !srv->suspended &&
	    srv->co.due_ms > now && srv->co.due_ms - now < t)
		t = srv->co.due_ms - now;
	/* the mirror's next chunk, held back by its rate limit */
	if (!srv->suspended) {
		uint64_t d = mirror_next_chunk_ms(srv->mirror, now);

		if (d < t)
			t = d;
	}
	if (srv->accept_paused) {
		uint64_t d = srv->accept_resume_ms > now ?
			     srv->accept_resume_ms - now : 0;

		if (d < t)
			t = d;
	}
	if (srv->suspended && !srv->suspend_expired &&
	    srv->suspend_deadline_ms) {
		uint64_t d = srv->suspend_deadline_ms > now ?
			     srv->suspend_deadline_ms - now : 0;

		if (d < t)
			t = d;
	}
	return t > 1000 ? 1000 : (int)t;
}

/* Refresh the heartbeat file's mtime: another host reading an activation
 * lock can tell a live server from one whose host died. */
#define HEARTBEAT_MS 5000
static void heartbeat(struct server *srv, uint64_t now)
{
	if (!srv->cfg.heartbeat || now < srv->heartbeat_ms + HEARTBEAT_MS)
		return;
	srv->heartbeat_ms = now;
	if (utimensat(AT_FDCWD, srv->cfg.heartbeat, NULL, 0) < 0 &&
	    errno != ENOENT)
		log_warn("cannot refresh heartbeat %s: %m", srv->cfg.heartbeat);
}

static void timers(struct server *srv)
{
	uint64_t now = server_now_ms();

	fault_release(srv);
	heartbeat(srv, now);
	if (srv->accept_paused && now >= srv->accept_resume_ms)
		listeners_enable(srv, true);
	if (srv->dirty && srv->cfg.flush_interval_ms && !srv->flush_wanted &&
	    !srv->suspended &&
	    now >= srv->dirty_since_ms + srv->cfg.flush_interval_ms)
		srv->flush_wanted = true;
	if (srv->suspended && !srv->suspend_expired &&
	    srv->suspend_deadline_ms && now >= srv->suspend_deadline_ms) {
		srv->suspend_expired = true;
		srv->record_retry_ms = now;
		if (!srv->cfg.volume_record)
			log_warn("suspend not resumed in time: failing writes "
				 "with EIO");
	}
	record_retry(srv, now);
	mirror_timers(srv->mirror, now);
}

static void submit_queued(struct server *srv)
{
	if (srv->eng->queued) {
		int r = srv->eng->ops->submit(srv->eng);

		if (r < 0)
			log_error("I/O submit: %s", strerror(-r));
	}
}

/* Loop hook calls that brought requests, per loop turn at most. */
#define LOOP_HOOK_ROUNDS 8

int server_run(struct server *srv)
{
	struct epoll_event evs[64];

	while (!srv->quit) {
		int n = epoll_wait(srv->epfd, evs, 64, loop_timeout(srv));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %m");
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct ev_tag *tag = evs[i].data.ptr;

			switch (tag->kind) {
			case EV_LISTEN:
				for (int j = 0; j < 3; j++)
					if (srv->listen_fd[j] >= 0)
						accept_all(srv,
							   srv->listen_fd[j],
							   j == LISTEN_RO);
				break;
			case EV_CONN:
				conn_on_event((struct conn *)tag,
					      evs[i].events);
				break;
			case EV_ENGINE:
				srv->eng->ops->reap(srv->eng, COMPLETE_FN, srv);
				break;
			case EV_SIGNAL:
				on_signal(srv);
				break;
			case EV_HOOK:
				tag->on_event(tag, evs[i].events);
				break;
			}
		}
		timers(srv);
		schedule(srv);
		submit_queued(srv);
		/* a bounded number of rounds: what is left waits in the
		 * queue, and loop_timeout sees it */
		for (int i = 0; i < LOOP_HOOK_ROUNDS && srv->loop_hook &&
				srv->loop_hook(srv->loop_hook_opaque); i++) {
			schedule(srv);
			submit_queued(srv);
		}
		conn_flush_dirty(srv->conns);
		if (srv->stopping)
			stop_progress(srv);
		if (srv->exit_when_idle && !conn_set_count(srv->conns) &&
		    !srv->active && !srv->waitq && !srv->held && !srv->flushq)
			srv->quit = true;
	}
	return srv->exit_status;
}
