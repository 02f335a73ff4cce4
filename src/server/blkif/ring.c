/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Backend half of a Xen blkif ring: take requests (copied once, converted
 * to one native form, validated), put responses, and the req_event /
 * rsp_event notification hold-off of Xen's io/ring.h.  See blkif-ring.h.
 *
 * Memory ordering against the frontend (another domain, same protocol as
 * ring.h's xen_rmb/xen_wmb/xen_mb):
 *  - req_prod is loaded with acquire before the entries it covers;
 *  - rsp_prod is stored with release after the responses it covers;
 *  - a full fence separates our index store from the load of the other
 *    side's event index (push and final check), or a wake-up is lost.
 */
#include <errno.h>
#include <string.h>

#include "server/blkif-ring.h"

/* Highest sector a request may reach: byte offsets must fit an off_t. */
#define BLKIF_SECTOR_LIMIT ((uint64_t)INT64_MAX / BLKIF_SECTOR_SIZE)

static struct blkif_sring_header *ring_header(const struct blkif_ring *r)
{
	return (struct blkif_sring_header *)r->shared;
}

static uint8_t *ring_slot(const struct blkif_ring *r, uint32_t idx)
{
	return r->shared + BLKIF_RING_HEADER_SIZE +
	       (size_t)(idx & (r->nr_ents - 1)) * r->entry_size;
}

static uint32_t load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/*
 * Copy `words` 32-bit words out of shared memory exactly once: volatile
 * loads cannot be repeated or deferred by the compiler (the double-fetch
 * that RING_COPY_REQUEST guards against).
 */
static void copy_once(uint8_t *dst, const uint8_t *src, size_t words)
{
	const volatile uint32_t *s = (const volatile uint32_t *)src;

	for (size_t i = 0; i < words; i++) {
		uint32_t w = s[i];

		memcpy(dst + i * 4, &w, 4);
	}
}

int blkif_abi_from_protocol(const char *protocol, enum blkif_abi *abi)
{
	if (!protocol)
		*abi = BLKIF_ABI_NATIVE;
	else if (!strcmp(protocol, BLKIF_PROTOCOL_X86_64))
		*abi = BLKIF_ABI_X86_64;
	else if (!strcmp(protocol, BLKIF_PROTOCOL_X86_32))
		*abi = BLKIF_ABI_X86_32;
	else
		return -EINVAL;
	return 0;
}

int16_t blkif_req_status(const struct blkif_req *req)
{
	if (req->error == BLKIF_REQ_OK)
		return BLKIF_RSP_OKAY;
	if (req->error == BLKIF_REQ_UNKNOWN_OP)
		return BLKIF_RSP_EOPNOTSUPP;
	return BLKIF_RSP_ERROR;
}

const char *blkif_req_error_text(enum blkif_req_error error)
{
	switch (error) {
	case BLKIF_REQ_OK:
		return "valid";
	case BLKIF_REQ_UNKNOWN_OP:
		return "unsupported operation";
	case BLKIF_REQ_BAD_INDIRECT_OP:
		return "indirect request that is neither read nor write";
	case BLKIF_REQ_BAD_SEGMENT_COUNT:
		return "segment count out of range";
	case BLKIF_REQ_BAD_SEGMENT:
		return "segment sector range outside its page";
	case BLKIF_REQ_BAD_RANGE:
		return "sector range overflows";
	}
	return "unknown error";
}

int blkif_ring_init(struct blkif_ring *r, void *shared, size_t bytes,
		    enum blkif_abi abi, unsigned int max_indirect_segments)
{
	size_t pages = bytes / BLKIF_PAGE_SIZE;
	uint32_t entry_size, n;

	if (abi == BLKIF_ABI_X86_64)
		entry_size = BLKIF_X86_64_ENTRY_SIZE;
	else if (abi == BLKIF_ABI_X86_32)
		entry_size = BLKIF_X86_32_ENTRY_SIZE;
	else
		return -EINVAL;
	if (!shared || (uintptr_t)shared % 8 || bytes % BLKIF_PAGE_SIZE ||
	    pages < 1 || pages > (1U << BLKIF_MAX_RING_PAGE_ORDER) ||
	    (pages & (pages - 1)) ||
	    max_indirect_segments > BLKIF_MAX_INDIRECT_SEGMENTS)
		return -EINVAL;

	/* The largest power of two that fits after the header. */
	n = (uint32_t)((bytes - BLKIF_RING_HEADER_SIZE) / entry_size);
	while (n & (n - 1))
		n &= n - 1;

	*r = (struct blkif_ring){
		.shared = shared,
		.abi = abi,
		.nr_ents = n,
		.entry_size = entry_size,
		.max_indirect_segments = max_indirect_segments,
	};
	return 0;
}

int blkif_ring_restore(struct blkif_ring *r, uint32_t req_cons,
		       uint32_t rsp_prod_pvt)
{
	if (req_cons - rsp_prod_pvt > r->nr_ents)
		return -EINVAL;
	r->req_cons = r->req_prod_seen = req_cons;
	r->rsp_prod_pvt = r->rsp_prod_pushed = rsp_prod_pvt;
	r->dead = false;
	return 0;
}

/* A request in the x86_64 layout, whatever the ring's ABI. */
union wide_request {
	uint8_t bytes[BLKIF_X86_64_ENTRY_SIZE];
	struct blkif_x86_64_request_rw rw;
	struct blkif_x86_64_request_discard discard;
	struct blkif_x86_64_request_indirect indirect;
	struct blkif_x86_64_request_other other;
};

/* Copy one entry out, widening x86_32 (see blkif-proto.h). */
static void copy_request(const struct blkif_ring *r, uint32_t idx,
			 union wide_request *w)
{
	const uint8_t *slot = ring_slot(r, idx);

	if (r->abi == BLKIF_ABI_X86_64) {
		copy_once(w->bytes, slot, BLKIF_X86_64_ENTRY_SIZE / 4);
		return;
	}
	copy_once(w->bytes, slot, 1);
	memset(w->bytes + 4, 0, BLKIF_X86_32_SHIFT);
	copy_once(w->bytes + 4 + BLKIF_X86_32_SHIFT, slot + 4,
		  (BLKIF_X86_32_ENTRY_SIZE - 4) / 4);
}

static bool range_ok(uint64_t sector, uint64_t count)
{
	return sector <= BLKIF_SECTOR_LIMIT &&
	       count <= BLKIF_SECTOR_LIMIT - sector;
}

static bool segment_ok(const struct blkif_wire_segment *w)
{
	return w->first_sect <= w->last_sect &&
	       w->last_sect < BLKIF_SECTORS_PER_PAGE;
}

static enum blkif_req_error decode_rw(const struct blkif_x86_64_request_rw *w,
				      struct blkif_req *req)
{
	/* Only flush and barrier may come without data. */
	unsigned int min = req->operation == BLKIF_OP_READ ||
			   req->operation == BLKIF_OP_WRITE;

	req->handle = w->handle;
	req->sector_number = w->sector_number;
	req->nr_segments = w->nr_segments;
	if (w->nr_segments < min ||
	    w->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
		return BLKIF_REQ_BAD_SEGMENT_COUNT;
	for (unsigned int i = 0; i < w->nr_segments; i++) {
		struct blkif_wire_segment s = w->seg[i];

		if (!segment_ok(&s))
			return BLKIF_REQ_BAD_SEGMENT;
		req->seg[i] = (struct blkif_seg){
			.gref = s.gref, .first_sect = s.first_sect,
			.last_sect = s.last_sect,
		};
		req->nr_sectors += s.last_sect - s.first_sect + 1U;
	}
	/*
	 * A flush without data names no sector: Linux blkfront sends the
	 * block layer's flush request's position, which is (sector_t)-1.
	 */
	if (!w->nr_segments) {
		req->sector_number = 0;
		return BLKIF_REQ_OK;
	}
	if (!range_ok(req->sector_number, req->nr_sectors))
		return BLKIF_REQ_BAD_RANGE;
	return BLKIF_REQ_OK;
}

static enum blkif_req_error
decode_discard(const struct blkif_x86_64_request_discard *w,
	       struct blkif_req *req)
{
	req->discard_flag = w->flag;
	req->handle = w->handle;
	req->sector_number = w->sector_number;
	req->nr_sectors = w->nr_sectors;
	if (!range_ok(req->sector_number, req->nr_sectors))
		return BLKIF_REQ_BAD_RANGE;
	return BLKIF_REQ_OK;
}

static enum blkif_req_error
decode_indirect(const struct blkif_ring *r,
		const struct blkif_x86_64_request_indirect *w,
		struct blkif_req *req)
{
	unsigned int pages;

	req->op = w->indirect_op;
	if (!r->max_indirect_segments)
		return BLKIF_REQ_UNKNOWN_OP;
	req->handle = w->handle;
	req->sector_number = w->sector_number;
	req->nr_segments = w->nr_segments;
	if (w->indirect_op != BLKIF_OP_READ && w->indirect_op != BLKIF_OP_WRITE)
		return BLKIF_REQ_BAD_INDIRECT_OP;
	if (w->nr_segments < 1 || w->nr_segments > r->max_indirect_segments)
		return BLKIF_REQ_BAD_SEGMENT_COUNT;
	/* Within BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: init bounds the max. */
	pages = (w->nr_segments + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) /
		BLKIF_SEGS_PER_INDIRECT_PAGE;
	req->nr_indirect_pages = (uint8_t)pages;
	for (unsigned int i = 0; i < pages; i++)
		req->indirect_grefs[i] = w->indirect_grefs[i];
	/* The exact length is in the pages; bound it by full segments. */
	if (!range_ok(req->sector_number,
		      (uint64_t)w->nr_segments * BLKIF_SECTORS_PER_PAGE))
		return BLKIF_REQ_BAD_RANGE;
	return BLKIF_REQ_OK;
}

static void decode_request(const struct blkif_ring *r,
			   const union wide_request *w, struct blkif_req *req)
{
	*req = (struct blkif_req){
		.id = w->other.id,
		.operation = w->other.operation,
		.op = w->other.operation,
	};
	switch (req->operation) {
	case BLKIF_OP_READ:
	case BLKIF_OP_WRITE:
	case BLKIF_OP_WRITE_BARRIER:
	case BLKIF_OP_FLUSH_DISKCACHE:
		req->error = decode_rw(&w->rw, req);
		break;
	case BLKIF_OP_DISCARD:
		req->error = decode_discard(&w->discard, req);
		break;
	case BLKIF_OP_INDIRECT:
		req->error = decode_indirect(r, &w->indirect, req);
		break;
	default:
		req->error = BLKIF_REQ_UNKNOWN_OP;
		break;
	}
}

int blkif_ring_get(struct blkif_ring *r, struct blkif_req *out)
{
	union wide_request w;

	if (r->dead)
		return -EIO;
	if (r->req_cons == r->req_prod_seen) {
		uint32_t prod = load_acquire(&ring_header(r)->req_prod);
		/* Slots not holding a request still awaiting its answer. */
		uint32_t room = r->nr_ents - (r->req_cons - r->rsp_prod_pvt);

		/*
		 * A well-behaved frontend never has more than nr_ents
		 * requests unanswered, and never moves req_prod back
		 * (which wraps to a huge count here).
		 */
		if (prod - r->req_cons > room) {
			r->dead = true;
			return -EIO;
		}
		r->req_prod_seen = prod;
		if (prod == r->req_cons)
			return 0;
	}
	copy_request(r, r->req_cons, &w);
	r->req_cons++;
	decode_request(r, &w, out);
	return 1;
}

int blkif_ring_put(struct blkif_ring *r, uint64_t id, uint8_t operation,
		   int16_t status)
{
	/* Same offsets in both ABIs; x86_32's is 4 bytes shorter. */
	struct blkif_x86_64_response rsp = {
		.id = id, .operation = operation, .status = status,
	};
	size_t size = r->abi == BLKIF_ABI_X86_64 ?
		      sizeof(struct blkif_x86_64_response) :
		      sizeof(struct blkif_x86_32_response);

	if (r->rsp_prod_pvt == r->req_cons)
		return -ENOSPC;
	memcpy(ring_slot(r, r->rsp_prod_pvt), &rsp, size);
	r->rsp_prod_pvt++;
	return 0;
}

bool blkif_ring_push(struct blkif_ring *r)
{
	struct blkif_sring_header *h = ring_header(r);
	uint32_t old = r->rsp_prod_pushed, new = r->rsp_prod_pvt;
	uint32_t event;

	if (old == new)
		return false;
	__atomic_store_n(&h->rsp_prod, new, __ATOMIC_RELEASE);
	r->rsp_prod_pushed = new;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	event = __atomic_load_n(&h->rsp_event, __ATOMIC_RELAXED);
	/* Notify when rsp_event lies in (old, new]. */
	return (uint32_t)(new - event) < (uint32_t)(new - old);
}

static bool requests_pending(const struct blkif_ring *r)
{
	return load_acquire(&ring_header(r)->req_prod) != r->req_cons;
}

bool blkif_ring_final_check(struct blkif_ring *r)
{
	if (r->dead)
		return false;
	if (requests_pending(r))
		return true;
	__atomic_store_n(&ring_header(r)->req_event, r->req_cons + 1,
			 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return requests_pending(r);
}

int blkif_indirect_segments(const void *page, unsigned int n,
			    struct blkif_seg *out)
{
	const uint8_t *p = page;
	int sectors = 0;

	if (n < 1 || n > BLKIF_SEGS_PER_INDIRECT_PAGE)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		struct blkif_wire_segment s;
		uint8_t raw[sizeof(s)];

		copy_once(raw, p + i * sizeof(s), sizeof(s) / 4);
		memcpy(&s, raw, sizeof(s));
		if (!segment_ok(&s))
			return -EINVAL;
		out[i] = (struct blkif_seg){
			.gref = s.gref, .first_sect = s.first_sect,
			.last_sect = s.last_sect,
		};
		sectors += s.last_sect - s.first_sect + 1;
	}
	return sectors;
}
