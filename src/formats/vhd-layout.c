/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * VHD on-disk layout: checksums, footer and dynamic header (parse, build,
 * validate), parent locators, sector bitmaps, and the checked read of all
 * metadata but the BAT (vhd_meta_read).  Shared by the engine (vhd.c), the
 * writer (vhd-create.c) and the plugins (vhd_read_info).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "formats/vhd.h"
#include "fullio.h"
#include "log.h"

/* Longest parent locator we accept (a path, so PATH_MAX in UTF-16). */
#define VHD_LOC_MAX_LEN		(PATH_MAX * 2)

uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip_off)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < skip_off || i >= skip_off + 4)
			sum += buf[i];
	return ~sum;
}

/* The CHS algorithm of the VHD specification, appendix "CHS calculation". */
uint32_t vhd_geometry(uint64_t size)
{
	uint64_t total = size / VHD_SECTOR;
	uint32_t spt, heads, cyl_x_heads, cyl;

	if (total > 65535ull * 16 * 255)
		total = 65535ull * 16 * 255;
	if (total >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cyl_x_heads = (uint32_t)(total / spt);
	} else {
		spt = 17;
		cyl_x_heads = (uint32_t)(total / spt);
		heads = (cyl_x_heads + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cyl_x_heads >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cyl_x_heads = (uint32_t)(total / spt);
		}
		if (cyl_x_heads >= heads * 1024) {
			spt = 63;
			heads = 16;
			cyl_x_heads = (uint32_t)(total / spt);
		}
	}
	cyl = cyl_x_heads / heads;
	return (cyl << 16) | (heads << 8) | spt;
}

int vhd_footer_parse(const uint8_t *buf, struct vhd_footer *ret)
{
	struct vhd_footer f;

	if (memcmp(buf, VHD_COOKIE, 8))
		return -EINVAL;
	if (load_be32(buf + 64) != vhd_checksum(buf, VHD_FOOTER_SIZE, 64))
		return -EINVAL;
	memset(&f, 0, sizeof(f));
	f.features = load_be32(buf + 8);
	f.version = load_be32(buf + 12);
	f.data_offset = load_be64(buf + 16);
	f.timestamp = load_be32(buf + 24);
	memcpy(f.creator_app, buf + 28, 4);
	f.creator_version = load_be32(buf + 32);
	f.creator_os = load_be32(buf + 36);
	f.original_size = load_be64(buf + 40);
	f.current_size = load_be64(buf + 48);
	f.geometry = load_be32(buf + 56);
	f.type = load_be32(buf + 60);
	memcpy(f.uuid, buf + 68, 16);
	f.saved_state = buf[84];

	if ((f.version >> 16) != 1)
		return -ENOTSUP;
	if (f.type != VHD_TYPE_FIXED && f.type != VHD_TYPE_DYNAMIC &&
	    f.type != VHD_TYPE_DIFF)
		return -ENOTSUP;
	if (f.current_size == 0 || f.current_size > VHD_MAX_SIZE ||
	    f.current_size % VHD_SECTOR)
		return -EINVAL;
	if (f.type == VHD_TYPE_FIXED && f.data_offset != UINT64_MAX)
		return -EINVAL;
	if (f.type != VHD_TYPE_FIXED &&
	    (f.data_offset < VHD_FOOTER_SIZE || f.data_offset % VHD_SECTOR ||
	     f.data_offset > UINT64_MAX / 2))
		return -EINVAL;
	*ret = f;
	return 0;
}

void vhd_footer_build(const struct vhd_footer *f, uint8_t *buf)
{
	memset(buf, 0, VHD_FOOTER_SIZE);
	memcpy(buf, VHD_COOKIE, 8);
	store_be32(buf + 8, f->features);
	store_be32(buf + 12, f->version);
	store_be64(buf + 16, f->data_offset);
	store_be32(buf + 24, f->timestamp);
	memcpy(buf + 28, f->creator_app, 4);
	store_be32(buf + 32, f->creator_version);
	store_be32(buf + 36, f->creator_os);
	store_be64(buf + 40, f->original_size);
	store_be64(buf + 48, f->current_size);
	store_be32(buf + 56, f->geometry);
	store_be32(buf + 60, f->type);
	memcpy(buf + 68, f->uuid, 16);
	buf[84] = f->saved_state;
	store_be32(buf + 64, vhd_checksum(buf, VHD_FOOTER_SIZE, 64));
}

