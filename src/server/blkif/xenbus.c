/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Parsing of xenstore values for the Xen transport.  See blkif-xenbus.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "server/blkif-ring.h"
#include "server/blkif-xenbus.h"

int xb_parse_uint(const char *s, unsigned long long max,
		  unsigned long long *out)
{
	unsigned long long v = 0;
	size_t n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	if (n < 1 || n > 20 || (s[0] == '0' && n > 1))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned int d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned int)(s[i] - '0');
		/* v * 10 + d <= max, without overflow */
		if (d > max || v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int xb_parse_state(const char *s, enum xenbus_state *out)
{
	unsigned long long v;

	if (xb_parse_uint(s, XB_RECONFIGURED, &v) < 0)
		return -EINVAL;
	*out = (enum xenbus_state)v;
	return 0;
}

int xb_parse_domid(const char *s, unsigned int *out)
{
	unsigned long long v;

	if (xb_parse_uint(s, XB_DOMID_LIMIT - 1, &v) < 0)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

int xb_ring_ref_key(bool have_order, unsigned int order, unsigned int i,
		    char *buf, size_t size)
{
	int n;

	if (order > BLKIF_MAX_RING_PAGE_ORDER || i >= (1U << order))
		return -EINVAL;
	if (have_order)
		n = snprintf(buf, size, "ring-ref%u", i);
	else
		n = snprintf(buf, size, "ring-ref");
	return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

bool xb_frontend_path_ok(const char *path, unsigned int domid)
{
	char prefix[64];
	unsigned long long devid;
	int n;

	if (!path)
		return false;
	n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/device/vbd/",
		     domid);
	if (n < 0 || (size_t)n >= sizeof(prefix) ||
	    strncmp(path, prefix, (size_t)n))
		return false;
	return xb_parse_uint(path + n, 0xFFFFFFFFULL, &devid) == 0;
}

/* [0-9A-Za-z_-]+ of len bytes copied into out (size bytes). */
static int copy_name(const char *s, size_t len, char *out, size_t size)
{
	if (len == 0 || len >= size)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
		      s[i] == '-'))
			return -EINVAL;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int xb_expect_parse(const char *spec, struct xb_expect *out)
{
	struct xb_expect e = { 0 };
	const char *c1, *c2, *c3;
	char num[8];
	unsigned long long v;

	if (!spec || !(c1 = strchr(spec, ':')) || !(c2 = strchr(c1 + 1, ':')) ||
	    !(c3 = strchr(c2 + 1, ':')))
		return -EINVAL;
	if ((size_t)(c1 - spec) >= sizeof(num))
		return -EINVAL;
	memcpy(num, spec, (size_t)(c1 - spec));
	num[c1 - spec] = '\0';
	if (xb_parse_uint(num, XB_DOMID_LIMIT - 1, &v) < 0 || v == 0)
		return -EINVAL;
	e.domid = (unsigned int)v;
	if (c2 - c1 != 2 || (c1[1] != 'r' && c1[1] != 'w'))
		return -EINVAL;
	e.readonly = c1[1] == 'r';
	if (copy_name(c2 + 1, (size_t)(c3 - c2 - 1), e.sr, sizeof(e.sr)) < 0 ||
	    copy_name(c3 + 1, strlen(c3 + 1), e.key, sizeof(e.key)) < 0)
		return -EINVAL;
	*out = e;
	return 0;
}

enum xb_claim xb_claim_check(const struct xb_expect *e,
			     const struct xb_qdisk_dir *d, const char **why)
{
	unsigned long long devid;
	unsigned int fe_domid;
	enum xenbus_state st;
	char fe[64];

	*why = "";
	/* the marks first: without them the directory is not ours to judge */
	if (!d->ngdp_sr || !d->ngdp_volume || strcmp(d->ngdp_sr, e->sr) ||
	    strcmp(d->ngdp_volume, e->key)) {
		*why = "not marked with this volume";
		return XB_CLAIM_NOT_OURS;
	}
	if (xb_parse_uint(d->devid, 0xFFFFFFFFULL, &devid) < 0) {
		*why = "the devid is not a number";
		return XB_CLAIM_REFUSED;
	}
	if (xb_parse_domid(d->frontend_id, &fe_domid) < 0 ||
	    fe_domid != e->domid) {
		*why = "frontend-id is not the expected domain";
		return XB_CLAIM_REFUSED;
	}
	snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%llu", e->domid,
		 devid);
	if (!d->frontend || strcmp(d->frontend, fe)) {
		*why = "frontend is not the vbd of that devid";
		return XB_CLAIM_REFUSED;
	}
	if (!d->mode || (strcmp(d->mode, "r") && strcmp(d->mode, "w"))) {
		*why = "mode is neither r nor w";
		return XB_CLAIM_REFUSED;
	}
	if (e->readonly && !strcmp(d->mode, "w")) {
		*why = "a read-write device on a read-only activation";
		return XB_CLAIM_REFUSED;
	}
	if (!d->online || strcmp(d->online, "1")) {
		*why = "not online";
		return XB_CLAIM_WAIT;
	}
	if (xb_parse_state(d->state, &st) < 0 || st < XB_INITIALISING ||
	    st > XB_CONNECTED) {
		*why = "the backend state is not 1 to 4";
		return XB_CLAIM_WAIT;
	}
	return XB_CLAIM_OK;
}
