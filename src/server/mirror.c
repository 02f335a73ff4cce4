/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The mirror job (issue 15): the background copy of the guest view to a
 * remote NBD export, and the synchronous mirroring of guest writes.
 *
 * Background copy: 1 MiB chunks from offset 0, each read synchronously at
 * a barrier of the server's loop (no data I/O in flight, like the live
 * coalesce's chunks), then sent as NBD_CMD_WRITE, or NBD_CMD_WRITE_ZEROES
 * when the chain maps the whole chunk as zeros.  Up to MI_CHUNKS_IN_FLIGHT
 * chunks wait for the remote at once (pipelining, bounded memory).
 *
 * Guest writes, zeroes and discards that start while the job is copying or
 * synced are sent to the remote when they start; the guest's reply waits
 * for the local I/O and the remote's reply.  A remote failure releases
 * them with their local result.
 *
 * Ordering.  The remote may run the commands of one connection in any
 * order, so overlapping ones are never in flight together:
 *  - a guest write overlapping any command in flight on the remote (a
 *    chunk, between its local read and the remote's reply, or another
 *    guest write) waits at the head of the server's queue until that
 *    reply came;
 *  - a chunk overlapping a guest write in flight on the remote waits for
 *    it, and new guest writes to that chunk queue behind the chunk (the
 *    copy cannot starve).
 * A chunk is read at a barrier, so every guest write started before it is
 * in the local image; none overlapping it starts until the remote has the
 * chunk.  So the remote receives, for any byte, the local writes in the
 * order the local image did: a chunk never overwrites a newer mirrored
 * write.  Writes beyond the cursor are mirrored too (harmless: the chunk
 * read later carries the same bytes, and comes after them).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl-proto.h"
#include "log.h"
#include "server/server.h"
#include "control.h"
#include "mirror.h"
#include "nbd-client.h"
#include "nbd-uri.h"
#include "io/engine.h"

#define MI_CHUNK		(1024 * 1024)
#define MI_CHUNKS_IN_FLIGHT	4
#define MI_MAX_WRITE		(4U * 1024 * 1024)	/* per NBD command */
#define MI_MAX_ZERO		(32U * 1024 * 1024)
#define MI_OBUF_KEEP		(8U * 1024 * 1024)	/* send buffer kept */
#define MI_HANDSHAKE_MS		10000
#define MI_REPLY_TIMEOUT_MS	30000

enum mirror_state { MI_COPYING, MI_SYNCED, MI_FAILED, MI_CANCELLED,
		    MI_STOPPED };

/* A guest request whose reply waits for the remote. */
struct mirror_wait {
	struct req *req;
	req_done_fn *done;		/* the submitter's */
	unsigned int remote_pending;	/* commands not answered yet */
	bool local_done;
};

/* A command sent to the remote, waiting for its reply. */
struct mirror_cmd {
	struct mirror_cmd *next;
	uint64_t cookie;
	uint16_t type;
	uint64_t offset, length;
	uint64_t sent_ms;
	struct mirror_wait *guest;	/* a guest's, else NULL */
	bool chunk;			/* the background copy's */
};

struct mirror_job {
	struct ev_tag tag;		/* the socket's; first */
	struct server *srv;
	char id[CTL_MIRROR_ID_MAX + 1];
	char *remote, *state_file;
	enum mirror_state state;
	int fd;
	uint16_t tflags;		/* the remote's transmission flags */
	uint64_t total, cursor, copied;
	uint64_t max_rate;		/* copy limit, bytes/s (0: none) */
	uint64_t start_ms;		/* of the copy, for max_rate */
	unsigned int chunks_in_flight;
	bool stop_flush_sent;
	struct mirror_cmd *cmds, *cmds_tail;	/* in sending order */
	uint64_t next_cookie;
	uint8_t *obuf;			/* bytes not sent yet */
	size_t olen, ooff, ocap;
	bool want_out;
	uint8_t ibuf[NBD_SIMPLE_REPLY_SIZE];
	size_t ilen;
	void *chunk_buf;
	char error[512];
};

static uint64_t mi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool job_active(const struct mirror_job *job)
{
	return job && (job->state == MI_COPYING || job->state == MI_SYNCED);
}

