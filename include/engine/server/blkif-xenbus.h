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

/*
 * Discovery (--blkif-xen-domain): the datapath plugin offered domain
 * domid a "qdisk" XenDisk for one volume, and xenopsd chooses the devid,
 * so the server watches /local/domain/0/backend/qdisk/<domid> and claims
 * the device whose sm-data marks name its volume (docs/blkif-handoff.md
 * section 4.3).  Any other qdisk directory belongs to someone else.
 */
#define XB_SR_MAX 64
#define XB_KEY_MAX 64
struct xb_expect {
	unsigned int domid;		/* > 0: a guest, never dom0 */
	bool readonly;			/* the activation's mode */
	char sr[XB_SR_MAX];		/* sm-data/ngdp-sr */
	char key[XB_KEY_MAX];		/* sm-data/ngdp-volume */
};

/* "DOMID:r|w:SR:KEY" (SR and KEY non-empty, of [0-9A-Za-z_-]); 0 or
 * -EINVAL. */
int xb_expect_parse(const char *spec, struct xb_expect *out);

/* The keys of one backend directory <dom>/<devid>, as read (NULL:
 * absent). */
struct xb_qdisk_dir {
	const char *devid;		/* the directory's name */
	const char *ngdp_sr;		/* sm-data/ngdp-sr */
	const char *ngdp_volume;	/* sm-data/ngdp-volume */
	const char *frontend, *frontend_id, *online, *state, *mode;
};

enum xb_claim {
	XB_CLAIM_OK,		/* ours: claim it */
	XB_CLAIM_NOT_OURS,	/* no marker, or another volume's: never touch */
	XB_CLAIM_WAIT,		/* ours, not (or no longer) plugged: online
				 * != 1, or state Closing, Closed or later */
	XB_CLAIM_REFUSED,	/* ours but inconsistent (frontend, mode): *why */
};

/*
 * Whether the server that expects e may claim directory d: the marks
 * name e's volume, devid is decimal, frontend-id == e->domid, frontend is
 * /local/domain/<domid>/device/vbd/<devid>, online == 1, state 1..4
 * (Initialising for a new device; 2..4 after a server restart, to
 * re-adopt its ring), mode r or w and not w for a read-only activation.
 * *why (static text) says what refused or delays it.
 */
enum xb_claim xb_claim_check(const struct xb_expect *e,
			     const struct xb_qdisk_dir *d, const char **why);

#endif
