/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif ring over shared memory (ngdp-server --blkif-shm PATH): a test
 * transport that stands in for Xen's grant tables and event channels, so a
 * frontend on the same machine can drive the real ring code.
 *
 * The frontend connects to the Unix socket PATH and sends one message: a
 * struct blkif_shm_hello with three fds (SCM_RIGHTS), in this order:
 *
 *  1. a memfd sealed with at least F_SEAL_SHRINK and F_SEAL_GROW, exactly
 *     (2^ring_order + data_pages) * 4096 bytes: the ring pages (the
 *     shared ring, initialised by the frontend), then the data pages;
 *  2. the "kick" eventfd, frontend -> backend (the event channel the
 *     frontend notifies);
 *  3. the "notify" eventfd, backend -> frontend.
 *
 * Both eventfds must be non-blocking (EFD_NONBLOCK): the backend never
 * waits on them.  A grant reference in a request (segment gref, indirect
 * page) is the index of a data page: 0 is the page right after the ring.
 *
 * The server answers with one struct blkif_shm_reply (status 0: attached;
 * -EBUSY: another frontend is attached; -EINVAL etc.: refused, and the
 * socket is closed).  The ring lives as long as the connection: when the
 * frontend closes it, the backend stops touching the memory at once;
 * requests in flight finish and their responses are dropped.
 *
 * All fields are little-endian (both sides are on the same machine).
 */
#ifndef PROTO_BLKIF_SHM_H
#define PROTO_BLKIF_SHM_H

#include <stdint.h>

#define BLKIF_SHM_MAGIC		0x6b427347U	/* "GsBk" little-endian */
#define BLKIF_SHM_REPLY_MAGIC	0x524b4247U	/* "GBKR" */
#define BLKIF_SHM_VERSION	1

#define BLKIF_SHM_ABI_X86_64	0
#define BLKIF_SHM_ABI_X86_32	1

/* The most data pages a frontend may share (1 GiB). */
#define BLKIF_SHM_MAX_DATA_PAGES	(1U << 18)

/* Fds that come with the hello, in order. */
enum { BLKIF_SHM_FD_MEM, BLKIF_SHM_FD_KICK, BLKIF_SHM_FD_NOTIFY,
       BLKIF_SHM_NFDS };

struct blkif_shm_hello {
	uint32_t magic;		/* BLKIF_SHM_MAGIC */
	uint16_t version;	/* BLKIF_SHM_VERSION */
	uint8_t ring_order;	/* 0..BLKIF_MAX_RING_PAGE_ORDER */
	uint8_t abi;		/* BLKIF_SHM_ABI_* */
	uint32_t data_pages;	/* 1..BLKIF_SHM_MAX_DATA_PAGES */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));

/* What a Xen backend would write to xenstore, and the answer. */
#define BLKIF_SHM_F_FLUSH	(1U << 0)	/* feature-flush-cache */
#define BLKIF_SHM_F_BARRIER	(1U << 1)	/* feature-barrier */
#define BLKIF_SHM_F_DISCARD	(1U << 2)	/* feature-discard */

struct blkif_shm_reply {
	uint32_t magic;		/* BLKIF_SHM_REPLY_MAGIC */
	uint16_t version;
	uint16_t reserved;
	int32_t status;		/* 0 or -errno */
	uint32_t info;		/* BLKIF_VDISK_* (READONLY) */
	uint64_t sectors;	/* 512-byte sectors */
	uint32_t sector_size;	/* 512 */
	uint32_t max_indirect_segments;	/* 0: no BLKIF_OP_INDIRECT */
	uint32_t features;	/* BLKIF_SHM_F_* */
	uint32_t reserved2;
} __attribute__((packed));

_Static_assert(sizeof(struct blkif_shm_hello) == 16, "hello");
_Static_assert(sizeof(struct blkif_shm_reply) == 40, "reply");

#endif
