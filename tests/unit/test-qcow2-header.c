/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: qcow2 header parsing/validation and L2 entry decoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/formats/qcow2.h"

#define CS 65536u
#define FILE_SIZE (16u * CS)

static uint8_t hdr[CS];

static void put32(size_t off, uint32_t v)
{
	v = htobe32(v);
	memcpy(hdr + off, &v, 4);
}

static void put64(size_t off, uint64_t v)
{
	v = htobe64(v);
	memcpy(hdr + off, &v, 8);
}

/* A valid v3 header: 1 GiB, 64 KiB clusters, L1 at 3*CS, rt at CS. */
static void make_v3(void)
{
	memset(hdr, 0, sizeof(hdr));
	put32(0, QCOW2_MAGIC);
	put32(4, 3);
	put32(20, 16);
	put64(24, 1ull << 30);
	put32(36, 2);
	put64(40, 3 * CS);
	put64(48, CS);
	put32(56, 1);
	put32(96, 4);
	put32(100, 112);
}

static int parse(bool ro, struct qcow2_header *h)
{
	return qcow2_header_parse(hdr, sizeof(hdr), FILE_SIZE, ro, h);
}

static void test_valid_v3(void **state)
{
	struct qcow2_header h;

	(void)state;
	make_v3();
	assert_int_equal(parse(false, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.cluster_bits, 16);
	assert_int_equal(h.l1_size, 2);
	assert_int_equal(h.refcount_order, 4);
}

static void test_valid_v2(void **state)
{
	struct qcow2_header h;

	(void)state;
	make_v3();
	put32(4, 2);
	memset(hdr + 72, 0, 40);
	assert_int_equal(parse(false, &h), 0);
	assert_int_equal(h.header_length, 72);
	assert_int_equal(h.refcount_order, 4);
}

static void test_bad_values(void **state)
{
	struct qcow2_header h;

	(void)state;
	make_v3();
	put32(0, 0x12345678);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(4, 4);
	assert_int_equal(parse(true, &h), -ENOTSUP);
	make_v3();
	put32(20, 8);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(20, 22);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(40, 100ull * CS);		/* L1 beyond the file */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(40, 3 * CS + 512);	/* misaligned L1 */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(40, 0);			/* L1 over the header */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(36, 1);			/* L1 too small for 1 GiB */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(36, 0x7fffffff);		/* absurd L1 */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(24, 1ull << 62);		/* absurd size */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(96, 7);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(100, 50);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put32(56, 0);
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(48, 200ull * CS);
	assert_int_equal(parse(true, &h), -EINVAL);
}

static void test_features(void **state)
{
	struct qcow2_header h;

	(void)state;
	make_v3();
	put64(72, 1ull << 7);
	assert_int_equal(parse(true, &h), -ENOTSUP);
	make_v3();
	put32(32, 1);
	assert_int_equal(parse(true, &h), -ENOTSUP);
	make_v3();
	put64(72, QCOW2_INCOMPAT_DATA_FILE);
	assert_int_equal(parse(true, &h), -ENOTSUP);
	make_v3();
	put64(72, QCOW2_INCOMPAT_DIRTY);
	assert_int_equal(parse(true, &h), 0);
	assert_int_equal(parse(false, &h), -EUCLEAN);
	make_v3();
	put64(72, QCOW2_INCOMPAT_CORRUPT);
	assert_int_equal(parse(true, &h), -EUCLEAN);
	make_v3();
	put64(72, QCOW2_INCOMPAT_COMPRESSION);
	hdr[104] = 1;			/* zstd */
	assert_int_equal(parse(true, &h), -ENOTSUP);
	make_v3();
	hdr[104] = 1;			/* type without the bit */
	assert_int_equal(parse(true, &h), -EINVAL);
	make_v3();
	put64(72, QCOW2_INCOMPAT_EXTL2);
	/* 128-bit entries: L2 covers half as much, 2 L1 entries are short */
	assert_int_equal(parse(true, &h), -EINVAL);
	put32(36, 4);
	assert_int_equal(parse(true, &h), 0);
}

static void test_backing(void **state)
{
	struct qcow2_header h;
	char *name;

	(void)state;
	make_v3();
	put64(8, 200);
	put32(16, 8);
	memcpy(hdr + 200, "base.img", 8);
	/* backing format extension */
	put32(112, QCOW2_EXT_BACKING_FMT);
	put32(116, 5);
	memcpy(hdr + 120, "qcow2", 5);
	assert_int_equal(parse(true, &h), 0);
	assert_string_equal(h.backing_format, "qcow2");
	assert_int_equal(qcow2_header_backing(hdr, sizeof(hdr), &h, &name), 0);
	assert_string_equal(name, "base.img");
	free(name);
	put32(16, 2000);		/* name too long */
	assert_int_equal(parse(true, &h), -EINVAL);
	put32(16, 8);
	put32(116, 5000);		/* extension overruns */
	assert_int_equal(parse(true, &h), -EINVAL);
	put32(116, 5);
	hdr[203] = 0;			/* NUL inside the name */
	assert_int_equal(parse(true, &h), 0);
	assert_int_equal(qcow2_header_backing(hdr, sizeof(hdr), &h, &name),
			 -EINVAL);
}

static void test_entries(void **state)
{
	struct qcow2_geom g = { .cluster_bits = 16, .version = 3 };
	struct qcow2_entry e;
	uint64_t c;

	(void)state;
	assert_int_equal(qcow2_entry_decode(&g, 0, 0, &e), 0);
	assert_int_equal(e.type, QCOW2_UNALLOCATED);
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_COPIED | 0x50000, 0, &e), 0);
	assert_int_equal(e.type, QCOW2_NORMAL);
	assert_true(e.copied);
	assert_int_equal(e.host, 0x50000);
	assert_int_equal(qcow2_entry_decode(&g, 0x50200, 0, &e), -EINVAL);
	assert_int_equal(qcow2_entry_decode(&g, 1ull << 58 | 0x50000, 0, &e), -EINVAL);
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_ZERO, 0, &e), 0);
	assert_int_equal(e.type, QCOW2_ZERO_PLAIN);
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_ZERO | 0x50000, 0, &e), 0);
	assert_int_equal(e.type, QCOW2_ZERO_ALLOC);
	g.version = 2;
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_ZERO, 0, &e), -EINVAL);
	g.version = 3;
	/* compressed, 64 KiB clusters: offset in bits 0..53, sectors 54..61 */
	c = QCOW2_OFLAG_COMPRESSED | (3ull << 54) | 0x12345;
	assert_int_equal(qcow2_entry_decode(&g, c, 0, &e), 0);
	assert_int_equal(e.type, QCOW2_COMPRESSED);
	assert_int_equal(e.host, 0x12345);
	assert_int_equal(e.csize, 4 * 512 - 0x145);
	assert_int_equal(e.cfree_off, 0x12200);
	assert_int_equal(e.cfree_len, 4 * 512);
	assert_int_equal(qcow2_entry_decode(&g, c | QCOW2_OFLAG_COPIED, 0, &e), -EINVAL);
	/* extended L2 */
	g.extended_l2 = true;
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_COPIED | 0x50000, 0x0000000300000001ull, &e), -EINVAL);
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_COPIED | 0x50000, 0x0000000600000001ull, &e), 0);
	assert_int_equal(qcow2_subcluster_type(&e, 0), QCOW2_NORMAL);
	assert_int_equal(qcow2_subcluster_type(&e, 1), QCOW2_ZERO_PLAIN);
	assert_int_equal(qcow2_subcluster_type(&e, 3), QCOW2_UNALLOCATED);
	assert_int_equal(qcow2_entry_decode(&g, 0, 1, &e), -EINVAL);
	assert_int_equal(qcow2_entry_decode(&g, 0, 0xffffffff00000000ull, &e), 0);
	assert_int_equal(qcow2_subcluster_type(&e, 31), QCOW2_ZERO_PLAIN);
	assert_int_equal(qcow2_entry_decode(&g, c, 1, &e), -EINVAL);
	assert_int_equal(qcow2_entry_decode(&g, QCOW2_OFLAG_ZERO | 0x50000, 0, &e), -EINVAL);
}

