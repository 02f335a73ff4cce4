/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One NBD client connection: non-blocking input parsing (fixed newstyle
 * handshake, then transmission requests), reply encoding and batched
 * output with writev.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "server/server.h"
#include "server/nbd.h"
#include "conn.h"
#include "sock.h"

#define CONN_IN_SIZE	(64 * 1024)
#define CONN_MAX_REQS	256	/* stop reading beyond this many requests */
/*
 * Memory caps.  Request buffers (read replies, write payloads) owned by one
 * connection, and by all: a request that would go over waits, unparsed,
 * and the connection is not read meanwhile.  A connection with nothing in
 * flight may always have one request of up to CONN_RESERVE, so that
 * clients that do not read their replies cannot starve the others.  The
 * reply backlog outside those buffers (handshake and option replies,
 * reply headers, block status) is capped too.
 */
#define CONN_MAX_BYTES	(64UL * 1024 * 1024)
#define SRV_MAX_BYTES	(256UL * 1024 * 1024)
#define CONN_RESERVE	(1024UL * 1024)
#define CONN_OUT_MAX	(1024UL * 1024)
#define OUT_IOV_BATCH	64
#define BS_MAX_DESC	4096

enum conn_state {
	CS_HS_FLAGS,
	CS_OPT_HDR,
	CS_OPT_DATA,
	CS_REQ_HDR,
	CS_PAYLOAD,
	CS_DISCARD,
};

/* All connections of a server, owned here. */
struct conn_set {
	struct server *srv;
	struct conn *conns;		/* doubly linked */
	unsigned int nconns;
	struct conn *out_dirty;		/* connections with replies to send */
	struct conn *zombies;		/* dead, freed at the end of an
					 * iteration */
	size_t bytes;			/* request buffers owned by connections */
	unsigned int n_mem_wait;	/* connections waiting for memory */
	uint64_t n_opened;		/* connections accepted, ever */
	uint64_t n_errors;		/* requests refused by validation */
};

struct conn {
	struct ev_tag tag;		/* first: epoll data points here */
	struct conn_set *set;
	struct server *srv;		/* set->srv */
	int fd;
	bool forced_ro;			/* accepted on the read-only socket */
	struct conn *next, *prev;	/* set->conns */
	struct conn *dirty_next;
	bool in_dirty;
	enum conn_state state;

	uint8_t *in;
	size_t in_start, in_end;

	uint32_t opt, opt_len, opt_got;
	uint8_t *opt_data;

	struct req *cur;		/* receiving payload / discarding */
	uint64_t discard_left;

	bool no_zeroes, structured, meta_ba, transmission;
	struct nbd_export_view view;

	uint8_t *obuf;			/* handshake output */
	size_t olen, ocap, ooff;
	struct req *out_head, *out_tail;

	unsigned int reqs;		/* requests owned anywhere */
	size_t bytes;			/* their buffers (server_buf_size) */
	size_t out_meta;		/* queued reply bytes outside buffers */
	bool mem_wait;			/* a request waits for memory */
	uint32_t events;		/* registered with epoll */
	bool disc;			/* close once everything is answered */
	bool dead;
	bool zombie;
};

/* ------------------------------------------------------------ lifecycle */

/* Output waiting for the client, apart from request buffers. */
static size_t out_backlog(const struct conn *c)
{
	return c->olen - c->ooff + c->out_meta;
}

/* May we take more input from this connection now? */
static bool can_parse(const struct conn *c)
{
	return !c->dead && !c->disc && c->reqs < CONN_MAX_REQS &&
	       !c->mem_wait && out_backlog(c) <= CONN_OUT_MAX;
}

static void conn_update_events(struct conn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (can_parse(c))
		ev |= EPOLLIN;
	if (c->ooff < c->olen || c->out_head)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		if (server_epoll_mod(c->srv, c->fd, ev, c) == 0)
			c->events = ev;
	}
}

static void conn_mark_dirty(struct conn *c)
{
	if (c->in_dirty || c->dead)
		return;
	c->in_dirty = true;
	c->dirty_next = c->set->out_dirty;
	c->set->out_dirty = c;
}

static void conn_unlink_dirty(struct conn *c)
{
	struct conn **pp = &c->set->out_dirty;

	if (!c->in_dirty)
		return;
	for (; *pp; pp = &(*pp)->dirty_next) {
		if (*pp == c) {
			*pp = c->dirty_next;
			break;
		}
	}
	c->in_dirty = false;
}

