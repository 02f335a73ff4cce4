/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Unit tests of the blkif ring backend (src/server/blkif/ring.c).  The test
 * plays the frontend in plain memory and writes every request byte by byte
 * at the offsets of the guest's ABI (never through blkif-proto.h's
 * structures), so a wrong layout there shows up here.  Ring sizes and entry
 * sizes are the values Xen's ring macros give, written out by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/blkif-ring.h"

/* The highest sector a request may reach (2^63 bytes). */
#define SECTOR_LIMIT ((uint64_t)INT64_MAX / 512)

/* The frontend's side of one ring. */
struct front {
	uint8_t *mem;
	size_t bytes;
	enum blkif_abi abi;
	uint32_t nr_ents;	/* expected, from Xen's arithmetic */
	uint32_t entry_size;
	uint32_t req_prod_pvt;
	uint32_t rsp_cons;
	struct blkif_ring ring;	/* the backend under test */
};

static const enum blkif_abi abis[] = { BLKIF_ABI_X86_64, BLKIF_ABI_X86_32 };

/* Little-endian stores and loads at explicit offsets. */
static void put_le(uint8_t *p, size_t off, uint64_t v, unsigned int size)
{
	for (unsigned int i = 0; i < size; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t off, unsigned int size)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < size; i++)
		v |= (uint64_t)p[off + i] << (8 * i);
	return v;
}

static uint32_t *hdr_field(struct front *f, size_t off)
{
	return (uint32_t *)(void *)(f->mem + off);
}
#define REQ_PROD(f)	hdr_field(f, 0)
#define REQ_EVENT(f)	hdr_field(f, 4)
#define RSP_PROD(f)	hdr_field(f, 8)
#define RSP_EVENT(f)	hdr_field(f, 12)

static uint8_t *slot(struct front *f, uint32_t idx)
{
	return f->mem + 64 + (size_t)(idx % f->nr_ents) * f->entry_size;
}

/* Offset of `id`: the fields after it shift with it (8 or 4). */
static size_t id_off(const struct front *f)
{
	return f->abi == BLKIF_ABI_X86_64 ? 8 : 4;
}

/* A fresh shared ring as a frontend sets it up (SHARED_RING_INIT). */
static void front_init_max(struct front *f, unsigned int pages,
			   enum blkif_abi abi, unsigned int max_indirect)
{
	static const uint32_t entries[17] = {
		[1] = 32, [2] = 64, [4] = 128, [8] = 256, [16] = 512,
	};

	memset(f, 0, sizeof(*f));
	f->bytes = (size_t)pages * 4096;
	f->mem = aligned_alloc(4096, f->bytes);
	assert_non_null(f->mem);
	memset(f->mem, 0, f->bytes);
	*REQ_EVENT(f) = 1;
	*RSP_EVENT(f) = 1;
	f->abi = abi;
	f->nr_ents = entries[pages];
	f->entry_size = abi == BLKIF_ABI_X86_64 ? 112 : 108;
	assert_int_equal(blkif_ring_init(&f->ring, f->mem, f->bytes, abi,
					 max_indirect), 0);
	assert_int_equal(f->ring.nr_ents, f->nr_ents);
}

static void front_init(struct front *f, unsigned int pages, enum blkif_abi abi)
{
	front_init_max(f, pages, abi, 0);
}

static void front_free(struct front *f)
{
	free(f->mem);
}

/* Move both sides to index `at` (as if that many requests were done). */
static void front_start_at(struct front *f, uint32_t at)
{
	*REQ_PROD(f) = *RSP_PROD(f) = at;
	*REQ_EVENT(f) = *RSP_EVENT(f) = at + 1;
	f->req_prod_pvt = f->rsp_cons = at;
	assert_int_equal(blkif_ring_restore(&f->ring, at, at), 0);
}

/* Start a request in the next slot, over junk; returns the slot. */
static uint8_t *front_new(struct front *f, uint8_t op, uint8_t b1,
			  uint16_t w1, uint64_t id, uint64_t sector)
{
	uint8_t *s = slot(f, f->req_prod_pvt++);

	memset(s, 0xa5, f->entry_size);
	put_le(s, 0, op, 1);
	put_le(s, 1, b1, 1);
	put_le(s, 2, w1, 2);
	put_le(s, id_off(f), id, 8);
	put_le(s, id_off(f) + 8, sector, 8);
	return s;
}

/* READ/WRITE/FLUSH/BARRIER claiming `nr` segments, writing `n` of them. */
static void front_rw(struct front *f, uint8_t op, uint8_t nr, uint64_t id,
		     uint64_t sector, unsigned int n, const struct blkif_seg *seg)
{
	uint8_t *s = front_new(f, op, nr, 0x0102, id, sector);

	for (unsigned int i = 0; i < n && i < 11; i++) {
		size_t o = id_off(f) + 16 + 8 * i;

		put_le(s, o, seg[i].gref, 4);
		put_le(s, o + 4, seg[i].first_sect, 1);
		put_le(s, o + 5, seg[i].last_sect, 1);
	}
}

