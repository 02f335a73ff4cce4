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
