/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * JSON in and out of a plugin call (json-c).
 *
 * Ownership (json-c): json_object_object_get_ex() returns a borrowed
 * reference; json_object_object_add()/json_object_array_add() take
 * ownership of the value; anything else you create you json_object_put().
 *
 * The typed getters return 0, -ENOENT (missing key) or -EINVAL (wrong type
 * or value out of range) and never log: the caller words the error.
 */
#ifndef JSON_IO_H
#define JSON_IO_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQUEST_MAX (1024 * 1024)	/* largest stdin we accept */

/* Read fd to EOF (at most max bytes) and parse exactly one JSON object. */
int json_read_request(int fd, size_t max, json_object **ret);
/* Parse a buffer holding exactly one JSON value, not null (trailing white
 * space allowed). */
int json_parse_exact(const char *buf, size_t len, json_object **ret);

int json_get_string(json_object *obj, const char *key, const char **ret);
/* INT64_MIN and INT64_MAX are refused: json-c clamps overflow to them. */
int json_get_int64(json_object *obj, const char *key, int64_t *ret);
int json_get_bool(json_object *obj, const char *key, bool *ret);
/* An object whose values are all strings (xapi's (string * string) list). */
int json_get_string_map(json_object *obj, const char *key, json_object **ret);

/* Add helpers that cannot fail silently: they abort on OOM (json-c would
 * return NULL objects and we would emit wrong JSON). */
void json_add_string(json_object *obj, const char *key, const char *val);
void json_add_int64(json_object *obj, const char *key, int64_t val);
void json_add_bool(json_object *obj, const char *key, bool val);
void json_add(json_object *obj, const char *key, json_object *val);
/* Counters kept in an object, one per key ("" is not counted): how many
 * records name an image, for instance. */
void json_count(json_object *counts, const char *key);
int64_t json_counted(json_object *counts, const char *key);
json_object *json_new_object(void);
json_object *json_new_array(void);
json_object *json_new_string(const char *s);

/* Serialise compactly (one line); the string lives as long as obj. */
const char *json_to_text(json_object *obj);

/* Write the whole value to fd followed by a newline. */
int json_write(int fd, json_object *obj);

#endif