static void conn_maybe_free(struct conn *c)
{
	if (!c->dead || c->reqs || c->zombie)
		return;
	/* freed at the end of the loop iteration: epoll may still hold
	 * an event for it in this iteration's batch */
	c->zombie = true;
	conn_unlink_dirty(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->set->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->set->nconns--;
	c->next = c->set->zombies;
	c->set->zombies = c;
}

static void set_mem_wait(struct conn *c, bool on)
{
	if (c->mem_wait == on)
		return;
	c->mem_wait = on;
	if (on)
		c->set->n_mem_wait++;
	else
		c->set->n_mem_wait--;
}

/* Memory was freed: let the connections waiting for it parse again. */
static void wake_mem_waiters(struct conn_set *cs)
{
	for (struct conn *c = cs->conns; c && cs->n_mem_wait; c = c->next) {
		if (c->mem_wait) {
			set_mem_wait(c, false);
			conn_mark_dirty(c);
		}
	}
}

static void conn_release_req(struct conn *c, struct req *req)
{
	struct server *srv = c->srv;

	if (req->buf) {
		size_t n = (size_t)1 << req->buf_class;

		c->bytes -= n;
		c->set->bytes -= n;
	}
	c->out_meta -= req->out_meta;
	req->out_meta = 0;
	server_req_put(srv, req);
	c->reqs--;
	if (c->set->n_mem_wait)
		wake_mem_waiters(c->set);
}

/* Would a request of this header fit under the memory caps? */
static bool mem_admit(const struct conn *c, const uint8_t *hdr)
{
	const struct conn_set *cs = c->set;
	uint16_t type = nbd_get16(hdr + 6);
	uint32_t len = nbd_get32(hdr + 24);
	size_t need;

	if ((type != NBD_CMD_READ && type != NBD_CMD_WRITE) ||
	    len > NBD_MAX_REQUEST_LEN)
		return true;	/* no buffer (or refused anyway) */
	need = server_buf_size(len);
	if (c->bytes && c->bytes + need > CONN_MAX_BYTES)
		return false;
	if (cs->bytes + need <= SRV_MAX_BYTES)
		return true;
	return !c->bytes && (need <= CONN_RESERVE || !cs->bytes);
}

static void conn_kill(struct conn *c)
{
	struct req *req;

	if (c->dead)
		return;
	log_debug("connection %d closed", c->fd);
	c->dead = true;
	set_mem_wait(c, false);
	server_epoll_del(c->srv, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->cur) {
		conn_release_req(c, c->cur);
		c->cur = NULL;
	}
	while ((req = c->out_head)) {
		c->out_head = req->out_next;
		conn_release_req(c, req);
	}
	c->out_tail = NULL;
	free(c->opt_data);
	c->opt_data = NULL;
	conn_unlink_dirty(c);
	conn_maybe_free(c);
}

static void conn_destroy(struct conn *c)
{
	free(c->in);
	free(c->obuf);
	free(c->opt_data);
	free(c);
}

/* ------------------------------------------------------------ output */

static int obuf_reserve(struct conn *c, size_t n)
{
	if (c->olen + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 1024;
		uint8_t *p;

		while (cap < c->olen + n)
			cap *= 2;
		p = realloc(c->obuf, cap);
		if (!p)
			return -ENOMEM;
		c->obuf = p;
		c->ocap = cap;
	}
	return 0;
}

static int obuf_put(struct conn *c, const void *data, size_t n)
{
	int r = obuf_reserve(c, n);

	if (r < 0)
		return r;
	memcpy(c->obuf + c->olen, data, n);
	c->olen += n;
	conn_mark_dirty(c);
	return 0;
}

static int opt_reply(struct conn *c, uint32_t type, const void *data,
		     uint32_t len)
{
	uint8_t h[20];
	int r;

	nbd_put64(h, NBD_REP_MAGIC);
	nbd_put32(h + 8, c->opt);
	nbd_put32(h + 12, type);
	nbd_put32(h + 16, len);
	r = obuf_put(c, h, sizeof(h));
	if (r == 0 && len)
		r = obuf_put(c, data, len);
	return r;
}

/* Account n bytes as sent, releasing fully sent replies. */
static void out_consume(struct conn *c, size_t n)
{
	size_t k = c->olen - c->ooff;

	if (k) {
		k = k < n ? k : n;
		c->ooff += k;
		n -= k;
		if (c->ooff == c->olen)
			c->ooff = c->olen = 0;
	}
	while (n && c->out_head) {
		struct req *req = c->out_head;

		while (n && req->iov_idx < req->niov) {
			struct iovec *v = &req->iov[req->iov_idx];

			k = v->iov_len < n ? v->iov_len : n;
			v->iov_base = (char *)v->iov_base + k;
			v->iov_len -= k;
			n -= k;
			if (!v->iov_len)
				req->iov_idx++;
		}
		if (req->iov_idx < req->niov)
			break;
		c->out_head = req->out_next;
		if (!c->out_head)
			c->out_tail = NULL;
		conn_release_req(c, req);
	}
}

static void conn_flush(struct conn *c)
{
	while (!c->dead && (c->ooff < c->olen || c->out_head)) {
		struct iovec iov[OUT_IOV_BATCH];
		int n = 0;
		ssize_t w;

		if (c->ooff < c->olen) {
			iov[n].iov_base = c->obuf + c->ooff;
			iov[n++].iov_len = c->olen - c->ooff;
		}
		for (struct req *req = c->out_head;
		     req && n < OUT_IOV_BATCH; req = req->out_next)
			for (int i = req->iov_idx;
			     i < req->niov && n < OUT_IOV_BATCH; i++)
				iov[n++] = req->iov[i];
		w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_debug("connection %d: write: %m", c->fd);
			conn_kill(c);
			return;
		}
		out_consume(c, (size_t)w);
	}
	if (c->dead)
		return;
	if (c->disc && !c->reqs && c->ooff >= c->olen) {
		conn_kill(c);
		return;
	}
	conn_update_events(c);
}