static void front_discard(struct front *f, uint8_t flag, uint64_t id,
			  uint64_t sector, uint64_t nr_sectors)
{
	uint8_t *s = front_new(f, BLKIF_OP_DISCARD, flag, 0x0304, id, sector);

	put_le(s, id_off(f) + 16, nr_sectors, 8);
}

/* An indirect request whose page grefs are 100, 101, ... */
static void front_indirect(struct front *f, uint8_t indirect_op,
			   uint16_t nr_segments, uint64_t id, uint64_t sector)
{
	uint8_t *s = front_new(f, BLKIF_OP_INDIRECT, indirect_op, nr_segments,
			       id, sector);

	put_le(s, id_off(f) + 16, 0x0506, 2);	/* handle */
	for (unsigned int i = 0; i < 8; i++)
		put_le(s, id_off(f) + 20 + 4 * i, 100 + i, 4);
}

static void front_push(struct front *f)
{
	__atomic_store_n(REQ_PROD(f), f->req_prod_pvt, __ATOMIC_RELEASE);
}

/* Take the next published response: id @0, operation @8, status @10. */
static void front_response(struct front *f, uint64_t id, uint8_t op,
			   int16_t status)
{
	uint8_t *s;

	assert_true(f->rsp_cons != __atomic_load_n(RSP_PROD(f),
						   __ATOMIC_ACQUIRE));
	s = slot(f, f->rsp_cons++);
	assert_true(get_le(s, 0, 8) == id);
	assert_int_equal(get_le(s, 8, 1), op);
	assert_int_equal((int16_t)get_le(s, 10, 2), status);
}

static const struct blkif_seg one_page = { .gref = 7, .first_sect = 0,
					   .last_sect = 7 };

/* ---------------------------------------------------------------- tests */

static void test_protocol_names(void **state)
{
	enum blkif_abi abi = BLKIF_ABI_X86_32;

	(void)state;
	assert_int_equal(blkif_abi_from_protocol(NULL, &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_X86_64);
	assert_int_equal(blkif_abi_from_protocol("x86_32-abi", &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_X86_32);
	assert_int_equal(blkif_abi_from_protocol("x86_64-abi", &abi), 0);
	assert_int_equal(abi, BLKIF_ABI_X86_64);
	assert_int_equal(blkif_abi_from_protocol("x86_32", &abi), -EINVAL);
	assert_int_equal(blkif_abi_from_protocol("", &abi), -EINVAL);
	assert_int_equal(blkif_abi_from_protocol("arm-abi", &abi), -EINVAL);
}

static void test_init(void **state)
{
	struct blkif_ring r;
	uint8_t *mem = aligned_alloc(4096, 32 * 4096);
	static const unsigned int good[] = { 1, 2, 4, 8, 16 };

	(void)state;
	assert_non_null(mem);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		for (size_t a = 0; a < 2; a++) {
			struct front f;

			front_init(&f, good[i], abis[a]);
			front_free(&f);
		}
	assert_int_equal(blkif_ring_init(&r, mem, 0, BLKIF_ABI_X86_64, 0),
			 -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 4095, BLKIF_ABI_X86_64, 0),
			 -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 4097, BLKIF_ABI_X86_64, 0),
			 -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 3 * 4096, BLKIF_ABI_X86_64,
					 0), -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 32 * 4096, BLKIF_ABI_X86_64,
					 0), -EINVAL);
	assert_int_equal(blkif_ring_init(&r, NULL, 4096, BLKIF_ABI_X86_64, 0),
			 -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem + 4, 4096, BLKIF_ABI_X86_64,
					 0), -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 4096, (enum blkif_abi)7, 0),
			 -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 4096, BLKIF_ABI_X86_64,
					 4097), -EINVAL);
	assert_int_equal(blkif_ring_init(&r, mem, 4096, BLKIF_ABI_X86_64,
					 4096), 0);
	/* More in flight than the ring holds cannot be restored. */
	assert_int_equal(blkif_ring_restore(&r, 33, 0), -EINVAL);
	assert_int_equal(blkif_ring_restore(&r, 32, 0), 0);
	assert_int_equal(blkif_ring_restore(&r, 5, UINT32_MAX - 26), 0);
	free(mem);
}

/*
 * `rounds` times: the frontend fills every slot, the backend takes them all
 * (and finds no more), answers them and notifies.
 */
