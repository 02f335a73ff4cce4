/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Unit tests of the format layer's dispatch (src/formats/format.c): ranges
 * beyond the virtual size and changes to read-only images are refused
 * before a format sees them.  Raw and VHD images in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "formats/format.h"
#include "formats/vhd.h"

#define SIZE (4ull << 20)

struct fixture {
	char dir[64];
	char path[96];
	const char *format;
};

static int make_dir(struct fixture *f, const char *format, const char *name)
{
	strcpy(f->dir, "/tmp/xsng-dispatch.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
	f->format = format;
	return 0;
}

static int setup_raw(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	if (!f || make_dir(f, "raw", "disk.raw"))
		return -1;
	fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)SIZE) < 0)
		return -1;
	close(fd);
	*state = f;
	return 0;
}

static int setup_vhd(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || make_dir(f, "vpc", "disk.vhd"))
		return -1;
	if (vhd_create_dynamic(f->path, SIZE, 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct image *open_image(const struct fixture *f, bool readonly)
{
	struct image_open_options opt = {
		.format = f->format,
		.readonly = readonly,
		.no_direct = true,
	};
	struct image *img = NULL;

	assert_int_equal(image_open(f->path, &opt, &img), 0);
	assert_true(img->virtual_size == SIZE);
	return img;
}

/* Ranges that end beyond the virtual size, some by overflowing 64 bits. */
static const struct {
	uint64_t off, len;
} bad[] = {
	{ SIZE, 1 },
	{ SIZE - 512, 1024 },
	{ SIZE + 512, 512 },
	{ 0, SIZE + 1 },
	{ 512, UINT64_MAX },
	{ UINT64_MAX - 511, 1024 },	/* off + len wraps to 512 */
	{ UINT64_MAX, 0 },
};
#define N_BAD (sizeof(bad) / sizeof(bad[0]))

static void test_read_range(void **state)
{
	const struct fixture *f = *state;
	struct image *img = open_image(f, true);
	struct extent_list l = { 0 };

	assert_int_equal(image_map_read(img, 0, SIZE, NULL, &l), 0);
	extent_list_clear(&l);
	assert_int_equal(image_map_read(img, SIZE - 512, 512, NULL, &l), 0);
	extent_list_clear(&l);
	assert_int_equal(image_map_read(img, SIZE, 0, NULL, &l), 0);
	extent_list_clear(&l);
	assert_int_equal(image_block_status(img, 0, SIZE, &l), 0);
	extent_list_clear(&l);
	for (size_t i = 0; i < N_BAD; i++) {
		assert_int_equal(image_map_read(img, bad[i].off, bad[i].len,
						NULL, &l), -EINVAL);
		assert_int_equal(image_block_status(img, bad[i].off,
						    bad[i].len, &l), -EINVAL);
		assert_int_equal(l.n, 0);
	}
	extent_list_release(&l);
	image_close(img);
}

static void test_write_range(void **state)
{
	const struct fixture *f = *state;
	struct image *img = open_image(f, false);
	struct extent_list l = { 0 };
	int r;

	assert_int_equal(image_map_write(img, SIZE - 512, 512, &l), 0);
	assert_true(l.n >= 1);
	extent_list_clear(&l);
	r = image_zero(img, SIZE - 4096, 4096, true);
	assert_true(r == 0 || r == -ENOTSUP);
	r = image_discard(img, 0, 4096);
	assert_true(r == 0 || r == -ENOTSUP);
	for (size_t i = 0; i < N_BAD; i++) {
		assert_int_equal(image_map_write(img, bad[i].off, bad[i].len,
						 &l), -EINVAL);
		assert_int_equal(l.n, 0);
		assert_int_equal(image_zero(img, bad[i].off, bad[i].len,
					    true), -EINVAL);
		assert_int_equal(image_zero(img, bad[i].off, bad[i].len,
					    false), -EINVAL);
		assert_int_equal(image_discard(img, bad[i].off, bad[i].len),
				 -EINVAL);
	}
	assert_int_equal(image_flush(img), 0);
	extent_list_release(&l);
	image_close(img);
}

static void test_readonly(void **state)
{
	const struct fixture *f = *state;
	struct image *img = open_image(f, true);
	struct extent_list l = { 0 };

	assert_int_equal(image_map_write(img, 0, 512, &l), -EROFS);
	assert_int_equal(image_zero(img, 0, 4096, true), -EROFS);
	assert_int_equal(image_zero(img, 0, 4096, false), -EROFS);
	assert_int_equal(image_discard(img, 0, 4096), -EROFS);
	/* read-only is checked before the range */
	assert_int_equal(image_map_write(img, SIZE, 512, &l), -EROFS);
	assert_int_equal(image_zero(img, SIZE, 512, true), -EROFS);
	assert_int_equal(image_discard(img, SIZE, 512), -EROFS);
	assert_int_equal(l.n, 0);
	assert_int_equal(image_flush(img), 0);
	extent_list_release(&l);
	image_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_range, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_write_range, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_read_range, setup_vhd, teardown),
		cmocka_unit_test_setup_teardown(test_write_range, setup_vhd, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup_vhd, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
