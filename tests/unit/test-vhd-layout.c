/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests of the VHD layout code: checksums, headers, locators, bitmaps. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/vhd.h"

static void sample_footer(struct vhd_footer *f)
{
	memset(f, 0, sizeof(*f));
	f->features = 2;
	f->version = 0x00010000;
	f->data_offset = 512;
	f->timestamp = 12345;
	memcpy(f->creator_app, "tap", 4);
	f->current_size = f->original_size = 64 << 20;
	f->geometry = vhd_geometry(64 << 20);
	f->type = VHD_TYPE_DYNAMIC;
	for (int i = 0; i < 16; i++)
		f->uuid[i] = (uint8_t)i;
}

static void test_checksum(void **state)
{
	uint8_t buf[16] = { 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 5 };

	(void)state;
	/* Bytes 4..7 are skipped: sum = 15, complement. */
	assert_int_equal(vhd_checksum(buf, 9, 4), ~15u);
	assert_int_equal(vhd_checksum(buf, 0, 0), ~0u);
}

static void test_footer_roundtrip(void **state)
{
	struct vhd_footer f, g;
	uint8_t buf[512];

	(void)state;
	sample_footer(&f);
	vhd_footer_build(&f, buf);
	assert_memory_equal(buf, "conectix", 8);
	assert_int_equal(vhd_footer_parse(buf, &g), 0);
	assert_int_equal(g.current_size, f.current_size);
	assert_int_equal(g.type, VHD_TYPE_DYNAMIC);
	assert_memory_equal(g.uuid, f.uuid, 16);
	assert_int_equal(g.geometry, f.geometry);
}

static void test_footer_rejects(void **state)
{
	struct vhd_footer f, g;
	uint8_t buf[512];

	(void)state;
	sample_footer(&f);
	vhd_footer_build(&f, buf);
	buf[100] ^= 1;		/* reserved byte: checksum now wrong */
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);

	vhd_footer_build(&f, buf);
	buf[0] = 'C';
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);

	f.type = 5;
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -ENOTSUP);

	sample_footer(&f);
	f.version = 0x00020000;
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -ENOTSUP);

	sample_footer(&f);
	f.current_size = VHD_MAX_SIZE + 512;
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);

	sample_footer(&f);
	f.current_size = 1000;
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);

	sample_footer(&f);
	f.data_offset = 100;
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);

	sample_footer(&f);
	f.type = VHD_TYPE_FIXED;	/* fixed needs data_offset = ~0 */
	vhd_footer_build(&f, buf);
	assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);
}

static void test_header_block_sizes(void **state)
{
	static const uint32_t bad[] = { 0, 256, 3u << 20, 512u << 20, 1000 };
	static const uint32_t good[] = { 512, 4096, 2u << 20, 256u << 20 };
	struct vhd_dyn_header h, g;
	uint8_t buf[1024];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.table_offset = 1536;
	h.max_table_entries = 32;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.block_size = bad[i];
		vhd_dyn_header_build(&h, buf);
		assert_int_equal(vhd_dyn_header_parse(buf, &g), -EINVAL);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		h.block_size = good[i];
		vhd_dyn_header_build(&h, buf);
		assert_int_equal(vhd_dyn_header_parse(buf, &g), 0);
		assert_int_equal(g.block_size, good[i]);
	}
	h.block_size = 2u << 20;
	h.max_table_entries = 0;
	vhd_dyn_header_build(&h, buf);
	assert_int_equal(vhd_dyn_header_parse(buf, &g), -EINVAL);
	h.max_table_entries = 32;
	h.table_offset = 1537;
	vhd_dyn_header_build(&h, buf);
	assert_int_equal(vhd_dyn_header_parse(buf, &g), -EINVAL);
	h.table_offset = 1536;
	vhd_dyn_header_build(&h, buf);
	buf[36] ^= 0xff;
	assert_int_equal(vhd_dyn_header_parse(buf, &g), -EINVAL);
}

static void test_geometry(void **state)
{
	(void)state;
	/* 64 MiB: 131072 sectors -> 17 spt, 8 heads, 963 cylinders. */
	assert_int_equal(vhd_geometry(64 << 20), (963u << 16) | (8u << 8) | 17u);
	/* Beyond the CHS limit: 65535/16/255. */
	assert_int_equal(vhd_geometry(VHD_MAX_SIZE),
			 (65535u << 16) | (16u << 8) | 255u);
}

