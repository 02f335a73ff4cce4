/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * ngdp-server's NBD protocol rules (src/server/nbd-proto.c): the pure (I/O
 * free) decoding and validation helpers, kept apart so unit tests and the
 * fuzzer can reach them.  The wire constants are in nbd-proto.h.
 */
#ifndef SERVER_NBD_H
#define SERVER_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "nbd-proto.h"

/* What the server negotiated for one connection, for request validation. */
struct nbd_export_view {
	uint64_t size;
	bool readonly;
	bool structured;	/* NBD_OPT_STRUCTURED_REPLY done */
	bool meta_base_allocation;	/* base:allocation selected */
	bool fast_zero;		/* NBD_FLAG_SEND_FAST_ZERO advertised */
};

/* Decode the 28-byte request header. */
void nbd_request_decode(const uint8_t *buf, struct nbd_request *ret);

/*
 * Validate a decoded request against the export.  Returns 0 when it may be
 * executed, -EBADMSG for a bad magic (the connection must be dropped), or a
 * positive NBD error value (NBD_EINVAL, NBD_EPERM, NBD_ENOSPC...) to send
 * back.  For a write that fails validation the payload still follows on the
 * wire: see nbd_request_payload().
 */
int nbd_request_validate(const struct nbd_request *req,
			 const struct nbd_export_view *exp);

/*
 * How many payload bytes follow this request header (0 except for writes).
 * Returns -E2BIG for a write whose payload is larger than we accept: we do
 * not read and discard up to 4 GiB, we drop the connection instead.
 */
int64_t nbd_request_payload(const struct nbd_request *req);

/* Transmission flags for an export. */
uint16_t nbd_export_flags(bool readonly, bool fast_zero);

/* Map a -errno from the I/O path to an NBD wire error. */
uint32_t nbd_errno_to_wire(int err);

/*
 * Parse the data of NBD_OPT_INFO / NBD_OPT_GO:
 *   u32 namelen, name, u16 n, n * u16 info type.
 * On success *ret_name and *ret_namelen point into data, and *ret_infos is a
 * bitmask of requested NBD_INFO_* types (< 16).  Returns 0 or -EINVAL.
 */
int nbd_parse_info_request(const uint8_t *data, uint32_t len,
			   const char **ret_name, uint32_t *ret_namelen,
			   uint32_t *ret_infos);

/*
 * Iterate over the data of NBD_OPT_LIST/SET_META_CONTEXT:
 *   u32 namelen, name, u32 nqueries, nqueries * (u32 len, query).
 * Returns 0 and fills the export name and the number of queries, or -EINVAL
 * when the lengths are inconsistent.  nbd_meta_query() then returns the
 * i-th query (validated by the first call).
 */
struct nbd_meta_request {
	const char *name;
	uint32_t namelen;
	uint32_t nqueries;
	const uint8_t *queries;	/* start of the first query */
	uint32_t queries_len;
};
int nbd_parse_meta_request(const uint8_t *data, uint32_t len,
			   struct nbd_meta_request *ret);
/* Advance *pos over one query and return it; -EINVAL at the end. */
int nbd_meta_next_query(const struct nbd_meta_request *m, uint32_t *pos,
			const char **ret_q, uint32_t *ret_qlen);

/*
 * Export name matching.  Returns 1 for the main export (writable unless the
 * server is read-only), 2 for the read-only view ("...@ro"), 0 for unknown.
 */
int nbd_match_export(const char *name, uint32_t namelen,
		     const char *export_name);

#endif
