/* SPDX-License-Identifier: LGPL-2.1-only */
/* Checks for names that come from outside, and UUIDs. */
#ifndef NAMES_H
#define NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STR_LEN 37		/* 36 chars + NUL */
/*
 * Sizes of free text from xapi.  Generous for what people write (multi-line
 * descriptions of imported VMs, free-text tags), bounded so that a record
 * holding the worst case still fits under RECORD_WRITE_MAX (sr.h), which
 * is itself below what the reader accepts.
 */
#define TEXT_MAX (16 * 1024)	/* longest name/description/key value, bytes */
#define KEY_NAME_MAX 1024	/* longest Volume.set key, bytes */

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
 * UTF-8 without NUL, at most max bytes.  Newlines, tabs and other control
 * characters are text like any other (JSON escapes them); it is never used
 * as a path.  Returns NULL when valid, else a reason.
 */
const char *text_check(const char *s, size_t len, size_t max);

/*
 * Make the NUL-terminated string s (in a buffer of size bytes) valid UTF-8
 * in place: an invalid byte becomes '?', and a sequence cut short at the
 * end (by truncation) is dropped.
 */
void utf8_sanitize(char *s, size_t size);

/* A Volume.set key: 1..KEY_NAME_MAX bytes of UTF-8 text without NUL
 * (xapi sends "tags"^<free-text tag>).  Never used as a path. */
const char *key_name_check(const char *s, size_t len);

#endif