static void fill_drain(struct front *f, unsigned int rounds)
{
	struct blkif_req req;

	for (unsigned int round = 0; round < rounds; round++) {
		uint64_t base = (uint64_t)round << 32;

		*RSP_EVENT(f) = f->rsp_cons + 1;
		for (uint32_t i = 0; i < f->nr_ents; i++) {
			struct blkif_seg seg = { .gref = i, .first_sect = 1,
						 .last_sect = 6 };

			front_rw(f, i % 2 ? BLKIF_OP_WRITE : BLKIF_OP_READ, 1,
				 base + i, 8ULL * i, 1, &seg);
		}
		front_push(f);
		for (uint32_t i = 0; i < f->nr_ents; i++) {
			assert_int_equal(blkif_ring_get(&f->ring, &req), 1);
			assert_int_equal(req.error, BLKIF_REQ_OK);
			assert_true(req.id == base + i);
			assert_int_equal(req.op, i % 2 ? BLKIF_OP_WRITE :
					 BLKIF_OP_READ);
			assert_true(req.sector_number == 8ULL * i);
			assert_int_equal(req.nr_segments, 1);
			assert_int_equal(req.seg[0].gref, i);
			assert_int_equal(req.nr_sectors, 6);
			assert_int_equal(req.handle, 0x0102);
		}
		/* Full: nothing more, and not an error either. */
		assert_int_equal(blkif_ring_get(&f->ring, &req), 0);
		assert_false(blkif_ring_final_check(&f->ring));
		/* Answer in reverse order: ids, not slots, match them. */
		for (uint32_t i = f->nr_ents; i-- > 0;)
			assert_int_equal(blkif_ring_put(&f->ring, base + i,
					 i % 2, BLKIF_RSP_OKAY), 0);
		assert_true(blkif_ring_push(&f->ring));
		assert_int_equal(*RSP_PROD(f), f->req_prod_pvt);
		for (uint32_t i = f->nr_ents; i-- > 0;)
			front_response(f, base + i, i % 2, BLKIF_RSP_OKAY);
	}
}

static void test_fill_drain(void **state)
{
	static const unsigned int pages[] = { 1, 2, 16 };

	(void)state;
	for (size_t p = 0; p < 3; p++)
		for (size_t a = 0; a < 2; a++) {
			struct front f;

			front_init(&f, pages[p], abis[a]);
			fill_drain(&f, 3);
			front_free(&f);
		}
}

static void test_wraparound(void **state)
{
	(void)state;
	for (size_t a = 0; a < 2; a++) {
		struct front f;

		front_init(&f, 1, abis[a]);
		/* Three rounds of 32 cross UINT32_MAX mid-round. */
		front_start_at(&f, UINT32_MAX - 40);
		fill_drain(&f, 3);
		assert_true(f.req_prod_pvt == 55);
		front_free(&f);

		front_init(&f, 16, abis[a]);
		front_start_at(&f, UINT32_MAX);
		fill_drain(&f, 2);
		front_free(&f);
	}
}

/* Take one request with the given id and answer it (not yet pushed). */
static void one_request(struct front *f, uint64_t id)
{
	struct blkif_req req;

	front_rw(f, BLKIF_OP_READ, 1, id, 0, 1, &one_page);
	front_push(f);
	assert_int_equal(blkif_ring_get(&f->ring, &req), 1);
	assert_true(req.id == id);
	assert_int_equal(blkif_ring_put(&f->ring, id, req.op, 0), 0);
}

static void test_notify(void **state)
{
	struct front f;

	(void)state;
	front_init(&f, 1, BLKIF_ABI_X86_64);
	/* Nothing new: nothing to tell. */
	assert_false(blkif_ring_push(&f.ring));
	/* rsp_event = 1: the frontend waits for the first response. */
	one_request(&f, 1);
	assert_int_equal(*RSP_PROD(&f), 0);	/* put does not publish */
	assert_true(blkif_ring_push(&f.ring));
	assert_int_equal(*RSP_PROD(&f), 1);
	front_response(&f, 1, BLKIF_OP_READ, 0);
	/* The frontend did not ask again: no notification. */
	one_request(&f, 2);
	assert_false(blkif_ring_push(&f.ring));
	assert_int_equal(*RSP_PROD(&f), 2);
	front_response(&f, 2, BLKIF_OP_READ, 0);
	/* It asks for the next one. */
	*RSP_EVENT(&f) = f.rsp_cons + 1;
	one_request(&f, 3);
	assert_true(blkif_ring_push(&f.ring));
	front_response(&f, 3, BLKIF_OP_READ, 0);
	/* It asks to be woken at the 6th response only. */
	*RSP_EVENT(&f) = 6;
	one_request(&f, 4);
	assert_false(blkif_ring_push(&f.ring));
	one_request(&f, 5);
	one_request(&f, 6);
	assert_true(blkif_ring_push(&f.ring));	/* 6 in (4, 6] */
	one_request(&f, 7);
	assert_false(blkif_ring_push(&f.ring));
	assert_false(blkif_ring_push(&f.ring));
	assert_int_equal(*RSP_PROD(&f), 7);
	/* Across the wrap: event 1 is not in (UINT32_MAX, 0], it is in (0, 2]. */
	front_start_at(&f, UINT32_MAX);
	*RSP_EVENT(&f) = 1;
	one_request(&f, 8);
	assert_false(blkif_ring_push(&f.ring));	/* rsp_prod 0 */
	one_request(&f, 9);
	one_request(&f, 10);
	assert_true(blkif_ring_push(&f.ring));	/* rsp_prod 2 */
	front_free(&f);
}

