/* SPDX-License-Identifier: LGPL-2.1-only */
/* VHD image creation (the writer); the layout code is in vhd-layout.c. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "formats/vhd.h"
#include "fullio.h"
#include "log.h"

#define VHD_FEATURES_RESERVED	0x00000002u
/* Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC. */
#define VHD_EPOCH_OFFSET	946684800ll

char *vhd_relative_path(const char *from_dir, const char *to)
{
	size_t common = 0, i, ups = 0, len;
	const char *rest;
	char *out, *p;

	if (from_dir[0] != '/' || to[0] != '/')
		return NULL;
	/* Longest common prefix ending on a directory boundary. */
	for (i = 0; from_dir[i] && from_dir[i] == to[i]; i++)
		if (from_dir[i] == '/')
			common = i;
	if (!from_dir[i] && to[i] == '/')
		common = i;
	else if (!from_dir[i] && i == 1)
		common = 0;	/* from_dir is "/" */
	for (const char *q = from_dir + common; *q; q++)
		if (*q == '/' && q[1])
			ups++;
	rest = to + common + 1;
	len = 2 + ups * 3 + strlen(rest) + 1;
	out = malloc(len);
	if (!out)
		return NULL;
	p = out;
	if (!ups) {
		memcpy(p, "./", 2);
		p += 2;
	}
	for (i = 0; i < ups; i++, p += 3)
		memcpy(p, "../", 3);
	strcpy(p, rest);
	return out;
}

/* ---------------------------------------------------------- creation */