static const char *state_name(enum mirror_state s)
{
	switch (s) {
	case MI_COPYING:
		return CTL_MI_COPYING;
	case MI_SYNCED:
		return CTL_MI_SYNCED;
	case MI_FAILED:
		return CTL_MI_FAILED;
	case MI_CANCELLED:
		return CTL_MI_CANCELLED;
	case MI_STOPPED:
		return CTL_MI_STOPPED;
	}
	return "?";
}

void mirror_get_status(const struct mirror_job *job, struct server_status *st)
{
	st->mi_state = NULL;
	if (!job)
		return;
	st->mi_id = job->id;
	st->mi_remote = job->remote;
	st->mi_state = state_name(job->state);
	st->mi_copied = job->copied;
	st->mi_total = job->total;
	st->mi_error = job->state == MI_FAILED ? job->error : NULL;
}

/* ------------------------------------------------------------ ending */

static void release_wait(struct mirror_wait *w)
{
	struct req *req = w->req;

	req->done = w->done;
	req->mirror = NULL;
	free(w);
	req->done(req);
}

/* The remote is gone: drop every command, release the guests. */
static void drop_remote(struct mirror_job *job)
{
	struct mirror_cmd *c;

	if (job->fd >= 0) {
		server_epoll_del(job->srv, job->fd);
		close(job->fd);
		job->fd = -1;
	}
	while ((c = job->cmds)) {
		job->cmds = c->next;
		if (c->guest && --c->guest->remote_pending == 0 &&
		    c->guest->local_done)
			release_wait(c->guest);
		free(c);
	}
	job->cmds_tail = NULL;
	job->chunks_in_flight = 0;
	job->olen = job->ooff = 0;
	job->ilen = 0;
}

static void write_state_file(struct mirror_job *job)
{
	struct server_status st;
	int r;

	mirror_get_status(job, &st);
	r = control_write_mirror_state(job->state_file, &st);
	if (r < 0)
		log_error("mirror %s: cannot write its state file '%s': %s",
			  job->id, job->state_file, strerror(-r));
}

static void end_job(struct mirror_job *job, enum mirror_state state)
{
	drop_remote(job);
	job->state = state;
	write_state_file(job);
}

