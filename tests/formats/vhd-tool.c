/* SPDX-License-Identifier: LGPL-2.1-only */
/* Test helper for the VHD engine: create, inspect, corrupt, crash-write. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "formats/format.h"
#include "formats/vhd.h"
#include "fullio.h"
#include "log.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: vhd-tool create-dynamic PATH SIZE [BLOCK_SIZE]\n"
		"       vhd-tool create-diff PATH PARENT\n"
		"       vhd-tool info PATH\n"
		"       vhd-tool corrupt PATH KIND\n"
		"         KIND: footer-checksum header-checksum bat-beyond-eof\n"
		"               huge-max-entries block-size-0 block-size-npot\n"
		"               block-size-huge bat-overlap size-huge locator-abs\n"
		"               uuid-fixed locator-name:NAME\n"
		"       vhd-tool crash-writer PATH SEED [STOP]  (prints FLUSHED N)\n"
		"       vhd-tool crash-verify PATH SEED N\n");
	return 2;
}

static int rw_at(int fd, void *buf, size_t len, off_t off, bool wr)
{
	int r = wr ? pwrite_full(fd, buf, len, (uint64_t)off) :
		     pread_full(fd, buf, len, (uint64_t)off);

	return r < 0 ? -EIO : 0;
}

/* Rewrite the dynamic header (fixing its checksum unless asked not to). */
static int corrupt(const char *path, const char *kind)
{
	uint8_t foot[512], hdr[1024];
	int fd = open(path, O_RDWR);
	off_t end;
	uint64_t hoff;
	bool fix_header = true;
	int r = 0;

	if (fd < 0)
		return -errno;
	end = lseek(fd, 0, SEEK_END);
	if (rw_at(fd, foot, 512, 0, false) || rw_at(fd, hdr, 1024, 512, false)) {
		close(fd);
		return -EIO;
	}
	hoff = 512;
	if (!strcmp(kind, "footer-checksum")) {
		foot[64] ^= 0x55;
		r = rw_at(fd, foot, 512, 0, true);
		if (!r)
			r = rw_at(fd, foot, 512, end - 512, true);
		fix_header = false;
	} else if (!strcmp(kind, "header-checksum")) {
		hdr[36] ^= 0x55;
		fix_header = false;
		r = rw_at(fd, hdr, 1024, (off_t)hoff, true);
	} else if (!strcmp(kind, "bat-beyond-eof")) {
		uint64_t toff = load_be64(hdr + 16);
		uint8_t e[4];

		store_be32(e, (uint32_t)((uint64_t)end / 512 + 100));
		r = rw_at(fd, e, 4, (off_t)toff, true);
	} else if (!strcmp(kind, "bat-overlap")) {
		uint64_t toff = load_be64(hdr + 16);
		uint8_t e[8];

		/* Two blocks at the same place, the first on the BAT. */
		store_be32(e, (uint32_t)(toff / 512));
		store_be32(e + 4, (uint32_t)(toff / 512));
		r = rw_at(fd, e, 8, (off_t)toff, true);
	} else if (!strcmp(kind, "bat-on-locator") ||
		   !strcmp(kind, "bat-on-footer")) {
		/* Block 0 moved over the first parent locator, or so that it
		 * ends at the end of the file (over the footer). */
		uint64_t toff = load_be64(hdr + 16);
		uint32_t bs = load_be32(hdr + 32);
		uint64_t bm = round_up((uint64_t)bs / 512 / 8, 512);
		uint64_t loc = load_be64(hdr + 576 + 16);
		uint8_t e[4];

		if (!strcmp(kind, "bat-on-locator"))
			store_be32(e, (uint32_t)(loc / 512));
		else
			store_be32(e, (uint32_t)(((uint64_t)end - bm - bs) / 512));
		r = rw_at(fd, e, 4, (off_t)toff, true);
	} else if (!strcmp(kind, "huge-sparse-bat")) {
		/* 200 GiB of 512-byte blocks: a 1.6 GiB BAT, in a sparse
		 * file that holds it, valid checksums everywhere. */
		uint64_t size = 200ull << 30, toff = load_be64(hdr + 16);
		uint64_t n = size / 512, nend = toff + n * 4 + 512;

		store_be32(hdr + 32, 512);
		store_be32(hdr + 28, (uint32_t)n);
		store_be64(foot + 40, size);
		store_be64(foot + 48, size);
		store_be32(foot + 64, vhd_checksum(foot, 512, 64));
		r = ftruncate(fd, (off_t)nend) < 0 ? -errno : 0;
		if (!r)
			r = rw_at(fd, foot, 512, 0, true);
		if (!r)
			r = rw_at(fd, foot, 512, (off_t)nend - 512, true);
	} else if (!strcmp(kind, "huge-max-entries")) {
		store_be32(hdr + 28, 0xfffffff0u);
	} else if (!strcmp(kind, "block-size-0")) {
		store_be32(hdr + 32, 0);
	} else if (!strcmp(kind, "block-size-npot")) {
		store_be32(hdr + 32, 3u << 20);
	} else if (!strcmp(kind, "block-size-huge")) {
		store_be32(hdr + 32, 1u << 30);
	} else if (!strcmp(kind, "size-huge")) {
		/* 4 TiB virtual size, valid checksums. */
		store_be64(foot + 48, 4ull << 40);
		store_be32(foot + 64, vhd_checksum(foot, 512, 64));
		r = rw_at(fd, foot, 512, 0, true);
		if (!r)
			r = rw_at(fd, foot, 512, end - 512, true);
		fix_header = false;
	} else if (!strcmp(kind, "uuid-fixed")) {
		/* uuid 11111111-...: the fuzzer's base image uses it. */
		memset(foot + 68, 0x11, 16);
		store_be32(foot + 64, vhd_checksum(foot, 512, 64));
		r = rw_at(fd, foot, 512, 0, true);
		if (!r)
			r = rw_at(fd, foot, 512, end - 512, true);
		fix_header = false;
	} else if (!strncmp(kind, "locator-name:", 13)) {
		/* Replace every locator of a differencing image by NAME. */
		const char *name = kind + 13;
		uint8_t buf[4096];

		for (int i = 0; i < 8 && !r; i++) {
			uint8_t *l = hdr + 576 + 24 * i;
			uint32_t code = load_be32(l);
			uint64_t off = load_be64(l + 16);
			int n;

			memset(buf, 0, sizeof(buf));
			if (code == VHD_LOC_MACX) {
				n = snprintf((char *)buf, sizeof(buf), "file://%s",
					     name);
			} else if (code == VHD_LOC_W2RU || code == VHD_LOC_W2KU) {
				n = vhd_utf8_to_utf16(name, buf, sizeof(buf), false);
			} else {
				continue;
			}
			if (n < 0 || n > 1024) {
				r = -EINVAL;
				break;
			}
			/* Grow the locator area only within its data_space. */
			if ((uint32_t)n > load_be32(l + 4) && load_be32(l + 4) < 512) {
				r = -ENOSPC;
				break;
			}
			store_be32(l + 8, (uint32_t)n);
			r = rw_at(fd, buf, (size_t)n, (off_t)off, true);
		}
	} else {
		r = -EINVAL;
	}
	if (!r && fix_header) {
		store_be32(hdr + 36, vhd_checksum(hdr, 1024, 36));
		r = rw_at(fd, hdr, 1024, (off_t)hoff, true);
	}
	close(fd);
	return r;
}

