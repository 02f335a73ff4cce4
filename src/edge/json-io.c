/* SPDX-License-Identifier: LGPL-2.1-only */
/* JSON request parsing, typed getters and result writing (json-c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fileio.h"
#include "json-io.h"

int json_parse_exact(const char *buf, size_t len, json_object **ret)
{
	json_tokener *tok;
	json_object *obj;
	size_t used;

	if (len > REQUEST_MAX || memchr(buf, '\0', len))
		return -EINVAL;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		json_tokener_free(tok);
		return -EINVAL;
	}
	used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* exactly one value: only white space may follow */
	for (; used < len; used++) {
		if (!strchr(" \t\r\n", buf[used])) {
			json_object_put(obj);
			return -EINVAL;
		}
	}
	*ret = obj;
	return 0;
}

int json_read_request(int fd, size_t max, json_object **ret)
{
	CLEANUP_FREE char *buf = NULL;
	json_object *obj;
	size_t len;
	int r;

	r = read_all(fd, max, &buf, &len);
	if (r < 0)
		return r;
	r = json_parse_exact(buf, len, &obj);
	if (r < 0)
		return r;
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return -EINVAL;
	}
	*ret = obj;
	return 0;
}

int json_get_string(json_object *obj, const char *key, const char **ret)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	/* A JSON "\u0000" would silently truncate the C string: refuse it. */
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		return -EINVAL;
	*ret = json_object_get_string(v);
	return 0;
}

int json_get_int64(json_object *obj, const char *key, int64_t *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return -ENOENT;
	/* xapi sends integers; a float or a string is a caller bug */
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	/* json-c silently clamps out-of-range numbers to INT64_MIN/MAX, so
	 * those two values cannot be told from overflow: refuse them (no
	 * size or offset is ever that large) */
	*ret = json_object_get_int64(v);
	if (*ret == INT64_MAX || *ret == INT64_MIN)
		return -EINVAL;
	return 0;
}

int json_get_bool(json_object *obj, const char *key, bool *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return -EINVAL;
	*ret = json_object_get_boolean(v);
	return 0;
}

int json_get_string_map(json_object *obj, const char *key, json_object **ret)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_object))
		return -EINVAL;
	json_object_object_foreach(v, k, val) {
		(void)k;
		if (!val || !json_object_is_type(val, json_type_string))
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

static json_object *checked(json_object *o)
{
	if (!o) {
		fputs("out of memory\n", stderr);
		abort();
	}
	return o;
}

void json_count(json_object *counts, const char *key)
{
	json_object *v;

	if (!key[0])
		return;
	if (json_object_object_get_ex(counts, key, &v))
		json_object_set_int64(v, json_object_get_int64(v) + 1);
	else
		json_add_int64(counts, key, 1);
}

int64_t json_counted(json_object *counts, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(counts, key, &v) ?
		       json_object_get_int64(v) : 0;
}

json_object *json_new_object(void)
{
	return checked(json_object_new_object());
}

json_object *json_new_array(void)
{
	return checked(json_object_new_array());
}

json_object *json_new_string(const char *s)
{
	return checked(json_object_new_string(s));
}

void json_add(json_object *obj, const char *key, json_object *val)
{
	if (json_object_object_add(obj, key, val) < 0)
		checked(NULL);
}

void json_add_string(json_object *obj, const char *key, const char *val)
{
	json_add(obj, key, json_new_string(val));
}

void json_add_int64(json_object *obj, const char *key, int64_t val)
{
	json_add(obj, key, checked(json_object_new_int64(val)));
}

void json_add_bool(json_object *obj, const char *key, bool val)
{
	json_add(obj, key, checked(json_object_new_boolean(val)));
}

const char *json_to_text(json_object *obj)
{
	return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
}

int json_write(int fd, json_object *obj)
{
	const char *s = obj ? json_to_text(obj) : "null";
	CLEANUP_FREE char *line = NULL;

	if (asprintf(&line, "%s\n", s) < 0)
		return -ENOMEM;
	return write_all(fd, line, strlen(line));
}