static int req_reserve(struct req *req, size_t rbytes, int niov)
{
	if (rbytes > req->rbuf_cap) {
		uint8_t *p = realloc(req->rbuf, rbytes);

		if (!p)
			return -ENOMEM;
		req->rbuf = p;
		req->rbuf_cap = rbytes;
	}
	if (niov > req->iov_cap) {
		struct iovec *v = realloc(req->iov, niov * sizeof(*v));

		if (!v)
			return -ENOMEM;
		req->iov = v;
		req->iov_cap = niov;
	}
	return 0;
}

static uint8_t *chunk_hdr(uint8_t *p, const struct req *req, uint16_t flags,
			  uint16_t type, uint32_t len)
{
	p = nbd_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
	p = nbd_put16(p, flags);
	p = nbd_put16(p, type);
	p = nbd_put64(p, req->h.cookie);
	return nbd_put32(p, len);
}

static void add_iov(struct req *req, void *base, size_t len)
{
	req->iov[req->niov].iov_base = base;
	req->iov[req->niov++].iov_len = len;
}

static int build_simple(struct req *req, bool with_data)
{
	uint8_t *p;
	int r = req_reserve(req, 16, 2);

	if (r < 0)
		return r;
	p = nbd_put32(req->rbuf, NBD_SIMPLE_REPLY_MAGIC);
	p = nbd_put32(p, req->wire_err);
	nbd_put64(p, req->h.cookie);
	add_iov(req, req->rbuf, 16);
	if (with_data && !req->wire_err && req->h.length)
		add_iov(req, req->buf, req->h.length);
	return 0;
}

static int build_error_chunk(struct req *req)
{
	uint8_t *p;
	int r = req_reserve(req, 26, 1);

	if (r < 0)
		return r;
	p = chunk_hdr(req->rbuf, req, NBD_REPLY_FLAG_DONE,
		      NBD_REPLY_TYPE_ERROR, 6);
	p = nbd_put32(p, req->wire_err);
	nbd_put16(p, 0);
	add_iov(req, req->rbuf, 26);
	return 0;
}

