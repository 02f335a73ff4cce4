/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: open a VHD (and its parent) from fuzz input, map, write. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/format.h"
#include "formats/vhd.h"
#include "log.h"

static char dir[64];

/* The parent every seed names: 64 KiB, 512-byte blocks, uuid 0x11 x 16. */
static void make_base(const char *base)
{
	uint8_t foot[512];
	struct vhd_footer f;
	int fd;
	off_t end;

	if (vhd_create_dynamic(base, 64 << 10, 512) < 0)
		abort();
	fd = open(base, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, foot, 512, 0) != 512 ||
	    vhd_footer_parse(foot, &f) < 0)
		abort();
	memset(f.uuid, 0x11, 16);
	vhd_footer_build(&f, foot);
	end = lseek(fd, 0, SEEK_END);
	if (pwrite(fd, foot, 512, 0) != 512 ||
	    pwrite(fd, foot, 512, end - 512) != 512)
		abort();
	close(fd);
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < len) {
		ssize_t r = write(fd, data + done, len - done);

		if (r <= 0)
			break;
		done += (size_t)r;
	}
	close(fd);
	return done == len ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_dir(void)
{
	char p[96];

	snprintf(p, sizeof(p), "%s/base.vhd", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/top.vhd", dir);
	unlink(p);
	rmdir(dir);
}

/*
 * The input is the image itself.  A differencing image's parent locator
 * may name "base.vhd", which is a fixed small dynamic image in the same
 * directory, so that chains get exercised too.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_open_options o = { .no_direct = true, .format = "vpc",
					.max_depth = 4 };
	char path[96], base[96];
	struct extent_list l = { 0 };
	struct image *img = NULL;
	static uint8_t buf[65536];

	if (!dir[0]) {
		strcpy(dir, "/tmp/fuzz-vhd.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		atexit(remove_dir);
		log_init("fuzz-vhd", false);
	}
	snprintf(path, sizeof(path), "%s/top.vhd", dir);
	snprintf(base, sizeof(base), "%s/base.vhd", dir);
	if (access(base, F_OK))
		make_base(base);
	if (write_file(path, data, size) < 0)
		return 0;
	if (image_open(path, &o, &img) == 0) {
		struct vhd_info info = { 0 };
		uint64_t vs = img->virtual_size;
		/* Writes grow the file by blocks: keep them small in /tmp. */
		bool may_write = vhd_read_info(path, &info) == 0 &&
				 info.block_size <= (1u << 20);
		uint64_t span = vs < sizeof(buf) ? vs : sizeof(buf);

		/* A few maps across the disk, then writes, flush, re-read. */
		for (uint64_t off = 0; off < vs && off < (64u << 20);
		     off += (vs / 7) | 512) {
			uint64_t n = vs - off < span ? vs - off : span;

			extent_list_clear(&l);
			image_map_read(img, off, n, buf, &l);
		}
		vhd_info_release(&info);
		if (may_write && span > 1000) {
			extent_list_clear(&l);
			image_map_write(img, 100, span - 1000, &l);
			extent_list_clear(&l);
			if (img->fmt->zero)
				img->fmt->zero(img, 512, 4096, true);
			image_flush(img);
			image_read(img, 0, span, buf);
		}
		extent_list_release(&l);
		image_close(img);
	}
	unlink(path);
	return 0;
}
