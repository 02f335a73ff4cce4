/* SPDX-License-Identifier: LGPL-2.1-only */
/* Checks for names that come from outside, and UUIDs. */
#ifndef NAMES_H
#define NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STR_LEN 37		/* 36 chars + NUL */
#define TEXT_MAX 1024		/* longest name/description/key value, bytes */
#define KEY_NAME_MAX 256	/* longest Volume.set key, bytes */

bool uuid_is_valid(const char *s);
/* Random (version 4) UUID from getrandom(). */
int uuid_generate(char out[UUID_STR_LEN]);

/*
 * A volume key as we mint them: a lower-case UUID.  Rejects '/', "..", NUL
 * (impossible in a C string: the JSON layer rejects embedded NULs) and
 * anything else, so a key can never escape the SR directory.
 */
bool volume_key_is_valid(const char *s);

/*
 * Free text stored in metadata (names, descriptions, key values): valid
 * UTF-8, no control characters except tab, at most max bytes.  It is never
 * used as a path.  Returns NULL when valid, else a reason.
 */
const char *text_check(const char *s, size_t len, size_t max);

/* A Volume.set key: 1..KEY_NAME_MAX printable ASCII bytes. */
const char *key_name_check(const char *s, size_t len);

#endif