/* Metadata sizes are bounded by what the disk and the file can need. */
static void test_size_bounds(void **state)
{
	struct qcow2_header h;
	uint64_t big_file = 1100ull << 20;

	(void)state;
	make_v3();
	put64(24, 64ull << 20);
	put32(36, 1);
	/* 1 GiB refcount table for a 64 MiB disk in a 1.1 GiB (sparse) file */
	put32(56, (1u << 30) / CS);
	assert_int_equal(qcow2_header_parse(hdr, sizeof(hdr), big_file, false,
					    &h), -EINVAL);
	/* one cluster is always allowed, and what the file needs */
	put32(56, 1);
	assert_int_equal(qcow2_header_parse(hdr, sizeof(hdr), big_file, false,
					    &h), 0);
	assert_true(qcow2_rt_limit(&h, big_file) >= 2);
	assert_true(qcow2_rt_limit(&h, big_file) <= 4);
	/* qemu's snapshot count limit */
	put32(60, QCOW2_MAX_SNAPSHOTS + 1);
	put64(64, 4 * CS);
	assert_int_equal(qcow2_header_parse(hdr, sizeof(hdr), big_file, false,
					    &h), -EINVAL);
	put32(60, QCOW2_MAX_SNAPSHOTS);
	assert_int_equal(qcow2_header_parse(hdr, sizeof(hdr), big_file, false,
					    &h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_v3),
		cmocka_unit_test(test_valid_v2),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_backing),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_size_bounds),
	};

	return cmocka_run_group_tests_name("qcow2-header", tests, NULL, NULL) ? 1 : 0;
}
