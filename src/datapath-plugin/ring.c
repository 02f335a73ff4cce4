/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Whether Datapath.attach offers the guest ngdp-server's own blkif ring (a
 * "qdisk" XenDisk, docs/blkif-handoff.md section 4.2) instead of blkback
 * on /dev/nbdN.  The ring is off unless the administrator turns it on in
 * /etc/xapi-storage-ng/datapath.conf:
 *
 *     # serve guests' Xen block rings from ngdp-server (issue 17)
 *     blkif-ring = on
 *
 * (XSNG_DATAPATH_CONF names another file: tests.)  Then it is offered
 * only where the host can serve it; anything else keeps today's answer,
 * and the reason is logged in words.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "dp.h"
#include "fileio.h"
#include "log.h"
#include "proc.h"

#define DP_CONF "/etc/xapi-storage-ng/datapath.conf"
#define DOMID_LIMIT 0x7FF0U	/* DOMID_FIRST_RESERVED */

int dp_conf_blkif_ring(const char *text, bool *on)
{
	const char *line = text;

	*on = false;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char buf[256], *k, *v, *eq, *p;

		if (n >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, line, n);
		buf[n] = '\0';
		line = end ? end + 1 : NULL;
		if ((p = strchr(buf, '#')))
			*p = '\0';
		k = buf + strspn(buf, " \t\r");
		if (!*k)
			continue;
		eq = strchr(k, '=');
		if (!eq)
			return -EINVAL;
		v = eq + 1;
		for (p = eq; p > k && strchr(" \t", p[-1]); p--)
			;
		*p = '\0';
		v += strspn(v, " \t");
		for (p = v + strlen(v); p > v && strchr(" \t\r", p[-1]); p--)
			;
		*p = '\0';
		if (strcmp(k, "blkif-ring"))
			continue;	/* another setting's */
		if (!strcmp(v, "on"))
			*on = true;
		else if (!strcmp(v, "off"))
			*on = false;
		else
			return -EINVAL;
	}
	return 0;
}

int dp_domid_of(const char *domain, unsigned int *domid)
{
	unsigned long v = 0;
	size_t n = strlen(domain);

	/* decimal, no sign or leading zero: "0", "" and "u0_*" are not */
	if (n < 1 || n > 5 || domain[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (domain[i] < '0' || domain[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(domain[i] - '0');
	}
	if (v >= DOMID_LIMIT)
		return -EINVAL;
	*domid = (unsigned int)v;
	return 0;
}

bool dp_ring_decide(const char *domain, const struct dp_ring_host *h,
		    unsigned int *domid, char *why, size_t len)
{
	snprintf(why, len, "%s", "");
	if (!h->enabled)
		snprintf(why, len, "blkif-ring is not on in %s", h->conf);
	else if (dp_domid_of(domain, domid) < 0)
		snprintf(why, len, "domain '%.40s' is not a guest's domid",
			 domain);
	else if (!h->gntdev || !h->evtchn)
		snprintf(why, len, "no /dev/xen/%s", !h->gntdev ? "gntdev" :
			 "evtchn");
	else if (!h->xenstore)
		snprintf(why, len, "xenstore has no /local/domain/%s", domain);
	else if (!h->server_blkif)
		snprintf(why, len, "the installed ngdp-server has no "
			 "--blkif-xen-domain");
	else if (h->qemu_dp)
		snprintf(why, len, "/run/qemu-datapath/%s exists: qemu-dp "
			 "serves this domain's qdisk devices", domain);
	else if (h->served_without_ring)
		snprintf(why, len, "the volume is already served for other "
			 "domains, by a server without this domain's ring");
	else if (h->failed[0])
		snprintf(why, len, "the ring failed for this volume on this "
			 "host (%s); remove %s to offer it again", h->failed,
			 h->failed_mark);
	else
		return true;
	return false;
}

/* The server's usage names the option: it was built with discovery. */
static bool server_has_discovery(void)
{
	char prog[PATH_MAX];
	struct proc_result res;
	bool ok;

	if (dp_server_program(prog, sizeof(prog)) < 0)
		return false;
	{
		const char *const argv[] = { prog, "--help", NULL };

		if (proc_run(argv, &res) < 0) {
			proc_result_release(&res);
			return false;
		}
	}
	ok = res.status == 0 && strstr(res.out, "--blkif-xen-domain");
	proc_result_release(&res);
	return ok;
}

void dp_ring_probe(const char *domain, struct dp_ring_host *h)
{
	const char *conf = getenv("XSNG_DATAPATH_CONF");
	CLEANUP_FREE char *text = NULL;
	char path[64];
	unsigned int domid;
	int r;

	memset(h, 0, sizeof(*h));
	snprintf(h->conf, sizeof(h->conf), "%s", conf && *conf ? conf :
		 DP_CONF);
	r = read_file_at(AT_FDCWD, h->conf, 65536, &text, NULL);
	if (r == 0 && dp_conf_blkif_ring(text, &h->enabled) < 0)
		log_warn("%s: not 'key = value' lines, or blkif-ring is "
			 "neither on nor off: the ring stays off", h->conf);
	/* each probe only when the ones before it passed: attach stays
	 * cheap with the switch off */
	if (!h->enabled || dp_domid_of(domain, &domid) < 0)
		return;
	h->gntdev = access("/dev/xen/gntdev", R_OK | W_OK) == 0;
	h->evtchn = access("/dev/xen/evtchn", R_OK | W_OK) == 0;
	if (!h->gntdev || !h->evtchn)
		return;
	snprintf(path, sizeof(path), "/local/domain/%u", domid);
	{
		const char *const argv[] = { "xenstore-exists", path, NULL };
		struct proc_result res;

		h->xenstore = proc_run(argv, &res) == 0 && res.status == 0;
		proc_result_release(&res);
	}
	if (!h->xenstore)
		return;
	h->server_blkif = server_has_discovery();
	snprintf(path, sizeof(path), "/run/qemu-datapath/%u", domid);
	h->qemu_dp = access(path, F_OK) == 0;
}

void dp_ring_fail_mark_path(const struct dp_target *t, char *out, size_t len)
{
	const char *slash = strrchr(t->run_dir, '/');
	int dir_len = slash ? (int)(slash - t->run_dir) : 0;

	snprintf(out, len, "%.*s/%s.ring-failed", dir_len, t->run_dir, t->key);
}

void dp_ring_fail_reason(const char *text, char *out, size_t len)
{
	const char *p = text + strspn(text, "0123456789");
	size_t n;

	/* the server's "<unix time> <reason>": the time is in the log */
	if (p > text && *p == ' ')
		text = p + 1;
	n = strcspn(text, "\n");
	snprintf(out, len, "%.*s", (int)n, text);
}