/* Deterministic write number i: region, length, pattern byte. */
static void crash_op(uint64_t seed, uint64_t i, uint64_t size, uint64_t *off,
		     uint64_t *len, uint8_t *byte)
{
	uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i * 0xbf58476d1ce4e5b9ull);
	uint64_t slot = 65536, nslots = size / slot;

	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 29;
	/* Each write has its own 64 KiB slot: no write overlaps another. */
	*off = (i % nslots) * slot + (x % 64) * 512;
	*len = 512 * (1 + (x >> 8) % (slot / 512 - 64));
	*byte = (uint8_t)(1 + (i % 251));
}

static int crash_write_one(struct image *img, uint64_t off, uint64_t len,
			   uint8_t byte)
{
	struct extent_list l = { 0 };
	uint64_t pos = 0;
	uint8_t *buf;
	int r;

	buf = aligned_malloc(4096, len);
	if (!buf)
		return -ENOMEM;
	memset(buf, byte, len);
	r = image_map_write(img, off, len, &l);
	for (size_t i = 0; !r && i < l.n; i++) {
		r = image_pwrite(img, buf + pos, l.v[i].length,
				 l.v[i].host_offset);
		pos += l.v[i].length;
	}
	extent_list_release(&l);
	free(buf);
	return r;
}

