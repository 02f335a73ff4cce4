/* SPDX-License-Identifier: LGPL-2.1-only */
/* Validation of names, keys and free text from outside; UUIDs. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "names.h"

bool uuid_is_valid(const char *s)
{
	int i;

	for (i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return s[36] == '\0';
}

int uuid_generate(char out[UUID_STR_LEN])
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return -EIO;
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	snprintf(out, UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

bool volume_key_is_valid(const char *s)
{
	int i;

	if (!uuid_is_valid(s))
		return false;
	for (i = 0; s[i]; i++)
		if (s[i] >= 'A' && s[i] <= 'F')
			return false;
	return true;
}

/* Length of the UTF-8 sequence at s (0 if invalid), checking overlongs. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

const char *text_check(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (len > max)
		return "is too long";
	while (i < len) {
		size_t n;

		if (p[i] == 0)
			return "contains a NUL byte";
		n = utf8_seq(p + i, len - i);
		if (!n)
			return "is not valid UTF-8";
		i += n;
	}
	return NULL;
}

void utf8_sanitize(char *s, size_t size)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strnlen(s, size), i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);

		if (n) {
			i += n;
			continue;
		}
		/* a valid lead byte whose sequence the end cut off */
		if (p[i] >= 0xc2 && p[i] <= 0xf4 && len - i < 4) {
			size_t j = i + 1;

			while (j < len && (p[j] & 0xc0) == 0x80)
				j++;
			if (j == len) {
				p[i] = '\0';
				return;
			}
		}
		p[i++] = '?';
	}
}

const char *key_name_check(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	return text_check(s, len, KEY_NAME_MAX);
}