static void test_final_check(void **state)
{
	struct front f;
	struct blkif_req req;

	(void)state;
	front_init(&f, 1, BLKIF_ABI_X86_64);
	*REQ_EVENT(&f) = 77;
	assert_int_equal(blkif_ring_get(&f.ring, &req), 0);
	assert_false(blkif_ring_final_check(&f.ring));
	assert_int_equal(*REQ_EVENT(&f), 1);	/* wake me at request 1 */
	/* A request arrives between the last get and the final check. */
	front_rw(&f, BLKIF_OP_READ, 1, 1, 0, 1, &one_page);
	front_push(&f);
	*REQ_EVENT(&f) = 77;
	assert_true(blkif_ring_final_check(&f.ring));
	assert_int_equal(*REQ_EVENT(&f), 77);	/* work first: not re-armed */
	assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
	assert_int_equal(blkif_ring_get(&f.ring, &req), 0);
	assert_false(blkif_ring_final_check(&f.ring));
	assert_int_equal(*REQ_EVENT(&f), 2);
	/* Re-armed across the wrap. */
	front_start_at(&f, UINT32_MAX);
	*REQ_EVENT(&f) = 77;
	assert_false(blkif_ring_final_check(&f.ring));
	assert_int_equal(*REQ_EVENT(&f), 0);
	front_free(&f);
}

/*
 * Take the next request: it must fail with `error`; answer it and check the
 * frontend sees the same id and rsp_op (the indirect_op for INDIRECT).
 */
static void expect_refused(struct front *f, enum blkif_req_error error,
			   uint64_t id, uint8_t operation, uint8_t rsp_op)
{
	struct blkif_req req;

	front_push(f);
	assert_int_equal(blkif_ring_get(&f->ring, &req), 1);
	assert_int_equal(req.error, error);
	assert_true(req.id == id);
	assert_int_equal(req.operation, operation);
	assert_non_null(blkif_req_error_text(req.error));
	assert_int_equal(req.op, rsp_op);
	assert_int_equal(blkif_ring_put(&f->ring, req.id, req.op,
					blkif_req_status(&req)), 0);
	blkif_ring_push(&f->ring);
	front_response(f, id, rsp_op, error == BLKIF_REQ_UNKNOWN_OP ?
		       BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR);
}

/* Take the next request: it must be valid. */
static void expect_valid(struct front *f, struct blkif_req *req)
{
	front_push(f);
	assert_int_equal(blkif_ring_get(&f->ring, req), 1);
	assert_int_equal(req->error, BLKIF_REQ_OK);
	assert_int_equal(blkif_req_status(req), BLKIF_RSP_OKAY);
	assert_int_equal(blkif_ring_put(&f->ring, req->id, req->op, 0), 0);
	blkif_ring_push(&f->ring);
	front_response(f, req->id, req->op, BLKIF_RSP_OKAY);
}

