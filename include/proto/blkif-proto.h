/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Xen blkif wire format (block ring shared with a guest's blkfront), our own
 * definitions written from Xen's public io/blkif.h and io/ring.h
 * (RELEASE-4.17): operation codes, limits, the shared ring header, and the
 * request and response layouts of the two guest ABIs.
 *
 * Every structure is packed with explicit padding, so its layout is the
 * same whatever the compiler's ABI: the x86_64 structures are both the
 * native layout of a 64-bit backend and what a 32-bit backend must read
 * from a 64-bit guest; the x86_32 ones are what a 32-bit guest writes
 * (64-bit fields only 4-byte aligned, so `id` sits at offset 4).
 * Fields are little-endian (both ABIs are x86).  The _Static_asserts pin
 * the sizes and offsets the specification fixes.
 *
 * A useful fact, asserted below: each x86_32 request is its x86_64
 * counterpart without the 4 bytes of padding that follow the first 32-bit
 * word (operation, byte, 16-bit field), so a decoder may widen an x86_32
 * entry into the x86_64 layout and read only that.
 */
#ifndef PROTO_BLKIF_PROTO_H
#define PROTO_BLKIF_PROTO_H

#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "blkif rings are little-endian (x86 guests)");

/* Operations (request.operation). */
#define BLKIF_OP_READ			0
#define BLKIF_OP_WRITE			1
#define BLKIF_OP_WRITE_BARRIER		2	/* feature-barrier */
#define BLKIF_OP_FLUSH_DISKCACHE	3	/* feature-flush-cache */
#define BLKIF_OP_RESERVED_1		4	/* SLES, never valid for us */
#define BLKIF_OP_DISCARD		5	/* feature-discard */
#define BLKIF_OP_INDIRECT		6	/* feature-max-indirect-segments */

/* Response status. */
#define BLKIF_RSP_OKAY			0
#define BLKIF_RSP_ERROR			(-1)
#define BLKIF_RSP_EOPNOTSUPP		(-2)

/* Discard request flag. */
#define BLKIF_DISCARD_SECURE		(1U << 0)

/* "info" bits in the backend's xenstore directory. */
#define BLKIF_VDISK_CDROM		0x1U
#define BLKIF_VDISK_REMOVABLE		0x2U
#define BLKIF_VDISK_READONLY		0x4U

/* xenstore "protocol" values written by the frontend (absent: native). */
#define BLKIF_PROTOCOL_X86_32		"x86_32-abi"
#define BLKIF_PROTOCOL_X86_64		"x86_64-abi"

/* Limits. */
#define BLKIF_PAGE_SIZE			4096U
#define BLKIF_SECTOR_SIZE		512U	/* unit of every sector field */
#define BLKIF_SECTORS_PER_PAGE		(BLKIF_PAGE_SIZE / BLKIF_SECTOR_SIZE)
#define BLKIF_MAX_SEGMENTS_PER_REQUEST	11
#define BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST 8
#define BLKIF_MAX_RING_PAGE_ORDER	4	/* what we offer: 16 pages */

/*
 * One data segment: a granted page and the inclusive range of 512-byte
 * sectors within it.  Same layout in both ABIs; also the entry of an
 * indirect page.
 */
struct blkif_wire_segment {
	uint32_t gref;
	uint8_t first_sect;
	uint8_t last_sect;
	uint16_t pad;
} __attribute__((packed));

#define BLKIF_SEGS_PER_INDIRECT_PAGE \
	(BLKIF_PAGE_SIZE / sizeof(struct blkif_wire_segment))
#define BLKIF_MAX_INDIRECT_SEGMENTS \
	(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_PAGE)

/*
 * The shared ring: this header, then entries (each the larger of a request
 * and a response) up to the end of the pages.  The number of entries is
 * the largest power of two that fits.  Indices are free-running and wrap.
 */
struct blkif_sring_header {
	uint32_t req_prod;	/* frontend: requests produced */
	uint32_t req_event;	/* backend: notify me when req_prod passes */
	uint32_t rsp_prod;	/* backend: responses produced */
	uint32_t rsp_event;	/* frontend: notify me when rsp_prod passes */
	uint8_t pad[48];
};	/* naturally aligned: not packed, so the indices can be atomics */

#define BLKIF_RING_HEADER_SIZE		64U

/* ---------------------------------------------------------------- x86_64 */

/* READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE. */
struct blkif_x86_64_request_rw {
	uint8_t operation;
	uint8_t nr_segments;
	uint16_t handle;
	uint32_t pad;
	uint64_t id;		/* echoed in the response */
	uint64_t sector_number;
	struct blkif_wire_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
} __attribute__((packed));

struct blkif_x86_64_request_discard {
	uint8_t operation;
	uint8_t flag;		/* BLKIF_DISCARD_SECURE */
	uint16_t handle;
	uint32_t pad;
	uint64_t id;
	uint64_t sector_number;
	uint64_t nr_sectors;
} __attribute__((packed));

struct blkif_x86_64_request_indirect {
	uint8_t operation;	/* BLKIF_OP_INDIRECT */
	uint8_t indirect_op;	/* READ or WRITE */
	uint16_t nr_segments;
	uint32_t pad;
	uint64_t id;
	uint64_t sector_number;
	uint16_t handle;
	uint16_t pad2;
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	uint32_t pad3;
} __attribute__((packed));

/* Any other operation: only the id is known. */
struct blkif_x86_64_request_other {
	uint8_t operation;
	uint8_t pad[7];
	uint64_t id;
} __attribute__((packed));

struct blkif_x86_64_response {
	uint64_t id;
	uint8_t operation;
	uint8_t pad;
	int16_t status;
	uint32_t pad2;
} __attribute__((packed));

/* ---------------------------------------------------------------- x86_32 */

struct blkif_x86_32_request_rw {
	uint8_t operation;
	uint8_t nr_segments;
	uint16_t handle;
	uint64_t id;
	uint64_t sector_number;
	struct blkif_wire_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
} __attribute__((packed));

struct blkif_x86_32_request_discard {
	uint8_t operation;
	uint8_t flag;
	uint16_t handle;
	uint64_t id;
	uint64_t sector_number;
	uint64_t nr_sectors;
} __attribute__((packed));

struct blkif_x86_32_request_indirect {
	uint8_t operation;
	uint8_t indirect_op;
	uint16_t nr_segments;
	uint64_t id;
	uint64_t sector_number;
	uint16_t handle;
	uint16_t pad2;
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	uint64_t pad3;		/* the spec pads it to 64 bytes */
} __attribute__((packed));

struct blkif_x86_32_request_other {
	uint8_t operation;
	uint8_t pad[3];
	uint64_t id;
} __attribute__((packed));

struct blkif_x86_32_response {
	uint64_t id;
	uint8_t operation;
	uint8_t pad;
	int16_t status;
} __attribute__((packed));

/* Entry sizes: the largest request (rw) in each ABI. */
#define BLKIF_X86_64_ENTRY_SIZE		112U
#define BLKIF_X86_32_ENTRY_SIZE		108U
/* The x86_32 fields after the first word sit this much lower. */
#define BLKIF_X86_32_SHIFT		4U

/* ---------------------------------------------------------------- checks */

_Static_assert(sizeof(struct blkif_wire_segment) == 8, "segment");
_Static_assert(BLKIF_SEGS_PER_INDIRECT_PAGE == 512, "indirect page");
_Static_assert(BLKIF_MAX_INDIRECT_SEGMENTS == 4096, "indirect max");
_Static_assert(sizeof(struct blkif_sring_header) == BLKIF_RING_HEADER_SIZE,
	       "ring header");
_Static_assert(offsetof(struct blkif_sring_header, req_event) == 4 &&
	       offsetof(struct blkif_sring_header, rsp_prod) == 8 &&
	       offsetof(struct blkif_sring_header, rsp_event) == 12,
	       "ring header fields");

_Static_assert(sizeof(struct blkif_x86_64_request_rw) == 112, "x86_64 rw");
_Static_assert(offsetof(struct blkif_x86_64_request_rw, id) == 8 &&
	       offsetof(struct blkif_x86_64_request_rw, sector_number) == 16 &&
	       offsetof(struct blkif_x86_64_request_rw, seg) == 24,
	       "x86_64 rw fields");
_Static_assert(sizeof(struct blkif_x86_64_request_discard) == 32 &&
	       offsetof(struct blkif_x86_64_request_discard, nr_sectors) == 24,
	       "x86_64 discard");
_Static_assert(sizeof(struct blkif_x86_64_request_indirect) == 64 &&
	       offsetof(struct blkif_x86_64_request_indirect, nr_segments) == 2 &&
	       offsetof(struct blkif_x86_64_request_indirect, handle) == 24 &&
	       offsetof(struct blkif_x86_64_request_indirect,
			indirect_grefs) == 28, "x86_64 indirect");
_Static_assert(offsetof(struct blkif_x86_64_request_other, id) == 8,
	       "x86_64 other");
_Static_assert(sizeof(struct blkif_x86_64_response) == 16 &&
	       offsetof(struct blkif_x86_64_response, operation) == 8 &&
	       offsetof(struct blkif_x86_64_response, status) == 10,
	       "x86_64 response");

_Static_assert(sizeof(struct blkif_x86_32_request_rw) == 108, "x86_32 rw");
_Static_assert(offsetof(struct blkif_x86_32_request_rw, id) == 4 &&
	       offsetof(struct blkif_x86_32_request_rw, sector_number) == 12 &&
	       offsetof(struct blkif_x86_32_request_rw, seg) == 20,
	       "x86_32 rw fields");
_Static_assert(sizeof(struct blkif_x86_32_request_discard) == 28 &&
	       offsetof(struct blkif_x86_32_request_discard, nr_sectors) == 20,
	       "x86_32 discard");
_Static_assert(sizeof(struct blkif_x86_32_request_indirect) == 64 &&
	       offsetof(struct blkif_x86_32_request_indirect, handle) == 20 &&
	       offsetof(struct blkif_x86_32_request_indirect,
			indirect_grefs) == 24, "x86_32 indirect");
_Static_assert(offsetof(struct blkif_x86_32_request_other, id) == 4,
	       "x86_32 other");
_Static_assert(sizeof(struct blkif_x86_32_response) == 12 &&
	       offsetof(struct blkif_x86_32_response, operation) == 8 &&
	       offsetof(struct blkif_x86_32_response, status) == 10,
	       "x86_32 response");

/* Entry = max(request, response); x86_32 = x86_64 less the padding word. */
_Static_assert(BLKIF_X86_64_ENTRY_SIZE ==
	       sizeof(struct blkif_x86_64_request_rw), "x86_64 entry");
_Static_assert(BLKIF_X86_32_ENTRY_SIZE ==
	       sizeof(struct blkif_x86_32_request_rw), "x86_32 entry");
#define BLKIF_SHIFTED_(field, t64, t32) \
	(offsetof(struct t64, field) == \
	 offsetof(struct t32, field) + BLKIF_X86_32_SHIFT)
_Static_assert(BLKIF_SHIFTED_(id, blkif_x86_64_request_rw,
			      blkif_x86_32_request_rw) &&
	       BLKIF_SHIFTED_(sector_number, blkif_x86_64_request_rw,
			      blkif_x86_32_request_rw) &&
	       BLKIF_SHIFTED_(seg, blkif_x86_64_request_rw,
			      blkif_x86_32_request_rw) &&
	       BLKIF_SHIFTED_(nr_sectors, blkif_x86_64_request_discard,
			      blkif_x86_32_request_discard) &&
	       BLKIF_SHIFTED_(handle, blkif_x86_64_request_indirect,
			      blkif_x86_32_request_indirect) &&
	       BLKIF_SHIFTED_(indirect_grefs, blkif_x86_64_request_indirect,
			      blkif_x86_32_request_indirect) &&
	       BLKIF_SHIFTED_(id, blkif_x86_64_request_other,
			      blkif_x86_32_request_other),
	       "x86_32 requests are x86_64 ones without the padding word");

#endif
