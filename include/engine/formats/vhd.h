/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * VHD (Microsoft Virtual Hard Disk v1, qemu's "vpc"): the on-disk layout
 * (src/formats/vhd-layout.c: parse, build and validate the footer and
 * dynamic header, read the metadata, locators, bitmaps; vhd_read_info for
 * the volume plugins) and image creation (src/formats/vhd-create.c, which
 * builds on the layout code).  The datapath engine is format_vhd in
 * format.h (src/formats/vhd.c), also a user of the layout code.
 */
#ifndef FORMATS_VHD_H
#define FORMATS_VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHD_COOKIE		"conectix"	/* footer */
#define VHD_DYN_COOKIE		"cxsparse"	/* dynamic header */
#define VHD_VERSION		0x00010000u
#define VHD_SECTOR		512u
#define VHD_FOOTER_SIZE		512u
#define VHD_DYN_HEADER_SIZE	1024u
#define VHD_MAX_SIZE		(2040ull << 30)	/* 2040 GiB */
#define VHD_DEFAULT_BLOCK_SIZE	(2u << 20)	/* 2 MiB */
#define VHD_MIN_BLOCK_SIZE	512u
#define VHD_MAX_BLOCK_SIZE	(256u << 20)
#define VHD_BAT_UNUSED		0xffffffffu
/*
 * Most blocks an image may have: the engine keeps 12 bytes per block in
 * memory.  2040 GiB needs blocks of 128 KiB or more (qemu and blktap use
 * 2 MiB).
 */
#define VHD_MAX_BLOCKS		(1u << 24)

enum vhd_type {
	VHD_TYPE_FIXED = 2,
	VHD_TYPE_DYNAMIC = 3,
	VHD_TYPE_DIFF = 4,
};

struct vhd_info {
	enum vhd_type type;
	uint64_t size;			/* virtual size in bytes */
	uint32_t block_size;		/* 0 for fixed images */
	uint8_t uuid[16];
	uint32_t timestamp;		/* seconds since 2000-01-01 UTC */
	/* Differencing only (zeroed otherwise). */
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	char *parent;			/* malloc'ed locator path, or NULL */
};

/* ---- creation (vhd-create.c) ---- */

/*
 * Create a dynamic (sparse) VHD of exactly 'size' bytes at 'path'.
 * block_size 0 means 2 MiB; otherwise a power of two in [512, 256 MiB].
 * The file is written under a temporary name, fsync'ed and renamed into
 * place; an existing 'path' is replaced.  Returns 0, -EINVAL (size 0 or not
 * a multiple of 512, bad block size), -EFBIG (> 2040 GiB) or -errno.
 */
int vhd_create_dynamic(const char *path, uint64_t size, uint32_t block_size);

/*
 * Create a differencing VHD at 'path' whose parent is the VHD at
 * 'parent_path'.  The child gets the parent's size and block size, the
 * parent's uuid and footer timestamp, its name as parent_unicode_name, and
 * three parent locators: W2ru (relative to the child's directory, UTF-16LE),
 * MacX ("file://./name", UTF-8) and W2ku (absolute, UTF-16LE).
 */
int vhd_create_differencing(const char *path, const char *parent_path);

/*
 * How a differencing image names its parent: the parent fields of the
 * dynamic header and the data of its three locators (W2ru, MacX, W2ku, as
 * vhd_create_differencing writes them).
 */
#define VHD_PARENT_LOCS 3
struct vhd_locator_data {
	uint32_t code;
	uint8_t *data;		/* malloc'ed */
	size_t len;
};
struct vhd_parent_ref {
	struct vhd_locator_data locs[VHD_PARENT_LOCS];
};
struct vhd_footer;
struct vhd_dyn_header;
/*
 * Set h's parent uuid, timestamp (pf's, the parent's footer) and unicode
 * name, and build the locators' data for the parent 'parent_abs' (absolute,
 * canonical) of a child in directory 'child_dir'.  Locator placement
 * (h->loc) is left to the caller.  Release ret with vhd_parent_ref_release.
 */
int vhd_parent_ref_build(const char *child_dir, const char *parent_abs,
			 const struct vhd_footer *pf, struct vhd_dyn_header *h,
			 struct vhd_parent_ref *ret);
void vhd_parent_ref_release(struct vhd_parent_ref *p);

/*
 * Relative path from directory 'from_dir' to file 'to' (both absolute and
 * canonical), e.g. "./base.vhd" or "../a/base.vhd".  malloc'ed or NULL.
 * (For the W2ru locator.)
 */
char *vhd_relative_path(const char *from_dir, const char *to);

/* ---- inspection and layout (vhd-layout.c) ---- */

/*
 * Read and validate the footer (and dynamic header) of 'path'.  ret->parent
 * holds the preferred parent locator (relative when present) for
 * differencing images; free it with vhd_info_release().
 */
int vhd_read_info(const char *path, struct vhd_info *ret);
void vhd_info_release(struct vhd_info *info);

/* One's complement of the byte sum, skipping the 4-byte field at skip_off. */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip_off);