static void test_malformed(void **state)
{
	struct blkif_seg segs[12];
	struct blkif_req req;

	(void)state;
	for (unsigned int i = 0; i < 12; i++)
		segs[i] = (struct blkif_seg){ .gref = i, .first_sect = 0,
					      .last_sect = 7 };
	for (size_t a = 0; a < 2; a++) {
		struct front f;
		struct blkif_seg bad[2] = { one_page, one_page };

		front_init_max(&f, 1, abis[a], 64);
		/* Unknown operations: EOPNOTSUPP. */
		front_rw(&f, BLKIF_OP_RESERVED_1, 1, 11, 0, 1, segs);
		expect_refused(&f, BLKIF_REQ_UNKNOWN_OP, 11,
			       BLKIF_OP_RESERVED_1, BLKIF_OP_RESERVED_1);
		front_rw(&f, 200, 1, 12, 0, 1, segs);
		expect_refused(&f, BLKIF_REQ_UNKNOWN_OP, 12,
			       200, 200);
		/* Segment counts. */
		front_rw(&f, BLKIF_OP_READ, 0, 13, 0, 0, segs);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 13,
			       BLKIF_OP_READ, BLKIF_OP_READ);
		front_rw(&f, BLKIF_OP_WRITE, 0, 14, 0, 0, segs);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 14,
			       BLKIF_OP_WRITE, BLKIF_OP_WRITE);
		front_rw(&f, BLKIF_OP_WRITE, 12, 15, 0, 11, segs);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 15,
			       BLKIF_OP_WRITE, BLKIF_OP_WRITE);
		front_rw(&f, BLKIF_OP_FLUSH_DISKCACHE, 12, 16, 0, 11, segs);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 16,
			       BLKIF_OP_FLUSH_DISKCACHE,
			       BLKIF_OP_FLUSH_DISKCACHE);
		front_rw(&f, BLKIF_OP_READ, 255, 17, 0, 11, segs);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 17,
			       BLKIF_OP_READ, BLKIF_OP_READ);
		/* Segments: first > last, last beyond the page, the 2nd bad. */
		bad[0].first_sect = 4;
		bad[0].last_sect = 3;
		front_rw(&f, BLKIF_OP_READ, 1, 18, 0, 1, bad);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT, 18,
			       BLKIF_OP_READ, BLKIF_OP_READ);
		bad[0] = one_page;
		bad[0].last_sect = 8;
		front_rw(&f, BLKIF_OP_WRITE, 1, 19, 0, 1, bad);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT, 19,
			       BLKIF_OP_WRITE, BLKIF_OP_WRITE);
		bad[0] = one_page;
		bad[1].first_sect = 8;
		bad[1].last_sect = 8;
		front_rw(&f, BLKIF_OP_WRITE, 2, 20, 0, 2, bad);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT, 20,
			       BLKIF_OP_WRITE, BLKIF_OP_WRITE);
		/* Ranges beyond 2^63 bytes, and exactly up to it. */
		front_rw(&f, BLKIF_OP_READ, 1, 21, SECTOR_LIMIT - 7, 1, segs);
		expect_refused(&f, BLKIF_REQ_BAD_RANGE, 21,
			       BLKIF_OP_READ, BLKIF_OP_READ);
		front_rw(&f, BLKIF_OP_READ, 1, 22, UINT64_MAX, 1, segs);
		expect_refused(&f, BLKIF_REQ_BAD_RANGE, 22,
			       BLKIF_OP_READ, BLKIF_OP_READ);
		front_discard(&f, 0, 23, UINT64_MAX - 1, 5);
		expect_refused(&f, BLKIF_REQ_BAD_RANGE, 23,
			       BLKIF_OP_DISCARD, BLKIF_OP_DISCARD);
		front_discard(&f, 0, 24, 1, UINT64_MAX);
		expect_refused(&f, BLKIF_REQ_BAD_RANGE, 24,
			       BLKIF_OP_DISCARD, BLKIF_OP_DISCARD);
		front_rw(&f, BLKIF_OP_READ, 1, 25, SECTOR_LIMIT - 8, 1, segs);
		expect_valid(&f, &req);
		assert_true(req.sector_number == SECTOR_LIMIT - 8);
		front_discard(&f, BLKIF_DISCARD_SECURE, 26, SECTOR_LIMIT - 9, 9);
		expect_valid(&f, &req);
		assert_int_equal(req.op, BLKIF_OP_DISCARD);
		assert_int_equal(req.discard_flag, BLKIF_DISCARD_SECURE);
		assert_int_equal(req.nr_sectors, 9);
		assert_int_equal(req.handle, 0x0304);
		/* Indirect: only READ/WRITE, 1..max segments. */
		front_indirect(&f, BLKIF_OP_FLUSH_DISKCACHE, 1, 27, 0);
		expect_refused(&f, BLKIF_REQ_BAD_INDIRECT_OP, 27,
			       BLKIF_OP_INDIRECT, BLKIF_OP_FLUSH_DISKCACHE);
		front_indirect(&f, BLKIF_OP_INDIRECT, 1, 28, 0);
		expect_refused(&f, BLKIF_REQ_BAD_INDIRECT_OP, 28,
			       BLKIF_OP_INDIRECT, BLKIF_OP_INDIRECT);
		front_indirect(&f, BLKIF_OP_READ, 0, 29, 0);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 29,
			       BLKIF_OP_INDIRECT, BLKIF_OP_READ);
		front_indirect(&f, BLKIF_OP_WRITE, 65, 30, 0);
		expect_refused(&f, BLKIF_REQ_BAD_SEGMENT_COUNT, 30,
			       BLKIF_OP_INDIRECT, BLKIF_OP_WRITE);
		front_indirect(&f, BLKIF_OP_WRITE, 64, 31, SECTOR_LIMIT - 511);
		expect_refused(&f, BLKIF_REQ_BAD_RANGE, 31,
			       BLKIF_OP_INDIRECT, BLKIF_OP_WRITE);
		/* Flush and barrier may carry no data, or some. */
		front_rw(&f, BLKIF_OP_FLUSH_DISKCACHE, 0, 32, 0, 0, segs);
		expect_valid(&f, &req);
		assert_int_equal(req.nr_segments, 0);
		assert_int_equal(req.nr_sectors, 0);
		front_rw(&f, BLKIF_OP_WRITE_BARRIER, 0, 33, 0, 0, segs);
		expect_valid(&f, &req);
		/* Linux blkfront's empty flush is at sector (sector_t)-1 */
		front_rw(&f, BLKIF_OP_FLUSH_DISKCACHE, 0, 36, UINT64_MAX, 0, segs);
		expect_valid(&f, &req);
		assert_true(req.sector_number == 0);
		front_rw(&f, BLKIF_OP_WRITE_BARRIER, 0, 37, UINT64_MAX, 0, segs);
		expect_valid(&f, &req);
		front_rw(&f, BLKIF_OP_FLUSH_DISKCACHE, 2, 34, 16, 2, segs);
		expect_valid(&f, &req);
		assert_int_equal(req.op, BLKIF_OP_FLUSH_DISKCACHE);
		assert_int_equal(req.nr_sectors, 16);
		/* The ring goes on: a full-size read. */
		front_rw(&f, BLKIF_OP_READ, 11, 35, 64, 11, segs);
		expect_valid(&f, &req);
		assert_int_equal(req.nr_segments, 11);
		assert_int_equal(req.seg[10].gref, 10);
		assert_int_equal(req.nr_sectors, 88);
		front_free(&f);

		/* INDIRECT when we did not offer it. */
		front_init(&f, 1, abis[a]);
		front_indirect(&f, BLKIF_OP_READ, 1, 36, 0);
		expect_refused(&f, BLKIF_REQ_UNKNOWN_OP, 36,
			       BLKIF_OP_INDIRECT, BLKIF_OP_READ);
		front_free(&f);
	}
}

