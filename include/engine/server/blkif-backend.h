/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif backend (src/server/blkif/backend.c): takes requests from a
 * struct blkif_ring and runs them as server requests (struct req, the path
 * NBD requests take, so the formats, flushes, barriers and ordering rules
 * are the same), then answers them on the ring.
 *
 * The transport (Xen grants and event channels, or shared memory in tests)
 * maps a grant reference to its 4 KiB page (NULL: not a page this frontend
 * may name), releases it, and notifies the frontend.  Reads go straight
 * into the segments' pages: the backend holds them mapped while the read
 * is in flight and hands them to the server core as the request's
 * destination vector, which O_DIRECT reads fill where the image's mapping
 * and the segments' alignment allow (else the core reads into a pooled
 * buffer, copied out on completion).  Written segments are copied into the
 * request's pooled buffer before it is submitted: the server core's write
 * path (mirror, changed block tracking) keeps the payload in one buffer.
 *
 *   READ, WRITE             a read or write of the segments
 *   FLUSH_DISKCACHE         a flush; with segments, the flush then the write
 *   WRITE_BARRIER           a flush, then the write (if any) with FUA; no
 *                           request after it is taken until it is answered
 *   DISCARD                 a trim (in chunks of at most 1 GiB, in turn)
 *   INDIRECT                READ or WRITE with segments in indirect pages
 *
 * Writes, discards and flushes with data on a read-only backend, ranges
 * beyond the disk and grant references the transport refuses are answered
 * BLKIF_RSP_ERROR; requests the ring refused with blkif_req_status().
 * Buffers in flight are capped (max_bytes): over it, no request is taken
 * from the ring until completions bring it under.
 */
#ifndef SERVER_BLKIF_BACKEND_H
#define SERVER_BLKIF_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/blkif-ring.h"

struct server;
struct blkif_backend;

struct blkif_transport_ops {
	/*
	 * The page of a grant reference, or NULL (answered with an error).
	 * It stays valid until the backend unmaps it: every map is paired
	 * with an unmap, so a transport that caches mappings (persistent
	 * grants) recycles only pages nobody holds.  The backend holds at
	 * most max_held pages (its config) at once for reads in flight, and
	 * one more for a moment.
	 */
	void *(*map)(void *transport, uint32_t gref);
	/*
	 * Optional: the backend is done with a page map returned for gref.
	 * A transport that maps a frontend's grants for one use (Xen
	 * without persistent grants) unmaps there, before the request is
	 * answered and the frontend revokes the grant.
	 */
	void (*unmap)(void *transport, uint32_t gref, void *page);
	/* Signal the frontend (its event channel). */
	void (*notify)(void *transport);
	/*
	 * Optional: after blkif_backend_detach, the backend holds no page
	 * and will never call the transport again (called from detach when
	 * nothing is in flight, else with the last completion).  Reads in
	 * flight land in the pages until then, so the transport keeps its
	 * data-page mappings, and the memory behind them, until this call.
	 */
	void (*released)(void *transport);
};

#define BLKIF_BACKEND_MAX_BYTES (64UL * 1024 * 1024)
/* What we offer in feature-max-indirect-segments (1 MiB requests). */
#define BLKIF_BACKEND_INDIRECT_SEGMENTS 256U

struct blkif_backend_config {
	void *ring;			/* the shared ring pages, mapped */
	size_t ring_bytes;		/* 4096 << order */
	enum blkif_abi abi;
	unsigned int max_indirect_segments;	/* offered, 0: none */
	bool readonly;			/* writes are refused */
	/*
	 * Answer requests in ring order (a finished one waits for those
	 * taken before it).  Slots from the shared rsp_prod on then still
	 * hold exactly the requests not answered, so a restarted server
	 * can take them again (resume).  Costs latency behind slow requests.
	 */
	bool in_order;
	/*
	 * Start at the shared rsp_prod, not at 0: re-adopt a ring a dead
	 * server left (with in_order; on a fresh ring rsp_prod is 0).
	 */
	bool resume;
	size_t max_bytes;		/* 0: BLKIF_BACKEND_MAX_BYTES */
	/*
	 * Pages the backend may hold mapped for reads in flight (see map);
	 * a read that would go over takes the copy path.  0: every read is
	 * copied.
	 */
	unsigned int max_held;
	const struct blkif_transport_ops *ops;
	void *transport;
	const char *name;		/* for logs */
};

/* Attach to a ring (freshly initialised by its frontend). */
int blkif_backend_new(struct server *srv,
		      const struct blkif_backend_config *cfg,
		      struct blkif_backend **ret);

/*
 * Take the requests the frontend produced (call when it notified us, and
 * from the server's loop hook).  Returns how many were taken, or -EIO
 * when the ring is dead (the frontend broke the protocol): logged; the
 * caller then detaches.
 */
int blkif_backend_poll(struct blkif_backend *be);

/* Would blkif_backend_poll take requests now that it could not before
 * (a completion brought the bytes under the cap, a barrier finished)? */
bool blkif_backend_wants_poll(const struct blkif_backend *be);

/*
 * The frontend is gone: never touch the ring again (the caller may unmap
 * it on return).  Requests in flight finish and their responses are
 * dropped; reads in flight still land in their pages, which the transport
 * keeps until ops->released.  be is freed with the last of them.
 */
void blkif_backend_detach(struct blkif_backend *be);

/* The device is being closed while the server stays (its domain was
 * deactivated): take no new request; those in flight finish and are
 * answered. */
void blkif_backend_stop_taking(struct blkif_backend *be);

/* Requests taken and not yet answered. */
unsigned int blkif_backend_in_flight(const struct blkif_backend *be);

/*
 * The ring is being closed for good while the frontend still has requests
 * queued that were never taken (a stopping server takes none): answer each
 * with BLKIF_RSP_ERROR, so that the frontend fails them instead of waiting
 * for ever (Linux blkfront's teardown waits for every request it sent).
 * Only with nothing in flight, since answers go in ring order.  Returns
 * how many were answered.
 */
unsigned int blkif_backend_refuse_queued(struct blkif_backend *be);

#endif
