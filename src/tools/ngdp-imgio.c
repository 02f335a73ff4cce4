/* SPDX-License-Identifier: LGPL-2.1-only */
/* ngdp-imgio: synchronous image I/O through the format layer, for tests. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "fault.h"
#include "formats/bitmap.h"
#include "formats/format.h"
#include "fullio.h"
#include "log.h"

#define CHUNK (1u << 20)

static const char usage_text[] =
"usage: ngdp-imgio [OPTIONS] IMAGE COMMAND [ARGS...]\n"
"       ngdp-imgio [OPTIONS] IMAGE -        (script: one command per line on stdin)\n"
"\n"
"Opens the chain of IMAGE with image_open() and runs one command (or a\n"
"script of commands) with synchronous pread/pwrite on the mapped extents.\n"
"\n"
"Commands (offsets and lengths in bytes; decimal, 0x hex, or K/M/G suffix):\n"
"  read OFF LEN               write the guest bytes to stdout\n"
"  write OFF LEN              write LEN bytes read from stdin (not in scripts)\n"
"  write-pattern OFF LEN BYTE fill the range with BYTE\n"
"  zero OFF LEN [unmap]       make the range read as zeros\n"
"  discard OFF LEN            discard (the range may then read as anything\n"
"                             the format decides, e.g. zeros or backing data)\n"
"  map [OFF LEN]              one line per extent: OFFSET LENGTH KIND HOLE\n"
"                             (KIND data|zero|filled, HOLE true|false)\n"
"  info                       format, virtual size, the chain\n"
"  flush                      make everything durable\n"
"  pull                       coalesce the backing file into IMAGE: copy\n"
"                             what it holds itself (image_pull_backing),\n"
"                             flush, make its backing file IMAGE's\n"
"                             (image_skip_backing), reopen; prints the\n"
"                             bytes copied\n"
"  bitmap-set NAME OFF LEN [in-use]\n"
"                             set the bits of the range in persistent\n"
"                             bitmap NAME (created at 64 KiB granularity\n"
"                             when absent) and store it, flagged in use\n"
"                             with 'in-use' (else not)\n"
"  bitmap-clear NAME [GRAN]   store NAME empty (created or replaced; GRAN\n"
"                             bytes per bit, default that of the old one,\n"
"                             or 64 KiB)\n"
"  bitmap-get NAME            granularity, in-use flag, count of set bits\n"
"                             and the bits as hex, MSB first (xapi's form)\n"
"  bitmap-dirty NAME          one line per run of set bits: OFFSET LENGTH\n"
"                             (bytes, clipped to the disk)\n"
"  bitmap-remove NAME         remove bitmap NAME\n"
"  bitmap-list                the names of the image's bitmaps\n"
"  bitmap-adopt SRC           copy every bitmap of image SRC (opened\n"
"                             read-only, its format guessed) whose name\n"
"                             starts with " CBT_BITMAP_PREFIX " into the image\n"
"                             (image_bitmap_adopt)\n"
"A script may also contain blank lines and # comments.  A writing session\n"
"always flushes before exit.\n"
"\n"
"Options:\n"
"  --readonly     open the top image read-only\n"
"  --format F     the format of the top image (raw, qcow2, vpc); without\n"
"                 it this tool guesses it from the image's first bytes\n"
"                 (a test/admin convenience: ngdp-server never guesses)\n"
"  --no-direct    do not use O_DIRECT\n"
"  --confine DIR  IMAGE must be in directory DIR (backing files are\n"
"                 always plain names in the directory of IMAGE)\n"
"Exit status: 0 success, 1 operation failed, 2 usage error.\n";

struct ctx {
	struct image *img;
	const struct image_open_options *opt;
	struct extent_list el;
	void *buf;		/* CHUNK bytes, aligned */
	bool script;
	bool wrote;
};

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -errno;
	switch (*end) {
	case 'K': case 'k': mult = 1ull << 10; end++; break;
	case 'M': case 'm': mult = 1ull << 20; end++; break;
	case 'G': case 'g': mult = 1ull << 30; end++; break;
	case 'T': case 't': mult = 1ull << 40; end++; break;
	default: break;
	}
	if (*end || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

/* Parse OFF LEN and check the range against the virtual size. */
static int parse_range(struct ctx *c, char **argv, int argc, uint64_t *off,
		       uint64_t *len)
{
	if (argc < 2 || parse_u64(argv[0], off) || parse_u64(argv[1], len)) {
		fprintf(stderr, "ngdp-imgio: expected OFF LEN\n");
		return -EINVAL;
	}
	if (*off > c->img->virtual_size ||
	    *len > c->img->virtual_size - *off) {
		fprintf(stderr, "ngdp-imgio: range %" PRIu64 "+%" PRIu64
			" beyond the virtual size %" PRIu64 "\n", *off, *len,
			c->img->virtual_size);
		return -EINVAL;
	}
	return 0;
}

static struct image *owner_of(struct image *img, int fd)
{
	for (; img; img = img->backing)
		if (img->fd == fd)
			return img;
	return NULL;
}

/* Write buf to [off, off+len) through map_write. */
static int do_write_buf(struct ctx *c, uint64_t off, uint64_t len,
			const void *buf)
{
	uint64_t pos = 0;
	size_t i;
	int r;

	extent_list_clear(&c->el);
	r = image_map_write(c->img, off, len, &c->el);
	if (r < 0)
		return r;
	c->wrote = true;
	for (i = 0; i < c->el.n; i++) {
		const struct extent *e = &c->el.v[i];
		struct image *o;

		if (e->kind != EXTENT_DATA)
			return -EIO;	/* map_write must give data extents */
		o = owner_of(c->img, e->fd);
		if (o != c->img)
			return -EIO;
		r = image_pwrite(o, (const char *)buf + pos, e->length,
				 e->host_offset);
		if (r < 0)
			return r;
		pos += e->length;
	}
	return pos == len ? 0 : -EIO;
}

static int cmd_read(struct ctx *c, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		int r = image_read(c->img, off, n, c->buf);

		if (r < 0)
			return r;
		if (fwrite(c->buf, 1, n, stdout) != n)
			return -EIO;
		off += n;
		len -= n;
	}
	return fflush(stdout) ? -errno : 0;
}