static void job_fail(struct mirror_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void job_fail(struct mirror_job *job, const char *fmt, ...)
{
	va_list ap;

	if (!job_active(job))
		return;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
	log_error("mirror %s to %s failed: %s; the volume is served on "
		  "locally", job->id, job->remote, job->error);
	end_job(job, MI_FAILED);
}

/* ------------------------------------------------------------ sending */

static void set_want_out(struct mirror_job *job, bool on)
{
	if (job->want_out == on || job->fd < 0)
		return;
	job->want_out = on;
	server_epoll_mod(job->srv, job->fd, EPOLLIN | (on ? EPOLLOUT : 0),
			 &job->tag);
}

static void out_flush(struct mirror_job *job)
{
	while (job->ooff < job->olen) {
		ssize_t n = send(job->fd, job->obuf + job->ooff,
				 job->olen - job->ooff, MSG_NOSIGNAL);

		if (n > 0) {
			job->ooff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			set_want_out(job, true);
			return;
		}
		job_fail(job, "cannot send to the remote: %s",
			 n < 0 ? strerror(errno) : "connection closed");
		return;
	}
	job->olen = job->ooff = 0;
	/* after a burst (big guest writes), give the memory back */
	if (job->ocap > MI_OBUF_KEEP) {
		free(job->obuf);
		job->obuf = NULL;
		job->ocap = 0;
	}
	set_want_out(job, false);
}

static int out_reserve(struct mirror_job *job, size_t len)
{
	size_t need;

	if (job->ooff && job->ooff == job->olen)
		job->olen = job->ooff = 0;
	if (job->ooff > job->ocap / 2) {
		memmove(job->obuf, job->obuf + job->ooff,
			job->olen - job->ooff);
		job->olen -= job->ooff;
		job->ooff = 0;
	}
	need = job->olen + len;
	if (need > job->ocap) {
		size_t cap = job->ocap ? job->ocap : 64 * 1024;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(job->obuf, cap);
		if (!p)
			return -ENOMEM;
		job->obuf = p;
		job->ocap = cap;
	}
	return 0;
}

/*
 * Queue one command (payload: len bytes for a WRITE, NULL for zeros) and
 * try to send it.  The job may have failed when this returns.
 */
static void send_cmd(struct mirror_job *job, uint16_t type, uint16_t flags,
		     uint64_t offset, uint32_t len, const void *payload,
		     struct mirror_wait *guest, bool chunk)
{
	size_t plen = type == NBD_CMD_WRITE ? len : 0;
	struct mirror_cmd *c;
	uint8_t *p;

	if (job->fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c || out_reserve(job, NBD_REQUEST_SIZE + plen) < 0) {
		free(c);
		job_fail(job, "out of memory");
		return;
	}
	c->cookie = ++job->next_cookie;
	c->type = type;
	c->offset = offset;
	c->length = len;
	c->sent_ms = mi_now_ms();
	c->guest = guest;
	c->chunk = chunk;
	p = nbd_client_put_request(job->obuf + job->olen, flags, type,
				   c->cookie, offset, len);
	if (plen && payload)
		memcpy(p, payload, plen);
	else if (plen)
		memset(p, 0, plen);
	job->olen += NBD_REQUEST_SIZE + plen;
	if (job->cmds_tail)
		job->cmds_tail->next = c;
	else
		job->cmds = c;
	job->cmds_tail = c;
	if (guest)
		guest->remote_pending++;
	if (chunk)
		job->chunks_in_flight++;
	out_flush(job);
}

/* Zeros on the remote: WRITE_ZEROES when it has it, else written. */
static void send_zeros(struct mirror_job *job, uint16_t flags,
		       uint64_t offset, uint64_t len,
		       struct mirror_wait *guest, bool chunk)
{
	bool wz = job->tflags & NBD_FLAG_SEND_WRITE_ZEROES;
	uint64_t max = wz ? MI_MAX_ZERO : MI_MAX_WRITE;

	while (len && job->fd >= 0) {
		uint32_t n = (uint32_t)(len < max ? len : max);

		send_cmd(job, wz ? NBD_CMD_WRITE_ZEROES : NBD_CMD_WRITE,
			 flags, offset, n, NULL, guest, chunk);
		offset += n;
		len -= n;
	}
}

/* ------------------------------------------------------------ replies */

static struct mirror_cmd *take_cmd(struct mirror_job *job, uint64_t cookie)
{
	struct mirror_cmd **pp, *prev = NULL;

	for (pp = &job->cmds; *pp; prev = *pp, pp = &(*pp)->next) {
		struct mirror_cmd *c = *pp;

		if (c->cookie != cookie)
			continue;
		*pp = c->next;
		if (job->cmds_tail == c)
			job->cmds_tail = prev;
		return c;
	}
	return NULL;
}

static const char *cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_WRITE:
		return "write";
	case NBD_CMD_WRITE_ZEROES:
		return "write of zeros";
	case NBD_CMD_TRIM:
		return "discard";
	case NBD_CMD_FLUSH:
		return "flush";
	default:
		return "command";
	}
}