/* The frontend queues n one-page reads (ids 0..n-1), the backend takes them. */
static void take_reads(struct front *f, unsigned int n)
{
	struct blkif_req req;

	for (unsigned int i = 0; i < n; i++)
		front_rw(f, BLKIF_OP_READ, 1, i, 0, 1, &one_page);
	front_push(f);
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(blkif_ring_get(&f->ring, &req), 1);
		assert_true(req.id == i);
	}
}

static void test_impossible_prod(void **state)
{
	struct front f;
	struct blkif_req req;

	(void)state;
	/* More than the ring holds, on a fresh ring. */
	front_init(&f, 1, BLKIF_ABI_X86_64);
	*REQ_PROD(&f) = 33;
	assert_int_equal(blkif_ring_get(&f.ring, &req), -EIO);
	*REQ_PROD(&f) = 1;	/* too late: the ring stays dead */
	assert_int_equal(blkif_ring_get(&f.ring, &req), -EIO);
	assert_false(blkif_ring_final_check(&f.ring));
	front_free(&f);

	/* One more while every slot holds a request still unanswered. */
	front_init(&f, 1, BLKIF_ABI_X86_64);
	take_reads(&f, 32);
	assert_int_equal(blkif_ring_get(&f.ring, &req), 0);
	assert_int_equal(blkif_ring_put(&f.ring, 0, 0, 0), 0);
	*REQ_PROD(&f) = 34;	/* one slot was freed, not two */
	assert_int_equal(blkif_ring_get(&f.ring, &req), -EIO);
	front_free(&f);

	/* The producer index going back. */
	front_init(&f, 1, BLKIF_ABI_X86_32);
	take_reads(&f, 5);
	*REQ_PROD(&f) = 3;
	assert_int_equal(blkif_ring_get(&f.ring, &req), -EIO);
	front_free(&f);

	/* Too far ahead, across the wrap. */
	front_init(&f, 1, BLKIF_ABI_X86_64);
	front_start_at(&f, UINT32_MAX - 1);
	*REQ_PROD(&f) = UINT32_MAX - 1 + 33;
	assert_int_equal(blkif_ring_get(&f.ring, &req), -EIO);
	front_free(&f);
}