static int cmd_write_stdin(struct ctx *c, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		int r;

		if (fread(c->buf, 1, n, stdin) != n) {
			fprintf(stderr, "ngdp-imgio: short input on stdin\n");
			return -EIO;
		}
		r = do_write_buf(c, off, n, c->buf);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int cmd_write_pattern(struct ctx *c, uint64_t off, uint64_t len,
			     int byte)
{
	memset(c->buf, byte, CHUNK);
	while (len) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		int r = do_write_buf(c, off, n, c->buf);

		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int cmd_zero(struct ctx *c, uint64_t off, uint64_t len, bool unmap)
{
	int r;

	if (c->img->readonly)
		return -EROFS;
	c->wrote = true;
	r = image_zero(c->img, off, len, unmap);
	if (r == -ENOTSUP)
		r = cmd_write_pattern(c, off, len, 0);
	return r;
}

static int cmd_discard(struct ctx *c, uint64_t off, uint64_t len)
{
	if (c->img->readonly)
		return -EROFS;
	c->wrote = true;
	if (!c->img->fmt->discard)
		return 0;	/* a hint */
	return image_discard(c->img, off, len);
}

static const char *kind_name(enum extent_kind k)
{
	switch (k) {
	case EXTENT_DATA: return "data";
	case EXTENT_ZERO: return "zero";
	case EXTENT_FILLED: return "filled";
	}
	return "?";
}

static int cmd_map(struct ctx *c, uint64_t off, uint64_t len)
{
	struct extent cur = { .length = 0 };
	uint64_t cur_off = off;

	while (len) {
		uint64_t n = len < (1ull << 30) ? len : (1ull << 30);
		size_t i;
		int r;

		extent_list_clear(&c->el);
		r = image_block_status(c->img, off, n, &c->el);
		if (r < 0)
			return r;
		for (i = 0; i < c->el.n; i++) {
			const struct extent *e = &c->el.v[i];

			if (cur.length && (cur.kind != e->kind ||
					   cur.hole != e->hole)) {
				printf("%" PRIu64 " %" PRIu64 " %s %s\n",
				       cur_off, cur.length, kind_name(cur.kind),
				       cur.hole ? "true" : "false");
				cur_off += cur.length;
				cur.length = 0;
			}
			if (!cur.length) {
				cur.kind = e->kind;
				cur.hole = e->hole;
			}
			cur.length += e->length;
		}
		off += n;
		len -= n;
	}
	if (cur.length)
		printf("%" PRIu64 " %" PRIu64 " %s %s\n", cur_off, cur.length,
		       kind_name(cur.kind), cur.hole ? "true" : "false");
	return fflush(stdout) ? -errno : 0;
}

static int cmd_info(struct ctx *c)
{
	const struct image *i;

	printf("format: %s\nvirtual-size: %" PRIu64 "\n", c->img->fmt->name,
	       c->img->virtual_size);
	for (i = c->img; i; i = i->backing)
		printf("chain: %u %s %s%s\n", i->depth, i->fmt->name, i->path,
		       i->direct ? "" : " (buffered)");
	return fflush(stdout) ? -errno : 0;
}

/*
 * Coalesce IMAGE's backing file into it, as the datapath server does
 * live: the image is reopened afterwards (its chain in memory is stale).
 */
static int cmd_pull(struct ctx *c)
{
	uint64_t copied = 0;
	char *path;
	int r;

	if (!c->img->backing) {
		fprintf(stderr, "ngdp-imgio: '%s' has no backing file\n",
			c->img->path);
		return -EINVAL;
	}
	r = image_pull_backing(c->img, 0, c->img->virtual_size, &copied);
	if (r == 0)
		r = image_flush(c->img);
	if (r == 0)
		fault_point("imgio-pull-before-skip");
	if (r == 0)
		r = image_skip_backing(c->img);
	if (r < 0)
		return r;
	path = strdup(c->img->path);
	if (!path)
		return -ENOMEM;
	image_close(c->img);
	c->img = NULL;
	r = image_open(path, c->opt, &c->img);
	free(path);
	if (r < 0)
		return r;
	printf("copied %" PRIu64 "\n", copied);
	return fflush(stdout) ? -errno : 0;
}

/* Bitmap NAME of the image, or a new empty one when absent. */
static int bitmap_load_or_new(struct ctx *c, const char *name,
			      uint64_t gran, struct dirty_bitmap *bm)
{
	int r = image_bitmap_load(c->img, name, bm, NULL);

	if (r == -ENOENT)
		r = dirty_bitmap_init(bm, gran ? gran : CBT_GRANULARITY,
				      c->img->virtual_size);
	return r;
}

static int cmd_bitmap_set(struct ctx *c, int argc, char **argv)
{
	struct dirty_bitmap bm;
	uint64_t off, len;
	int r;

	if (argc < 4 || parse_u64(argv[2], &off) || parse_u64(argv[3], &len) ||
	    (argc > 4 && strcmp(argv[4], "in-use"))) {
		fprintf(stderr, "ngdp-imgio: bitmap-set NAME OFF LEN [in-use]\n");
		return -EINVAL;
	}
	r = bitmap_load_or_new(c, argv[1], 0, &bm);
	if (r < 0)
		return r;
	r = dirty_bitmap_set_range(&bm, off, len);
	if (r == 0)
		r = image_bitmap_store(c->img, argv[1], &bm, argc > 4);
	dirty_bitmap_free(&bm);
	return r;
}

static int cmd_bitmap_clear(struct ctx *c, int argc, char **argv)
{
	struct dirty_bitmap bm;
	uint64_t gran = 0;
	int r;

	if (argc < 2 || (argc > 2 && parse_u64(argv[2], &gran))) {
		fprintf(stderr, "ngdp-imgio: bitmap-clear NAME [GRAN]\n");
		return -EINVAL;
	}
	r = bitmap_load_or_new(c, argv[1], gran, &bm);
	if (r == 0 && gran && gran != bm.granularity) {
		dirty_bitmap_free(&bm);
		r = dirty_bitmap_init(&bm, gran, c->img->virtual_size);
	}
	if (r < 0)
		return r;
	dirty_bitmap_clear_all(&bm);
	r = image_bitmap_store(c->img, argv[1], &bm, false);
	dirty_bitmap_free(&bm);
	return r;
}

static int cmd_bitmap_get(struct ctx *c, const char *name, bool runs)
{
	struct dirty_bitmap bm;
	bool in_use = false;
	uint8_t *msb;
	uint64_t i;
	int r = image_bitmap_load(c->img, name, &bm, &in_use);

	if (r < 0)
		return r;
	if (runs) {
		for (i = 0; i < bm.nbits; i++) {
			uint64_t j = i;

			if (!dirty_bitmap_test(&bm, i))
				continue;
			while (j < bm.nbits && dirty_bitmap_test(&bm, j))
				j++;
			printf("%" PRIu64 " %" PRIu64 "\n", i * bm.granularity,
			       min_u64(j * bm.granularity, bm.virtual_size) -
				       i * bm.granularity);
			i = j;
		}
		dirty_bitmap_free(&bm);
		return fflush(stdout) ? -errno : 0;
	}
	msb = malloc(dirty_bitmap_bytes(&bm) + 1);
	if (!msb) {
		dirty_bitmap_free(&bm);
		return -ENOMEM;
	}
	dirty_bitmap_export_msb(&bm, msb);
	printf("granularity: %" PRIu64 "\nin-use: %s\ncount: %" PRIu64 "\nbits: ",
	       bm.granularity, in_use ? "true" : "false",
	       dirty_bitmap_count(&bm));
	for (i = 0; i < dirty_bitmap_bytes(&bm); i++)
		printf("%02x", msb[i]);
	printf("\n");
	free(msb);
	dirty_bitmap_free(&bm);
	return fflush(stdout) ? -errno : 0;
}

static int cmd_bitmap_list(struct ctx *c)
{
	char **names = NULL;
	int r = image_bitmap_list(c->img, &names);

	for (size_t i = 0; r == 0 && names[i]; i++)
		printf("%s\n", names[i]);
	image_bitmap_names_free(names);
	return r < 0 ? r : fflush(stdout) ? -errno : 0;
}

static int cmd_bitmap_adopt(struct ctx *c, const char *src_path)
{
	struct image_open_options o = *c->opt;
	struct image *src = NULL;
	int r;

	o.readonly = true;
	o.format = NULL;
	o.probe_top = true;
	r = image_open(src_path, &o, &src);
	if (r < 0) {
		fprintf(stderr, "ngdp-imgio: cannot open '%s': %s\n", src_path,
			strerror(-r));
		return r;
	}
	r = image_bitmap_adopt(c->img, src);
	image_close(src);
	return r;
}

static int run_command(struct ctx *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	uint64_t off, len, v;
	int r;

	if (!strcmp(cmd, "info"))
		return cmd_info(c);
	if (!strcmp(cmd, "flush"))
		return image_flush(c->img);
	if (!strcmp(cmd, "pull"))
		return cmd_pull(c);
	if (!strcmp(cmd, "bitmap-set"))
		return cmd_bitmap_set(c, argc, argv);
	if (!strcmp(cmd, "bitmap-clear"))
		return cmd_bitmap_clear(c, argc, argv);
	if (!strcmp(cmd, "bitmap-list"))
		return cmd_bitmap_list(c);
	if (!strncmp(cmd, "bitmap-", 7) && argc < 2) {
		fprintf(stderr, "ngdp-imgio: %s NAME\n", cmd);
		return -EINVAL;
	}
	if (!strcmp(cmd, "bitmap-get"))
		return cmd_bitmap_get(c, argv[1], false);
	if (!strcmp(cmd, "bitmap-dirty"))
		return cmd_bitmap_get(c, argv[1], true);
	if (!strcmp(cmd, "bitmap-adopt"))
		return cmd_bitmap_adopt(c, argv[1]);
	if (!strcmp(cmd, "bitmap-remove"))
		return image_bitmap_remove(c->img, argv[1]);
	if (!strcmp(cmd, "map")) {
		if (argc == 1)
			return cmd_map(c, 0, c->img->virtual_size);
		r = parse_range(c, argv + 1, argc - 1, &off, &len);
		return r < 0 ? r : cmd_map(c, off, len);
	}
	r = parse_range(c, argv + 1, argc - 1, &off, &len);
	if (r < 0)
		return r;
	if (!strcmp(cmd, "read"))
		return cmd_read(c, off, len);
	if (!strcmp(cmd, "write")) {
		if (c->script) {
			fprintf(stderr, "ngdp-imgio: 'write' needs stdin, not allowed in a script\n");
			return -EINVAL;
		}
		return cmd_write_stdin(c, off, len);
	}
	if (!strcmp(cmd, "write-pattern")) {
		if (argc < 4 || parse_u64(argv[3], &v) || v > 255) {
			fprintf(stderr, "ngdp-imgio: expected BYTE 0..255\n");
			return -EINVAL;
		}
		return cmd_write_pattern(c, off, len, (int)v);
	}
	if (!strcmp(cmd, "zero"))
		return cmd_zero(c, off, len, argc > 3 && !strcmp(argv[3], "unmap"));
	if (!strcmp(cmd, "discard"))
		return cmd_discard(c, off, len);
	fprintf(stderr, "ngdp-imgio: unknown command '%s'\n", cmd);
	return -EINVAL;
}

static int run_script(struct ctx *c)
{
	char line[1024];
	unsigned long lineno = 0;

	while (fgets(line, sizeof(line), stdin)) {
		char *argv[8], *save = NULL, *tok;
		int argc = 0, r;

		lineno++;
		for (tok = strtok_r(line, " \t\r\n", &save); tok && argc < 8;
		     tok = strtok_r(NULL, " \t\r\n", &save))
			argv[argc++] = tok;
		if (argc == 0 || argv[0][0] == '#')
			continue;
		r = run_command(c, argc, argv);
		if (r < 0) {
			fprintf(stderr, "ngdp-imgio: line %lu (%s): %s\n",
				lineno, argv[0], strerror(-r));
			return r;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "readonly", no_argument, NULL, 'r' },
		{ "format", required_argument, NULL, 'f' },
		{ "no-direct", no_argument, NULL, 'D' },
		{ "confine", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct image_open_options opt = { 0 };
	struct ctx c = { 0 };
	int o, r, fr;

	log_init("ngdp-imgio", true);
	while ((o = getopt_long(argc, argv, "+rf:Dc:h", longopts, NULL)) != -1) {
		switch (o) {
		case 'r': opt.readonly = true; break;
		case 'f': opt.format = optarg; break;
		case 'D': opt.no_direct = true; break;
		case 'c': opt.confine_dir = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (argc - optind < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	/* tool only: the server always passes the format it was given */
	opt.probe_top = !opt.format;
	c.opt = &opt;
	r = image_open(argv[optind], &opt, &c.img);
	if (r < 0) {
		fprintf(stderr, "ngdp-imgio: cannot open '%s': %s\n",
			argv[optind], strerror(-r));
		return 1;
	}
	c.buf = aligned_malloc(4096, CHUNK);
	if (!c.buf) {
		image_close(c.img);
		return 1;
	}
	if (!strcmp(argv[optind + 1], "-")) {
		c.script = true;
		r = run_script(&c);
	} else {
		r = run_command(&c, argc - optind - 1, argv + optind + 1);
		if (r < 0)
			fprintf(stderr, "ngdp-imgio: %s: %s\n", argv[optind + 1],
				strerror(-r));
	}
	if (c.img && !c.img->readonly) {
		fr = image_flush(c.img);
		if (fr < 0) {
			fprintf(stderr, "ngdp-imgio: flush: %s\n", strerror(-fr));
			if (r == 0)
				r = fr;
		}
	}
	image_close(c.img);
	extent_list_release(&c.el);
	free(c.buf);
	return r < 0 ? 1 : 0;
}
