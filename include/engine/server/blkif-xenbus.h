/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Pure helpers of the Xen transport (src/server/blkif/xen.c): parsing and
 * checking what it reads from xenstore, which any domain that can write
 * its frontend directory controls.  No Xen library calls (unit-tested in
 * tests/unit/test-blkif-xenbus.c).
 */
#ifndef SERVER_BLKIF_XENBUS_H
#define SERVER_BLKIF_XENBUS_H

#include <stdbool.h>
#include <stddef.h>

/* xenbus states (xen/include/public/io/xenbus.h). */
enum xenbus_state {
	XB_UNKNOWN = 0,
	XB_INITIALISING = 1,
	XB_INIT_WAIT = 2,
	XB_INITIALISED = 3,
	XB_CONNECTED = 4,
	XB_CLOSING = 5,
	XB_CLOSED = 6,
	XB_RECONFIGURING = 7,
	XB_RECONFIGURED = 8,
};

/* The first domid that names no domain (DOMID_FIRST_RESERVED). */
#define XB_DOMID_LIMIT 0x7FF0U

/*
 * A xenstore value as an unsigned decimal number in [0, max]: digits only
 * (no sign, no blanks, no hex, no leading zeros but "0" itself), at most
 * 20 of them.  Returns 0 or -EINVAL (also for NULL).
 */
int xb_parse_uint(const char *s, unsigned long long max,
		  unsigned long long *out);

/* A state value (0..8); -EINVAL otherwise. */
int xb_parse_state(const char *s, enum xenbus_state *out);

/* A frontend or backend domid (< XB_DOMID_LIMIT). */
int xb_parse_domid(const char *s, unsigned int *out);

/*
 * The xenstore key of ring page i: "ring-ref" for a one-page ring whose
 * frontend wrote no ring-page-order, else "ring-ref<i>" (Linux blkfront's
 * and blkback's convention).  Returns 0, or -EINVAL when i is out of the
 * ring or buf too small.
 */
int xb_ring_ref_key(bool have_order, unsigned int order, unsigned int i,
		    char *buf, size_t size);

/*
 * Is path the frontend directory of a vbd of domain domid, i.e.
 * "/local/domain/<domid>/device/vbd/<devid>" with a decimal devid?
 * (A hostile backend directory's "frontend" could name anything.)
 */
bool xb_frontend_path_ok(const char *path, unsigned int domid);

#endif