static void test_utf16(void **state)
{
	uint8_t buf[64];
	char *s;
	int n;

	(void)state;
	n = vhd_utf8_to_utf16("a\xc3\xa9\xf0\x9f\x98\x80", buf, sizeof(buf), true);
	assert_int_equal(n, 8);	/* 'a', U+00E9, surrogate pair */
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[1], 'a');
	s = vhd_utf16_to_utf8(buf, (size_t)n, true);
	assert_string_equal(s, "a\xc3\xa9\xf0\x9f\x98\x80");
	free(s);
	n = vhd_utf8_to_utf16("ab", buf, sizeof(buf), false);
	assert_int_equal(n, 4);
	assert_int_equal(buf[0], 'a');
	assert_int_equal(buf[1], 0);
	assert_int_equal(vhd_utf8_to_utf16("abc", buf, 4, false), -ENAMETOOLONG);
	assert_int_equal(vhd_utf8_to_utf16("\xff", buf, 4, false), -EILSEQ);
	/* A lone low surrogate is refused. */
	buf[0] = 0x00;
	buf[1] = 0xdc;
	assert_null(vhd_utf16_to_utf8(buf, 2, false));
}

static void test_locator_decode(void **state)
{
	uint8_t buf[128];
	char *s;
	int n;

	(void)state;
	n = vhd_utf8_to_utf16(".\\base.vhd", buf, sizeof(buf), false);
	s = vhd_locator_decode(VHD_LOC_W2RU, buf, (size_t)n);
	assert_string_equal(s, "base.vhd");
	free(s);
	n = vhd_utf8_to_utf16("..\\a\\b.vhd", buf, sizeof(buf), false);
	s = vhd_locator_decode(VHD_LOC_W2RU, buf, (size_t)n);
	assert_string_equal(s, "../a/b.vhd");
	free(s);
	s = vhd_locator_decode(VHD_LOC_MACX, (const uint8_t *)"file://./p.vhd", 14);
	assert_string_equal(s, "p.vhd");
	free(s);
	s = vhd_locator_decode(VHD_LOC_MACX, (const uint8_t *)"file:///sr/p.vhd", 16);
	assert_string_equal(s, "/sr/p.vhd");
	free(s);
	assert_null(vhd_locator_decode(VHD_LOC_MACX, (const uint8_t *)"file://a%20b", 12));
	assert_null(vhd_locator_decode(VHD_LOC_MACX, (const uint8_t *)"file://./", 9));
	assert_null(vhd_locator_decode(0x12345678, buf, 4));
}

static void test_relative_path(void **state)
{
	char *s;

	(void)state;
	s = vhd_relative_path("/sr", "/sr/base.vhd");
	assert_string_equal(s, "./base.vhd");
	free(s);
	s = vhd_relative_path("/sr/a", "/sr/b/base.vhd");
	assert_string_equal(s, "../b/base.vhd");
	free(s);
	s = vhd_relative_path("/srx", "/sr/base.vhd");
	assert_string_equal(s, "../sr/base.vhd");
	free(s);
	s = vhd_relative_path("/", "/base.vhd");
	assert_string_equal(s, "./base.vhd");
	free(s);
	s = vhd_relative_path("/a/b/c", "/x.vhd");
	assert_string_equal(s, "../../../x.vhd");
	free(s);
	assert_null(vhd_relative_path("sr", "/sr/x"));
}

static void test_bitmap(void **state)
{
	uint8_t bm[8] = { 0 };

	(void)state;
	vhd_bit_set(bm, 0);
	assert_int_equal(bm[0], 0x80);	/* MSB first */
	vhd_bit_set(bm, 9);
	assert_int_equal(bm[1], 0x40);
	assert_true(vhd_bit_test(bm, 9));
	vhd_bit_clear(bm, 9);
	assert_false(vhd_bit_test(bm, 9));
	assert_int_equal(vhd_bit_run(bm, 0, 64), 1);
	assert_int_equal(vhd_bit_run(bm, 1, 63), 63);
	memset(bm, 0xff, sizeof(bm));
	vhd_bit_clear(bm, 40);
	assert_int_equal(vhd_bit_run(bm, 3, 61), 37);
	assert_int_equal(vhd_bit_run(bm, 40, 24), 1);
	assert_int_equal(vhd_bit_run(bm, 41, 10), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_footer_roundtrip),
		cmocka_unit_test(test_footer_rejects),
		cmocka_unit_test(test_header_block_sizes),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_utf16),
		cmocka_unit_test(test_locator_decode),
		cmocka_unit_test(test_relative_path),
		cmocka_unit_test(test_bitmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