/* An x86_32 ring written with literal offsets. */
static void test_x86_32_layout(void **state)
{
	struct front f;
	struct blkif_req req;
	uint8_t *s0, *s1;

	(void)state;
	front_init(&f, 1, BLKIF_ABI_X86_32);
	s0 = f.mem + 64;
	s1 = f.mem + 64 + 108;
	memset(s0, 0xee, 2 * 108);
	s0[0] = BLKIF_OP_WRITE;
	s0[1] = 2;			/* nr_segments */
	put_le(s0, 2, 0x0203, 2);	/* handle */
	put_le(s0, 4, 0x1122334455667788ULL, 8);	/* id */
	put_le(s0, 12, 0x12345678, 8);	/* sector_number */
	put_le(s0, 20, 0xdeadbeef, 4);	/* seg[0] */
	s0[24] = 1;
	s0[25] = 6;
	put_le(s0, 28, 9, 4);		/* seg[1] */
	s0[32] = 0;
	s0[33] = 7;
	s1[0] = BLKIF_OP_DISCARD;
	s1[1] = 0;
	put_le(s1, 4, 99, 8);
	put_le(s1, 12, 1000, 8);
	put_le(s1, 20, 24, 8);		/* nr_sectors */
	*REQ_PROD(&f) = 2;

	assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
	assert_int_equal(req.error, BLKIF_REQ_OK);
	assert_int_equal(req.operation, BLKIF_OP_WRITE);
	assert_int_equal(req.handle, 0x0203);
	assert_true(req.id == 0x1122334455667788ULL);
	assert_true(req.sector_number == 0x12345678);
	assert_int_equal(req.nr_segments, 2);
	assert_int_equal(req.seg[0].gref, 0xdeadbeef);
	assert_int_equal(req.seg[0].first_sect, 1);
	assert_int_equal(req.seg[0].last_sect, 6);
	assert_int_equal(req.seg[1].gref, 9);
	assert_int_equal(req.nr_sectors, 6 + 8);
	assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
	assert_int_equal(req.op, BLKIF_OP_DISCARD);
	assert_true(req.id == 99);
	assert_true(req.sector_number == 1000);
	assert_true(req.nr_sectors == 24);

	/* 12-byte responses: id @0, operation @8, status @10. */
	assert_int_equal(blkif_ring_put(&f.ring, 0x1122334455667788ULL,
					BLKIF_OP_WRITE, BLKIF_RSP_ERROR), 0);
	assert_true(get_le(s0, 0, 8) == 0x1122334455667788ULL);
	assert_int_equal(s0[8], BLKIF_OP_WRITE);
	assert_int_equal(get_le(s0, 10, 2), 0xffff);
	assert_int_equal(s0[12], 0x78);	/* untouched beyond 12 bytes */
	assert_int_equal(blkif_ring_put(&f.ring, 99, BLKIF_OP_DISCARD, 0), 0);
	assert_true(get_le(s1, 0, 8) == 99);
	assert_int_equal(s1[8], BLKIF_OP_DISCARD);
	assert_int_equal(get_le(s1, 10, 2), 0);
	front_free(&f);
}

/* The same for x86_64, where the response is 16 bytes. */
static void test_x86_64_layout(void **state)
{
	struct front f;
	struct blkif_req req;
	uint8_t *s0;

	(void)state;
	front_init(&f, 1, BLKIF_ABI_X86_64);
	s0 = f.mem + 64 + 112;	/* the second slot */
	memset(f.mem + 64, 0xee, 2 * 112);
	f.mem[64] = BLKIF_OP_FLUSH_DISKCACHE;
	f.mem[65] = 0;
	put_le(f.mem + 64, 8, 5, 8);
	s0[0] = BLKIF_OP_READ;
	s0[1] = 1;
	put_le(s0, 2, 0x0708, 2);
	put_le(s0, 8, 0xa1a2a3a4a5a6a7a8ULL, 8);
	put_le(s0, 16, 0x0102030405ULL, 8);
	put_le(s0, 24, 0x01020304, 4);
	s0[28] = 2;
	s0[29] = 3;
	*REQ_PROD(&f) = 2;

	assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
	assert_int_equal(req.op, BLKIF_OP_FLUSH_DISKCACHE);
	assert_true(req.id == 5);
	assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
	assert_int_equal(req.error, BLKIF_REQ_OK);
	assert_int_equal(req.handle, 0x0708);
	assert_true(req.id == 0xa1a2a3a4a5a6a7a8ULL);
	assert_true(req.sector_number == 0x0102030405ULL);
	assert_int_equal(req.seg[0].gref, 0x01020304);
	assert_int_equal(req.seg[0].first_sect, 2);
	assert_int_equal(req.seg[0].last_sect, 3);
	assert_int_equal(req.nr_sectors, 2);
	assert_int_equal(blkif_ring_put(&f.ring, 5, BLKIF_OP_FLUSH_DISKCACHE,
					BLKIF_RSP_EOPNOTSUPP), 0);
	assert_true(get_le(f.mem + 64, 0, 8) == 5);
	assert_int_equal(f.mem[64 + 8], BLKIF_OP_FLUSH_DISKCACHE);
	assert_int_equal((int16_t)get_le(f.mem + 64, 10, 2), -2);
	front_free(&f);
}