int vhd_dyn_header_parse(const uint8_t *buf, struct vhd_dyn_header *ret)
{
	struct vhd_dyn_header h;

	if (memcmp(buf, VHD_DYN_COOKIE, 8))
		return -EINVAL;
	if (load_be32(buf + 36) != vhd_checksum(buf, VHD_DYN_HEADER_SIZE, 36))
		return -EINVAL;
	if ((load_be32(buf + 24) >> 16) != 1)
		return -ENOTSUP;
	memset(&h, 0, sizeof(h));
	h.table_offset = load_be64(buf + 16);
	h.max_table_entries = load_be32(buf + 28);
	h.block_size = load_be32(buf + 32);
	memcpy(h.parent_uuid, buf + 40, 16);
	h.parent_timestamp = load_be32(buf + 56);
	memcpy(h.parent_name, buf + 64, 512);
	for (int i = 0; i < 8; i++) {
		const uint8_t *l = buf + 576 + 24 * i;

		h.loc[i].code = load_be32(l);
		h.loc[i].data_space = load_be32(l + 4);
		h.loc[i].data_len = load_be32(l + 8);
		h.loc[i].data_offset = load_be64(l + 16);
	}
	/* Power of two in [512, 256 MiB]. */
	if (h.block_size < VHD_MIN_BLOCK_SIZE ||
	    h.block_size > VHD_MAX_BLOCK_SIZE ||
	    (h.block_size & (h.block_size - 1)))
		return -EINVAL;
	if (h.max_table_entries == 0 || h.table_offset % VHD_SECTOR ||
	    h.table_offset < VHD_FOOTER_SIZE || h.table_offset > UINT64_MAX / 2)
		return -EINVAL;
	*ret = h;
	return 0;
}

void vhd_dyn_header_build(const struct vhd_dyn_header *h, uint8_t *buf)
{
	memset(buf, 0, VHD_DYN_HEADER_SIZE);
	memcpy(buf, VHD_DYN_COOKIE, 8);
	store_be64(buf + 8, UINT64_MAX);
	store_be64(buf + 16, h->table_offset);
	store_be32(buf + 24, VHD_VERSION);
	store_be32(buf + 28, h->max_table_entries);
	store_be32(buf + 32, h->block_size);
	memcpy(buf + 40, h->parent_uuid, 16);
	store_be32(buf + 56, h->parent_timestamp);
	memcpy(buf + 64, h->parent_name, 512);
	for (int i = 0; i < 8; i++) {
		uint8_t *l = buf + 576 + 24 * i;

		store_be32(l, h->loc[i].code);
		store_be32(l + 4, h->loc[i].data_space);
		store_be32(l + 8, h->loc[i].data_len);
		store_be64(l + 16, h->loc[i].data_offset);
	}
	store_be32(buf + 36, vhd_checksum(buf, VHD_DYN_HEADER_SIZE, 36));
}

int vhd_utf8_to_utf16(const char *s, uint8_t *out, size_t out_len,
		      bool big_endian)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		uint32_t c;
		int extra;
		uint16_t units[2];
		int nu;

		if (*p < 0x80) {
			c = *p;
			extra = 0;
		} else if ((*p & 0xe0) == 0xc0) {
			c = *p & 0x1f;
			extra = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			c = *p & 0x0f;
			extra = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			c = *p & 0x07;
			extra = 3;
		} else {
			return -EILSEQ;
		}
		p++;
		for (int i = 0; i < extra; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return -EILSEQ;
			c = (c << 6) | (*p & 0x3f);
		}
		if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return -EILSEQ;
		if (c >= 0x10000) {
			c -= 0x10000;
			units[0] = (uint16_t)(0xd800 | (c >> 10));
			units[1] = (uint16_t)(0xdc00 | (c & 0x3ff));
			nu = 2;
		} else {
			units[0] = (uint16_t)c;
			nu = 1;
		}
		for (int i = 0; i < nu; i++) {
			if (n + 2 > out_len)
				return -ENAMETOOLONG;
			out[n + (big_endian ? 0 : 1)] = (uint8_t)(units[i] >> 8);
			out[n + (big_endian ? 1 : 0)] = (uint8_t)units[i];
			n += 2;
		}
	}
	return (int)n;
}

