/* SPDX-License-Identifier: LGPL-2.1-only */
/* Making, chaining and resizing image files (qemu-img, and our VHD writer). */
#ifndef VOLUME_QEMU_IMG_H
#define VOLUME_QEMU_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "sr.h"

/* A new empty image images/<id>.<ext> of 'size' bytes, durable. */
int qimg_create(struct sr *sr, enum sr_fmt fmt, const char *id,
		uint64_t size, const char *preallocation, char *msg,
		size_t len);
/*
 * A new image images/<id>.<ext> whose backing file is the parent image.
 * The overlay's format: VHD over VHD, qcow2 over qcow2 and raw.
 * *ret_fmt says which was made.  size: the parent's virtual size, from
 * its record; 0 when unknown (qemu-img then opens the parent's whole
 * chain to learn it, which grows with the chain's depth).
 */
int qimg_create_overlay(struct sr *sr, const char *id, const char *parent_id,
			enum sr_fmt parent_fmt, uint64_t size,
			enum sr_fmt *ret_fmt, char *msg, size_t len);
int qimg_resize(struct sr *sr, const char *id, enum sr_fmt fmt,
		uint64_t new_size, char *msg, size_t len);
/* qemu-img info: the virtual size in bytes. */
int qimg_virtual_size(struct sr *sr, const char *id, enum sr_fmt fmt,
		      uint64_t *ret);
void qimg_path(struct sr *sr, const char *id, enum sr_fmt fmt, char *out,
		size_t len);

/*
 * Free clusters a killed writer allocated but never referenced (qemu-img
 * check -r leaks), before the image becomes an immutable snapshot.  Only
 * for qcow2; -EUCLEAN when the image is corrupt (msg says how).
 */
int qimg_repair_leaks(struct sr *sr, const char *id, enum sr_fmt fmt,
		      char *msg, size_t len);

#endif
