/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: in-memory dirty bitmaps (src/formats/bitmap.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "formats/bitmap.h"

#define K 1024ull

static void test_init_geometry(void **state)
{
	struct dirty_bitmap bm;

	(void)state;
	assert_int_equal(dirty_bitmap_init(&bm, 64 * K, 1000 * K), 0);
	assert_int_equal(bm.nbits, 16);		/* 1000/64 = 15.6 */
	assert_int_equal(dirty_bitmap_bytes(&bm), 2);
	assert_int_equal(dirty_bitmap_count(&bm), 0);
	dirty_bitmap_free(&bm);
	assert_int_equal(dirty_bitmap_init(&bm, 64 * K, 0), 0);
	assert_int_equal(bm.nbits, 0);
	assert_int_equal(dirty_bitmap_set_range(&bm, 0, 0), 0);
	dirty_bitmap_free(&bm);
	assert_int_equal(dirty_bitmap_init(&bm, 256, 1 * K), -EINVAL);
	assert_int_equal(dirty_bitmap_init(&bm, 3 * K, 1 * K), -EINVAL);
	assert_int_equal(dirty_bitmap_init(&bm, 512, 1ull << 61), -EFBIG);
}

static void test_set_range(void **state)
{
	struct dirty_bitmap bm;
	uint64_t i;

	(void)state;
	assert_int_equal(dirty_bitmap_init(&bm, 64 * K, 10 * 1024 * K), 0);
	assert_int_equal(bm.nbits, 160);
	/* one byte in block 3, a range straddling blocks 62..65 */
	assert_int_equal(dirty_bitmap_set_range(&bm, 3 * 64 * K + 5, 1), 0);
	assert_int_equal(dirty_bitmap_set_range(&bm, 62 * 64 * K + 1,
						3 * 64 * K), 0);
	for (i = 0; i < bm.nbits; i++)
		assert_int_equal(dirty_bitmap_test(&bm, i),
				 i == 3 || (i >= 62 && i <= 65));
	assert_int_equal(dirty_bitmap_count(&bm), 5);
	/* the whole disk, and out of range */
	assert_int_equal(dirty_bitmap_set_range(&bm, 0, 10 * 1024 * K), 0);
	assert_int_equal(dirty_bitmap_count(&bm), 160);
	assert_int_equal(dirty_bitmap_set_range(&bm, 10 * 1024 * K, 1),
			 -EINVAL);
	assert_int_equal(dirty_bitmap_set_range(&bm, 1, UINT64_MAX), -EINVAL);
	assert_false(dirty_bitmap_test(&bm, 160));
	dirty_bitmap_clear_all(&bm);
	assert_int_equal(dirty_bitmap_count(&bm), 0);
	dirty_bitmap_free(&bm);
}

static void test_union_resize(void **state)
{
	struct dirty_bitmap a, b, c;

	(void)state;
	assert_int_equal(dirty_bitmap_init(&a, 64 * K, 100 * 64 * K), 0);
	assert_int_equal(dirty_bitmap_init(&b, 64 * K, 100 * 64 * K), 0);
	assert_int_equal(dirty_bitmap_init(&c, 64 * K, 101 * 64 * K), 0);
	assert_int_equal(dirty_bitmap_set_range(&a, 0, 1), 0);
	assert_int_equal(dirty_bitmap_set_range(&b, 99 * 64 * K, 64 * K), 0);
	assert_int_equal(dirty_bitmap_union(&a, &b), 0);
	assert_true(dirty_bitmap_test(&a, 0));
	assert_true(dirty_bitmap_test(&a, 99));
	assert_int_equal(dirty_bitmap_count(&a), 2);
	assert_int_equal(dirty_bitmap_union(&a, &c), -EINVAL);
	/* grow: bits kept, new ones clear */
	assert_int_equal(dirty_bitmap_resize(&a, 300 * 64 * K + 1), 0);
	assert_int_equal(a.nbits, 301);
	assert_int_equal(dirty_bitmap_count(&a), 2);
	assert_true(dirty_bitmap_test(&a, 99));
	assert_int_equal(dirty_bitmap_set_range(&a, 300 * 64 * K, 1), 0);
	assert_true(dirty_bitmap_test(&a, 300));
	/* shrink drops the bits past the end; growing again keeps them 0 */
	assert_int_equal(dirty_bitmap_resize(&a, 50 * 64 * K), 0);
	assert_int_equal(dirty_bitmap_count(&a), 1);
	assert_int_equal(dirty_bitmap_resize(&a, 400 * 64 * K), 0);
	assert_int_equal(dirty_bitmap_count(&a), 1);
	assert_false(dirty_bitmap_test(&a, 99));
	dirty_bitmap_free(&a);
	dirty_bitmap_free(&b);
	dirty_bitmap_free(&c);
}

static void test_export(void **state)
{
	struct dirty_bitmap bm, back;
	uint8_t msb[3], lsb[4];

	(void)state;
	/* 20 blocks: blocks 0, 9 and 19 set */
	assert_int_equal(dirty_bitmap_init(&bm, 512, 20 * 512), 0);
	assert_int_equal(dirty_bitmap_set_range(&bm, 0, 1), 0);
	assert_int_equal(dirty_bitmap_set_range(&bm, 9 * 512, 512), 0);
	assert_int_equal(dirty_bitmap_set_range(&bm, 19 * 512, 1), 0);
	assert_int_equal(dirty_bitmap_bytes(&bm), 3);
	dirty_bitmap_export_msb(&bm, msb);
	assert_int_equal(msb[0], 0x80);	/* block 0: MSB of byte 0 */
	assert_int_equal(msb[1], 0x40);	/* block 9 */
	assert_int_equal(msb[2], 0x10);	/* block 19: bit 3 from the top */
	dirty_bitmap_export_lsb(&bm, lsb, 0, 4);
	assert_int_equal(lsb[0], 0x01);
	assert_int_equal(lsb[1], 0x02);
	assert_int_equal(lsb[2], 0x08);
	assert_int_equal(lsb[3], 0x00);	/* past the end: zeros */
	/* round trip, and hostile input */
	assert_int_equal(dirty_bitmap_init(&back, 512, 20 * 512), 0);
	assert_int_equal(dirty_bitmap_import_lsb(&back, lsb, 0, 4), 0);
	assert_memory_equal(back.words, bm.words, 8);
	lsb[2] = 0x18;	/* block 20 does not exist */
	assert_int_equal(dirty_bitmap_import_lsb(&back, lsb, 0, 3), -EINVAL);
	lsb[2] = 0x08;
	lsb[3] = 0x01;
	assert_int_equal(dirty_bitmap_import_lsb(&back, lsb, 0, 4), -EINVAL);
	dirty_bitmap_free(&back);
	dirty_bitmap_free(&bm);
}

static void test_names(void **state)
{
	char longname[1100];

	(void)state;
	assert_true(bitmap_name_ok(CBT_BITMAP_NAME));
	assert_false(bitmap_name_ok(""));
	assert_false(bitmap_name_ok(NULL));
	assert_false(bitmap_name_ok("a\nb"));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(bitmap_name_ok(longname));
	longname[1023] = '\0';
	assert_true(bitmap_name_ok(longname));

	assert_true(cbt_bitmap_name_ok("xsng-cbt-0123456789abcdef"));
	assert_false(cbt_bitmap_name_ok(NULL));
	assert_false(cbt_bitmap_name_ok(CBT_BITMAP_NAME));
	assert_false(cbt_bitmap_name_ok("xsng-cbt-0123456789ABCDEF"));
	assert_false(cbt_bitmap_name_ok("xsng-cbt-0123456789abcde"));
	assert_false(cbt_bitmap_name_ok("xsng-cbt-0123456789abcdef0"));
	assert_false(cbt_bitmap_name_ok("xsng-cbt-0123456789abcdeg"));
	assert_false(cbt_bitmap_name_ok("xsng-cbu-0123456789abcdef"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_geometry),
		cmocka_unit_test(test_set_range),
		cmocka_unit_test(test_union_resize),
		cmocka_unit_test(test_export),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