/* stop: 0 = run until killed, else _exit() after that many writes. */
static int crash_writer(const char *path, uint64_t seed, uint64_t stop)
{
	struct image *img;
	uint64_t i, nslots;
	int r;

	struct image_open_options o = { .format = "vpc" };

	r = image_open(path, &o, &img);
	if (r < 0)
		return r;
	nslots = img->virtual_size / 65536;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < nslots; i++) {
		uint64_t off, len;
		uint8_t byte;

		crash_op(seed, i, img->virtual_size, &off, &len, &byte);
		r = crash_write_one(img, off, len, byte);
		if (r < 0)
			break;
		if (stop && i + 1 == stop)
			_exit(0);	/* a crash: no flush, no close */
		if (i % 4 == 3) {
			r = image_flush(img);
			if (r < 0)
				break;
			printf("FLUSHED %" PRIu64 "\n", i + 1);
		}
	}
	/* Writes the whole disk, then waits to be killed. */
	if (r == 0) {
		printf("DONE\n");
		pause();
	}
	image_close(img);
	return r;
}

static int crash_verify(const char *path, uint64_t seed, uint64_t n)
{
	struct image_open_options o = { .readonly = true, .format = "vpc" };
	struct image *img;
	int r, bad = 0;

	r = image_open(path, &o, &img);
	if (r < 0)
		return r;
	for (uint64_t i = 0; i < n && r == 0; i++) {
		uint64_t off, len;
		uint8_t byte, *buf = malloc(65536);

		crash_op(seed, i, img->virtual_size, &off, &len, &byte);
		r = buf ? image_read(img, off, len, buf) : -ENOMEM;
		for (uint64_t k = 0; r == 0 && k < len; k++) {
			if (buf[k] != byte) {
				fprintf(stderr, "write %" PRIu64 " lost at %" PRIu64 "\n",
					i, off + k);
				bad = 1;
				break;
			}
		}
		free(buf);
	}
	image_close(img);
	if (r < 0)
		return r;
	return bad ? -EIO : 0;
}

int main(int argc, char **argv)
{
	int r;

	log_init("vhd-tool", true);
	if (argc < 3)
		return usage();
	if (!strcmp(argv[1], "create-dynamic") && argc >= 4) {
		r = vhd_create_dynamic(argv[2], strtoull(argv[3], NULL, 0),
				       argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 0) : 0);
	} else if (!strcmp(argv[1], "create-diff") && argc == 4) {
		r = vhd_create_differencing(argv[2], argv[3]);
	} else if (!strcmp(argv[1], "info") && argc == 3) {
		struct vhd_info info;

		r = vhd_read_info(argv[2], &info);
		if (!r) {
			printf("type %d size %" PRIu64 " block_size %u parent %s\n",
			       info.type, info.size, info.block_size,
			       info.parent ? info.parent : "-");
			vhd_info_release(&info);
		}
	} else if (!strcmp(argv[1], "corrupt") && argc == 4) {
		r = corrupt(argv[2], argv[3]);
	} else if (!strcmp(argv[1], "crash-writer") && (argc == 4 || argc == 5)) {
		r = crash_writer(argv[2], strtoull(argv[3], NULL, 0),
				 argc == 5 ? strtoull(argv[4], NULL, 0) : 0);
	} else if (!strcmp(argv[1], "crash-verify") && argc == 5) {
		r = crash_verify(argv[2], strtoull(argv[3], NULL, 0),
				 strtoull(argv[4], NULL, 0));
	} else {
		return usage();
	}
	if (r < 0) {
		fprintf(stderr, "vhd-tool %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	return 0;
}
