/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Activation records: .sr/active/<key>.json says which host and which
 * datapath server process serve a volume.  A record whose process is gone
 * (same host, PID dead or reused) is stale and ignored, so a crash never
 * leaves a volume locked forever.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "active.h"
#include "cleanup.h"
#include "json-io.h"
#include "log.h"
#include "sr.h"

int64_t process_starttime(pid_t pid)
{
	CLEANUP_FREE char *buf = NULL;
	char path[64];
	const char *p;
	int field;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file_at(AT_FDCWD, path, 8192, &buf, NULL) < 0)
		return -1;
	/* the command name may hold spaces and parentheses: skip past the
	 * last ')' and count fields from there (state is field 3) */
	p = strrchr(buf, ')');
	if (!p || strlen(p) < 3)
		return -1;
	/* a zombie has exited: it serves nothing (our parent may not have
	 * reaped it yet) */
	if (p[2] == 'Z' || p[2] == 'X')
		return -1;
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return *p ? strtoll(p, NULL, 10) : -1;
}

bool active_record_is_live(json_object *rec)
{
	const char *host = rec_str(rec, "host");
	int64_t pid = rec_int(rec, "pid");

	/* Another host: its server refreshes the record's mtime every 5 s
	 * (--heartbeat).  Silence for a minute means that host is gone, and
	 * its lock must not block the volume forever (xen-api#5521). */
	if (strcmp(host, host_paths()->host_uuid))
		return time(NULL) - rec_int(rec, "_mtime") < ACTIVE_STALE_S;
	return pid > 0 && process_starttime((pid_t)pid) == rec_int(rec,
								   "starttime");
}

int active_load(struct sr *sr, const char *key, json_object **ret)
{
	CLEANUP_FREE char *buf = NULL;
	char name[80];
	size_t len;
	int r;

	if (!volume_key_is_valid(key))
		return -EINVAL;
	snprintf(name, sizeof(name), ".sr/active/%s.json", key);
	r = read_file_at(sr->dirfd, name, 65536, &buf, &len);
	if (r < 0)
		return r;
	r = json_parse_exact(buf, len, ret);
	if (r == 0 && !json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		r = -EINVAL;
	}
	if (r == 0) {
		struct stat st;

		/* the heartbeat: not stored, read from the file */
		json_add_int64(*ret, "_mtime",
			       fstatat(sr->dirfd, name, &st, 0) == 0 ?
			       (int64_t)st.st_mtime : 0);
	}
	if (r < 0)
		log_warn("activation record of %s is unreadable; ignoring it",
			 key);
	return r;
}

int active_save(struct sr *sr, const char *key, json_object *rec)
{
	CLEANUP_CLOSE int fd = openat(sr->dirfd, ".sr/active",
				      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *text;
	char name[64];

	if (fd < 0)
		return -errno;
	json_object_object_del(rec, "_mtime");
	text = json_to_text(rec);
	snprintf(name, sizeof(name), "%s.json", key);
	return write_file_atomic_at(fd, name, text, strlen(text));
}

int active_remove(struct sr *sr, const char *key)
{
	CLEANUP_CLOSE int fd = openat(sr->dirfd, ".sr/active",
				      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char name[64];

	if (fd < 0)
		return -errno;
	snprintf(name, sizeof(name), "%s.json", key);
	return unlink_durable_at(fd, name);
}

int sr_volume_active(struct sr *sr, const char *key, json_object **ret)
{
	json_object *rec;
	int r = active_load(sr, key, &rec);

	if (r == -ENOENT || r == -EINVAL)
		return 0;
	if (r < 0)
		return r;
	if (!active_record_is_live(rec)) {
		json_object_put(rec);
		return 0;
	}
	if (ret)
		*ret = rec;
	else
		json_object_put(rec);
	return 1;
}

int sr_count_active(struct sr *sr, char *first_key, size_t len)
{
	int fd = openat(sr->dirfd, ".sr/active", O_RDONLY | O_DIRECTORY |
			O_CLOEXEC);
	CLEANUP_CLOSEDIR DIR *d = NULL;
	struct dirent *de;
	int count = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char key[UUID_STR_LEN];

		if (strlen(de->d_name) != 36 + 5 ||
		    strcmp(de->d_name + 36, ".json"))
			continue;
		snprintf(key, sizeof(key), "%.36s", de->d_name);
		if (sr_volume_active(sr, key, NULL) == 1) {
			if (count == 0 && first_key)
				snprintf(first_key, len, "%s", key);
			count++;
		}
	}
	return count;
}
