/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * NBD URIs naming a Unix socket, the two forms storage migration uses:
 *   nbd+unix:///<export>?socket=<absolute path>   (as xapi sends it; the
 *                                                 export and the path may
 *                                                 be percent-encoded)
 *   nbd:unix:<absolute path>[:exportname=<name>]  (qemu's legacy form)
 * Anything else (TCP, TLS, other query keys, a relative path or one with
 * "." or ".." components, NUL or control characters, overlong parts) is
 * refused.  Pure parsing: shared by the datapath plugin and, so far as it
 * wants, the server's NBD client.
 */
#ifndef UTIL_NBD_URI_H
#define UTIL_NBD_URI_H

#include <stddef.h>

#define NBD_URI_MAX		4096	/* longest URI taken */
#define NBD_URI_SOCKET_MAX	107	/* sockaddr_un.sun_path, less NUL */
#define NBD_URI_EXPORT_MAX	4096	/* the NBD protocol's limit */

struct nbd_uri {
	char socket[NBD_URI_SOCKET_MAX + 1];
	char export_name[NBD_URI_EXPORT_MAX + 1];
};

/* 0, or -EINVAL (not one of the forms, or a bad path/name) or
 * -ENAMETOOLONG (the URI, path or name too long); *ret is then zeroed. */
int nbd_uri_parse(const char *uri, struct nbd_uri *ret);

#endif
