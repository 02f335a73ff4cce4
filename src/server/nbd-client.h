/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A minimal NBD client for the mirror job (mirror.c): the fixed-newstyle
 * handshake and request headers (the remote's URI: util/nbd-uri.h).  Simple replies only
 * (structured replies are never negotiated).
 */
#ifndef SERVER_NBD_CLIENT_H
#define SERVER_NBD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define NBD_SIMPLE_REPLY_SIZE	16

struct nbd_export_info {
	uint64_t size;
	uint16_t flags;			/* transmission flags */
};

/*
 * Connect to sock and negotiate export (NBD_OPT_GO, else
 * NBD_OPT_EXPORT_NAME).  Blocking, each step bounded so that the whole
 * handshake takes at most timeout_ms.  On success *fd is the connected
 * socket in transmission phase, non-blocking.  On failure: -errno and a
 * sentence in why.
 */
int nbd_client_connect(const char *sock, const char *export, int timeout_ms,
		       int *fd, struct nbd_export_info *info, char *why,
		       size_t why_len);

/* A request header (NBD_REQUEST_SIZE bytes) at p; returns p past it. */
uint8_t *nbd_client_put_request(uint8_t *p, uint16_t flags, uint16_t type,
				uint64_t cookie, uint64_t offset,
				uint32_t length);

#endif
