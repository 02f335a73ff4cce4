/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: image_open + map_read (+ a write and flush) on qcow2. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-qcow2.XXXXXX";
static char path[64];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

static int write_input(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = write(fd, data, size);
	close(fd);
	return r == (ssize_t)size ? 0 : -1;
}

static void exercise_reads(struct image *img, uint8_t *buf, size_t len)
{
	struct extent_list l = { 0 };
	uint64_t vs = img->virtual_size, offs[4] = { 0, vs / 2, vs - 1, 12345 };
	size_t i;

	for (i = 0; i < 4; i++) {
		uint64_t n = len;

		if (offs[i] >= vs)
			continue;
		if (n > vs - offs[i])
			n = vs - offs[i];
		extent_list_clear(&l);
		(void)image_map_read(img, offs[i], n, buf, &l);
		extent_list_clear(&l);
		(void)image_block_status(img, offs[i], n, &l);
		(void)image_read(img, offs[i], n, buf);
	}
	extent_list_release(&l);
}

static void exercise_writes(struct image *img)
{
	struct extent_list l = { 0 };
	uint64_t vs = img->virtual_size;

	if (vs >= 8192) {
		(void)image_map_write(img, 4095, 4098, &l);
		if (img->fmt->zero)
			(void)img->fmt->zero(img, vs / 2 & ~4095ull, 4096 * 3,
					     false);
		if (img->fmt->discard)
			(void)img->fmt->discard(img, 0, vs / 4);
		(void)image_flush(img);
	}
	extent_list_release(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct image_open_options opt = {
		.readonly = true, .no_direct = true, .confine_dir = dir,
		.max_depth = 4, .probe_top = true,
	};
	struct image *img;

	if (!path[0]) {
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof(path), "%s/img", dir);
		atexit(remove_dir);
		buf = malloc(1 << 17);
	}
	if (write_input(data, size) < 0)
		return 0;
	if (image_open(path, &opt, &img) == 0) {
		exercise_reads(img, buf, 1 << 17);
		image_close(img);
	}
	opt.readonly = false;
	opt.probe_top = false;
	opt.format = "qcow2";
	if (image_open(path, &opt, &img) == 0) {
		exercise_writes(img);
		exercise_reads(img, buf, 1 << 16);
		image_close(img);
	}
	return 0;
}