static void random_uuid(uint8_t *uuid)
{
	size_t done = 0;

	while (done < 16) {
		ssize_t r = getrandom(uuid + done, 16 - done, 0);

		if (r > 0)
			done += (size_t)r;
		else if (r < 0 && errno != EINTR)
			break;
	}
	if (done < 16) {
		/* No entropy source: still unique enough with time + pid. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(uuid, &ts, 16 < sizeof(ts) ? 16 : sizeof(ts));
		uuid[0] ^= (uint8_t)getpid();
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);	/* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
}

static uint32_t vhd_now(void)
{
	time_t t = time(NULL);

	return t > VHD_EPOCH_OFFSET ? (uint32_t)(t - VHD_EPOCH_OFFSET) : 0;
}

static int fsync_dir_of(const char *path)
{
	CLEANUP_FREE char *copy = strdup(path);
	CLEANUP_CLOSE int dfd = -1;

	if (!copy)
		return -ENOMEM;
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}

/*
 * Write a dynamic or differencing image: footer copy, dynamic header, BAT
 * (all unused), locator data, footer.  Temporary file + fsync + rename.
 */
static int write_image(const char *path, const struct vhd_footer *f,
		       struct vhd_dyn_header *h,
		       const struct vhd_locator_data *locs, int nlocs)
{
	CLEANUP_FREE char *tmp = NULL;
	CLEANUP_FREE char *copy = strdup(path);
	CLEANUP_FREE uint8_t *bat = NULL;
	CLEANUP_CLOSE int fd = -1;
	uint8_t fbuf[VHD_FOOTER_SIZE], hbuf[VHD_DYN_HEADER_SIZE];
	uint64_t entries, bat_len, off;
	int r;

	if (!copy)
		return -ENOMEM;
	entries = div_round_up(f->current_size, h->block_size);
	if (entries > UINT32_MAX)
		return -EFBIG;
	h->max_table_entries = (uint32_t)entries;
	h->table_offset = VHD_FOOTER_SIZE + VHD_DYN_HEADER_SIZE;
	bat_len = round_up(entries * 4, VHD_SECTOR);
	off = h->table_offset + bat_len;
	for (int i = 0; i < nlocs; i++) {
		uint64_t space = round_up(locs[i].len, VHD_SECTOR);

		h->loc[i].code = locs[i].code;
		/* Bytes, as Windows and blktap write (the spec says sectors). */
		h->loc[i].data_space = (uint32_t)space;
		h->loc[i].data_len = (uint32_t)locs[i].len;
		h->loc[i].data_offset = off;
		off += space;
	}

	if (asprintf(&tmp, "%s/.%s.XXXXXX", dirname(copy),
		     strrchr(path, '/') ? strrchr(path, '/') + 1 : path) < 0) {
		tmp = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;

	vhd_footer_build(f, fbuf);
	vhd_dyn_header_build(h, hbuf);
	bat = malloc(bat_len);
	if (!bat) {
		r = -ENOMEM;
		goto out_unlink_tmp;
	}
	memset(bat, 0xff, bat_len);
	r = pwrite_full(fd, fbuf, sizeof(fbuf), 0);
	if (!r)
		r = pwrite_full(fd, hbuf, sizeof(hbuf), f->data_offset);
	if (!r)
		r = pwrite_full(fd, bat, bat_len, h->table_offset);
	for (int i = 0; !r && i < nlocs; i++) {
		uint8_t *sec = calloc(1, h->loc[i].data_space);

		if (!sec) {
			r = -ENOMEM;
			break;
		}
		memcpy(sec, locs[i].data, locs[i].len);
		r = pwrite_full(fd, sec, h->loc[i].data_space,
				h->loc[i].data_offset);
		free(sec);
	}
	if (!r)
		r = pwrite_full(fd, fbuf, sizeof(fbuf), off);
	if (!r && fchmod(fd, 0644) < 0)
		r = -errno;
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		goto out_unlink_tmp;
	return fsync_dir_of(path);

out_unlink_tmp:
	unlink(tmp);
	return r;
}

static int check_block_size(uint32_t bs)
{
	if (bs < VHD_MIN_BLOCK_SIZE || bs > VHD_MAX_BLOCK_SIZE ||
	    (bs & (bs - 1)))
		return -EINVAL;
	return 0;
}

static void init_footer(struct vhd_footer *f, uint64_t size, uint32_t type)
{
	memset(f, 0, sizeof(*f));
	f->features = VHD_FEATURES_RESERVED;
	f->version = VHD_VERSION;
	f->data_offset = VHD_FOOTER_SIZE;
	f->timestamp = vhd_now();
	/*
	 * "tap\0" (blktap/XenServer) tells qemu and other readers that
	 * current_size, not the CHS geometry, is the disk size.
	 */
	memcpy(f->creator_app, "tap", 4);
	f->creator_version = 0x00010003;
	f->creator_os = 0x4c6e7578;	/* "Lnux" */
	f->original_size = size;
	f->current_size = size;
	f->geometry = vhd_geometry(size);
	f->type = type;
	random_uuid(f->uuid);
}

int vhd_create_dynamic(const char *path, uint64_t size, uint32_t block_size)
{
	struct vhd_footer f;
	struct vhd_dyn_header h;
	int r;

	if (!block_size)
		block_size = VHD_DEFAULT_BLOCK_SIZE;
	r = check_block_size(block_size);
	if (r)
		return r;
	if (size == 0 || size % VHD_SECTOR)
		return -EINVAL;
	if (size > VHD_MAX_SIZE)
		return -EFBIG;
	init_footer(&f, size, VHD_TYPE_DYNAMIC);
	memset(&h, 0, sizeof(h));
	h.block_size = block_size;
	return write_image(path, &f, &h, NULL, 0);
}

static uint8_t *utf16_dup(const char *s, size_t *ret_len)
{
	size_t cap = strlen(s) * 4 + 2;
	uint8_t *out = malloc(cap);
	int n;

	if (!out)
		return NULL;
	n = vhd_utf8_to_utf16(s, out, cap, false);
	if (n < 0) {
		free(out);
		return NULL;
	}
	*ret_len = (size_t)n;
	return out;
}

void vhd_parent_ref_release(struct vhd_parent_ref *p)
{
	for (int i = 0; i < VHD_PARENT_LOCS; i++) {
		free(p->locs[i].data);
		p->locs[i].data = NULL;
	}
}

int vhd_parent_ref_build(const char *child_dir, const char *parent_abs,
			 const struct vhd_footer *pf, struct vhd_dyn_header *h,
			 struct vhd_parent_ref *ret)
{
	CLEANUP_FREE char *rel = NULL;
	CLEANUP_FREE char *w2ru = NULL;
	char *macx = NULL;
	uint8_t *w2ru16, *w2ku16;
	size_t w2ru_len = 0, w2ku_len = 0;
	const char *base = strrchr(parent_abs, '/');
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(h->parent_uuid, 0, sizeof(h->parent_uuid));
	memset(h->parent_name, 0, sizeof(h->parent_name));
	memcpy(h->parent_uuid, pf->uuid, 16);
	h->parent_timestamp = pf->timestamp;
	r = vhd_utf8_to_utf16(base ? base + 1 : parent_abs, h->parent_name,
			      sizeof(h->parent_name), true);
	if (r < 0)
		return r;

	rel = vhd_relative_path(child_dir, parent_abs);
	if (!rel)
		return -ENOMEM;
	/* Windows relative form: ".\name" with backslashes. */
	w2ru = strdup(rel);
	if (!w2ru || asprintf(&macx, "file://%s", rel) < 0)
		return -ENOMEM;
	for (char *q = w2ru; *q; q++)
		if (*q == '/')
			*q = '\\';
	w2ru16 = utf16_dup(w2ru, &w2ru_len);
	w2ku16 = utf16_dup(parent_abs, &w2ku_len);
	ret->locs[0] = (struct vhd_locator_data){ VHD_LOC_W2RU, w2ru16, w2ru_len };
	ret->locs[1] = (struct vhd_locator_data){ VHD_LOC_MACX, (uint8_t *)macx,
						  strlen(macx) };
	ret->locs[2] = (struct vhd_locator_data){ VHD_LOC_W2KU, w2ku16, w2ku_len };
	if (!w2ru16 || !w2ku16) {
		vhd_parent_ref_release(ret);
		return -EINVAL;
	}
	return 0;
}

int vhd_create_differencing(const char *path, const char *parent_path)
{
	CLEANUP_FREE char *parent_abs = NULL;
	CLEANUP_FREE char *child_copy = strdup(path);
	CLEANUP_FREE char *child_dir = NULL;
	CLEANUP_CLOSE int pfd = -1;
	struct vhd_parent_ref ref;
	struct vhd_footer f;
	struct vhd_dyn_header h;
	struct vhd_meta pm;
	int r;

	if (!child_copy)
		return -ENOMEM;
	parent_abs = realpath(parent_path, NULL);
	if (!parent_abs)
		return -errno;
	child_dir = realpath(dirname(child_copy), NULL);
	if (!child_dir)
		return -errno;
	pfd = open(parent_abs, O_RDONLY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	r = vhd_meta_read(pfd, &pm);
	if (r < 0) {
		log_error("vhd: parent %s is not a valid VHD", parent_abs);
		return r;
	}
	vhd_meta_release(&pm);

	init_footer(&f, pm.footer.current_size, VHD_TYPE_DIFF);
	f.original_size = pm.footer.original_size;
	f.geometry = pm.footer.geometry;
	memset(&h, 0, sizeof(h));
	h.block_size = pm.footer.type == VHD_TYPE_FIXED ?
			       VHD_DEFAULT_BLOCK_SIZE : pm.header.block_size;
	r = vhd_parent_ref_build(child_dir, parent_abs, &pm.footer, &h, &ref);
	if (r < 0)
		return r;
	r = write_image(path, &f, &h, ref.locs, VHD_PARENT_LOCS);
	vhd_parent_ref_release(&ref);
	return r;
}