static void stop_done(struct mirror_job *job)
{
	uint8_t disc[NBD_REQUEST_SIZE];

	/* the remote has everything: say goodbye (best effort) */
	nbd_client_put_request(disc, 0, NBD_CMD_DISC, ++job->next_cookie,
			       0, 0);
	if (send(job->fd, disc, sizeof(disc), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_warn("mirror %s: cannot send the disconnect: %m", job->id);
	log_info("mirror %s to %s: flushed, the remote is complete",
		 job->id, job->remote);
	end_job(job, MI_STOPPED);
}

static void on_reply(struct mirror_job *job)
{
	uint32_t magic = nbd_get32(job->ibuf);
	uint32_t err = nbd_get32(job->ibuf + 4);
	uint64_t cookie = nbd_get64(job->ibuf + 8);
	struct mirror_cmd *c;

	job->ilen = 0;
	if (magic != NBD_SIMPLE_REPLY_MAGIC) {
		job_fail(job, "the remote sent a reply we cannot parse "
			 "(magic %#x)", magic);
		return;
	}
	c = take_cmd(job, cookie);
	if (!c) {
		job_fail(job, "the remote replied to a request we did not "
			 "send (handle %#llx)", (unsigned long long)cookie);
		return;
	}
	if (err) {
		job_fail(job, "the remote failed a %s of %llu bytes at offset "
			 "%llu (NBD error %u)", cmd_name(c->type),
			 (unsigned long long)c->length,
			 (unsigned long long)c->offset, err);
		free(c);
		return;
	}
	if (c->chunk) {
		job->chunks_in_flight--;
		job->copied += c->length;
		if (job->cursor >= job->total && !job->chunks_in_flight &&
		    job->state == MI_COPYING) {
			job->state = MI_SYNCED;
			log_info("mirror %s to %s: synced (%llu bytes copied)",
				 job->id, job->remote,
				 (unsigned long long)job->copied);
		}
	}
	if (c->guest && --c->guest->remote_pending == 0 &&
	    c->guest->local_done)
		release_wait(c->guest);
	if (c->type == NBD_CMD_FLUSH)
		stop_done(job);
	free(c);
}

static void on_event(struct ev_tag *tag, uint32_t events)
{
	struct mirror_job *job = (struct mirror_job *)tag;

	if (events & EPOLLOUT)
		out_flush(job);
	while (job->fd >= 0) {
		ssize_t n = recv(job->fd, job->ibuf + job->ilen,
				 sizeof(job->ibuf) - job->ilen, 0);

		if (n > 0) {
			job->ilen += (size_t)n;
			if (job->ilen == sizeof(job->ibuf))
				on_reply(job);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		job_fail(job, "the connection to the remote was lost (%s)",
			 n == 0 ? "closed by the remote" : strerror(errno));
	}
}

/* ------------------------------------------------------------ guest */

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static uint64_t next_chunk_len(const struct mirror_job *job)
{
	uint64_t left = job->total - job->cursor;

	return left < MI_CHUNK ? left : MI_CHUNK;
}

/* When the rate limit lets the chunk at the cursor start. */
static uint64_t rate_due_ms(const struct mirror_job *job)
{
	if (!job->max_rate)
		return 0;
	return job->start_ms + (uint64_t)((double)job->cursor * 1000.0 /
					  (double)job->max_rate);
}

/* The next chunk may be copied as soon as nothing overlaps it. */
static bool next_chunk_due(const struct mirror_job *job)
{
	return job && job->state == MI_COPYING && job->cursor < job->total &&
	       job->chunks_in_flight < MI_CHUNKS_IN_FLIGHT &&
	       !server_suspended(job->srv) && !server_stopping(job->srv) &&
	       mi_now_ms() >= rate_due_ms(job);
}

uint64_t mirror_next_chunk_ms(const struct mirror_job *job, uint64_t now_ms)
{
	uint64_t due;

	if (!job || !job->max_rate || job->state != MI_COPYING ||
	    job->cursor >= job->total)
		return UINT64_MAX;
	due = rate_due_ms(job);
	return due > now_ms ? due - now_ms : 0;
}

static bool overlaps_cmds(const struct mirror_job *job, uint64_t off,
			  uint64_t len, bool guest_only)
{
	for (const struct mirror_cmd *c = job->cmds; c; c = c->next)
		if ((c->guest || (c->chunk && !guest_only)) &&
		    overlaps(off, len, c->offset, c->length))
			return true;
	return false;
}

bool mirror_write_blocked(const struct mirror_job *job, const struct req *req)
{
	uint64_t off = req->h.offset, len = req->h.length;

	if (!job_active(job) || !len)
		return false;
	if (overlaps_cmds(job, off, len, false))
		return true;
	return next_chunk_due(job) &&
	       overlaps(off, len, job->cursor, next_chunk_len(job));
}

static void wait_done(struct req *req)
{
	struct mirror_wait *w = req->mirror;

	w->local_done = true;
	if (w->remote_pending == 0)
		release_wait(w);
}

void mirror_guest_write(struct mirror_job *job, struct req *req)
{
	uint16_t flags = 0;
	struct mirror_wait *w;
	uint64_t off = req->h.offset, len = req->h.length;

	if (!job_active(job) || !len)
		return;
	w = calloc(1, sizeof(*w));
	if (!w) {
		job_fail(job, "out of memory");
		return;
	}
	w->req = req;
	w->done = req->done;
	req->done = wait_done;
	req->mirror = w;
	if ((req->h.flags & NBD_CMD_FLAG_FUA) &&
	    (job->tflags & NBD_FLAG_SEND_FUA))
		flags |= NBD_CMD_FLAG_FUA;
	switch (req->h.type) {
	case NBD_CMD_WRITE:
		for (uint64_t pos = 0; pos < len && job->fd >= 0;) {
			uint32_t n = (uint32_t)(len - pos < MI_MAX_WRITE ?
						len - pos : MI_MAX_WRITE);

			send_cmd(job, NBD_CMD_WRITE, flags, off + pos, n,
				 (const char *)req->buf + pos, w, false);
			pos += n;
		}
		break;
	case NBD_CMD_WRITE_ZEROES:
		send_zeros(job, flags, off, len, w, false);
		break;
	case NBD_CMD_TRIM:
		/* a hint: where the remote cannot discard, nothing to do */
		for (uint64_t pos = 0; pos < len && job->fd >= 0 &&
		     (job->tflags & NBD_FLAG_SEND_TRIM);) {
			uint32_t n = (uint32_t)(len - pos < MI_MAX_ZERO ?
						len - pos : MI_MAX_ZERO);

			send_cmd(job, NBD_CMD_TRIM, flags, off + pos, n, NULL,
				 w, false);
			pos += n;
		}
		break;
	}
	if (w->remote_pending == 0) {
		/* nothing sent (or the job failed sending): local only */
		req->done = w->done;
		req->mirror = NULL;
		free(w);
	}
}

/* ------------------------------------------------------------ copy */

bool mirror_chunk_wanted(const struct mirror_job *job)
{
	return next_chunk_due(job) &&
	       !overlaps_cmds(job, job->cursor, next_chunk_len(job), true);
}

#ifdef NGDP_FAULT_INJECT
/* NGDP_FAULT=mirror-slow: every chunk takes 20 ms more, so that guest
 * writes surely race the copy and a test can cut the remote mid-copy. */
static void fault_mirror(void)
{
	if (io_fault("mirror-slow"))
		usleep(20000);
}
#else
static void fault_mirror(void)
{
}
#endif

void mirror_chunk_step(struct mirror_job *job)
{
	uint64_t n = next_chunk_len(job);
	bool zero = false;
	int r;

	r = server_read_guest(job->srv, job->cursor, n, job->chunk_buf, &zero);
	fault_mirror();
	if (r < 0) {
		job_fail(job, "cannot read %llu bytes of the volume at offset "
			 "%llu: %s", (unsigned long long)n,
			 (unsigned long long)job->cursor, strerror(-r));
		return;
	}
	if (zero)
		send_zeros(job, 0, job->cursor, n, NULL, true);
	else
		send_cmd(job, NBD_CMD_WRITE, 0, job->cursor, (uint32_t)n,
			 job->chunk_buf, NULL, true);
	job->cursor += n;
}

void mirror_timers(struct mirror_job *job, uint64_t now_ms)
{
	if (job && job->fd >= 0 && job->cmds &&
	    now_ms >= job->cmds->sent_ms + MI_REPLY_TIMEOUT_MS)
		job_fail(job, "the remote did not answer a %s at offset %llu "
			 "for %d s", cmd_name(job->cmds->type),
			 (unsigned long long)job->cmds->offset,
			 MI_REPLY_TIMEOUT_MS / 1000);
}

bool mirror_stop_step(struct mirror_job *job, int local_err)
{
	if (!job_active(job))
		return true;
	if (job->state == MI_COPYING) {
		job_fail(job, "the server stopped before the copy was "
			 "complete");
		return true;
	}
	if (local_err) {
		job_fail(job, "the final flush of the volume failed: %s",
			 strerror(-local_err));
		return true;
	}
	if (job->stop_flush_sent || job->cmds)
		return false;	/* the flush's reply, the writes' first */
	if (!(job->tflags & NBD_FLAG_SEND_FLUSH)) {
		stop_done(job);
		return true;
	}
	job->stop_flush_sent = true;
	send_cmd(job, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL, false);
	return !job_active(job);
}

/* ------------------------------------------------------------ control */

static bool id_ok(const char *id)
{
	size_t n = strlen(id);

	return n >= 1 && n <= CTL_MIRROR_ID_MAX &&
	       strspn(id, "0123456789abcdef") == n;
}

void mirror_free(struct mirror_job *job)
{
	if (!job)
		return;
	drop_remote(job);
	free(job->remote);
	free(job->state_file);
	free(job->obuf);
	free(job->chunk_buf);
	free(job);
}

int mirror_start(struct server *srv, const char *id, const char *remote,
		 const char *state_file, uint64_t max_rate, char *why,
		 size_t why_len)
{
	struct mirror_job *old = server_mirror(srv), *job;
	struct nbd_export_info info = { 0 };
	struct nbd_uri *uri;
	int fd = -1, r;

	if (!id_ok(id)) {
		snprintf(why, why_len, "the mirror id must be 1 to %d "
			 "characters of [0-9a-f]", CTL_MIRROR_ID_MAX);
		return -EINVAL;
	}
	if (old && !strcmp(old->id, id))
		return 0;	/* asked again: the same job */
	if (job_active(old)) {
		snprintf(why, why_len, "another mirror job (%s) is running",
			 old->id);
		return -EBUSY;
	}
	if (state_file[0] != '/' || strlen(state_file) >= PATH_MAX ||
	    state_file[strlen(state_file) - 1] == '/') {
		snprintf(why, why_len, "the state file must be an absolute "
			 "file path");
		return -EINVAL;
	}
	if (server_readonly(srv)) {
		snprintf(why, why_len, "the volume is served read-only: only "
			 "a read-write activation can mirror");
		return -EROFS;
	}
	if (server_stopping(srv)) {
		snprintf(why, why_len, "the server is stopping");
		return -ESHUTDOWN;
	}
	uri = malloc(sizeof(*uri));
	if (!uri)
		return -ENOMEM;
	r = nbd_uri_parse(remote, uri);
	if (r < 0) {
		snprintf(why, why_len, "the remote is not an NBD URI naming a "
			 "Unix socket (nbd+unix:///EXPORT?socket=PATH or "
			 "nbd:unix:PATH[:exportname=NAME], absolute path, "
			 "percent-encoding allowed, no . or .. components)%s",
			 r == -ENAMETOOLONG ? ": too long" : "");
		free(uri);
		return -EINVAL;
	}
	/* blocking, bounded: the control op's caller waits for the verdict
	 * and the loop stalls at most MI_HANDSHAKE_MS, once per job */
	r = nbd_client_connect(uri->socket, uri->export_name, MI_HANDSHAKE_MS,
			       &fd, &info, why, why_len);
	free(uri);
	if (r < 0)
		return r;
	if (info.flags & NBD_FLAG_READ_ONLY) {
		snprintf(why, why_len, "the remote export is read-only");
		r = -EROFS;
	} else if (info.size < server_size(srv)) {
		snprintf(why, why_len, "the remote export is %llu bytes, "
			 "smaller than the volume (%llu bytes)",
			 (unsigned long long)info.size,
			 (unsigned long long)server_size(srv));
		r = -ENOSPC;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	job = calloc(1, sizeof(*job));
	if (!job || !(job->remote = strdup(remote)) ||
	    !(job->state_file = strdup(state_file)) ||
	    posix_memalign(&job->chunk_buf, 4096, MI_CHUNK)) {
		if (job) {
			free(job->remote);
			free(job->state_file);
			free(job);
		}
		close(fd);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	job->tag.kind = EV_HOOK;
	job->tag.on_event = on_event;
	job->srv = srv;
	snprintf(job->id, sizeof(job->id), "%s", id);
	job->fd = fd;
	job->tflags = info.flags;
	job->total = server_size(srv);
	job->state = MI_COPYING;
	job->max_rate = max_rate;
	job->start_ms = mi_now_ms();
	r = server_epoll_add(srv, fd, EPOLLIN, &job->tag);
	if (r < 0) {
		job->fd = -1;
		close(fd);
		mirror_free(job);
		snprintf(why, why_len, "cannot watch the remote's socket: %s",
			 strerror(-r));
		return r;
	}
	mirror_free(old);
	server_set_mirror(srv, job);
	log_info("mirror %s: copying %llu bytes to %s (export of %llu bytes, "
		 "flags %#x, copy limit %llu bytes/s)", id,
		 (unsigned long long)job->total, remote,
		 (unsigned long long)info.size, info.flags,
		 (unsigned long long)max_rate);
	return 0;
}

int mirror_cancel(struct server *srv, const char *id, const char **why)
{
	struct mirror_job *job = server_mirror(srv);

	if (!job || strcmp(job->id, id)) {
		*why = "no mirror job of that id";
		return -ENOENT;
	}
	if (!job_active(job))
		return 0;
	if (job->fd >= 0) {
		uint8_t disc[NBD_REQUEST_SIZE];

		nbd_client_put_request(disc, 0, NBD_CMD_DISC,
				       ++job->next_cookie, 0, 0);
		/* best effort: the remote is dropped either way */
		if (job->ooff == job->olen)
			(void)!send(job->fd, disc, sizeof(disc),
				    MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	log_info("mirror %s to %s cancelled", job->id, job->remote);
	end_job(job, MI_CANCELLED);
	return 0;
}
