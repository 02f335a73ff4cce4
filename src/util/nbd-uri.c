/* SPDX-License-Identifier: LGPL-2.1-only */
/* Parsing the Unix-socket NBD URIs of storage migration (nbd-uri.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "nbd-uri.h"

#define URI_UNIX_PREFIX		"nbd+unix:///"
#define URI_SOCKET_KEY		"socket="
#define LEGACY_PREFIX		"nbd:unix:"
#define LEGACY_EXPORT_KEY	":exportname="

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode src[0..len) into out (size cap), percent-decoding when asked;
 * control characters (NUL included, however encoded) are refused. */
static int copy_part(const char *src, size_t len, bool percent, char *out,
		     size_t cap)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (percent && ch == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = hex_value(src[i + 1]);
			lo = hex_value(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			ch = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (ch < 0x20 || ch == 0x7f)
			return -EINVAL;
		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return 0;
}

/* An absolute path without empty, "." or ".." components. */
static bool path_is_clean(const char *p)
{
	const char *c;

	if (p[0] != '/')
		return false;
	for (c = p + 1;;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);

		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!end)
			return true;
		c = end + 1;
	}
}

static int parse_uri_form(const char *uri, struct nbd_uri *u)
{
	const char *exp = uri + strlen(URI_UNIX_PREFIX);
	const char *q = strchr(exp, '?'), *val;
	int r;

	if (!q || strchr(exp, '#'))
		return -EINVAL;
	r = copy_part(exp, (size_t)(q - exp), true, u->export_name,
		      sizeof(u->export_name));
	if (r < 0)
		return r;
	/* exactly one query parameter: socket (others, e.g. tls, would
	 * change what the URI means) */
	if (strncmp(q + 1, URI_SOCKET_KEY, strlen(URI_SOCKET_KEY)) ||
	    strchr(q + 1, '&') || strchr(q + 1, ';'))
		return -EINVAL;
	val = q + 1 + strlen(URI_SOCKET_KEY);
	return copy_part(val, strlen(val), true, u->socket, sizeof(u->socket));
}

static int parse_legacy_form(const char *uri, struct nbd_uri *u)
{
	const char *path = uri + strlen(LEGACY_PREFIX);
	const char *exp = strstr(path, LEGACY_EXPORT_KEY);
	size_t plen = exp ? (size_t)(exp - path) : strlen(path);
	int r;

	r = copy_part(path, plen, false, u->socket, sizeof(u->socket));
	if (r < 0 || !exp)
		return r;
	exp += strlen(LEGACY_EXPORT_KEY);
	return copy_part(exp, strlen(exp), false, u->export_name,
			 sizeof(u->export_name));
}

int nbd_uri_parse(const char *uri, struct nbd_uri *ret)
{
	int r = -EINVAL;

	memset(ret, 0, sizeof(*ret));
	if (strnlen(uri, NBD_URI_MAX + 1) > NBD_URI_MAX)
		r = -ENAMETOOLONG;
	else if (!strncmp(uri, URI_UNIX_PREFIX, strlen(URI_UNIX_PREFIX)))
		r = parse_uri_form(uri, ret);
	else if (!strncmp(uri, LEGACY_PREFIX, strlen(LEGACY_PREFIX)))
		r = parse_legacy_form(uri, ret);
	if (r == 0 && !path_is_clean(ret->socket))
		r = -EINVAL;
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}
