/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The backend half of a Xen blkif ring (src/server/blkif/ring.c): pure
 * logic over the shared memory the caller mapped (grant pages, or plain
 * memory in tests).  No Xen library calls, no allocation, no I/O: mapping
 * grants, event channels and executing requests belong to the caller.
 *
 * The guest may change the shared memory at any time, so every request is
 * copied out once and then validated; nothing in shared memory is read
 * twice.  A request that fails validation is still handed out (its error
 * field set) so the caller answers it with the same id; only an impossible
 * producer index kills the ring.
 *
 * The loop of a consumer:
 *
 *	for (;;) {
 *		while ((rc = blkif_ring_get(r, &req)) == 1)
 *			start or answer req;
 *		if (rc < 0)
 *			tear the ring down (hostile or broken frontend);
 *		if (!blkif_ring_final_check(r))
 *			break;		(sleep until the event channel fires)
 *	}
 *
 * and on completions: blkif_ring_put() for each, then blkif_ring_push()
 * and notify the event channel when it returns true.
 */
#ifndef SERVER_BLKIF_RING_H
#define SERVER_BLKIF_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkif-proto.h"

enum blkif_abi {
	BLKIF_ABI_X86_64,	/* also the native ABI of our x86_64 build */
	BLKIF_ABI_X86_32,
};
#define BLKIF_ABI_NATIVE BLKIF_ABI_X86_64

/*
 * The ABI named by the frontend's xenstore "protocol" value; NULL (key
 * absent) means native.  Returns 0 or -EINVAL for an unknown name.
 */
int blkif_abi_from_protocol(const char *protocol, enum blkif_abi *abi);

/* Why a request is refused (blkif_req.error). */
enum blkif_req_error {
	BLKIF_REQ_OK = 0,
	BLKIF_REQ_UNKNOWN_OP,		/* unknown operation, or INDIRECT not offered */
	BLKIF_REQ_BAD_INDIRECT_OP,	/* indirect_op is not READ or WRITE */
	BLKIF_REQ_BAD_SEGMENT_COUNT,	/* nr_segments out of range for the op */
	BLKIF_REQ_BAD_SEGMENT,		/* first_sect > last_sect or last_sect > 7 */
	BLKIF_REQ_BAD_RANGE,		/* sector range beyond 2^63 bytes */
};

/* A data segment, validated: first_sect <= last_sect < 8. */
struct blkif_seg {
	uint32_t gref;
	uint8_t first_sect;
	uint8_t last_sect;
};

/*
 * A request, copied out of the ring and converted from the guest's ABI.
 * When error != BLKIF_REQ_OK only id, operation, op and error are
 * meaningful.
 */
struct blkif_req {
	uint64_t id;		/* echo in the response */
	uint64_t sector_number;	/* start, 512-byte units */
	/*
	 * 512-byte sectors covered: the sum of the segments for a direct
	 * request, as sent for DISCARD, 0 for INDIRECT (its segments are in
	 * the indirect pages, see blkif_indirect_segments()).
	 */
	uint64_t nr_sectors;
	enum blkif_req_error error;
	uint8_t operation;	/* as sent (BLKIF_OP_INDIRECT...), for logs */
	/*
	 * What to do, and the operation to echo in the response: operation,
	 * or indirect_op for BLKIF_OP_INDIRECT (as Linux blkback answers;
	 * Linux blkfront takes any other value as a broken backend).
	 */
	uint8_t op;
	uint8_t discard_flag;	/* BLKIF_DISCARD_SECURE */
	uint8_t nr_indirect_pages;	/* INDIRECT: grefs in indirect_grefs */
	uint16_t handle;
	/* Direct: segments in seg[]; INDIRECT: in the indirect pages. */
	uint16_t nr_segments;
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	struct blkif_seg seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
};

/* The response status for a request refused with req->error. */
int16_t blkif_req_status(const struct blkif_req *req);
/* A short description of an error, for logs. */
const char *blkif_req_error_text(enum blkif_req_error error);

/* The backend's private view of one ring.  Read-only for callers. */
struct blkif_ring {
	uint8_t *shared;	/* the header, then nr_ents entries */
	enum blkif_abi abi;
	uint32_t nr_ents;	/* a power of two */
	uint32_t entry_size;
	uint32_t max_indirect_segments;	/* 0: INDIRECT not offered */
	uint32_t req_cons;	/* next request to take */
	uint32_t req_prod_seen;	/* the frontend's req_prod last validated */
	uint32_t rsp_prod_pvt;	/* next response slot */
	uint32_t rsp_prod_pushed;	/* rsp_prod last published */
	bool dead;		/* the frontend broke the protocol */
};

/*
 * Attach to a ring of `bytes` (4096 << order, order 0..4) at `shared`
 * (page-aligned in practice, at least 8-byte aligned), starting at index 0
 * like a freshly connected frontend.  max_indirect_segments is what we
 * advertise in feature-max-indirect-segments (0: none, at most
 * BLKIF_MAX_INDIRECT_SEGMENTS).  Writes nothing to shared memory.
 * Returns 0 or -EINVAL.
 */
int blkif_ring_init(struct blkif_ring *r, void *shared, size_t bytes,
		    enum blkif_abi abi, unsigned int max_indirect_segments);

/*
 * Resume at saved private indices (re-adopting a ring after a restart):
 * req_cons requests taken, rsp_prod_pvt responses produced and published.
 * Returns 0, or -EINVAL when more than the ring size would be in flight.
 */
int blkif_ring_restore(struct blkif_ring *r, uint32_t req_cons,
		       uint32_t rsp_prod_pvt);

/*
 * Take the next request into *out.  Returns 1 when one was taken (check
 * out->error), 0 when none is pending, -EIO when the frontend's producer
 * index is impossible: the ring is then dead and every later call
 * returns -EIO.
 */
int blkif_ring_get(struct blkif_ring *r, struct blkif_req *out);

/*
 * Write the response to a taken request (operation: its op, see struct
 * blkif_req) into the next slot (not yet
 * visible to the frontend: see blkif_ring_push()).  Responses may come in
 * any order.  Returns 0, or -ENOSPC when no taken request awaits one.
 */
int blkif_ring_put(struct blkif_ring *r, uint64_t id, uint8_t operation,
		   int16_t status);

/*
 * Publish the responses put so far; true when the frontend asked to be
 * notified of them (rsp_event), so the caller must signal the event channel.
 */
bool blkif_ring_push(struct blkif_ring *r);

/*
 * Call when blkif_ring_get() returned 0, before sleeping: asks the frontend
 * to notify the next request (req_event) and returns true when requests
 * arrived meanwhile (take them, then check again).  False on a dead ring.
 */
bool blkif_ring_final_check(struct blkif_ring *r);

/*
 * Copy and validate n (1..512) segments from a mapped indirect page, once.
 * Returns the number of 512-byte sectors they cover, or -EINVAL for a bad
 * n or a bad segment (answer the request with BLKIF_RSP_ERROR).
 */
int blkif_indirect_segments(const void *page, unsigned int n,
			    struct blkif_seg *out);

#endif
