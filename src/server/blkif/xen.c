/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif ring of a real Xen frontend (blkfront): xenstore handshake,
 * grant mapping and the event channel, through Xen's own libraries
 * (libxenstore, libxengnttab, libxenevtchn; no hypercalls of ours).  The
 * ring itself is blkif/ring.c's, its requests blkif/backend.c's.
 *
 * The handshake follows Linux blkback's (drivers/block/xen-blkback/
 * xenbus.c): publish our features and InitWait, watch the frontend's
 * state; on Initialised or Connected read its ring-ref(s), event-channel,
 * protocol and feature-persistent, map the ring, bind the channel, go
 * Connected.  Closing and Closed take the ring down; Initialising after a
 * close is a reconnect.  Everything read from xenstore is checked first:
 * the guest owns its frontend directory.
 *
 * Grants.  With persistent grants (both sides offer feature-persistent)
 * the frontend reuses a fixed set of granted pages, so each is mapped once
 * and kept in a cache; a full cache drops the pages no request holds (a
 * frontend using the default Linux settings never fills it: 32 ring slots
 * * (32 segments + 1 indirect page) = 1056 grants, the same bound as
 * blkback's max_persistent_grants).  Without them the frontend revokes
 * each grant once its request is answered, so a mapping must not outlive
 * its use: map and unmap around every use (the backend's unmap hook).
 * Mapping, not xengnttab_grant_copy, because reads go straight into the
 * mapped pages with O_DIRECT (the backend holds them while in flight: at
 * most half the cache's pages, so it always has room for the rest).
 * The mappings of a connection (struct xen_pages) outlive it until the
 * backend releases them: reads still in flight land in them.
 *
 * Server restart.  The backend answers in ring order (in_order): the slots
 * from the shared rsp_prod on then hold exactly the requests not answered,
 * so a server started on a backend directory whose ring is Connected maps
 * the same ring, binds the frontend's port again (the dead server's end
 * was closed with its process) and resumes at rsp_prod (resume): the
 * requests it had taken are taken again, re-executing writes the guest
 * has not seen complete.  (A kill between writing a response into its
 * slot and publishing rsp_prod, a few instructions, would lose that one
 * request.)  Only a crash leaves the ring for a new server: an orderly
 * stop (Datapath.deactivate's "stop", SIGTERM) has drained and flushed
 * what the ring had taken, then closes the device as a toolstack does
 * (stop_hold: Closing, errors for what the frontend still queues, until
 * it closes) and writes Closed, so that a guest whose disk is deactivated
 * under it sees the disk fail instead of waiting for ever
 * (docs/blkif-handoff.md sections 4.4 and 4.6).
 *
 * A ring that cannot be connected (the frontend's keys are wrong, its
 * ring pages cannot be mapped, its port cannot be bound) fails the
 * device: the reason goes to xenstore's error node for the backend
 * (/local/domain/0/error/backend/qdisk/<domid>/<devid>/error, the layout
 * of Linux's xenbus_dev_error, removed by xenopsd with the device), the
 * backend goes to Closed (6), and the failure mark (--blkif-fail-mark),
 * if any, records the reason: the datapath plugin then offers this
 * volume /dev/nbdN through blkback instead (section 4.5).
 *
 * We never create a backend directory: every write checks, in its
 * transaction, that the directory is still there (the toolstack may have
 * removed it between a watch event and our write).
 *
 * The backend directory removed, or the frontend gone: the ring is taken
 * down and the server keeps serving its other clients (NBD, control); the
 * toolstack stops it as it would any datapath server.
 *
 * Discovery (--blkif-xen-domain, blkif_xen_watch).  The datapath plugin
 * answered Datapath.attach with a "qdisk" XenDisk, and xenopsd picks the
 * devid only when it plugs the VBD, after activate started us: so we
 * watch /local/domain/0/backend/qdisk/<domid> (one narrow watch, not the
 * whole bus) and claim the first device whose sm-data marks name our
 * volume and that passes xb_claim_check(); a directory without our marks
 * is never written to.  The claimed device then runs the handshake above.
 * Once it is unplugged (the directory removed, or online=0 with the ring
 * down: the frontend closed or went) the claim is released and the watch
 * looks for the next plug of the same volume by that domain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>
#include <xengnttab.h>
#include <xenevtchn.h>

#include "ctl-proto.h"
#include "nbd-proto.h"
#include "fileio.h"
#include "log.h"
#include "server/blkif-backend.h"
#include "server/blkif-xenbus.h"
#include "server/server.h"
#include "xen.h"

/* Persistent grants mapped at most (see above; --blkif-grant-cache). */
#define XEN_GCACHE_DEFAULT 2048U
#define XEN_GCACHE_BUCKETS 1024U	/* a power of two */
/* Pages held by reads in flight, at most (blkif_backend_config.max_held):
 * half the cache, so that it always has room for the rest. */
#define XEN_MAX_HELD(gc_max) ((gc_max) / 2)
#define XEN_PATH_MAX 256
/* An orderly stop waits this long for the frontend to close (below). */
#define XEN_STOP_WAIT_MS 10000

struct gcache_ent {
	uint32_t gref;
	int next;			/* in its bucket, -1: last */
	unsigned int pins;		/* maps not yet unmapped */
	void *page;
};

struct blkif_xen;

/* The frontend's data pages as mapped for one connection (see above). */
struct xen_pages {
	struct blkif_xen *x;		/* grant handle, name, event channel */
	unsigned int domid;
	/* persistent grants, mapped */
	struct gcache_ent *gc;
	int gc_bucket[XEN_GCACHE_BUCKETS];
	unsigned int gc_n, gc_max;
	uint64_t gc_evictions;
};

/* Why the device is being closed while the server stays. */
enum xen_closing {
	XC_NONE,
	XC_RELEASE,		/* blkif_release: its domain was deactivated */
	XC_SHUTDOWN,		/* shutdown-request = normal: once the
				 * frontend closed */
	XC_SHUTDOWN_FORCE,	/* shutdown-request = force: within 10 s */
};

struct blkif_xen {
	struct ev_tag xs_tag, evtchn_tag;	/* EV_HOOK */
	struct server *srv;
	struct xs_handle *xs;
	xengnttab_handle *gnt;
	xenevtchn_handle *evtchn;
	int xs_fd, evtchn_fd;
	char be_path[XEN_PATH_MAX];
	char fe_path[XEN_PATH_MAX];
	char name[XEN_PATH_MAX + 16];	/* for logs */
	unsigned int fe_domid;
	bool readonly;
	bool gone;			/* backend directory removed */
	/* discovery (--blkif-xen-domain): be_path is valid while claimed */
	bool discover, claimed;
	struct xb_expect expect;
	char dom_path[XEN_PATH_MAX];	/* .../backend/qdisk/<domid> */
	char refused[XEN_PATH_MAX];	/* logged once: the last refused */
	/* the ring, while attached (be != NULL) */
	struct blkif_backend *be;
	void *ring;
	unsigned int ring_pages;
	evtchn_port_t port;		/* ours */
	unsigned int gc_max;		/* persistent grants kept mapped */
	const char *fail_mark;		/* --blkif-fail-mark, or NULL */
	uint64_t stop_ms;		/* when the stop, release or
					 * shutdown-request closed the device */
	/* closing the device while the server stays (closing_step): its
	 * flush is the first one sent from close_flush_want on (flushes
	 * complete in order) */
	enum xen_closing closing;
	unsigned int close_flush_sent, close_flush_done, close_flush_want;
	bool shutdown_done;		/* shutdown-done written: the
					 * toolstack removes the device */
	bool shutdown_bad_logged;
	bool released;			/* blkif_release done: no ring again */
};

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ------------------------------------------------------------ xenstore */

static char *xs_get(struct blkif_xen *x, const char *dir, const char *key)
{
	char path[XEN_PATH_MAX * 2];
	unsigned int len;

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return xs_read(x->xs, XBT_NULL, path, &len);
}

/* dir/key as a number in [0, max]: 0, -ENOENT (absent) or -EINVAL. */
static int xs_get_uint(struct blkif_xen *x, const char *dir, const char *key,
		       unsigned long long max, unsigned long long *out)
{
	char *v = xs_get(x, dir, key);
	int r;

	if (!v)
		return -ENOENT;
	r = xb_parse_uint(v, max, out);
	if (r < 0)
		log_warn("%s: %s/%s: '%.32s' is not a number up to %llu",
			 x->name, dir, key, v, max);
	free(v);
	return r;
}

static int xs_get_state(struct blkif_xen *x, const char *dir,
			enum xenbus_state *st)
{
	char *v = xs_get(x, dir, "state");
	int r;

	if (!v)
		return -ENOENT;
	r = xb_parse_state(v, st);
	free(v);
	return r;
}

struct kv {
	const char *key;	/* under the backend directory, or absolute */
	char val[32];
	const char *text;	/* a longer value, in place of val */
};

/* Write keys in one transaction, if the backend directory is still there
 * (its frontend key): -ENOENT if not.  xenstore would create the missing
 * parents, bringing a removed device back (or its error node after
 * xenopsd's rm_device_state). */
static int xs_put_all(struct blkif_xen *x, const struct kv *kv, size_t n)
{
	char path[XEN_PATH_MAX * 2];

	for (int tries = 0; tries < 16; tries++) {
		xs_transaction_t t = xs_transaction_start(x->xs);
		bool ok = t != XBT_NULL, gone = false;
		unsigned int len;
		char *fe;

		if (ok) {
			snprintf(path, sizeof(path), "%s/frontend", x->be_path);
			fe = xs_read(x->xs, t, path, &len);
			gone = !fe;
			ok = !gone;
			free(fe);
		}
		for (size_t i = 0; ok && i < n; i++) {
			const char *v = kv[i].text ? kv[i].text : kv[i].val;

			if (kv[i].key[0] == '/')
				snprintf(path, sizeof(path), "%s", kv[i].key);
			else
				snprintf(path, sizeof(path), "%s/%s",
					 x->be_path, kv[i].key);
			ok = xs_write(x->xs, t, path, v,
				      (unsigned int)strlen(v));
		}
		if (!ok) {
			int err = gone ? ENOENT : errno ? errno : EIO;

			if (t != XBT_NULL)
				xs_transaction_end(x->xs, t, true);
			return -err;
		}
		if (xs_transaction_end(x->xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

static int set_state(struct blkif_xen *x, enum xenbus_state st)
{
	struct kv kv = { .key = "state" };
	enum xenbus_state cur;
	int r;

	if (xs_get_state(x, x->be_path, &cur) == 0 && cur == st)
		return 0;
	snprintf(kv.val, sizeof(kv.val), "%d", (int)st);
	r = xs_put_all(x, &kv, 1);
	if (r == -ENOENT)
		log_info("%s: state %d not written: the directory was removed",
			 x->name, (int)st);
	else if (r < 0)
		log_error("%s: cannot write state %d: %s", x->name, (int)st,
			  strerror(-r));
	else
		log_info("%s: backend state %d", x->name, (int)st);
	return r;
}

/* ------------------------------------------------------------ grants */

static void gcache_rehash(struct xen_pages *p)
{
	for (unsigned int b = 0; b < XEN_GCACHE_BUCKETS; b++)
		p->gc_bucket[b] = -1;
	for (unsigned int i = 0; i < p->gc_n; i++) {
		unsigned int b = p->gc[i].gref & (XEN_GCACHE_BUCKETS - 1);

		p->gc[i].next = p->gc_bucket[b];
		p->gc_bucket[b] = (int)i;
	}
}

/* Unmap the cached pages nobody holds (all of them with all). */
static void gcache_drop(struct xen_pages *p, bool all)
{
	unsigned int keep = 0;

	for (unsigned int i = 0; i < p->gc_n; i++) {
		if (p->gc[i].pins && !all)
			p->gc[keep++] = p->gc[i];
		else if (xengnttab_unmap(p->x->gnt, p->gc[i].page, 1) < 0)
			log_warn("%s: cannot unmap a grant: %m", p->x->name);
	}
	p->gc_n = keep;
	gcache_rehash(p);
}

static struct gcache_ent *gcache_find(struct xen_pages *p, uint32_t gref)
{
	unsigned int b = gref & (XEN_GCACHE_BUCKETS - 1);

	for (int i = p->gc_bucket[b]; i >= 0; i = p->gc[i].next)
		if (p->gc[i].gref == gref)
			return &p->gc[i];
	return NULL;
}

static void *map_persistent(void *transport, uint32_t gref)
{
	struct xen_pages *p = transport;
	unsigned int b = gref & (XEN_GCACHE_BUCKETS - 1);
	struct gcache_ent *e = gcache_find(p, gref);
	void *page;

	if (e) {
		e->pins++;
		return e->page;
	}
	if (p->gc_n == p->gc_max) {
		p->x->srv->n_grant_cache_evictions++;
		if (!p->gc_evictions++)
			log_warn("%s: more than %u persistent grants: mapping "
				 "them again as needed", p->x->name,
				 p->gc_max);
		gcache_drop(p, false);
		/* cannot happen: the backend holds at most half of them */
		if (p->gc_n == p->gc_max) {
			log_error("%s: every cached grant is in use",
				  p->x->name);
			return NULL;
		}
	}
	page = xengnttab_map_grant_ref(p->x->gnt, p->domid, gref,
				       PROT_READ | PROT_WRITE);
	if (!page) {
		log_debug("%s: cannot map grant %u: %m", p->x->name, gref);
		return NULL;
	}
	e = &p->gc[p->gc_n];
	*e = (struct gcache_ent){ .gref = gref, .page = page, .pins = 1,
				  .next = p->gc_bucket[b] };
	p->gc_bucket[b] = (int)p->gc_n++;
	return page;
}

static void unmap_persistent(void *transport, uint32_t gref, void *page)
{
	struct gcache_ent *e = gcache_find(transport, gref);

	/* the cache keeps a held page: always found */
	if (e && e->page == page && e->pins)
		e->pins--;
}

static void *map_once(void *transport, uint32_t gref)
{
	struct xen_pages *p = transport;
	void *page = xengnttab_map_grant_ref(p->x->gnt, p->domid, gref,
					     PROT_READ | PROT_WRITE);

	if (!page)
		log_debug("%s: cannot map grant %u: %m", p->x->name, gref);
	return page;
}

static void unmap_once(void *transport, uint32_t gref, void *page)
{
	struct xen_pages *p = transport;

	(void)gref;
	if (xengnttab_unmap(p->x->gnt, page, 1) < 0)
		log_warn("%s: cannot unmap a grant: %m", p->x->name);
}

static void xen_notify(void *transport)
{
	struct xen_pages *p = transport;

	if (xenevtchn_notify(p->x->evtchn, p->x->port) < 0)
		log_debug("%s: notify: %m", p->x->name);
}

static void pages_free(struct xen_pages *p)
{
	if (!p)
		return;
	gcache_drop(p, true);
	free(p->gc);
	free(p);
}

/* The backend holds no page of the connection any more. */
static void pages_released(void *transport)
{
	pages_free(transport);
}

static struct xen_pages *pages_new(struct blkif_xen *x)
{
	struct xen_pages *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->gc = calloc(x->gc_max, sizeof(*p->gc));
	if (!p->gc) {
		free(p);
		return NULL;
	}
	p->x = x;
	p->gc_max = x->gc_max;
	p->domid = x->fe_domid;
	gcache_rehash(p);
	return p;
}

static const struct blkif_transport_ops persistent_ops = {
	.map = map_persistent,
	.unmap = unmap_persistent,
	.notify = xen_notify,
	.released = pages_released,
};

static const struct blkif_transport_ops once_ops = {
	.map = map_once,
	.unmap = unmap_once,
	.notify = xen_notify,
	.released = pages_released,
};

/* ------------------------------------------------------------ the ring */

/* Release the ring.  answer_queued: the frontend is closing, or we
 * close the device under it; the requests it queued that nobody will
 * take are answered with an error, or a closing blkfront waits for them
 * for ever (only once nothing is in flight: answers go in ring order).
 * Not for a frontend that starts over or broke the protocol: its ring
 * pages may already hold a new ring, or garbage. */
static void disconnect(struct blkif_xen *x, bool answer_queued,
		       const char *why)
{
	unsigned int n = 0;

	if (!x->be)
		return;
	log_info("%s: ring released: %s", x->name, why);
	if (answer_queued)
		n = blkif_backend_refuse_queued(x->be);
	if (n)
		log_info("%s: %u queued request(s) answered with an error", x->name,
			 n);
	/* the data pages are unmapped once the backend released them */
	blkif_backend_detach(x->be);
	x->be = NULL;
	if (xenevtchn_unbind(x->evtchn, x->port) < 0)
		log_warn("%s: cannot unbind port %u: %m", x->name, x->port);
	if (xengnttab_unmap(x->gnt, x->ring, x->ring_pages) < 0)
		log_warn("%s: cannot unmap the ring: %m", x->name);
	x->ring = NULL;
}

static void ring_poll(struct blkif_xen *x)
{
	if (x->be && blkif_backend_poll(x->be) < 0) {
		disconnect(x, false, "the frontend broke the ring protocol");
		set_state(x, XB_CLOSING);
	}
}

/* Read and check the frontend's ring keys, map, bind, attach; on failure
 * why says what was wrong, for the administrator. */
static int connect_ring(struct blkif_xen *x, char *why, size_t len)
{
	uint32_t refs[1U << BLKIF_MAX_RING_PAGE_ORDER];
	unsigned long long order = 0, v, port;
	bool have_order, persistent = false;
	struct blkif_backend_config cfg;
	struct xen_pages *pages;
	enum blkif_abi abi;
	xenevtchn_port_or_error_t local;
	char *proto;
	void *ring;
	int r;

	r = xs_get_uint(x, x->fe_path, "ring-page-order",
			BLKIF_MAX_RING_PAGE_ORDER, &order);
	if (r == -EINVAL) {
		snprintf(why, len, "the frontend's ring-page-order is not a "
			 "number up to %u", BLKIF_MAX_RING_PAGE_ORDER);
		return r;
	}
	have_order = r == 0;
	for (unsigned int i = 0; i < (1U << order); i++) {
		char key[16];

		r = xb_ring_ref_key(have_order, (unsigned int)order, i, key,
				    sizeof(key));
		if (r == 0)
			r = xs_get_uint(x, x->fe_path, key, UINT32_MAX, &v);
		if (r < 0) {
			snprintf(why, len, "no valid %s in %s", key,
				 x->fe_path);
			return -EINVAL;
		}
		refs[i] = (uint32_t)v;
	}
	/* port 0 is never a bound port */
	r = xs_get_uint(x, x->fe_path, "event-channel", UINT32_MAX, &port);
	if (r < 0 || port == 0) {
		snprintf(why, len, "no valid event-channel in %s", x->fe_path);
		return -EINVAL;
	}
	proto = xs_get(x, x->fe_path, "protocol");
	r = blkif_abi_from_protocol(proto, &abi);
	if (r < 0)
		snprintf(why, len, "unknown protocol '%.32s'", proto);
	free(proto);
	if (r < 0)
		return r;
	r = xs_get_uint(x, x->fe_path, "feature-persistent", 1, &v);
	if (r == -EINVAL) {
		snprintf(why, len, "the frontend's feature-persistent is "
			 "neither 0 nor 1");
		return r;
	}
	persistent = r == 0 && v == 1;

	pages = pages_new(x);
	if (!pages) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	ring = xengnttab_map_domain_grant_refs(x->gnt, 1U << order,
					       x->fe_domid, refs,
					       PROT_READ | PROT_WRITE);
	if (!ring) {
		r = -errno;
		snprintf(why, len, "cannot map the ring's %u page(s) (first "
			 "grant %u) of domain %u: %s", 1U << order, refs[0],
			 x->fe_domid, strerror(-r));
		pages_free(pages);
		return r;
	}
	local = xenevtchn_bind_interdomain(x->evtchn, x->fe_domid,
					   (evtchn_port_t)port);
	if (local < 0) {
		r = -errno;
		snprintf(why, len, "cannot bind to event channel port %llu "
			 "of domain %u: %s", port, x->fe_domid, strerror(-r));
		xengnttab_unmap(x->gnt, ring, 1U << order);
		pages_free(pages);
		return r;
	}
	cfg = (struct blkif_backend_config){
		.ring = ring,
		.ring_bytes = (size_t)BLKIF_PAGE_SIZE << order,
		.abi = abi,
		.max_indirect_segments = BLKIF_BACKEND_INDIRECT_SEGMENTS,
		.readonly = x->readonly,
		.in_order = true,
		.resume = true,
		.ops = persistent ? &persistent_ops : &once_ops,
		.transport = pages,
		.name = x->name,
		.max_held = XEN_MAX_HELD(x->gc_max),
	};
	x->ring = ring;
	x->ring_pages = 1U << order;
	x->port = (evtchn_port_t)local;
	r = blkif_backend_new(x->srv, &cfg, &x->be);
	if (r < 0) {
		snprintf(why, len, "cannot set up the ring: %s", strerror(-r));
		xenevtchn_unbind(x->evtchn, x->port);
		xengnttab_unmap(x->gnt, ring, x->ring_pages);
		x->ring = NULL;
		pages_free(pages);
		return r;
	}
	log_info("%s: ring connected: %u page(s), port %llu, %s ABI, %s "
		 "grants", x->name, x->ring_pages, port,
		 abi == BLKIF_ABI_X86_32 ? "x86_32" : "x86_64",
		 persistent ? "persistent" : "one-use");
	return 0;
}

/* /local/domain/0/backend/<rest> -> /local/domain/0/error/backend/<rest>
 * /error (Linux xenbus_dev_error's node); -EINVAL for another path. */
static int error_node_path(const char *be_path, char *out, size_t len)
{
	static const char prefix[] = "/local/domain/0/backend/";
	const size_t plen = sizeof(prefix) - 1;
	int n;

	if (strncmp(be_path, prefix, plen))
		return -EINVAL;
	n = snprintf(out, len, "/local/domain/0/error/backend/%s/error",
		     be_path + plen);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void error_node_clear(struct blkif_xen *x)
{
	char path[XEN_PATH_MAX * 2];

	if (error_node_path(x->be_path, path, sizeof(path)) == 0)
		xs_rm(x->xs, XBT_NULL, path);	/* absent: nothing to do */
}

/* The failure mark: "<unix time> domain D device N: <why>\n", written
 * atomically (the datapath plugin reads it at the next attach). */
static void fail_mark_write(struct blkif_xen *x, const char *why)
{
	const char *devid = strrchr(x->be_path, '/');
	char text[1024];
	int n, r;

	if (!x->fail_mark)
		return;
	n = snprintf(text, sizeof(text), "%lld domain %u device %s: %s\n",
		     (long long)time(NULL), x->fe_domid,
		     devid ? devid + 1 : "?", why);
	if (n < 0)
		return;
	r = write_file_atomic(x->fail_mark, text, (size_t)n < sizeof(text) ?
			      (size_t)n : sizeof(text) - 1);
	if (r < 0)
		log_error("%s: cannot write the failure mark %s: %s", x->name,
			  x->fail_mark, strerror(-r));
}

/* The claimed device cannot be served: say why in xenstore's error node,
 * close the backend (the guest sees a failed disk, not a hang), and mark
 * the volume so that the next attach falls back to /dev/nbdN. */
static void ring_failed(struct blkif_xen *x, const char *why)
{
	char path[XEN_PATH_MAX * 2], text[512];

	x->srv->n_blkif_failures++;
	log_error("%s: cannot serve the ring: %s; the device is closed, and "
		  "the next Datapath.attach of the volume on this host offers "
		  "it through /dev/nbdN (blkback)%s%s", x->name, why,
		  x->fail_mark ? "; mark: " : "",
		  x->fail_mark ? x->fail_mark : "");
	snprintf(text, sizeof(text), "ngdp-server: %s", why);
	if (error_node_path(x->be_path, path, sizeof(path)) == 0) {
		struct kv kv = { .key = path, .text = text };
		int r = xs_put_all(x, &kv, 1);

		if (r < 0)
			log_warn("%s: cannot write %s: %s", x->name, path,
				 r == -ENOENT ? "the device was removed" :
				 strerror(-r));
	}
	fail_mark_write(x, why);
	set_state(x, XB_CLOSED);
}

static void shutdown_request_check(struct blkif_xen *x);

/* React to the states as they are now (called on every watch event). */
static void reconcile(struct blkif_xen *x)
{
	enum xenbus_state be_st, fe_st;
	char why[512];
	int r;

	if (x->gone)
		return;
	if (xs_get_state(x, x->be_path, &be_st) == -ENOENT) {
		char *d = xs_get(x, x->be_path, "frontend");

		if (!d) {	/* the directory, not just the key */
			disconnect(x, false, "the backend directory was removed");
			x->gone = true;
			log_info("%s: backend removed; serving no ring any "
				 "more", x->name);
			return;
		}
		free(d);
		be_st = XB_UNKNOWN;
	}
	shutdown_request_check(x);
	r = xs_get_state(x, x->fe_path, &fe_st);
	if (r == -ENOENT)
		fe_st = XB_CLOSED;	/* frontend gone */
	else if (r < 0)
		return;	/* a bad value: wait for a valid one */

	switch (fe_st) {
	case XB_UNKNOWN:
	case XB_INITIALISING:
	case XB_INIT_WAIT:
		/* a frontend that starts over: drop any old ring */
		disconnect(x, false, "the frontend is initialising again");
		if (x->closing != XC_NONE || x->shutdown_done)
			break;	/* closed for good: no new ring */
		if (be_st != XB_INIT_WAIT)
			set_state(x, XB_INIT_WAIT);
		break;
	case XB_INITIALISED:
	case XB_CONNECTED:
		if (x->be || x->closing != XC_NONE || x->shutdown_done)
			break;
		if (be_st != XB_INIT_WAIT && be_st != XB_CONNECTED)
			break;	/* closing: wait for the frontend's reset */
		if (connect_ring(x, why, sizeof(why)) < 0) {
			ring_failed(x, why);
			break;
		}
		error_node_clear(x);	/* an earlier failure's */
		set_state(x, XB_CONNECTED);
		ring_poll(x);	/* requests queued before we connected */
		break;
	case XB_CLOSING:
		disconnect(x, true, "the frontend is closing");
		set_state(x, XB_CLOSING);
		break;
	case XB_CLOSED:
		/* answered when we close under it (stop_hold): blkfront
		 * closes straight to 6 with what it queued last */
		disconnect(x, x->stop_ms != 0, r == -ENOENT ?
			   "the frontend is gone" : "the frontend closed");
		set_state(x, XB_CLOSED);
		break;
	default:	/* reconfiguring: nothing for a vbd */
		break;
	}
}

/* ------------------------------------------------------------ discovery */

static int adopt(struct blkif_xen *x);
static int xen_handles(struct blkif_xen *x);
static int epoll_add_both(struct blkif_xen *x);

/* Claim the device at dir (xb_claim_check passed): the handshake runs on
 * it from now on. */
static int claim(struct blkif_xen *x, const char *dir)
{
	int r;

	snprintf(x->be_path, sizeof(x->be_path), "%s", dir);
	snprintf(x->name, sizeof(x->name), "blkif-xen %s", dir);
	x->gone = false;
	r = adopt(x);
	if (r == 0 && !xs_watch(x->xs, x->fe_path, "fe"))
		r = errno ? -errno : -EIO;
	if (r < 0) {
		log_error("%s: cannot claim the device: %s", x->name,
			  strerror(-r));
		return r;
	}
	x->claimed = true;
	x->srv->blkif_device = x->be_path;
	log_info("%s: claimed: domain %u's %s, volume %s of SR %s", x->name,
		 x->fe_domid, x->fe_path, x->expect.key, x->expect.sr);
	reconcile(x);
	return 0;
}

/* Is the claimed device unplugged (removed, or offline with the ring
 * down)?  Then forget it (its states stay as the handshake left them:
 * the toolstack removes the directory) and return true. */
static bool release(struct blkif_xen *x)
{
	unsigned long long online = 0;

	if (!x->gone) {
		if (x->be || x->closing != XC_NONE)
			return false;	/* shutdown-done comes first */
		if (xs_get_uint(x, x->be_path, "online", 1, &online) == 0 &&
		    online == 1)
			return false;	/* plugged: a frontend reconnect */
	}
	disconnect(x, false, "the device was unplugged");
	xs_unwatch(x->xs, x->fe_path, "fe");
	log_info("%s: released (%s)", x->name, x->gone ? "removed" :
		 "online=0");
	x->claimed = false;
	x->srv->blkif_device = NULL;
	x->gone = false;
	x->closing = XC_NONE;
	x->shutdown_done = x->shutdown_bad_logged = false;
	x->stop_ms = 0;
	snprintf(x->name, sizeof(x->name), "blkif-xen %s", x->dom_path);
	return true;
}

/* Look at every device of the domain's qdisk directory; claim the first
 * one that is ours. */
static void scan(struct blkif_xen *x)
{
	static const char *const keys[] = {
		"sm-data/ngdp-sr", "sm-data/ngdp-volume", "frontend",
		"frontend-id", "online", "state", "mode",
	};
	unsigned int n = 0;
	char **ents = xs_directory(x->xs, XBT_NULL, x->dom_path, &n);

	for (unsigned int i = 0; ents && i < n && !x->claimed; i++) {
		char dir[XEN_PATH_MAX], *v[7];
		struct xb_qdisk_dir d;
		enum xb_claim c;
		const char *why;
		int len;

		len = snprintf(dir, sizeof(dir), "%s/%s", x->dom_path,
			       ents[i]);
		if (len < 0 || (size_t)len >= sizeof(dir))
			continue;
		for (size_t k = 0; k < 7; k++)
			v[k] = xs_get(x, dir, keys[k]);
		d = (struct xb_qdisk_dir){
			.devid = ents[i], .ngdp_sr = v[0], .ngdp_volume = v[1],
			.frontend = v[2], .frontend_id = v[3], .online = v[4],
			.state = v[5], .mode = v[6],
		};
		c = xb_claim_check(&x->expect, &d, &why);
		for (size_t k = 0; k < 7; k++)
			free(v[k]);
		if (c == XB_CLAIM_OK) {
			(void)claim(x, dir);
		} else if (c == XB_CLAIM_REFUSED && strcmp(x->refused, dir)) {
			/* marked for us, but wrong: say so once, touch nothing */
			log_error("blkif-xen %s: not claimed: %s", dir, why);
			snprintf(x->refused, sizeof(x->refused), "%s", dir);
		}
	}
	free(ents);	/* one allocation (xs_directory) */
}

static int xen_watch(struct blkif_xen *x)
{
	int r = xen_handles(x);

	if (r < 0)
		return r;
	/* a watch on a path not there yet is allowed; it fires at once, and
	 * for every change below it (the devices and their keys) */
	if (!xs_watch(x->xs, x->dom_path, "dom"))
		return errno ? -errno : -EIO;
	return epoll_add_both(x);
}

static void on_xs(struct ev_tag *tag, uint32_t events)
{
	struct blkif_xen *x = container_of(tag, struct blkif_xen, xs_tag);
	char **w;
	bool any = false;

	(void)events;
	while ((w = xs_check_watch(x->xs))) {
		any = true;
		free(w);
	}
	if (!any || x->released)
		return;
	if (x->claimed || !x->discover)
		reconcile(x);
	if (x->discover && (!x->claimed || release(x)))
		scan(x);
}

static void on_evtchn(struct ev_tag *tag, uint32_t events)
{
	struct blkif_xen *x = container_of(tag, struct blkif_xen, evtchn_tag);
	xenevtchn_port_or_error_t p;

	(void)events;
	p = xenevtchn_pending(x->evtchn);
	if (p < 0)
		return;	/* EAGAIN */
	/* unmasked before the ring is looked at: a later kick is seen */
	xenevtchn_unmask(x->evtchn, (evtchn_port_t)p);
	if (x->be && (evtchn_port_t)p == x->port)
		ring_poll(x);
}

static void closing_step(struct blkif_xen *x);

static bool loop_hook(void *opaque)
{
	struct blkif_xen *x = opaque;
	int r;

	if (x->closing != XC_NONE)
		closing_step(x);
	if (!x->be || !blkif_backend_wants_poll(x->be))
		return false;
	r = blkif_backend_poll(x->be);
	if (r < 0) {
		disconnect(x, false, "the frontend broke the ring protocol");
		set_state(x, XB_CLOSING);
		return false;
	}
	return r > 0;
}

/*
 * The server stops (drained and flushed) with the ring connected: close
 * the device the way a toolstack does, Closing (5) first, and keep
 * answering with an error whatever the frontend still queues, until it
 * closes (reconcile() then releases the ring) or XEN_STOP_WAIT_MS passed.
 * Closed (6) at once would leave the requests blkfront queues before it
 * sees it unanswered, and its teardown waiting for them.
 */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* true while the frontend is given time to close (call every turn once
 * nothing is in flight; limit_ms 0: no limit); why: who closes, for the
 * log */
static bool close_hold(struct blkif_xen *x, const char *why,
		       unsigned int limit_ms)
{
	uint64_t now = now_ms();

	if (!x->be || x->gone)
		return false;
	if (!x->stop_ms) {
		x->stop_ms = now;
		if (limit_ms)
			log_info("%s: %s: closing the device, waiting up to "
				 "%u s for the frontend", x->name, why,
				 limit_ms / 1000);
		else
			log_info("%s: %s: closing the device once the frontend "
				 "closed", x->name, why);
		set_state(x, XB_CLOSING);
	}
	blkif_backend_refuse_queued(x->be);
	if (!limit_ms || now - x->stop_ms < limit_ms)
		return true;
	log_warn("%s: the frontend did not close in %u s: closing the device "
		 "under it", x->name, limit_ms / 1000);
	return false;
}

static bool stop_hold(void *opaque)
{
	return close_hold(opaque, "the server stops", XEN_STOP_WAIT_MS);
}

/* The device is closed for good (server stop, release, shutdown-request):
 * answer what the frontend still queues, release the ring, write Closed
 * (6). */
static void close_device(struct blkif_xen *x, const char *why)
{
	if ((x->claimed || !x->discover) && !x->gone) {
		disconnect(x, true, why);
		if (set_state(x, XB_CLOSED) == 0)
			log_info("%s: closed: %s", x->name, why);
	}
	disconnect(x, false, why);
}

static const char *closing_why(const struct blkif_xen *x)
{
	switch (x->closing) {
	case XC_RELEASE:
		return "the domain was deactivated";
	case XC_SHUTDOWN:
		return "shutdown-request normal";
	case XC_SHUTDOWN_FORCE:
		return "shutdown-request force";
	default:
		return "closing";
	}
}

static void closing_flush_done(struct req *req)
{
	struct blkif_xen *x = req->owner;

	if (req->wire_err)
		log_error("%s: the flush before closing the device failed "
			  "(NBD error %u)", x->name, req->wire_err);
	x->close_flush_done++;
	server_req_put(x->srv, req);
}

/* Every write the frontend saw complete is made stable before the device
 * closes (shutdown-done says so to the toolstack), through the server's
 * own queue: other clients' requests may be in flight. */
static void closing_flush(struct blkif_xen *x)
{
	struct req *req;

	if (x->readonly) {	/* nothing was written through the ring */
		x->close_flush_sent++;
		x->close_flush_done++;
		return;
	}
	req = server_req_get(x->srv);
	if (!req)
		return;	/* none free: the next loop turn */
	req->owner = x;
	req->done = closing_flush_done;
	req->readonly = false;
	req->h = (struct nbd_request){
		.magic = NBD_REQUEST_MAGIC, .type = NBD_CMD_FLUSH,
	};
	x->close_flush_sent++;
	server_submit(x->srv, req);
}

/*
 * Closing the device while the server stays, a step per loop turn: the
 * requests taken are answered first (none is taken any more), the image
 * is flushed, then the device is closed as at stop (for normal, once the
 * frontend closed, however long it takes; otherwise within 10 s).  A
 * release then claims nothing again; a shutdown-request ends with
 * shutdown-done, and the toolstack removes the device.
 */
static void closing_step(struct blkif_xen *x)
{
	const char *why = closing_why(x);

	if (x->be && blkif_backend_in_flight(x->be))
		return;
	if (x->close_flush_done < x->close_flush_want) {
		if (x->close_flush_sent < x->close_flush_want)
			closing_flush(x);
		return;
	}
	/* force too goes through Closing (5), answering what the frontend
	 * still queues: Closed (6) at once leaves the requests blkfront
	 * queued before it saw it unanswered, and its teardown hung (seen) */
	if (close_hold(x, why, x->closing == XC_SHUTDOWN ? 0 : XEN_STOP_WAIT_MS))
		return;
	close_device(x, why);
	if (x->closing == XC_RELEASE) {
		if (x->claimed || !x->discover)
			xs_unwatch(x->xs, x->fe_path, "fe");
		if (x->discover)
			xs_unwatch(x->xs, x->dom_path, "dom");
		else
			xs_unwatch(x->xs, x->be_path, "be");
		x->claimed = false;
		x->released = true;
		x->srv->blkif_device = NULL;
		log_info("%s: released: domain %u's ring is served no more",
			 x->name, x->discover ? x->expect.domid : x->fe_domid);
	} else if (!x->gone) {
		struct kv kv = { .key = "shutdown-done", .val = "" };
		int r = xs_put_all(x, &kv, 1);

		if (r < 0)
			log_error("%s: cannot write shutdown-done: %s", x->name,
				  strerror(-r));
		else
			log_info("%s: shutdown-done", x->name);
		x->shutdown_done = true;
	}
	x->closing = XC_NONE;
}

static void closing_start(struct blkif_xen *x, enum xen_closing why)
{
	x->closing = why;
	/* a flush sent from now on: not one an earlier close sent */
	x->close_flush_want = x->close_flush_sent + 1;
	if (x->be)
		blkif_backend_stop_taking(x->be);
	log_info("%s: %s: closing the device (%u request(s) in flight)",
		 x->name, closing_why(x),
		 x->be ? blkif_backend_in_flight(x->be) : 0);
	closing_step(x);
}

/* xenopsd's ShutdownRequest mode (with control/feature-shutdown-request):
 * it writes shutdown-request = normal (after online = 0) or force, and
 * waits for shutdown-done. */
static void shutdown_request_check(struct blkif_xen *x)
{
	enum xen_closing c = XC_NONE;
	char *v;

	if (x->shutdown_done || x->released || x->closing == XC_RELEASE ||
	    x->closing == XC_SHUTDOWN_FORCE)
		return;
	v = xs_get(x, x->be_path, "shutdown-request");
	if (!v)
		return;
	if (!strcmp(v, "force"))
		c = XC_SHUTDOWN_FORCE;
	else if (!strcmp(v, "normal"))
		c = XC_SHUTDOWN;
	if (c == XC_NONE && !x->shutdown_bad_logged) {
		log_warn("%s: shutdown-request '%.40s' not understood (normal "
			 "or force): ignored", x->name, v);
		x->shutdown_bad_logged = true;
	}
	free(v);
	if (c != XC_NONE && c != x->closing)
		closing_start(x, c);
}

static int ring_release(void *opaque, unsigned int domid, const char **why)
{
	struct blkif_xen *x = opaque;
	unsigned int ours = x->discover ? x->expect.domid : x->fe_domid;

	if (domid != ours) {
		*why = "the ring served is another domain's";
		return -ESRCH;
	}
	if (x->released || x->closing == XC_RELEASE)
		return 0;
	if (server_stopping(x->srv)) {
		*why = "the server is stopping";
		return -ESHUTDOWN;
	}
	/* a shutdown-request under way becomes the release */
	closing_start(x, XC_RELEASE);
	return 0;
}

static const char *ring_state(void *opaque)
{
	const struct blkif_xen *x = opaque;

	if (x->released)
		return CTL_RING_RELEASED;
	if (x->closing == XC_RELEASE)
		return CTL_RING_RELEASING;
	if (x->closing != XC_NONE)
		return CTL_RING_CLOSING;
	if (x->be)
		return CTL_RING_CONNECTED;
	if ((x->claimed || !x->discover) && !x->gone)
		return x->shutdown_done ? CTL_RING_CLOSED : CTL_RING_CLAIMED;
	return CTL_RING_WAITING;
}

/* ------------------------------------------------------------ lifecycle */

/* The backend's keys: what we offer, and the disk. */
static int publish(struct blkif_xen *x)
{
	struct kv kv[16];
	size_t n = 0;
	char *mode;

#define KV(k, ...) do { kv[n].key = (k); kv[n].text = NULL; \
	snprintf(kv[n].val, sizeof(kv[n].val), __VA_ARGS__); n++; } while (0)
	mode = xs_get(x, x->be_path, "mode");
	if (mode && strcmp(mode, "r") && strcmp(mode, "w")) {
		log_error("%s: mode '%.8s' is neither r nor w", x->name, mode);
		free(mode);
		return -EINVAL;
	}
	x->readonly = server_readonly(x->srv) || (mode && !strcmp(mode, "r"));
	if (!mode)
		KV("mode", "%s", x->readonly ? "r" : "w");
	free(mode);
	KV("feature-flush-cache", "1");
	KV("feature-barrier", "1");
	KV("feature-persistent", "1");
	KV("feature-max-indirect-segments", "%u",
	   BLKIF_BACKEND_INDIRECT_SEGMENTS);
	KV("max-ring-page-order", "%u", BLKIF_MAX_RING_PAGE_ORDER);
	if (!x->readonly) {
		KV("feature-discard", "1");
		KV("discard-granularity", "%u", BLKIF_PAGE_SIZE);
		KV("discard-alignment", "0");
		KV("discard-secure", "0");
	}
	KV("sectors", "%llu",
	   (unsigned long long)(server_size(x->srv) / BLKIF_SECTOR_SIZE));
	KV("sector-size", "%u", BLKIF_SECTOR_SIZE);
	KV("info", "%u", x->readonly ? BLKIF_VDISK_READONLY : 0U);
#undef KV
	return xs_put_all(x, kv, n);
}

/* The frontend's path and domid, checked against each other. */
static int read_frontend(struct blkif_xen *x)
{
	char *fe = xs_get(x, x->be_path, "frontend");
	char *id = xs_get(x, x->be_path, "frontend-id");
	int r = -EINVAL;

	if (!fe || !id) {
		log_error("%s: no frontend or frontend-id key", x->name);
		r = -ENOENT;
	} else if (xb_parse_domid(id, &x->fe_domid) < 0) {
		log_error("%s: bad frontend-id '%.16s'", x->name, id);
	} else if (!xb_frontend_path_ok(fe, x->fe_domid) ||
		   strlen(fe) >= sizeof(x->fe_path)) {
		log_error("%s: frontend '%.64s' is not a vbd of domain %u",
			  x->name, fe, x->fe_domid);
	} else {
		strcpy(x->fe_path, fe);
		r = 0;
	}
	free(fe);
	free(id);
	return r;
}

/* Xen's three handles; the event channel's fd non-blocking. */
static int xen_handles(struct blkif_xen *x)
{
	x->xs = xs_open(0);
	if (!x->xs)
		return -errno;
	x->gnt = xengnttab_open(NULL, 0);
	if (!x->gnt)
		return -errno;
	x->evtchn = xenevtchn_open(NULL, 0);
	if (!x->evtchn)
		return -errno;
	x->evtchn_fd = xenevtchn_fd(x->evtchn);
	if (x->evtchn_fd < 0 ||
	    fcntl(x->evtchn_fd, F_SETFL,
		  fcntl(x->evtchn_fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	x->xs_fd = xs_fileno(x->xs);
	return x->xs_fd < 0 ? -EIO : 0;
}

/* Take over be_path: its frontend, our keys, InitWait unless a dead
 * server left the ring Connected (then it is re-adopted, not reset). */
static int adopt(struct blkif_xen *x)
{
	enum xenbus_state be_st, fe_st;
	int r;

	r = read_frontend(x);
	if (r < 0)
		return r;
	r = publish(x);
	if (r < 0) {
		log_error("%s: cannot write the backend's keys: %s", x->name,
			  strerror(-r));
		return r;
	}
	/* A ring a dead server left connected is re-adopted, not reset. */
	if (!(xs_get_state(x, x->be_path, &be_st) == 0 &&
	      be_st == XB_CONNECTED &&
	      xs_get_state(x, x->fe_path, &fe_st) == 0 &&
	      (fe_st == XB_INITIALISED || fe_st == XB_CONNECTED))) {
		r = set_state(x, XB_INIT_WAIT);
		if (r < 0)
			return r;
	}
	return 0;
}

static int epoll_add_both(struct blkif_xen *x)
{
	int r = server_epoll_add(x->srv, x->xs_fd, EPOLLIN, &x->xs_tag);

	if (r < 0)
		return r;
	r = server_epoll_add(x->srv, x->evtchn_fd, EPOLLIN, &x->evtchn_tag);
	if (r < 0)
		server_epoll_del(x->srv, x->xs_fd);
	return r;
}

static int xen_open(struct blkif_xen *x)
{
	int r = xen_handles(x);

	if (r == 0)
		r = adopt(x);
	if (r < 0)
		return r;
	/* each watch fires once at once: the first reconcile */
	if (!xs_watch(x->xs, x->be_path, "be") ||
	    !xs_watch(x->xs, x->fe_path, "fe"))
		return errno ? -errno : -EIO;
	return epoll_add_both(x);
}

static void xen_free(struct blkif_xen *x)
{
	if (x->evtchn)
		xenevtchn_close(x->evtchn);
	if (x->gnt)
		xengnttab_close(x->gnt);
	if (x->xs)
		xs_close(x->xs);
	free(x);
}

static struct blkif_xen *xen_new(struct server *srv, unsigned int grant_cache)
{
	struct blkif_xen *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->srv = srv;
	x->gc_max = grant_cache ? grant_cache : XEN_GCACHE_DEFAULT;
	x->xs_fd = x->evtchn_fd = -1;
	x->xs_tag = (struct ev_tag){ .kind = EV_HOOK, .on_event = on_xs };
	x->evtchn_tag = (struct ev_tag){ .kind = EV_HOOK,
					 .on_event = on_evtchn };
	return x;
}

int blkif_xen_open(struct server *srv, const char *be_path,
		   unsigned int grant_cache, struct blkif_xen **ret)
{
	struct blkif_xen *x;
	size_t len = strlen(be_path);
	int r;

	/* a path as xenstore has it: absolute, no trailing slash */
	if (len < 2 || len >= XEN_PATH_MAX || be_path[0] != '/' ||
	    be_path[len - 1] == '/')
		return -EINVAL;
	x = xen_new(srv, grant_cache);
	if (!x)
		return -ENOMEM;
	strcpy(x->be_path, be_path);
	snprintf(x->name, sizeof(x->name), "blkif-xen %s", be_path);
	r = xen_open(x);
	if (r < 0) {
		log_error("%s: %s", x->name, strerror(-r));
		xen_free(x);
		return r;
	}
	server_set_loop_hook(srv, loop_hook, x);
	server_set_stop_hold(srv, stop_hold, x);
	server_set_ring_control(srv, ring_release, ring_state, x);
	srv->blkif_device = x->be_path;
	log_info("%s: serving domain %u's %s", x->name, x->fe_domid,
		 x->fe_path);
	*ret = x;
	return 0;
}

int blkif_xen_watch(struct server *srv, const struct xb_expect *e,
		    unsigned int grant_cache, struct blkif_xen **ret)
{
	struct blkif_xen *x = xen_new(srv, grant_cache);
	int r;

	if (!x)
		return -ENOMEM;
	x->discover = true;
	x->expect = *e;
	snprintf(x->dom_path, sizeof(x->dom_path),
		 "/local/domain/0/backend/qdisk/%u", e->domid);
	snprintf(x->name, sizeof(x->name), "blkif-xen %s", x->dom_path);
	r = xen_watch(x);
	if (r < 0) {
		log_error("%s: %s", x->name, strerror(-r));
		xen_free(x);
		return r;
	}
	server_set_loop_hook(srv, loop_hook, x);
	server_set_stop_hold(srv, stop_hold, x);
	server_set_ring_control(srv, ring_release, ring_state, x);
	log_info("%s: waiting for domain %u's qdisk device of volume %s "
		 "(%s)", x->name, e->domid, e->key, e->readonly ? "r" : "w");
	*ret = x;
	return 0;
}

void blkif_xen_close(struct blkif_xen *x)
{
	if (!x)
		return;
	server_set_loop_hook(x->srv, NULL, NULL);
	server_set_stop_hold(x->srv, NULL, NULL);
	server_set_ring_control(x->srv, NULL, NULL, NULL);
	x->srv->blkif_device = NULL;
	/* An orderly stop: what the ring had taken is answered and flushed
	 * (server_run drained it); close the device rather than leave a
	 * guest waiting on a ring nobody serves.  (A crash leaves it
	 * Connected, for the next server to re-adopt.) */
	if (!x->released)
		close_device(x, "the server stopped");
	server_epoll_del(x->srv, x->evtchn_fd);
	server_epoll_del(x->srv, x->xs_fd);
	xen_free(x);
}

void blkif_xen_set_fail_mark(struct blkif_xen *x, const char *path)
{
	x->fail_mark = path;
}
