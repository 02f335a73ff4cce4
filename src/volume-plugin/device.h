/* SPDX-License-Identifier: LGPL-2.1-only */
/* Block devices and filesystems: probing (libblkid), mkfs, mount, wipe. */
#ifndef VOLUME_DEVICE_H
#define VOLUME_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "volume-plugin.h"

struct device_content {
	char type[32];		/* superblock type ("ext4", "xfs", ...) or "" */
	char pttype[32];	/* partition table type ("gpt", "dos") or "" */
	char uuid[64];
	char label[64];
	bool ambivalent;	/* several signatures: refuse without force */
};

/* "file:///dev/sdb" or "/dev/sdb" → "/dev/sdb"; -EINVAL if neither. */
int device_path_from_config(const char *value, char *out, size_t len);
/* Must exist and be a block device; words the error into msg. */
int device_check_block(const char *dev, char *msg, size_t len);
/* 0 free, -EBUSY mounted or claimed (O_EXCL open fails). */
int device_check_unused(const char *dev);
int device_probe(const char *dev, struct device_content *ret);
/* Find the device holding the filesystem with this UUID (libblkid). */
int device_find_by_uuid(const char *uuid, char *out, size_t len);
int device_wipe(const char *dev);

const char *fs_name(enum fs_kind fs);	/* "ext4", "xfs" */
const char *fs_label(enum fs_kind fs);	/* label we give our SRs */
int fs_mkfs(enum fs_kind fs, const char *dev, const char *uuid, char *msg,
	    size_t len);
int fs_mount(enum fs_kind fs, const char *dev, const char *dir, bool readonly,
	     char *msg, size_t len);
int fs_umount(const char *dir, char *msg, size_t len);

/* Mount table lookups (/proc/self/mountinfo). */
/* 1 and the source device when dir is a mount point, 0 if not. */
int mount_source_of(const char *dir, char *src, size_t len);
/* 1 and the mount point when the device is mounted somewhere, 0 if not. */
int mount_point_of_device(const char *dev, char *dir, size_t len);

#endif