char *vhd_utf16_to_utf8(const uint8_t *in, size_t len, bool big_endian)
{
	/* Worst case: 3 UTF-8 bytes per UTF-16 unit. */
	char *out = malloc(len / 2 * 3 + 1);
	size_t n = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t c = big_endian ? (uint32_t)(in[i] << 8 | in[i + 1]) :
					  (uint32_t)(in[i + 1] << 8 | in[i]);

		if (c == 0)
			break;
		if (c >= 0xd800 && c <= 0xdbff) {
			uint32_t lo;

			if (i + 3 >= len)
				goto bad;
			lo = big_endian ? (uint32_t)(in[i + 2] << 8 | in[i + 3]) :
					  (uint32_t)(in[i + 3] << 8 | in[i + 2]);
			if (lo < 0xdc00 || lo > 0xdfff)
				goto bad;
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if (c >= 0xdc00 && c <= 0xdfff) {
			goto bad;
		}
		if (c < 0x80) {
			out[n++] = (char)c;
		} else if (c < 0x800) {
			out[n++] = (char)(0xc0 | (c >> 6));
			out[n++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			out[n++] = (char)(0xe0 | (c >> 12));
			out[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[n++] = (char)(0x80 | (c & 0x3f));
		} else {
			/* 4 bytes from 2 units: still within the 3-per-unit bound. */
			out[n++] = (char)(0xf0 | (c >> 18));
			out[n++] = (char)(0x80 | ((c >> 12) & 0x3f));
			out[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	out[n] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Turn a decoded locator into a plain relative or absolute POSIX path. */
static char *normalize_locator_path(char *s)
{
	char *p = s;
	char *r;

	if (!s)
		return NULL;
	for (char *q = s; *q; q++)
		if (*q == '\\')
			*q = '/';
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (!*p || strlen(p) >= PATH_MAX) {
		free(s);
		return NULL;
	}
	r = strdup(p);
	free(s);
	return r;
}

char *vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len)
{
	char *s;

	switch (code) {
	case VHD_LOC_W2RU:
	case VHD_LOC_W2KU:
		return normalize_locator_path(vhd_utf16_to_utf8(data, len, false));
	case VHD_LOC_MACX:
		s = strndup((const char *)data, len);
		if (!s)
			return NULL;
		if (!strncmp(s, "file://", 7)) {
			char *t = strdup(s + 7);

			free(s);
			s = t;
		}
		/* We write no %-escapes; a path needing them is refused. */
		if (s && strchr(s, '%')) {
			free(s);
			return NULL;
		}
		return normalize_locator_path(s);
	default:
		return NULL;
	}
}

uint32_t vhd_bit_run(const uint8_t *bm, uint32_t i, uint32_t max)
{
	bool v = vhd_bit_test(bm, i);
	uint8_t full = v ? 0xff : 0x00;
	uint32_t n = 0;

	while (n < max) {
		uint32_t j = i + n;

		if ((j & 7) == 0 && max - n >= 8 && bm[j >> 3] == full) {
			n += 8;
			continue;
		}
		if (vhd_bit_test(bm, j) != v)
			break;
		n++;
	}
	return n;
}

/* Metadata read: a range that reaches beyond the end of the file is corrupt. */
static int meta_pread(int fd, void *buf, size_t len, uint64_t off)
{
	int r = pread_full(fd, buf, len, off);

	return r == -ENODATA ? -EINVAL : r;
}

static bool range_in_file(uint64_t off, uint64_t len, uint64_t file_size)
{
	return off <= file_size && len <= file_size - off;
}

static void meta_range(struct vhd_meta *m, uint64_t off, uint64_t len,
		       const char *what)
{
	if (off >= m->file_size || len == 0 ||
	    m->n_meta >= sizeof(m->meta) / sizeof(m->meta[0]))
		return;
	if (len > m->file_size - off)
		len = m->file_size - off;
	m->meta[m->n_meta].off = off;
	m->meta[m->n_meta].len = len;
	m->meta[m->n_meta].what = what;
	m->n_meta++;
}

static int read_parent_locator(int fd, const struct vhd_meta *m, char **ret)
{
	/* Preference: relative forms first, they survive moving the SR. */
	static const uint32_t order[] = { VHD_LOC_W2RU, VHD_LOC_MACX,
					  VHD_LOC_W2KU };
	const struct vhd_dyn_header *h = &m->header;

	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		for (int i = 0; i < 8; i++) {
			const struct vhd_locator *l = &h->loc[i];
			CLEANUP_FREE uint8_t *data = NULL;
			char *path;
			int r;

			if (l->code != order[o])
				continue;
			if (l->data_len == 0 || l->data_len > VHD_LOC_MAX_LEN ||
			    !range_in_file(l->data_offset, l->data_len,
					   m->file_size)) {
				log_warn("vhd: invalid parent locator %d", i);
				continue;
			}
			data = malloc(l->data_len);
			if (!data)
				return -ENOMEM;
			r = meta_pread(fd, data, l->data_len, l->data_offset);
			if (r < 0)
				return r;
			path = vhd_locator_decode(l->code, data, l->data_len);
			if (!path) {
				log_warn("vhd: undecodable parent locator %d", i);
				continue;
			}
			*ret = path;
			return 0;
		}
	}
	/* Fall back on the bare parent name. */
	{
		char *name = vhd_utf16_to_utf8(h->parent_name,
					       sizeof(h->parent_name), true);

		name = normalize_locator_path(name);
		if (name) {
			*ret = name;
			return 0;
		}
	}
	return -EINVAL;
}

void vhd_meta_release(struct vhd_meta *m)
{
	if (!m)
		return;
	free(m->parent);
	m->parent = NULL;
}

int vhd_meta_read(int fd, struct vhd_meta *ret)
{
	uint8_t buf[VHD_DYN_HEADER_SIZE];
	struct vhd_footer copy, end;
	struct vhd_meta m;
	struct stat st;
	int r_copy = -EINVAL, r_end = -EINVAL, r;
	uint64_t entries, bat_len;

	memset(&m, 0, sizeof(m));
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;
	m.file_size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t e = lseek(fd, 0, SEEK_END);

		if (e < 0)
			return -errno;
		m.file_size = (uint64_t)e;
	}
	if (m.file_size < VHD_FOOTER_SIZE)
		return -EINVAL;

	r = meta_pread(fd, buf, VHD_FOOTER_SIZE, 0);
	if (r < 0)
		return r;
	r_copy = vhd_footer_parse(buf, &copy);
	r = meta_pread(fd, buf, VHD_FOOTER_SIZE, m.file_size - VHD_FOOTER_SIZE);
	if (r < 0)
		return r;
	r_end = vhd_footer_parse(buf, &end);
	if (r_end == 0) {
		m.footer = end;
	} else if (r_copy == 0 && copy.type != VHD_TYPE_FIXED) {
		/* A crash while the file grew: the copy is authoritative. */
		log_warn("vhd: footer at end of file invalid, using the copy");
		m.footer = copy;
		m.footer_from_copy = true;
	} else {
		return r_copy == -ENOTSUP || r_end == -ENOTSUP ? -ENOTSUP :
								 -EINVAL;
	}
	m.copy_bad = r_copy != 0;
	if (r_copy == 0 && r_end == 0 &&
	    (copy.type != end.type || copy.current_size != end.current_size ||
	     memcmp(copy.uuid, end.uuid, 16))) {
		log_error("vhd: footer and its copy disagree");
		return -EINVAL;
	}

	if (m.footer.type == VHD_TYPE_FIXED) {
		if (m.footer.current_size > m.file_size - VHD_FOOTER_SIZE)
			return -EINVAL;
		m.meta_end = m.footer.current_size;
		*ret = m;
		return 0;
	}

	if (m.copy_bad && !m.footer_from_copy)
		log_warn("vhd: footer copy at offset 0 invalid");
	if (!range_in_file(m.footer.data_offset, VHD_DYN_HEADER_SIZE,
			   m.file_size))
		return -EINVAL;
	r = meta_pread(fd, buf, VHD_DYN_HEADER_SIZE, m.footer.data_offset);
	if (r < 0)
		return r;
	r = vhd_dyn_header_parse(buf, &m.header);
	if (r < 0)
		return r;

	entries = div_round_up(m.footer.current_size, m.header.block_size);
	if (m.header.max_table_entries < entries)
		return -EINVAL;
	if (entries > VHD_MAX_BLOCKS) {
		log_error("vhd: %" PRIu64 " blocks of %u bytes: more than the %u supported",
			  entries, m.header.block_size, VHD_MAX_BLOCKS);
		return -EINVAL;
	}
	/*
	 * Only the entries that map the disk are used, but the whole table
	 * the header declares must be in the file.
	 */
	if (!range_in_file(m.header.table_offset,
			   (uint64_t)m.header.max_table_entries * 4, m.file_size))
		return -EINVAL;
	bat_len = round_up(entries * 4, VHD_SECTOR);
	if (!range_in_file(m.header.table_offset, bat_len, m.file_size))
		return -EINVAL;
	/* The BAT must not overlap the footer copy or the dynamic header. */
	if (m.header.table_offset < m.footer.data_offset + VHD_DYN_HEADER_SIZE &&
	    m.header.table_offset + bat_len > m.footer.data_offset)
		return -EINVAL;
	m.meta_end = m.footer.data_offset + VHD_DYN_HEADER_SIZE;
	if (m.header.table_offset + bat_len > m.meta_end)
		m.meta_end = m.header.table_offset + bat_len;
	meta_range(&m, 0, VHD_FOOTER_SIZE, "footer copy");
	meta_range(&m, m.footer.data_offset, VHD_DYN_HEADER_SIZE,
		   "dynamic header");
	meta_range(&m, m.header.table_offset,
		   round_up((uint64_t)m.header.max_table_entries * 4, VHD_SECTOR),
		   "BAT");

	if (m.footer.type == VHD_TYPE_DIFF) {
		for (int i = 0; i < 8; i++) {
			const struct vhd_locator *l = &m.header.loc[i];
			uint64_t space;

			if (!l->code)
				continue;
			/*
			 * data_space is sectors in the spec but bytes in
			 * what Windows and blktap write: take the larger
			 * reading that stays inside the file.
			 */
			space = round_up(l->data_len, VHD_SECTOR);
			if ((uint64_t)l->data_space * VHD_SECTOR > space &&
			    range_in_file(l->data_offset,
					  (uint64_t)l->data_space * VHD_SECTOR,
					  m.file_size))
				space = (uint64_t)l->data_space * VHD_SECTOR;
			else if (l->data_space > space &&
				 range_in_file(l->data_offset, l->data_space,
					       m.file_size))
				space = round_up(l->data_space, VHD_SECTOR);
			if (range_in_file(l->data_offset, space, m.file_size) &&
			    l->data_offset + space > m.meta_end)
				m.meta_end = l->data_offset + space;
			/* What must be kept: the locator's bytes (its
			 * reserved space is ambiguous, see above). */
			meta_range(&m, l->data_offset,
				   round_up(l->data_len, VHD_SECTOR),
				   "parent locator");
		}
		r = read_parent_locator(fd, &m, &m.parent);
		if (r < 0) {
			log_error("vhd: differencing image without a usable parent locator");
			return r;
		}
	}
	*ret = m;
	return 0;
}

int vhd_read_info(const char *path, struct vhd_info *ret)
{
	CLEANUP_CLOSE int fd = -1;
	struct vhd_meta m;
	struct vhd_info info;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = vhd_meta_read(fd, &m);
	if (r < 0)
		return r;
	memset(&info, 0, sizeof(info));
	info.type = (enum vhd_type)m.footer.type;
	info.size = m.footer.current_size;
	memcpy(info.uuid, m.footer.uuid, 16);
	info.timestamp = m.footer.timestamp;
	if (m.footer.type != VHD_TYPE_FIXED)
		info.block_size = m.header.block_size;
	if (m.footer.type == VHD_TYPE_DIFF) {
		memcpy(info.parent_uuid, m.header.parent_uuid, 16);
		info.parent_timestamp = m.header.parent_timestamp;
		info.parent = TAKE_PTR(m.parent);
	}
	vhd_meta_release(&m);
	*ret = info;
	return 0;
}

void vhd_info_release(struct vhd_info *info)
{
	if (!info)
		return;
	free(info->parent);
	info->parent = NULL;
}