static int build_read_structured(struct req *req)
{
	size_t n = req->el.n, pos = 0, i;
	uint8_t *p;
	int r;

	if (req->wire_err)
		return build_error_chunk(req);
	r = req_reserve(req, 32 * (n + 1), 2 * (int)n + 2);
	if (r < 0)
		return r;
	p = req->rbuf;
	if (req->h.length == 0) {
		chunk_hdr(p, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
		add_iov(req, p, 20);
		return 0;
	}
	if (req->h.flags & NBD_CMD_FLAG_DF)
		n = 0;	/* one data chunk, zeros included */
	for (i = 0; pos < req->h.length;) {
		bool hole = i < n && req->el.v[i].kind == EXTENT_ZERO;
		size_t len = 0;
		uint16_t done;
		uint8_t *h = p;

		/* merge a run of the same chunk kind */
		if (i >= n) {
			len = req->h.length - pos;
		} else {
			while (i < n && (req->el.v[i].kind == EXTENT_ZERO) == hole) {
				len += req->el.v[i].length;
				i++;
			}
		}
		if (pos + len > req->h.length)	/* defensive */
			len = req->h.length - pos;
		done = pos + len == req->h.length ? NBD_REPLY_FLAG_DONE : 0;
		if (hole) {
			p = chunk_hdr(p, req, done, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
			p = nbd_put64(p, req->h.offset + pos);
			p = nbd_put32(p, (uint32_t)len);
			add_iov(req, h, 32);
		} else {
			p = chunk_hdr(p, req, done, NBD_REPLY_TYPE_OFFSET_DATA,
				      (uint32_t)len + 8);
			p = nbd_put64(p, req->h.offset + pos);
			add_iov(req, h, 28);
			add_iov(req, (char *)req->buf + pos, len);
		}
		pos += len;
		if (len == 0)
			break;	/* mapping shorter than the request */
	}
	return 0;
}

static uint32_t bs_flags(const struct extent *e)
{
	if (e->hole)
		return NBD_STATE_HOLE | NBD_STATE_ZERO;
	return e->kind == EXTENT_ZERO ? NBD_STATE_ZERO : 0;
}

static int build_block_status(struct req *req)
{
	size_t n = req->el.n, nd = 0;
	uint64_t total = 0;
	uint8_t *p, *desc;
	int r;

	if (req->wire_err)
		return build_simple(req, false);
	if (n > BS_MAX_DESC)
		n = BS_MAX_DESC;
	r = req_reserve(req, 24 + 8 * (n + 1), 1);
	if (r < 0)
		return r;
	desc = req->rbuf + 24;
	for (size_t i = 0; i < n; i++) {
		const struct extent *e = &req->el.v[i];
		uint64_t len = e->length;
		uint32_t fl = bs_flags(e);

		if (!len)
			continue;
		if (total + len > req->h.length)
			len = req->h.length - total;
		if (nd && nbd_get32(desc + 8 * (nd - 1) + 4) == fl &&
		    nbd_get32(desc + 8 * (nd - 1)) + len <= UINT32_MAX) {
			nbd_put32(desc + 8 * (nd - 1),
				  nbd_get32(desc + 8 * (nd - 1)) + (uint32_t)len);
		} else {
			if (nd && (req->h.flags & NBD_CMD_FLAG_REQ_ONE))
				break;
			nbd_put32(desc + 8 * nd, (uint32_t)len);
			nbd_put32(desc + 8 * nd + 4, fl);
			nd++;
		}
		total += len;
		if (total >= req->h.length)
			break;
	}
	if (!nd) {	/* the format said nothing: "unknown" is always safe */
		nbd_put32(desc, req->h.length);
		nbd_put32(desc + 4, 0);
		nd = 1;
	}
	p = chunk_hdr(req->rbuf, req, NBD_REPLY_FLAG_DONE,
		      NBD_REPLY_TYPE_BLOCK_STATUS, 4 + 8 * (uint32_t)nd);
	nbd_put32(p, NBD_META_ID_BASE_ALLOCATION);
	add_iov(req, req->rbuf, 24 + 8 * nd);
	return 0;
}

static void conn_reply(struct req *req)
{
	struct conn *c = req->conn;
	int r;

	req->state = REQ_REPLY;
	if (c->dead) {
		conn_release_req(c, req);
		conn_maybe_free(c);
		return;
	}
	req->niov = req->iov_idx = 0;
	if (req->h.type == NBD_CMD_READ && c->structured)
		r = build_read_structured(req);
	else if (req->h.type == NBD_CMD_BLOCK_STATUS)
		r = build_block_status(req);
	else
		r = build_simple(req, req->h.type == NBD_CMD_READ);
	if (r < 0) {
		log_error("cannot build a reply: %s", strerror(-r));
		conn_release_req(c, req);
		conn_kill(c);
		return;
	}
	for (int i = 0; i < req->niov; i++) {
		const char *b = req->iov[i].iov_base;

		if (!req->buf || b < (const char *)req->buf ||
		    b >= (const char *)req->buf + ((size_t)1 << req->buf_class))
			req->out_meta += req->iov[i].iov_len;
	}
	c->out_meta += req->out_meta;
	req->out_next = NULL;
	if (c->out_tail)
		c->out_tail->out_next = req;
	else
		c->out_head = req;
	c->out_tail = req;
	conn_mark_dirty(c);
}

/* ------------------------------------------------------------ handshake */

static void start_transmission(struct conn *c, int match)
{
	struct server *srv = c->srv;

	c->view.size = server_size(srv);
	c->view.readonly = server_readonly(srv) || match == 2 || c->forced_ro;
	c->view.structured = c->structured;
	c->view.meta_base_allocation = c->meta_ba;
	c->view.fast_zero = server_fast_zero(srv) && !c->view.readonly;
	c->transmission = true;
	c->state = CS_REQ_HDR;
	log_debug("connection %d: transmission (%s%s)", c->fd,
		  c->view.readonly ? "read-only" : "read-write",
		  c->structured ? ", structured" : "");
}

static uint16_t conn_export_flags(const struct conn *c, int match)
{
	bool ro = server_readonly(c->srv) || match == 2 || c->forced_ro;

	return nbd_export_flags(ro, server_fast_zero(c->srv) && !ro);
}

static int opt_export_name(struct conn *c)
{
	uint8_t buf[8 + 2 + 124] = { 0 };
	int match;

	if (memchr(c->opt_data, '\0', c->opt_len))
		match = 0;
	else
		match = nbd_match_export((const char *)c->opt_data,
					 c->opt_len, server_export_name(c->srv));
	if (!match) {
		log_warn("connection %d: unknown export requested", c->fd);
		return -ENOENT;	/* no way to answer: hang up */
	}
	nbd_put64(buf, server_size(c->srv));
	nbd_put16(buf + 8, conn_export_flags(c, match));
	if (obuf_put(c, buf, c->no_zeroes ? 10 : sizeof(buf)) < 0)
		return -ENOMEM;
	start_transmission(c, match);
	return 0;
}

static int opt_info_go(struct conn *c)
{
	const char *name;
	uint32_t namelen, infos;
	uint8_t b[14];
	int match;
	int r;

	r = nbd_parse_info_request(c->opt_data, c->opt_len, &name, &namelen,
				   &infos);
	if (r < 0)
		return opt_reply(c, NBD_REP_ERR_INVALID, NULL, 0);
	match = nbd_match_export(name, namelen, server_export_name(c->srv));
	if (!match)
		return opt_reply(c, NBD_REP_ERR_UNKNOWN, NULL, 0);
	nbd_put16(b, NBD_INFO_EXPORT);
	nbd_put64(b + 2, server_size(c->srv));
	nbd_put16(b + 10, conn_export_flags(c, match));
	r = opt_reply(c, NBD_REP_INFO, b, 12);
	if (r == 0 && (infos & (1U << NBD_INFO_NAME))) {
		uint8_t nb[2 + NBD_MAX_STRING];

		nbd_put16(nb, NBD_INFO_NAME);
		memcpy(nb + 2, name, namelen);
		r = opt_reply(c, NBD_REP_INFO, nb, 2 + namelen);
	}
	if (r == 0 && (infos & (1U << NBD_INFO_DESCRIPTION))) {
		static const char desc[] = "ngdp-server";
		uint8_t db[2 + sizeof(desc)];

		nbd_put16(db, NBD_INFO_DESCRIPTION);
		memcpy(db + 2, desc, sizeof(desc) - 1);
		r = opt_reply(c, NBD_REP_INFO, db, 2 + sizeof(desc) - 1);
	}
	if (r == 0 && (infos & (1U << NBD_INFO_BLOCK_SIZE))) {
		/* any alignment works (slow path), 4 KiB is best */
		nbd_put16(b, NBD_INFO_BLOCK_SIZE);
		nbd_put32(b + 2, NBD_MIN_BLOCK);
		nbd_put32(b + 6, NBD_PREF_BLOCK);
		nbd_put32(b + 10, NBD_MAX_REQUEST_LEN);
		r = opt_reply(c, NBD_REP_INFO, b, 14);
	}
	if (r == 0)
		r = opt_reply(c, NBD_REP_ACK, NULL, 0);
	if (r == 0 && c->opt == NBD_OPT_GO)
		start_transmission(c, match);
	return r;
}

static int opt_meta(struct conn *c)
{
	static const char ba[] = "base:allocation";
	bool set = c->opt == NBD_OPT_SET_META_CONTEXT;
	struct nbd_meta_request m;
	bool found = false;
	uint32_t pos = 0;
	int r;

	if (set && !c->structured)
		return opt_reply(c, NBD_REP_ERR_INVALID, NULL, 0);
	if (nbd_parse_meta_request(c->opt_data, c->opt_len, &m) < 0)
		return opt_reply(c, NBD_REP_ERR_INVALID, NULL, 0);
	if (!nbd_match_export(m.name, m.namelen, server_export_name(c->srv)))
		return opt_reply(c, NBD_REP_ERR_UNKNOWN, NULL, 0);
	if (set)
		c->meta_ba = false;
	if (!set && m.nqueries == 0)
		found = true;	/* list everything we have */
	for (uint32_t i = 0; i < m.nqueries; i++) {
		const char *q;
		uint32_t ql;

		nbd_meta_next_query(&m, &pos, &q, &ql);
		if (ql == sizeof(ba) - 1 && !memcmp(q, ba, ql))
			found = true;
		else if (!set && ql == 5 && !memcmp(q, "base:", 5))
			found = true;
	}
	if (found) {
		uint8_t b[4 + sizeof(ba)];

		nbd_put32(b, NBD_META_ID_BASE_ALLOCATION);
		memcpy(b + 4, ba, sizeof(ba) - 1);
		r = opt_reply(c, NBD_REP_META_CONTEXT, b, 4 + sizeof(ba) - 1);
		if (r < 0)
			return r;
		if (set)
			c->meta_ba = true;
	}
	return opt_reply(c, NBD_REP_ACK, NULL, 0);
}

/* Returns < 0 to hang up. */
static int process_option(struct conn *c)
{
	switch (c->opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(c);
	case NBD_OPT_ABORT:
		c->disc = true;
		return opt_reply(c, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST: {
		const char *n = server_export_name(c->srv);
		uint8_t b[4 + NBD_MAX_STRING];
		size_t l = strlen(n);

		if (c->opt_len)
			return opt_reply(c, NBD_REP_ERR_INVALID, NULL, 0);
		if (l > NBD_MAX_STRING)
			l = NBD_MAX_STRING;
		nbd_put32(b, (uint32_t)l);
		memcpy(b + 4, n, l);
		if (opt_reply(c, NBD_REP_SERVER, b, 4 + (uint32_t)l) < 0)
			return -ENOMEM;
		return opt_reply(c, NBD_REP_ACK, NULL, 0);
	}
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(c);
	case NBD_OPT_STRUCTURED_REPLY:
		if (c->opt_len)
			return opt_reply(c, NBD_REP_ERR_INVALID, NULL, 0);
		c->structured = true;
		return opt_reply(c, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(c);
	default:
		return opt_reply(c, NBD_REP_ERR_UNSUP, NULL, 0);
	}
}

/* ------------------------------------------------------------ requests */

static void request_header(struct conn *c, const uint8_t *buf)
{
	struct server *srv = c->srv;
	struct nbd_request h;
	struct req *req;
	int64_t payload;
	int v;

	nbd_request_decode(buf, &h);
	v = nbd_request_validate(&h, &c->view);
	if (v == -EBADMSG) {
		log_warn("connection %d: bad request magic 0x%08x, dropping",
			 c->fd, h.magic);
		conn_kill(c);
		return;
	}
	if (h.type == NBD_CMD_DISC) {
		log_debug("connection %d: disconnect requested", c->fd);
		c->disc = true;
		conn_mark_dirty(c);	/* closes once all replies are out */
		return;
	}
	payload = nbd_request_payload(&h);
	if (payload < 0) {
		log_warn("connection %d: write of %u bytes exceeds %u, dropping",
			 c->fd, h.length, NBD_MAX_REQUEST_LEN);
		conn_kill(c);
		return;
	}
	req = server_req_get(srv);
	if (!req) {
		conn_kill(c);
		return;
	}
	req->conn = c;
	req->done = conn_reply;
	req->readonly = c->view.readonly;
	req->h = h;
	c->reqs++;
	if (v == 0 && (h.type == NBD_CMD_READ || h.type == NBD_CMD_WRITE) &&
	    server_buf_get(srv, req, h.length) < 0)
		v = NBD_ENOMEM;
	if (req->buf) {
		c->bytes += (size_t)1 << req->buf_class;
		c->set->bytes += (size_t)1 << req->buf_class;
	}
	if (v > 0) {
		c->set->n_errors++;
		req->wire_err = (uint32_t)v;
		if (payload > 0) {
			c->cur = req;
			c->discard_left = (uint64_t)payload;
			c->state = CS_DISCARD;
		} else {
			conn_reply(req);
		}
		return;
	}
	if (payload > 0) {
		req->state = REQ_PAYLOAD;
		c->cur = req;
		c->state = CS_PAYLOAD;
		return;
	}
	server_submit(srv, req);
}

static void payload_done(struct conn *c)
{
	struct req *req = c->cur;

	c->cur = NULL;
	c->state = CS_REQ_HDR;
	if (req->wire_err)
		conn_reply(req);
	else
		server_submit(c->srv, req);
}

/* Consume what the input buffer holds. */
static void conn_parse(struct conn *c)
{
	while (can_parse(c)) {
		size_t avail = c->in_end - c->in_start;
		uint8_t *p = c->in + c->in_start;

		switch (c->state) {
		case CS_HS_FLAGS: {
			uint32_t fl;

			if (avail < 4)
				return;
			fl = nbd_get32(p);
			c->in_start += 4;
			if (!(fl & NBD_FLAG_C_FIXED_NEWSTYLE) ||
			    (fl & ~(NBD_FLAG_C_FIXED_NEWSTYLE |
				    NBD_FLAG_C_NO_ZEROES))) {
				log_warn("connection %d: client flags 0x%x refused (fixed newstyle only)",
					 c->fd, fl);
				conn_kill(c);
				return;
			}
			c->no_zeroes = fl & NBD_FLAG_C_NO_ZEROES;
			c->state = CS_OPT_HDR;
			break;
		}
		case CS_OPT_HDR:
			if (avail < NBD_OPTION_HDR_SIZE)
				return;
			if (nbd_get64(p) != NBD_OPTS_MAGIC) {
				log_warn("connection %d: bad option magic",
					 c->fd);
				conn_kill(c);
				return;
			}
			c->opt = nbd_get32(p + 8);
			c->opt_len = nbd_get32(p + 12);
			c->in_start += NBD_OPTION_HDR_SIZE;
			if (c->opt_len > NBD_MAX_OPTION_LEN) {
				log_warn("connection %d: option %u of %u bytes is too long, dropping",
					 c->fd, c->opt, c->opt_len);
				conn_kill(c);
				return;
			}
			free(c->opt_data);
			c->opt_data = malloc(c->opt_len ? c->opt_len : 1);
			if (!c->opt_data) {
				conn_kill(c);
				return;
			}
			c->opt_got = 0;
			c->state = CS_OPT_DATA;
			break;
		case CS_OPT_DATA: {
			size_t n = c->opt_len - c->opt_got;

			if (n > avail)
				n = avail;
			memcpy(c->opt_data + c->opt_got, p, n);
			c->opt_got += n;
			c->in_start += n;
			if (c->opt_got < c->opt_len)
				return;
			c->state = CS_OPT_HDR;
			if (process_option(c) < 0) {
				conn_kill(c);
				return;
			}
			free(c->opt_data);
			c->opt_data = NULL;
			break;
		}
		case CS_REQ_HDR:
			if (avail < NBD_REQUEST_SIZE)
				return;
			if (!mem_admit(c, p)) {
				/* parsed again when memory is freed */
				set_mem_wait(c, true);
				return;
			}
			c->in_start += NBD_REQUEST_SIZE;
			request_header(c, p);
			break;
		case CS_PAYLOAD: {
			struct req *req = c->cur;
			size_t n = req->h.length - req->payload_got;

			if (n > avail)
				n = avail;
			if (!n)
				return;
			memcpy((char *)req->buf + req->payload_got, p, n);
			req->payload_got += n;
			c->in_start += n;
			if (req->payload_got == req->h.length)
				payload_done(c);
			break;
		}
		case CS_DISCARD: {
			size_t n = c->discard_left < avail ? c->discard_left :
							      avail;

			if (!n && c->discard_left)
				return;
			c->discard_left -= n;
			c->in_start += n;
			if (!c->discard_left)
				payload_done(c);
			break;
		}
		}
	}
}

static void conn_read(struct conn *c)
{
	for (int iter = 0; iter < 16 && can_parse(c); iter++) {
		ssize_t n;

		if (c->state == CS_PAYLOAD && c->in_start == c->in_end &&
		    c->cur->h.length - c->cur->payload_got >= CONN_IN_SIZE / 2) {
			/* big payload: straight into the request buffer */
			struct req *req = c->cur;
			size_t want = req->h.length - req->payload_got;

			n = recv(c->fd, (char *)req->buf + req->payload_got,
				 want, 0);
			if (n > 0) {
				req->payload_got += (size_t)n;
				if (req->payload_got == req->h.length)
					payload_done(c);
				if ((size_t)n < want)
					return;	/* drained, see below */
				continue;
			}
		} else {
			if (c->in_start == c->in_end) {
				c->in_start = c->in_end = 0;
			} else if (c->in_start && CONN_IN_SIZE - c->in_end <
							  CONN_IN_SIZE / 4) {
				memmove(c->in, c->in + c->in_start,
					c->in_end - c->in_start);
				c->in_end -= c->in_start;
				c->in_start = 0;
			}
			size_t want = CONN_IN_SIZE - c->in_end;

			n = recv(c->fd, c->in + c->in_end, want, 0);
			if (n > 0) {
				c->in_end += (size_t)n;
				conn_parse(c);
				/*
				 * A short read took all the socket held: the
				 * next recv would only say EAGAIN.  The socket
				 * is level-triggered, so data arriving later
				 * wakes the loop again.
				 */
				if ((size_t)n < want)
					return;
				continue;
			}
		}
		if (n == 0) {
			log_debug("connection %d: end of input", c->fd);
			conn_kill(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			log_debug("connection %d: read: %m", c->fd);
			conn_kill(c);
		}
		return;
	}
}

void conn_on_event(struct conn *c, uint32_t events)
{
	if (c->dead)
		return;
	if ((events & (EPOLLHUP | EPOLLERR)) && !can_parse(c)) {
		/* gone while we do not read: replies cannot reach it, and
		 * the level-triggered hang-up would fire again and again */
		log_debug("connection %d: hang-up", c->fd);
		conn_kill(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
	if (!c->dead && (events & EPOLLOUT)) {
		conn_flush(c);
		/* input left over while the output backlog was too big */
		if (c->in_start < c->in_end && can_parse(c))
			conn_parse(c);
	}
	if (!c->dead)
		conn_update_events(c);
}

int conn_set_new(struct server *srv, struct conn_set **ret)
{
	struct conn_set *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return -ENOMEM;
	cs->srv = srv;
	*ret = cs;
	return 0;
}

unsigned int conn_set_count(const struct conn_set *cs)
{
	return cs->nconns;
}

void conn_set_stats(const struct conn_set *cs, uint64_t *opened,
		    uint64_t *errors)
{
	*opened = cs->n_opened;
	*errors = cs->n_errors;
}

/*
 * A 1 MiB read reply does not fit the default socket buffer (about
 * 200 KiB): the loop would write it in pieces, waiting for the client to
 * drain each.  Room for a few whole replies lets one writev hand them
 * over.
 */
#define CONN_SNDBUF	(4 * 1024 * 1024)

int conn_new(struct conn_set *cs, int fd, bool readonly)
{
	struct server *srv = cs->srv;
	struct conn *c = calloc(1, sizeof(*c));
	uint8_t greet[18];
	int r;

	if (!c)
		return -ENOMEM;
	c->forced_ro = readonly;
	c->tag.kind = EV_CONN;
	c->set = cs;
	c->srv = srv;
	c->fd = fd;
	c->in = malloc(CONN_IN_SIZE);
	if (!c->in) {
		free(c);
		return -ENOMEM;
	}
	if (sock_grow_sndbuf(fd, CONN_SNDBUF) < 0)
		log_debug("connection %d: cannot grow the send buffer: %m", fd);
	c->state = CS_HS_FLAGS;
	c->events = EPOLLIN;
	r = server_epoll_add(srv, fd, EPOLLIN, c);
	if (r < 0) {
		conn_destroy(c);
		return r;
	}
	c->next = cs->conns;
	if (cs->conns)
		cs->conns->prev = c;
	cs->conns = c;
	cs->nconns++;
	cs->n_opened++;
	nbd_put64(greet, NBD_MAGIC);
	nbd_put64(greet + 8, NBD_OPTS_MAGIC);
	nbd_put16(greet + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	if (obuf_put(c, greet, sizeof(greet)) < 0) {
		conn_kill(c);
		return 0;
	}
	log_debug("connection %d opened", fd);
	return 0;
}

void conn_flush_dirty(struct conn_set *cs)
{
	struct conn *c;

	while ((c = cs->out_dirty)) {
		cs->out_dirty = c->dirty_next;
		c->in_dirty = false;
		/* input left over when we paused at CONN_MAX_REQS */
		if (c->in_start < c->in_end && can_parse(c))
			conn_parse(c);
		if (!c->dead)
			conn_flush(c);
	}
	while ((c = cs->zombies)) {
		cs->zombies = c->next;
		conn_destroy(c);
	}
}

void conn_stop_reading(struct conn_set *cs)
{
	for (struct conn *c = cs->conns, *n; c; c = n) {
		n = c->next;
		if (c->dead)
			continue;
		if (!c->transmission || c->cur) {
			conn_kill(c);
			continue;
		}
		c->disc = true;
		conn_mark_dirty(c);
		conn_update_events(c);
	}
}

void conn_set_free(struct conn_set *cs)
{
	struct conn *c;

	if (!cs)
		return;
	while ((c = cs->conns)) {
		conn_kill(c);	/* releases its queued replies */
		if (cs->conns == c) {
			/* requests still in the server are abandoned */
			cs->conns = c->next;
			cs->nconns--;
			conn_destroy(c);
		}
	}
	while ((c = cs->zombies)) {
		cs->zombies = c->next;
		conn_destroy(c);
	}
	free(cs);
}
