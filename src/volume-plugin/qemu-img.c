/* SPDX-License-Identifier: LGPL-2.1-only */
/* Making, chaining and resizing image files with qemu-img (argv, no shell). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "formats/vhd.h"
#include "json-io.h"
#include "log.h"
#include "proc.h"
#include "qemu-img.h"


void qimg_path(struct sr *sr, const char *id, enum sr_fmt fmt, char *out,
		size_t len)
{
	char name[64];

	sr_image_filename(id, fmt, name, sizeof(name));
	snprintf(out, len, "%s/images/%s", sr->path, name);
}

/* The new file must be on disk before a record may point at it. */
static int make_durable(struct sr *sr, const char *id, enum sr_fmt fmt)
{
	char name[64];
	CLEANUP_CLOSE int fd = -1;

	sr_image_filename(id, fmt, name, sizeof(name));
	fd = openat(sr->imagesfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return fsync_dir_at(sr->imagesfd, ".");
}

static void discard_file(struct sr *sr, const char *id, enum sr_fmt fmt)
{
	char name[64];

	sr_image_filename(id, fmt, name, sizeof(name));
	(void)unlinkat(sr->imagesfd, name, 0);
}

/*
 * qemu-img failed (exit status): was the SR full?  Asked of the filesystem
 * (less than 1 MiB left for us), before the half-written file is removed,
 * rather than read from qemu-img's wording.
 */
static int judge_failure(struct sr *sr, int r)
{
	struct statvfs sv;

	if (r == -EIO && fstatvfs(sr->imagesfd, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < 1024 * 1024)
		return -ENOSPC;
	return r;
}

int qimg_create(struct sr *sr, enum sr_fmt fmt, const char *id,
		uint64_t size, const char *preallocation, char *msg,
		size_t len)
{
	char path[PATH_MAX], sizestr[32], opts[128];
	int r;

	qimg_path(sr, id, fmt, path, sizeof(path));
	snprintf(sizestr, sizeof(sizestr), "%" PRIu64, size);
	if (fmt == FMT_QCOW2) {
		/* compat=1.1 (v3): zero clusters; 64 KiB clusters keep the
		 * whole L2 table of a 1 TiB disk in 128 MiB of datapath RAM */
		snprintf(opts, sizeof(opts), "compat=1.1,cluster_size=65536%s%s",
			 preallocation ? ",preallocation=" : "",
			 preallocation ? preallocation : "");
	} else if (fmt == FMT_VHD) {
		/* force_size: exactly 'size', not rounded to CHS geometry */
		snprintf(opts, sizeof(opts), "subformat=dynamic,force_size=on");
	} else {
		snprintf(opts, sizeof(opts), "preallocation=%s",
			 preallocation ? preallocation : "off");
	}
	{
		const char *const argv[] = { "qemu-img", "create", "-q", "-f",
					     sr_fmt_qemu(fmt), "-o", opts,
					     path, sizestr, NULL };

		r = judge_failure(sr, proc_run_checked(argv, msg, len));
	}
	if (r == 0)
		r = make_durable(sr, id, fmt);
	if (r < 0)
		discard_file(sr, id, fmt);
	return r;
}

int qimg_create_overlay(struct sr *sr, const char *id, const char *parent_id,
			enum sr_fmt parent_fmt, uint64_t size,
			enum sr_fmt *ret_fmt, char *msg, size_t len)
{
	char path[PATH_MAX], parent_name[64], sizestr[32];
	enum sr_fmt fmt = parent_fmt == FMT_VHD ? FMT_VHD : FMT_QCOW2;
	int r;

	qimg_path(sr, id, fmt, path, sizeof(path));
	/* backing names are relative: the SR can be mounted anywhere, and
	 * the datapath refuses backing files outside the SR */
	sr_image_filename(parent_id, parent_fmt, parent_name,
			  sizeof(parent_name));
	if (fmt == FMT_VHD) {
		char parent_path[PATH_MAX];

		qimg_path(sr, parent_id, parent_fmt, parent_path,
			  sizeof(parent_path));
		r = vhd_create_differencing(path, parent_path);
		if (r < 0)
			snprintf(msg, len, "cannot create a VHD differencing "
				 "image: %s", strerror(-r));
	} else {
		/*
		 * With the size given, -u: qemu-img does not open the parent
		 * (and its whole chain) to learn it.  Snapshots of a deep
		 * chain then cost what a first one does.
		 */
		const char *argv[16] = { "qemu-img", "create", "-q", "-f",
					 "qcow2", "-o", "compat=1.1", "-b",
					 parent_name, "-F",
					 sr_fmt_qemu(parent_fmt) };
		size_t n = 11;

		if (size)
			argv[n++] = "-u";
		argv[n++] = path;
		if (size) {
			snprintf(sizestr, sizeof(sizestr), "%" PRIu64, size);
			argv[n++] = sizestr;
		}
		argv[n] = NULL;
		r = judge_failure(sr, proc_run_checked(argv, msg, len));
	}
	if (r == 0)
		r = make_durable(sr, id, fmt);
	if (r < 0)
		discard_file(sr, id, fmt);
	else
		*ret_fmt = fmt;
	return r;
}

int qimg_resize(struct sr *sr, const char *id, enum sr_fmt fmt,
		uint64_t new_size, char *msg, size_t len)
{
	char path[PATH_MAX], sizestr[32];
	const char *const argv[] = { "qemu-img", "resize", "-q", "-f",
				     sr_fmt_qemu(fmt), path, sizestr, NULL };
	CLEANUP_CLOSE int fd = -1;
	int r;

	qimg_path(sr, id, fmt, path, sizeof(path));
	snprintf(sizestr, sizeof(sizestr), "%" PRIu64, new_size);
	r = judge_failure(sr, proc_run_checked(argv, msg, len));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int qimg_virtual_size(struct sr *sr, const char *id, enum sr_fmt fmt,
		      uint64_t *ret)
{
	char path[PATH_MAX];
	const char *const argv[] = { "qemu-img", "info", "--output=json", "-f",
				     sr_fmt_qemu(fmt), path, NULL };
	struct proc_result res;
	json_object *info = NULL;
	int64_t v;
	int r;

	qimg_path(sr, id, fmt, path, sizeof(path));
	r = proc_run(argv, &res);
	if (r == 0 && res.status != 0)
		r = -EIO;
	if (r == 0)
		r = json_parse_exact(res.out, strlen(res.out), &info);
	if (r == 0 && json_get_int64(info, "virtual-size", &v) == 0 && v >= 0)
		*ret = (uint64_t)v;
	else if (r == 0)
		r = -EIO;
	json_object_put(info);
	proc_result_release(&res);
	return r;
}

int qimg_repair_leaks(struct sr *sr, const char *id, enum sr_fmt fmt,
		      char *msg, size_t len)
{
	char path[PATH_MAX];
	const char *const argv[] = { "qemu-img", "check", "-q", "-r", "leaks",
				     "-f", sr_fmt_qemu(fmt), path, NULL };
	struct proc_result res;
	int r;

	if (fmt != FMT_QCOW2)	/* only qcow2 keeps refcounts that can leak */
		return 0;
	qimg_path(sr, id, fmt, path, sizeof(path));
	r = proc_run(argv, &res);
	/* qemu-img check: 0 clean (or repaired), 1 check failed, 2 corrupt,
	 * 3 leaks left */
	if (r == 0 && res.status != 0) {
		const char *e = res.err[0] ? res.err : res.out;

		snprintf(msg, len, "qemu-img check %s: %s%.300s",
			 res.status == 2 ? "found corruption" :
			 res.status == 3 ? "could not repair leaked clusters" :
			 "failed", e[0] ? "" : "no message", e);
		r = res.status == 2 ? -EUCLEAN : -EIO;
	} else if (r < 0) {
		snprintf(msg, len, "cannot run qemu-img: %s", strerror(-r));
	}
	proc_result_release(&res);
	return r;
}