/* CHS geometry as packed in the footer (cylinders:16 heads:8 spt:8). */
uint32_t vhd_geometry(uint64_t size);


/* ---- on-disk structures, parsed (host byte order) ---- */

struct vhd_footer {
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;
	uint32_t timestamp;
	uint8_t creator_app[4];
	uint32_t creator_version;
	uint32_t creator_os;
	uint64_t original_size;
	uint64_t current_size;
	uint32_t geometry;
	uint32_t type;
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vhd_locator {
	uint32_t code;
	uint32_t data_space;
	uint32_t data_len;
	uint64_t data_offset;
};

struct vhd_dyn_header {
	uint64_t table_offset;
	uint32_t max_table_entries;
	uint32_t block_size;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint8_t parent_name[512];	/* UTF-16BE, as on disk */
	struct vhd_locator loc[8];
};

#define VHD_LOC_W2KU	0x57326b75u	/* "W2ku" */
#define VHD_LOC_W2RU	0x57327275u	/* "W2ru" */
#define VHD_LOC_MACX	0x4d616358u	/* "MacX" */

/* Parse/validate a 512-byte footer: 0, -EINVAL (corrupt) or -ENOTSUP. */
int vhd_footer_parse(const uint8_t *buf, struct vhd_footer *ret);
void vhd_footer_build(const struct vhd_footer *f, uint8_t *buf);
/* Parse/validate a 1024-byte dynamic header (not its offsets vs the file). */
int vhd_dyn_header_parse(const uint8_t *buf, struct vhd_dyn_header *ret);
void vhd_dyn_header_build(const struct vhd_dyn_header *h, uint8_t *buf);

/*
 * Everything but the BAT, read through a plain (buffered) fd and checked
 * against the file size.  parent: the decoded locator (W2ru, else MacX,
 * else W2ku, else parent_unicode_name), '\\' turned into '/', a leading
 * "./" removed.
 */
struct vhd_meta {
	struct vhd_footer footer;
	struct vhd_dyn_header header;	/* dynamic / differencing only */
	uint64_t file_size;
	bool footer_from_copy;		/* footer at EOF bad: used offset 0 */
	bool copy_bad;			/* no valid copy at offset 0 */
	uint64_t meta_end;		/* end of headers, BAT and locators */
	/*
	 * Where the metadata is (footer copy, dynamic header, the whole BAT
	 * the header declares, parent locators), clipped to the file; data
	 * blocks may not overlap it, nor the footer at the end of the file.
	 */
	struct vhd_range {
		uint64_t off, len;
		const char *what;
	} meta[11];
	unsigned int n_meta;
	char *parent;			/* differencing only, malloc'ed */
};
int vhd_meta_read(int fd, struct vhd_meta *ret);
void vhd_meta_release(struct vhd_meta *m);

/* Decode a locator's bytes into a malloc'ed UTF-8 path (NULL if invalid). */
char *vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len);
/* UTF-8 -> UTF-16 (big_endian or little), returns bytes written or -errno. */
int vhd_utf8_to_utf16(const char *s, uint8_t *out, size_t out_len,
		      bool big_endian);
/* UTF-16 -> malloc'ed UTF-8, stopping at a NUL code unit; NULL on error. */
char *vhd_utf16_to_utf8(const uint8_t *in, size_t len, bool big_endian);

/* Bitmap helpers: bit 7 of byte 0 is sector 0 (big-endian bit order). */
static inline bool vhd_bit_test(const uint8_t *bm, uint32_t i)
{
	return bm[i >> 3] & (0x80u >> (i & 7));
}

static inline void vhd_bit_set(uint8_t *bm, uint32_t i)
{
	bm[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

static inline void vhd_bit_clear(uint8_t *bm, uint32_t i)
{
	bm[i >> 3] &= (uint8_t)~(0x80u >> (i & 7));
}

/* Length of the run of equal bits starting at 'i', at most 'max'. */
uint32_t vhd_bit_run(const uint8_t *bm, uint32_t i, uint32_t max);

#endif