static void test_indirect(void **state)
{
	static const uint16_t counts[] = { 1, 512, 513, 4096 };
	static const uint8_t pages[] = { 1, 1, 2, 8 };
	struct blkif_seg *out = calloc(512, sizeof(*out));
	uint8_t *page = aligned_alloc(4096, 4096);
	struct blkif_req req;

	(void)state;
	assert_non_null(out);
	assert_non_null(page);
	for (size_t a = 0; a < 2; a++) {
		struct front f;

		front_init_max(&f, 1, abis[a], 4096);
		for (size_t i = 0; i < 4; i++) {
			front_indirect(&f, i % 2 ? BLKIF_OP_WRITE : BLKIF_OP_READ,
				       counts[i], 40 + i, 8 * i);
			front_push(&f);
			assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
			assert_int_equal(req.error, BLKIF_REQ_OK);
			assert_true(req.id == 40 + i);
			assert_int_equal(req.operation, BLKIF_OP_INDIRECT);
			assert_int_equal(req.op, i % 2 ? BLKIF_OP_WRITE :
					 BLKIF_OP_READ);
			assert_int_equal(req.nr_segments, counts[i]);
			assert_true(req.sector_number == 8 * i);
			assert_int_equal(req.handle, 0x0506);
			assert_int_equal(req.nr_indirect_pages, pages[i]);
			for (unsigned int p = 0; p < 8; p++)
				assert_int_equal(req.indirect_grefs[p],
						 p < pages[i] ? 100 + p : 0);
			/* The response carries the indirect_op. */
			assert_int_equal(blkif_ring_put(&f.ring, req.id,
							req.op, 0), 0);
			blkif_ring_push(&f.ring);
			front_response(&f, 40 + i, i % 2 ? BLKIF_OP_WRITE :
				       BLKIF_OP_READ, 0);
		}
		front_free(&f);
	}

	/* Segments of an indirect page: 512 of them, 8-byte entries. */
	memset(page, 0xcc, 4096);
	for (unsigned int i = 0; i < 512; i++) {
		put_le(page, 8 * i, 1000 + i, 4);
		page[8 * i + 4] = i % 8;
		page[8 * i + 5] = 7;
	}
	/* sum over i of 8 - i % 8: 64 times 8 + 7 + ... + 1 */
	assert_int_equal(blkif_indirect_segments(page, 512, out), 64 * 36);
	assert_int_equal(out[511].gref, 1511);
	assert_int_equal(out[511].first_sect, 7);
	assert_int_equal(out[511].last_sect, 7);
	assert_int_equal(blkif_indirect_segments(page, 1, out), 8);
	assert_int_equal(blkif_indirect_segments(page, 0, out), -EINVAL);
	assert_int_equal(blkif_indirect_segments(page, 513, out), -EINVAL);
	/* A copy: changing the page afterwards changes nothing we got. */
	assert_int_equal(blkif_indirect_segments(page, 3, out), 8 + 7 + 6);
	memset(page, 0, 8 * 3);
	assert_int_equal(out[2].gref, 1002);
	assert_int_equal(out[2].first_sect, 2);
	/* Bad segments, also the last one. */
	for (unsigned int i = 0; i < 512; i++) {
		put_le(page, 8 * i, 1000 + i, 4);
		page[8 * i + 4] = 0;
		page[8 * i + 5] = 7;
	}
	page[8 * 300 + 4] = 5;
	page[8 * 300 + 5] = 4;
	assert_int_equal(blkif_indirect_segments(page, 300, out), 300 * 8);
	assert_int_equal(blkif_indirect_segments(page, 301, out), -EINVAL);
	page[8 * 300 + 4] = 0;
	page[8 * 300 + 5] = 7;
	page[8 * 511 + 5] = 8;
	assert_int_equal(blkif_indirect_segments(page, 511, out), 511 * 8);
	assert_int_equal(blkif_indirect_segments(page, 512, out), -EINVAL);
	free(page);
	free(out);
}

/* What get returned does not change when the guest rewrites the slot. */
static void test_copy_once(void **state)
{
	struct blkif_seg segs[3] = { one_page, one_page, one_page };
	struct blkif_req req, before;

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		struct front f;

		front_init(&f, 1, abis[a]);
		segs[1].gref = 55;
		front_rw(&f, BLKIF_OP_WRITE, 3, 1234, 4096, 3, segs);
		front_push(&f);
		assert_int_equal(blkif_ring_get(&f.ring, &req), 1);
		before = req;
		memset(f.mem + 64, 0xff, 4096 - 64);
		assert_memory_equal(&req, &before, sizeof(req));
		assert_true(req.id == 1234);
		assert_int_equal(req.seg[1].gref, 55);
		assert_int_equal(req.nr_sectors, 24);
		front_free(&f);
	}
}

static void test_put_needs_request(void **state)
{
	struct front f;

	(void)state;
	front_init(&f, 1, BLKIF_ABI_X86_64);
	assert_int_equal(blkif_ring_put(&f.ring, 1, 0, 0), -ENOSPC);
	take_reads(&f, 1);
	assert_int_equal(blkif_ring_put(&f.ring, 0, 0, 0), 0);
	assert_int_equal(blkif_ring_put(&f.ring, 0, 0, 0), -ENOSPC);
	front_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_names),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_fill_drain),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_final_check),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_impossible_prod),
		cmocka_unit_test(test_x86_32_layout),
		cmocka_unit_test(test_x86_64_layout),
		cmocka_unit_test(test_indirect),
		cmocka_unit_test(test_copy_once),
		cmocka_unit_test(test_put_needs_request),
	};

	return cmocka_run_group_tests_name("blkif-ring", tests, NULL, NULL) ? 1 : 0;
}
