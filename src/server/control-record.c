/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The volume record, <SR>/meta/v-<key>.json, read for the core when a
 * suspend was not resumed in time (--volume-record).  Part of the daemon's
 * one JSON door with the control socket: the core gets a path and a
 * format name, never a JSON object.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "fileio.h"
#include "formats/bitmap.h"
#include "json-io.h"

/* what the plugins' reader accepts (sr.h RECORD_READ_MAX): they never
 * write a record larger than that */
#define RECORD_MAX		(1024 * 1024)

/* Read the volume record; *ret is the parsed object. */
static int record_load(const char *path, json_object **ret)
{
	char *buf = NULL;
	size_t len;
	int r = read_file_at(AT_FDCWD, path, RECORD_MAX, &buf, &len);

	if (r < 0)
		return r;
	r = json_parse_exact(buf, len, ret) < 0 ? -EBADMSG : 0;
	free(buf);
	if (r == 0 && !json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		r = -EBADMSG;
	}
	return r;
}

/* An image id as the SR writes them: no path separators, no dot files. */
static bool valid_image_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-' &&
		    id[i] != '_')
			return false;
	return true;
}

int control_record_image(const char *record, const char *sr_dir,
			 char *path, size_t len, const char **format)
{
	json_object *rec = NULL, *v;
	const char *id, *f = "qcow2";
	const char *ext;
	int r;

	r = record_load(record, &rec);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rec, "image", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !valid_image_id(id = json_object_get_string(v))) {
		json_object_put(rec);
		return -EBADMSG;
	}
	if (json_object_object_get_ex(rec, "image-format", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(rec);
			return -EBADMSG;
		}
		f = json_object_get_string(v);
	}
	if (!strcmp(f, "qcow2")) {
		ext = "qcow2";
		*format = "qcow2";
	} else if (!strcmp(f, "vhd") || !strcmp(f, "vpc")) {
		ext = "vhd";
		*format = "vpc";
	} else if (!strcmp(f, "raw")) {
		ext = "raw";
		*format = "raw";
	} else {
		json_object_put(rec);
		return -EBADMSG;
	}
	r = snprintf(path, len, "%s/images/%s.%s", sr_dir, id, ext) >=
	    (int)len ? -ENAMETOOLONG : 0;
	json_object_put(rec);
	return r;
}

int control_record_cbt(const char *record, char *name, size_t len)
{
	json_object *rec = NULL, *v;
	const char *n;
	int r = record_load(record, &rec);

	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rec, "cbt_bitmap", &v) ||
	    json_object_is_type(v, json_type_null)) {
		r = -ENOENT;
	} else if (!json_object_is_type(v, json_type_string) ||
		   !cbt_bitmap_name_ok(n = json_object_get_string(v)) ||
		   strlen(n) >= len) {
		r = -EBADMSG;
	} else {
		strcpy(name, n);
	}
	json_object_put(rec);
	return r;
}
