/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif backend: ring requests become server requests (struct req),
 * their completions ring responses.  See blkif-backend.h.
 *
 * One ring request (struct bk_req) becomes one or more server requests,
 * submitted in order (FIFO through the scheduler): a flush then a write
 * for FLUSH_DISKCACHE and WRITE_BARRIER with data, one trim chunk after
 * the other for DISCARD.  The ring request is answered when the last one
 * is done, with an error if any failed.
 *
 * A read holds its segments' pages while it is in flight and gives the
 * server core the vector over them (struct req's dst): O_DIRECT reads land
 * there with no copy, unless the core had to read into a buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iovec.h"
#include "log.h"
#include "nbd-proto.h"
#include "server/blkif-backend.h"
#include "server/server.h"

/* The largest trim handed to the server at once (its length is 32-bit). */
#define BK_TRIM_CHUNK (1ULL << 30)
/* Ring requests kept for reuse. */
#define BK_FREE_MAX 64

struct bk_req {
	struct blkif_backend *be;
	struct bk_req *next;		/* free list */
	struct bk_req *next_order;	/* in_order: taken after this one */
	bool done;			/* in_order: waits for its turn */
	struct blkif_req r;
	struct blkif_seg *ind;		/* INDIRECT segments (allocated once) */
	const struct blkif_seg *segs;	/* r.seg or ind */
	unsigned int nsegs;
	bool read;			/* copy out on completion */
	/* a direct read: the pages held (held[i] is segs[i]'s) and the
	 * vector over them (arrays of seg_cap, allocated once) */
	bool direct;
	void **held;
	unsigned int nheld;
	struct iovec *iov;
	int niov;
	unsigned int pending;		/* server requests not done */
	int16_t status;
	uint64_t trim_off, trim_end;	/* DISCARD: what is left */
};

struct blkif_backend {
	struct server *srv;
	struct blkif_ring ring;
	const struct blkif_transport_ops *ops;
	void *transport;
	char *name;
	bool readonly;
	bool in_order;
	bool detached;			/* the ring is not ours any more */
	bool dead;			/* the frontend broke the protocol */
	bool closing;			/* take no new request (being closed) */
	bool want;			/* requests may wait on the ring */
	size_t max_bytes, bytes;	/* buffers of requests in flight */
	unsigned int max_held, held;	/* pages held by direct reads */
	unsigned int seg_cap;		/* segments of a request, at most */
	unsigned int in_flight;		/* ring requests taken, unanswered */
	struct bk_req *barrier;		/* in flight: take nothing else */
	/* in_order: taken and unanswered, oldest first */
	struct bk_req *oq_head, **oq_tail;
	struct bk_req *free;
	unsigned int nfree;
	/* for the log line at detach */
	uint64_t n_reqs, n_errors, n_cap_waits, n_direct, n_copied;
	bool cap_wait;			/* stopped at the cap, not resumed */
};

static void br_free(struct bk_req *br)
{
	free(br->ind);
	free(br->held);
	free(br->iov);
	free(br);
}

/* Detached and idle: the transport gets its pages back. */
static void be_free(struct blkif_backend *be)
{
	const struct blkif_transport_ops *ops = be->ops;
	void *transport = be->transport;

	while (be->free) {
		struct bk_req *br = be->free;

		be->free = br->next;
		br_free(br);
	}
	free(be->name);
	free(be);
	if (ops->released)
		ops->released(transport);
}

int blkif_backend_new(struct server *srv,
		      const struct blkif_backend_config *cfg,
		      struct blkif_backend **ret)
{
	struct blkif_backend *be = calloc(1, sizeof(*be));
	int r;

	if (!be)
		return -ENOMEM;
	r = blkif_ring_init(&be->ring, cfg->ring, cfg->ring_bytes, cfg->abi,
			    cfg->max_indirect_segments);
	if (r < 0) {
		free(be);
		return r;
	}
	be->name = strdup(cfg->name ? cfg->name : "blkif");
	if (!be->name) {
		free(be);
		return -ENOMEM;
	}
	be->srv = srv;
	be->ops = cfg->ops;
	be->transport = cfg->transport;
	be->readonly = cfg->readonly || server_readonly(srv);
	be->in_order = cfg->in_order;
	be->oq_tail = &be->oq_head;
	if (cfg->resume) {
		const struct blkif_sring_header *h = cfg->ring;
		uint32_t rsp = __atomic_load_n(&h->rsp_prod, __ATOMIC_ACQUIRE);

		/* everything before rsp_prod was answered; the rest is
		 * taken again (cannot fail: nothing is in flight) */
		blkif_ring_restore(&be->ring, rsp, rsp);
		if (rsp)
			log_info("%s: resuming the ring at request %u",
				 cfg->name ? cfg->name : "blkif", rsp);
	}
	be->max_bytes = cfg->max_bytes ? cfg->max_bytes :
					 BLKIF_BACKEND_MAX_BYTES;
	be->max_held = cfg->max_held;
	be->seg_cap = be->ring.max_indirect_segments >
				BLKIF_MAX_SEGMENTS_PER_REQUEST ?
			be->ring.max_indirect_segments :
			BLKIF_MAX_SEGMENTS_PER_REQUEST;
	be->want = true;
	srv->n_blkif_rings++;
	*ret = be;
	return 0;
}

void blkif_backend_detach(struct blkif_backend *be)
{
	if (!be)
		return;
	be->detached = true;
	be->srv->n_blkif_rings--;
	log_info("%s: detached after %llu requests (%llu answered with an "
		 "error; reads: %llu straight into the frontend's pages, "
		 "%llu copied), %llu waits at the %zu MiB cap, %u in flight%s",
		 be->name, (unsigned long long)be->n_reqs,
		 (unsigned long long)be->n_errors,
		 (unsigned long long)be->n_direct,
		 (unsigned long long)be->n_copied,
		 (unsigned long long)be->n_cap_waits, be->max_bytes >> 20,
		 be->in_flight, be->in_flight ?
		 " (they finish, their responses are dropped)" : "");
	if (!be->in_flight)
		be_free(be);
}

unsigned int blkif_backend_in_flight(const struct blkif_backend *be)
{
	return be->in_flight;
}

void blkif_backend_stop_taking(struct blkif_backend *be)
{
	be->closing = true;
}

unsigned int blkif_backend_refuse_queued(struct blkif_backend *be)
{
	unsigned int n = 0, limit = 1U << 16;	/* a frontend that never stops */
	struct blkif_req r;

	if (be->detached || be->dead || be->in_flight)
		return 0;
	while (n < limit) {
		int rc = blkif_ring_get(&be->ring, &r);

		if (rc < 0)
			break;	/* a broken producer index: nothing to answer */
		if (rc == 0) {
			if (blkif_ring_final_check(&be->ring))
				continue;
			break;
		}
		if (blkif_ring_put(&be->ring, r.id, r.op, BLKIF_RSP_ERROR) < 0)
			break;
		n++;
		be->n_reqs++;
		be->n_errors++;
	}
	if (n && blkif_ring_push(&be->ring))
		be->ops->notify(be->transport);
	return n;
}

static bool can_take(const struct blkif_backend *be)
{
	return !be->detached && !be->dead && !be->closing && !be->barrier &&
	       be->bytes < be->max_bytes && !server_stopping(be->srv);
}

bool blkif_backend_wants_poll(const struct blkif_backend *be)
{
	return be->want && can_take(be);
}

static struct bk_req *br_get(struct blkif_backend *be)
{
	struct bk_req *br = be->free;

	if (br) {
		be->free = br->next;
		be->nfree--;
	} else {
		br = calloc(1, sizeof(*br));
		if (!br)
			return NULL;
	}
	br->be = be;
	br->next = NULL;
	br->next_order = NULL;
	br->done = false;
	br->segs = NULL;
	br->nsegs = 0;
	br->read = false;
	br->direct = false;
	br->nheld = 0;
	br->niov = 0;
	br->pending = 0;
	br->status = BLKIF_RSP_OKAY;
	br->trim_off = br->trim_end = 0;
	return br;
}

static void br_put(struct blkif_backend *be, struct bk_req *br)
{
	if (be->nfree >= BK_FREE_MAX) {
		br_free(br);
		return;
	}
	br->next = be->free;
	be->free = br;
	be->nfree++;
}

/* Answer a finished ring request (unless detached), release it. */
static void br_answer(struct bk_req *br)
{
	struct blkif_backend *be = br->be;

	be->in_flight--;
	if (br->status != BLKIF_RSP_OKAY)
		be->n_errors++;
	if (!be->detached) {
		if (br->status != BLKIF_RSP_OKAY)
			log_debug("%s: request %llu (op %u, sector %llu) "
				  "answered %d", be->name,
				  (unsigned long long)br->r.id, br->r.operation,
				  (unsigned long long)br->r.sector_number,
				  br->status);
		if (blkif_ring_put(&be->ring, br->r.id, br->r.op,
				   br->status) == 0 &&
		    blkif_ring_push(&be->ring))
			be->ops->notify(be->transport);
	}
	if (be->barrier == br)
		be->barrier = NULL;
	br_put(be, br);
}

/* The ring request is done: answer it, or (in_order) the run of finished
 * ones at the head of the queue. */
static void br_finish(struct bk_req *br)
{
	struct blkif_backend *be = br->be;

	if (!be->in_order) {
		br_answer(br);
	} else {
		br->done = true;
		while (be->oq_head && be->oq_head->done) {
			struct bk_req *head = be->oq_head;

			be->oq_head = head->next_order;
			if (!be->oq_head)
				be->oq_tail = &be->oq_head;
			br_answer(head);
		}
	}
	if (be->detached && !be->in_flight)
		be_free(be);
}

/* Where a segment's bytes start in its page, and how many there are. */
static size_t seg_offset(const struct blkif_seg *s)
{
	return (size_t)s->first_sect * BLKIF_SECTOR_SIZE;
}

static size_t seg_bytes(const struct blkif_seg *s)
{
	return (size_t)(s->last_sect - s->first_sect + 1) * BLKIF_SECTOR_SIZE;
}

static void *page_map(struct blkif_backend *be, uint32_t gref)
{
	return be->ops->map(be->transport, gref);
}

static void page_unmap(struct blkif_backend *be, uint32_t gref, void *page)
{
	if (page && be->ops->unmap)
		be->ops->unmap(be->transport, gref, page);
}

/* A direct read is over: its pages go back to the transport. */
static void release_segs(struct bk_req *br)
{
	struct blkif_backend *be = br->be;

	for (unsigned int i = 0; i < br->nheld; i++)
		page_unmap(be, br->segs[i].gref, br->held[i]);
	be->held -= br->nheld;
	br->nheld = 0;
}

/*
 * A direct read: hold the segments' pages and build the vector over them.
 * Returns the bytes they cover, or 0 when one names a page we refuse (or
 * no memory): then nothing is held.
 */
static uint64_t hold_segs(struct bk_req *br)
{
	struct blkif_backend *be = br->be;
	uint64_t bytes = 0;

	if (!br->held) {
		br->held = malloc(sizeof(*br->held) * be->seg_cap);
		br->iov = malloc(sizeof(*br->iov) * be->seg_cap);
		if (!br->held || !br->iov) {
			free(br->held);
			free(br->iov);
			br->held = NULL;
			br->iov = NULL;
			return 0;
		}
	}
	br->niov = 0;
	for (unsigned int i = 0; i < br->nsegs; i++) {
		const struct blkif_seg *s = &br->segs[i];
		size_t off = seg_offset(s), len = seg_bytes(s);
		char *page = page_map(be, s->gref);

		if (!page) {
			release_segs(br);
			return 0;
		}
		br->held[br->nheld++] = page;
		be->held++;
		/* one piece per segment at most: always fits */
		iov_push(br->iov, &br->niov, (int)be->seg_cap, page + off,
			 len);
		bytes += len;
	}
	return bytes;
}

/* Copy between the request's buffer and the segments' pages: -EINVAL
 * when one names a page we refuse (the others are copied). */
static int copy_segs(struct bk_req *br, void *buf, bool to_pages)
{
	struct blkif_backend *be = br->be;
	char *p = buf;
	int r = 0;

	for (unsigned int i = 0; i < br->nsegs; i++) {
		const struct blkif_seg *s = &br->segs[i];
		size_t off = seg_offset(s), len = seg_bytes(s);
		char *page = page_map(be, s->gref);

		if (!page)
			r = -EINVAL;
		else if (to_pages)
			memcpy(page + off, p, len);
		else
			memcpy(p, page + off, len);
		page_unmap(be, s->gref, page);
		p += len;
	}
	return r;
}

static bool trim_next(struct bk_req *br);

static void sub_done(struct req *req)
{
	struct bk_req *br = req->owner;
	struct blkif_backend *be = br->be;

	if (req->wire_err)
		br->status = BLKIF_RSP_ERROR;
	else if (br->read && req->buf && !be->detached &&
		 copy_segs(br, req->buf, true) < 0)
		br->status = BLKIF_RSP_ERROR;
	else if (req->dst && req->buf && !be->detached)
		/* the core could not read straight into the pages */
		iov_from_buf(br->iov, br->niov, 0, req->buf, req->h.length);
	if (req->dst) {
		if (req->buf)
			be->n_copied++;
		else
			be->n_direct++;
		release_segs(br);
		be->bytes -= req->h.length;	/* as start() counted it */
	} else if (req->buf) {
		be->bytes -= (size_t)1 << req->buf_class;
		if (br->read)
			be->n_copied++;
	}
	server_req_put(be->srv, req);
	br->pending--;
	if (br->trim_off < br->trim_end && br->status == BLKIF_RSP_OKAY &&
	    !trim_next(br))
		br->status = BLKIF_RSP_ERROR;
	if (!br->pending)
		br_finish(br);
}

/* A server request for br (not submitted yet), or NULL. */
static struct req *sub_new(struct bk_req *br, uint16_t type, uint16_t flags,
			   uint64_t offset, uint64_t length, bool with_buf)
{
	struct blkif_backend *be = br->be;
	struct req *req = server_req_get(be->srv);

	if (!req)
		return NULL;
	req->owner = br;
	req->done = sub_done;
	req->readonly = be->readonly;
	req->h = (struct nbd_request){
		.magic = NBD_REQUEST_MAGIC, .type = type, .flags = flags,
		.cookie = br->r.id, .offset = offset,
		.length = (uint32_t)length,
	};
	if (with_buf) {
		if (server_buf_get(be->srv, req, length) < 0) {
			server_req_put(be->srv, req);
			return NULL;
		}
		be->bytes += (size_t)1 << req->buf_class;
	}
	return req;
}

static void sub_submit(struct bk_req *br, struct req *req)
{
	br->pending++;
	server_submit(br->be->srv, req);
}

/* Drop a request made by sub_new and never submitted. */
static void sub_drop(struct blkif_backend *be, struct req *req)
{
	if (!req)
		return;
	if (req->buf)
		be->bytes -= (size_t)1 << req->buf_class;
	server_req_put(be->srv, req);
}

static bool trim_next(struct bk_req *br)
{
	uint64_t len = br->trim_end - br->trim_off;
	struct req *req;

	if (len > BK_TRIM_CHUNK)
		len = BK_TRIM_CHUNK;
	req = sub_new(br, NBD_CMD_TRIM, 0, br->trim_off, len, false);
	if (!req)
		return false;
	br->trim_off += len;
	sub_submit(br, req);
	return true;
}

/* The segments of an INDIRECT request, from its indirect pages. */
static int load_indirect(struct bk_req *br)
{
	struct blkif_backend *be = br->be;
	unsigned int left = br->r.nr_segments;

	if (!br->ind) {
		br->ind = malloc(sizeof(*br->ind) *
				 be->ring.max_indirect_segments);
		if (!br->ind)
			return -ENOMEM;
	}
	for (unsigned int i = 0; i < br->r.nr_indirect_pages; i++) {
		unsigned int n = left < BLKIF_SEGS_PER_INDIRECT_PAGE ?
				 left : BLKIF_SEGS_PER_INDIRECT_PAGE;
		void *page = page_map(be, br->r.indirect_grefs[i]);
		int rc = page ? blkif_indirect_segments(page, n,
				br->ind + i * BLKIF_SEGS_PER_INDIRECT_PAGE) :
				-EINVAL;

		page_unmap(be, br->r.indirect_grefs[i], page);
		if (rc < 0)
			return -EINVAL;
		left -= n;
	}
	br->segs = br->ind;
	br->nsegs = br->r.nr_segments;
	return 0;
}

/* Bytes the segments cover (their pages are checked when mapped). */
static uint64_t segs_bytes(const struct bk_req *br)
{
	uint64_t bytes = 0;

	for (unsigned int i = 0; i < br->nsegs; i++)
		bytes += seg_bytes(&br->segs[i]);
	return bytes;
}

/* Is [sector, +bytes) inside the disk? */
static bool in_disk(const struct blkif_backend *be, uint64_t sector,
		    uint64_t bytes)
{
	uint64_t size = server_size(be->srv);

	return sector <= size / BLKIF_SECTOR_SIZE &&
	       bytes <= size - sector * BLKIF_SECTOR_SIZE;
}

/*
 * Start a ring request taken from the ring.  Returns the status to answer
 * at once, or 1 when server requests were submitted.
 */
static int start(struct bk_req *br)
{
	struct blkif_backend *be = br->be;
	const struct blkif_req *r = &br->r;
	struct req *flush = NULL, *data = NULL;
	bool has_data, write, fua = false, barrier = false;
	uint64_t off, len;

	if (r->error != BLKIF_REQ_OK) {
		log_debug("%s: request %llu (op %u) refused: %s", be->name,
			  (unsigned long long)r->id, r->operation,
			  blkif_req_error_text(r->error));
		return blkif_req_status(r);
	}
	switch (r->op) {
	case BLKIF_OP_READ:
	case BLKIF_OP_WRITE:
		has_data = true;
		write = r->op == BLKIF_OP_WRITE;
		break;
	case BLKIF_OP_WRITE_BARRIER:
		barrier = fua = true;
		/* fall through */
	case BLKIF_OP_FLUSH_DISKCACHE:
		has_data = r->nr_segments > 0;
		write = true;
		flush = sub_new(br, NBD_CMD_FLUSH, 0, 0, 0, false);
		if (!flush)
			return BLKIF_RSP_ERROR;
		break;
	case BLKIF_OP_DISCARD:
		if (be->readonly ||
		    !in_disk(be, r->sector_number,
			     r->nr_sectors * BLKIF_SECTOR_SIZE))
			return BLKIF_RSP_ERROR;
		if (!r->nr_sectors)
			return BLKIF_RSP_OKAY;
		br->trim_off = r->sector_number * BLKIF_SECTOR_SIZE;
		br->trim_end = br->trim_off +
			       r->nr_sectors * BLKIF_SECTOR_SIZE;
		return trim_next(br) ? 1 : BLKIF_RSP_ERROR;
	default:
		return BLKIF_RSP_EOPNOTSUPP;	/* the ring refuses those */
	}
	if (has_data) {
		if (r->operation == BLKIF_OP_INDIRECT) {
			if (load_indirect(br) < 0)
				goto error;
		} else {
			br->segs = r->seg;
			br->nsegs = r->nr_segments;
		}
		/* reads go straight into the pages while few enough are
		 * held (the transport's cache must not run out) */
		br->direct = !write && be->held + br->nsegs <= be->max_held;
		len = br->direct ? hold_segs(br) : segs_bytes(br);
		if (!len || (write && be->readonly) ||
		    !in_disk(be, r->sector_number, len) ||
		    len > NBD_MAX_REQUEST_LEN)
			goto error;
		off = r->sector_number * BLKIF_SECTOR_SIZE;
		data = sub_new(br, write ? NBD_CMD_WRITE : NBD_CMD_READ,
			       fua ? NBD_CMD_FLAG_FUA : 0, off, len,
			       !br->direct);
		if (!data)
			goto error;
		if (br->direct) {
			data->dst = br->iov;
			data->ndst = br->niov;
			be->bytes += len;
		} else if (write) {
			if (copy_segs(br, data->buf, false) < 0) {
				sub_drop(be, data);
				goto error;
			}
		} else {
			br->read = true;
		}
	}
	if (flush)
		sub_submit(br, flush);
	if (data)
		sub_submit(br, data);
	if (barrier)
		be->barrier = br;
	return 1;
error:
	sub_drop(be, flush);
	release_segs(br);
	return BLKIF_RSP_ERROR;
}

int blkif_backend_poll(struct blkif_backend *be)
{
	int n = 0;

	if (be->dead)
		return -EIO;
	be->want = true;
	while (can_take(be)) {
		struct bk_req *br = br_get(be);
		int rc;

		if (!br)
			break;	/* no memory: on the next completion */
		rc = blkif_ring_get(&be->ring, &br->r);
		if (rc == 0) {
			br_put(be, br);
			if (blkif_ring_final_check(&be->ring))
				continue;
			be->want = false;
			break;
		}
		if (rc < 0) {
			br_put(be, br);
			be->dead = true;
			log_error("%s: the frontend broke the ring protocol "
				  "(impossible request producer index): "
				  "tearing the ring down", be->name);
			return -EIO;
		}
		be->in_flight++;
		be->n_reqs++;
		n++;
		if (be->in_order) {
			*be->oq_tail = br;
			be->oq_tail = &br->next_order;
		}
		rc = start(br);
		if (rc != 1) {
			br->status = (int16_t)rc;
			br_finish(br);
		}
	}
	if (be->bytes >= be->max_bytes && !be->cap_wait) {
		be->cap_wait = true;
		be->n_cap_waits++;
	} else if (be->bytes < be->max_bytes) {
		be->cap_wait = false;
	}
	return n;
}
