/* SPDX-License-Identifier: LGPL-2.1-only */
/* Block devices and filesystems: libblkid probes, mkfs, mount, wipe. */
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "device.h"
#include "fileio.h"
#include "log.h"
#include "proc.h"

int device_path_from_config(const char *value, char *out, size_t len)
{
	if (!strncmp(value, "file://", 7))
		value += 7;
	if (value[0] != '/' || strstr(value, "/../") || strlen(value) >= len)
		return -EINVAL;
	snprintf(out, len, "%s", value);
	return 0;
}

int device_check_block(const char *dev, char *msg, size_t len)
{
	struct stat st;

	if (stat(dev, &st) < 0) {
		snprintf(msg, len, "the device %s does not exist", dev);
		return -ENODEV;
	}
	if (!S_ISBLK(st.st_mode)) {
		snprintf(msg, len, "%s is not a block device", dev);
		return -ENOTBLK;
	}
	return 0;
}

int device_check_unused(const char *dev)
{
	/* On Linux, O_EXCL on a block device fails with EBUSY while it is
	 * mounted or claimed by another holder (md, dm, swap...). */
	int fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);

	if (fd < 0)
		return errno == EBUSY ? -EBUSY : -errno;
	close(fd);
	return 0;
}

static void copy_value(blkid_probe pr, const char *name, char *out,
		       size_t len)
{
	const char *v = NULL;

	out[0] = '\0';
	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		snprintf(out, len, "%s", v);
}

int device_probe(const char *dev, struct device_content *ret)
{
	blkid_probe pr = blkid_new_probe_from_filename(dev);
	int rc;

	memset(ret, 0, sizeof(*ret));
	if (!pr)
		return -errno ? -errno : -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE |
					  BLKID_SUBLKS_UUID |
					  BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, 1);
	rc = blkid_do_safeprobe(pr);
	if (rc == -2) {
		ret->ambivalent = true;
	} else if (rc == 0) {
		copy_value(pr, "TYPE", ret->type, sizeof(ret->type));
		copy_value(pr, "PTTYPE", ret->pttype, sizeof(ret->pttype));
		copy_value(pr, "UUID", ret->uuid, sizeof(ret->uuid));
		copy_value(pr, "LABEL", ret->label, sizeof(ret->label));
	}
	blkid_free_probe(pr);
	return rc == -1 ? -EIO : 0;
}

int device_find_by_uuid(const char *uuid, char *out, size_t len)
{
	char *dev = blkid_evaluate_tag("UUID", uuid, NULL);

	if (!dev)
		return -ENODEV;
	snprintf(out, len, "%s", dev);
	free(dev);
	return 0;
}

int device_wipe(const char *dev)
{
	CLEANUP_CLOSE int fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	blkid_probe pr;
	int r = 0;

	if (fd < 0)
		return -errno;
	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		blkid_free_probe(pr);
		return -EIO;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC |
					  BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	while (blkid_do_probe(pr) == 0) {
		if (blkid_do_wipe(pr, 0) < 0) {
			r = -EIO;
			break;
		}
	}
	blkid_free_probe(pr);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

const char *fs_name(enum fs_kind fs)
{
	return fs == FS_EXT4 ? "ext4" : "xfs";
}

const char *fs_label(enum fs_kind fs)
{
	return fs == FS_EXT4 ? "ext4-ng" : "xfs-ng";
}

int fs_mkfs(enum fs_kind fs, const char *dev, const char *uuid, char *msg,
	    size_t len)
{
	char uuidopt[64];
	int r;

	if (fs == FS_EXT4) {
		/* -m 0: no blocks reserved for root on a VM-image store;
		 * the SR uuid becomes the filesystem uuid so attach can
		 * find the device even if its name changes. */
		const char *const argv[] = { "mkfs.ext4", "-F", "-q", "-m", "0",
					     "-U", uuid, "-L", fs_label(fs),
					     dev, NULL };

		r = proc_run_checked(argv, msg, len);
	} else {
		/* reflink=1: cheap file clones are possible later */
		const char *const argv[] = { "mkfs.xfs", "-f", "-q", "-m",
					     uuidopt, "-L", fs_label(fs), dev,
					     NULL };

		snprintf(uuidopt, sizeof(uuidopt), "uuid=%s,reflink=1", uuid);
		r = proc_run_checked(argv, msg, len);
	}
	return r;
}

int fs_mount(enum fs_kind fs, const char *dev, const char *dir, bool readonly,
	     char *msg, size_t len)
{
	/* noatime: reads must not write inode updates; ext4 remounts
	 * read-only on errors so a failing disk stops taking writes (SR.stat
	 * then reports it). Read-only probes must not replay journals. */
	const char *opts = fs == FS_EXT4 ?
		(readonly ? "ro,noload" : "noatime,errors=remount-ro") :
		(readonly ? "ro,norecovery" : "noatime");
	const char *const argv[] = { "mount", "-t", fs_name(fs), "-o", opts,
				     dev, dir, NULL };

	return proc_run_checked(argv, msg, len);
}

int fs_umount(const char *dir, char *msg, size_t len)
{
	const char *const argv[] = { "umount", dir, NULL };

	return proc_run_checked(argv, msg, len);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] &&
		    s[3]) {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Calls fn(mountpoint, source, devno) for each mount; stops when fn != 0. */
static int foreach_mount(int (*fn)(const char *mp, const char *src,
				   dev_t devno, void *ctx),
			 void *ctx)
{
	CLEANUP_FREE char *buf = NULL;
	char *line, *save = NULL;
	int r;

	r = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 16 << 20, &buf,
			 NULL);
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char mp[4096], src[4096];
		unsigned int maj, min;
		char *sep;

		/* id parent maj:min root mountpoint opts ... - fstype source */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mp) != 3)
			continue;
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%*s %4095s", src) != 1)
			src[0] = '\0';
		unescape(mp);
		unescape(src);
		r = fn(mp, src, makedev(maj, min), ctx);
		if (r)
			return r;
	}
	return 0;
}

struct mp_query {
	const char *want;
	dev_t devno;
	char *out;
	size_t len;
};

static int match_dir(const char *mp, const char *src, dev_t devno, void *ctx)
{
	struct mp_query *q = ctx;

	(void)devno;
	if (strcmp(mp, q->want))
		return 0;
	snprintf(q->out, q->len, "%s", src);
	return 1;
}

int mount_source_of(const char *dir, char *src, size_t len)
{
	struct mp_query q = { .want = dir, .out = src, .len = len };
	char real[PATH_MAX];

	/* mountinfo names the resolved path: /var/run is a symlink to /run
	 * on XCP-ng and Debian, and the SR handle is /var/run/sr-mount/... */
	if (realpath(dir, real))
		q.want = real;
	return foreach_mount(match_dir, &q);
}

static int match_dev(const char *mp, const char *src, dev_t devno, void *ctx)
{
	struct mp_query *q = ctx;

	(void)src;
	if (devno != q->devno)
		return 0;
	snprintf(q->out, q->len, "%s", mp);
	return 1;
}

int mount_point_of_device(const char *dev, char *dir, size_t len)
{
	struct mp_query q = { .out = dir, .len = len };
	struct stat st;

	if (stat(dev, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0;
	q.devno = st.st_rdev;
	return foreach_mount(match_dev, &q);
}
