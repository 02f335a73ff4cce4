/* SPDX-License-Identifier: LGPL-2.1-only */
/* Datapath.* handlers: attach/activate/deactivate/detach, open/close. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "active.h"
#include "cleanup.h"
#include "dp.h"
#include "fileio.h"
#include "json-io.h"
#include "log.h"
#include "proc.h"

#define SCHEME "ngdp://"
#define MAX_CHAIN 64

int dp_arg_target(struct call *c, bool want_domain, struct dp_target *t)
{
	const char *uri, *domain, *slash;
	size_t i;
	int r;

	memset(t, 0, sizeof(*t));
	if ((r = arg_string(c, "uri", &uri)) < 0)
		return r;
	slash = strrchr(uri, '/');
	if (strncmp(uri, SCHEME, strlen(SCHEME)) || !slash ||
	    strlen(uri) >= sizeof(t->uri) ||
	    (size_t)(slash - uri) - strlen(SCHEME) >= sizeof(t->sr_path))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "'%.200s' is not an ngdp:// volume URI", uri);
	snprintf(t->uri, sizeof(t->uri), "%s", uri);
	snprintf(t->sr_path, sizeof(t->sr_path), "%.*s",
		 (int)(slash - uri - strlen(SCHEME)), uri + strlen(SCHEME));
	if (!sr_handle_is_plausible(t->sr_path) ||
	    !volume_key_is_valid(slash + 1))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "'%.200s' does not name a volume of an "
				 "attached SR", uri);
	snprintf(t->key, sizeof(t->key), "%s", slash + 1);
	snprintf(t->run_dir, sizeof(t->run_dir), "%s/%s", sr_paths()->run_dir,
		 t->key);
	if (!want_domain)
		return 0;
	if ((r = arg_string(c, "domain", &domain)) < 0)
		return r;
	/* a domid, "" (domain gone) or "u0_<dp>": it names a socket file */
	if (strlen(domain) >= sizeof(t->domain) - 1)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "domain name too long");
	for (i = 0; domain[i]; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789_-", domain[i]))
			return call_fail(c, -EINVAL, "Invalid_argument",
					 "domain '%.64s' has characters other "
					 "than letters, digits, _ and -",
					 domain);
	snprintf(t->domain, sizeof(t->domain), "%s", domain);
	return 0;
}

static int open_sr(struct call *c, const struct dp_target *t,
		   enum sr_lock_mode mode, struct sr *sr)
{
	int r = sr_open(t->sr_path, NULL, mode, sr);

	if (r == -ENOENT)
		return call_fail(c, r, "Sr_not_attached",
				 "the SR %s is not attached on this host",
				 t->sr_path);
	if (r < 0)
		return call_fail(c, r, "SR_corrupt", "the SR %s: %s",
				 t->sr_path, strerror(-r));
	return 0;
}

static void domain_link(const struct dp_target *t, char *out, size_t len)
{
	snprintf(out, len, "%s/d-%s.sock", t->run_dir, t->domain);
}

int dp_query(struct call *c, json_object **ret)
{
	json_object *out = json_new_object(), *f = json_new_array();

	(void)c;
	json_add_string(out, "plugin", "ngdp");
	json_add_string(out, "name", "ngdp datapath");
	json_add_string(out, "description",
			"Serves raw, QCOW2 and VHD volumes of the ext4-ng and "
			"xfs-ng SRs from one process per volume with O_DIRECT "
			"and libaio/io_uring, exported over NBD (and /dev/nbdN "
			"for blkback where the kernel has nbd.ko)");
	json_add_string(out, "vendor", "xapi-storage-ng project");
	json_add_string(out, "copyright", "Copyright the xapi-storage-ng "
			"authors; LGPL-2.1-only");
	json_add_string(out, "version", VERSION);
	json_add_string(out, "required_api_version", "5.0");
	/* open/close implement reset-on-boot disks */
	json_object_array_add(f, json_new_string("NONPERSISTENT"));
	json_add(out, "features", f);
	json_add(out, "configuration", json_new_object());
	json_add(out, "required_cluster_stack", json_new_array());
	*ret = out;
	return 0;
}

/* Every image of the volume's chain is there (headers are checked by the
 * server when it opens them). */
static int check_chain(struct call *c, struct sr *sr, const char *key)
{
	json_object *vol, *img = NULL;
	char id[UUID_STR_LEN], name[64];
	enum image_fmt fmt;
	struct stat st;
	int depth, r;

	r = sr_call_load_volume(c, sr, key, &vol);
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "%s", rec_str(vol, "image"));
	json_object_put(vol);
	for (depth = 0; id[0]; depth++) {
		if (depth > MAX_CHAIN)
			return call_fail(c, -ELOOP, "SR_corrupt",
					 "the image chain of %s is deeper than "
					 "%d (a loop?)", key, MAX_CHAIN);
		r = sr_image_load(sr, id, &img);
		if (r < 0 || sr_image_fmt(img, &fmt) < 0) {
			json_object_put(img);
			return call_fail(c, r < 0 ? r : -EUCLEAN, "SR_corrupt",
					 "image %s of volume %s has no valid "
					 "record", id, key);
		}
		sr_image_filename(id, fmt, name, sizeof(name));
		if (fstatat(sr->imagesfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode)) {
			json_object_put(img);
			return call_fail(c, -ENOENT, "SR_corrupt",
					 "image file %s of volume %s is "
					 "missing", name, key);
		}
		snprintf(id, sizeof(id), "%s", rec_str(img, "parent"));
		json_object_put(img);
		img = NULL;
	}
	return 0;
}

int dp_attach(struct call *c, json_object **ret)
{
	json_object *impls, *nbd, *v;
	struct dp_target t;
	char uri[PATH_MAX + 128], link[PATH_MAX], why[256], dev[32];
	struct sr sr;
	int r, index;

	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = open_sr(c, &t, SR_LOCK_SHARED, &sr)) < 0)
		return r;
	r = check_chain(c, &sr, t.key);
	sr_close(&sr);
	if (r < 0)
		return r;
	r = mkdir_p(t.run_dir, 0700);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "cannot create %s: %s",
				 t.run_dir, strerror(-r));
	domain_link(&t, link, sizeof(link));
	snprintf(uri, sizeof(uri), "nbd:unix:%s:exportname=%s", link, t.key);
	impls = json_new_array();
	if (nbd_kernel_available(why, sizeof(why)) &&
	    nbd_kernel_reserve(&t, &index) == 0) {
		json_object *xd = json_new_object(), *bd = json_new_object();

		/* kernel blkback on /dev/nbdN, connected at activate */
		snprintf(dev, sizeof(dev), "/dev/nbd%d", index);
		json_add_string(xd, "backend_type", "vbd");
		json_add_string(xd, "params", dev);
		json_add(xd, "extra", json_new_object());
		v = json_new_array();
		json_object_array_add(v, json_new_string("XenDisk"));
		json_object_array_add(v, xd);
		json_object_array_add(impls, v);
		json_add_string(bd, "path", dev);
		v = json_new_array();
		json_object_array_add(v, json_new_string("BlockDevice"));
		json_object_array_add(v, bd);
		json_object_array_add(impls, v);
	} else {
		log_info("volume %s: no block device, NBD only: %s", t.key,
			 why);
	}
	nbd = json_new_object();
	json_add_string(nbd, "uri", uri);
	v = json_new_array();
	json_object_array_add(v, json_new_string("Nbd"));
	json_object_array_add(v, nbd);
	json_object_array_add(impls, v);
	*ret = json_new_object();
	json_add(*ret, "implementations", impls);
	return 0;
}

static json_object *domains_of(json_object *rec)
{
	json_object *d;

	if (!json_object_object_get_ex(rec, "domains", &d) || !d ||
	    !json_object_is_type(d, json_type_object)) {
		d = json_new_object();
		json_add(rec, "domains", d);
	}
	return d;
}

/* Remove what a dead server left: sockets, links. */
static void clean_run_dir(const struct dp_target *t)
{
	CLEANUP_CLOSEDIR DIR *d = opendir(t->run_dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n > 5 && !strcmp(de->d_name + n - 5, ".sock")) {
			char p[PATH_MAX];

			snprintf(p, sizeof(p), "%s/%s", t->run_dir, de->d_name);
			unlink(p);
		}
	}
}

static bool log_says_dirty(const struct dp_target *t)
{
	CLEANUP_FREE char *buf = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/server.log", t->run_dir);
	return read_file_at(AT_FDCWD, path, 1 << 20, &buf, NULL) == 0 &&
	       strstr(buf, "check -r all");
}

static int start_server(struct call *c, struct sr *sr,
			const struct dp_target *t, json_object **ret_rec)
{
	char image[PATH_MAX], line[512];
	bool np, readonly = false;
	json_object *vol;
	int r;

	r = dp_volume_image(c, sr, t->key, image, sizeof(image), &np);
	if (r < 0)
		return r;
	if (!np && sr_volume_load(sr, t->key, &vol) == 0) {
		/* snapshots are served read-only whoever asks */
		readonly = !rec_bool(vol, "read_write");
		json_object_put(vol);
	}
	clean_run_dir(t);
	r = dp_server_start(c, sr, t, image, readonly, ret_rec);
	if (r < 0 && log_says_dirty(t) && !readonly) {
		/* lazy refcounts left dirty by a crash elsewhere: repair, as
		 * the qcow2 spec requires, then try once more */
		const char *const argv[] = { "qemu-img", "check", "-q", "-r",
					     "all", "-f", "qcow2", image, NULL };

		log_warn("image %s is marked dirty: repairing", image);
		if (proc_run_checked(argv, line, sizeof(line)) == 0) {
			c->err_name[0] = '\0';
			r = dp_server_start(c, sr, t, image, readonly, ret_rec);
		}
	}
	return r;
}

static int activate(struct call *c, bool readonly)
{
	json_object *rec = NULL;
	char link[PATH_MAX];
	struct dp_target t;
	struct sr sr;
	bool started = false;
	int r, index;

	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = open_sr(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	r = check_chain(c, &sr, t.key);
	if (r < 0)
		goto out;
	r = sr_volume_active(&sr, t.key, &rec);
	if (r < 0) {
		r = call_fail(c, r, "Datapath_error", "activation record: %s",
			      strerror(-r));
		goto out;
	}
	if (r == 1 && strcmp(rec_str(rec, "host"), sr_paths()->host_uuid)) {
		snprintf(c->err_param, sizeof(c->err_param), "%s",
			 rec_str(rec, "host"));
		r = call_fail(c, -EBUSY, "Activated_on_another_host",
			      "volume %s is active on host %s", t.key,
			      rec_str(rec, "host"));
		goto out;
	}
	if (r == 0) {
		/* not served (or its server died): start one */
		json_object_put(rec);
		rec = NULL;
		r = start_server(c, &sr, &t, &rec);
		started = true;
		if (r < 0)
			goto out;
	}
	if (!readonly && rec_bool(rec, "readonly")) {
		r = call_fail(c, -EROFS, "Invalid_argument",
			      "volume %s is a read-only snapshot: it can only "
			      "be activated read-only", t.key);
		goto out;
	}
	/* this domain's socket name leads to the rw or the ro listener;
	 * repeating an activate just re-points it (idempotent) */
	domain_link(&t, link, sizeof(link));
	unlink(link);
	if (symlink(readonly ? "ro.sock" : "rw.sock", link) < 0) {
		r = call_fail(c, -errno, "Datapath_error", "symlink %s: %m",
			      link);
		goto out;
	}
	json_add_string(domains_of(rec), t.domain, readonly ? "ro" : "rw");
	r = active_save(&sr, t.key, rec);
	if (r < 0) {
		r = call_fail(c, r, "Datapath_error",
			      "cannot save the activation record: %s",
			      strerror(-r));
		goto out;
	}
	/* /dev/nbdN: connect once per server.  A repeated activate finds it
	 * connected (idempotent); a new server replaces a dead one's
	 * connection, which the kernel still holds. */
	index = nbd_kernel_index(&t);
	if (index >= 0 && !readonly &&
	    (started || !nbd_kernel_connected(index))) {
		if (started && nbd_kernel_connected(index))
			(void)nbd_kernel_disconnect(index);
		r = nbd_kernel_connect(&t, index, link, t.key, 4);
		if (r < 0)
			r = call_fail(c, r, "Datapath_error",
				      "cannot connect /dev/nbd%d: %s", index,
				      strerror(-r));
	}
	log_info("volume %s active for domain '%s' (%s), server pid %" PRId64,
		 t.key, t.domain, readonly ? "ro" : "rw", rec_int(rec, "pid"));
out:
	json_object_put(rec);
	sr_close(&sr);
	return r;
}

int dp_activate(struct call *c, json_object **ret)
{
	(void)ret;
	return activate(c, false);
}

int dp_activate_readonly(struct call *c, json_object **ret)
{
	(void)ret;
	return activate(c, true);
}

/* Drop one domain; the last one out stops the server. */
static int deactivate_domain(struct call *c, struct sr *sr,
			     const struct dp_target *t)
{
	json_object *rec, *domains;
	char link[PATH_MAX];
	int r, rr, index;

	domain_link(t, link, sizeof(link));
	unlink(link);
	r = active_load(sr, t->key, &rec);
	if (r < 0)
		return 0;	/* nothing active: deactivate is idempotent */
	if (strcmp(rec_str(rec, "host"), sr_paths()->host_uuid)) {
		snprintf(c->err_param, sizeof(c->err_param), "%s",
			 rec_str(rec, "host"));
		r = call_fail(c, -EBUSY, "Activated_on_another_host",
			      "volume %s is active on host %s", t->key,
			      rec_str(rec, "host"));
		json_object_put(rec);
		return r;
	}
	domains = domains_of(rec);
	json_object_object_del(domains, t->domain);
	if (json_object_object_length(domains) > 0 &&
	    active_record_is_live(rec)) {
		r = active_save(sr, t->key, rec);
		json_object_put(rec);
		return r < 0 ? call_fail(c, r, "Datapath_error",
					 "cannot save the activation record: "
					 "%s", strerror(-r)) : 0;
	}
	index = nbd_kernel_index(t);
	if (index >= 0)
		(void)nbd_kernel_disconnect(index);
	/* even a server that had to be killed is gone: drop its record */
	r = dp_server_stop(c, rec);
	json_object_put(rec);
	rr = active_remove(sr, t->key);
	if (rr < 0 && r == 0)
		r = call_fail(c, rr, "Datapath_error",
			      "cannot remove the activation record: %s",
			      strerror(-rr));
	clean_run_dir(t);
	return r;
}

int dp_deactivate(struct call *c, json_object **ret)
{
	struct dp_target t;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = open_sr(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	r = deactivate_domain(c, &sr, &t);
	sr_close(&sr);
	return r;
}

int dp_detach(struct call *c, json_object **ret)
{
	json_object *rec;
	struct dp_target t;
	struct sr sr;

	(void)ret;
	/* "should never fail": clean up what we can, log the rest */
	if (dp_arg_target(c, true, &t) < 0)
		return 0;
	if (sr_open(t.sr_path, NULL, SR_LOCK_EXCLUSIVE, &sr) == 0) {
		if (active_load(&sr, t.key, &rec) == 0) {
			json_object *d = domains_of(rec);

			if (json_object_object_get_ex(d, t.domain, NULL) ||
			    !active_record_is_live(rec)) {
				log_warn("detach of %s for '%s' without "
					 "deactivate: deactivating", t.key,
					 t.domain);
				if (deactivate_domain(c, &sr, &t) < 0)
					log_error("detach: %s", c->err_msg);
			}
			json_object_put(rec);
		}
		sr_close(&sr);
	}
	nbd_kernel_release(&t);
	/* the run directory goes once no server and no domain needs it */
	if (rmdir(t.run_dir) < 0 && errno == ENOTEMPTY) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/server.log", t.run_dir);
		unlink(p);
		(void)rmdir(t.run_dir);
	}
	c->err_name[0] = '\0';
	return 0;
}

int dp_open(struct call *c, json_object **ret)
{
	char overlay[PATH_MAX], leaf[PATH_MAX], line[512];
	const char *base;
	struct dp_target t;
	bool persistent, np;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = dp_arg_target(c, false, &t)) < 0 ||
	    (r = arg_bool(c, "persistent", &persistent)) < 0)
		return r;
	if (persistent)
		return 0;
	if ((r = open_sr(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	r = sr_volume_active(&sr, t.key, NULL);
	if (r == 1) {
		r = call_fail(c, -EBUSY, "Volume_in_use",
			      "volume %s is active: open it before "
			      "activating", t.key);
		goto out;
	}
	/* a new epoch starts from the volume as it is: drop any old overlay */
	dp_overlay_path(&sr, t.key, overlay, sizeof(overlay));
	unlink(overlay);
	r = dp_volume_image(c, &sr, t.key, leaf, sizeof(leaf), &np);
	if (r < 0)
		goto out;
	base = strrchr(leaf, '/') + 1;
	{
		/* images/<id>.<ext>: the extension is the format */
		const char *ext = strrchr(base, '.');
		const char *fmt = !strcmp(ext, ".vhd") ? "vpc" :
				  !strcmp(ext, ".raw") ? "raw" : "qcow2";
		const char *const argv[] = { "qemu-img", "create", "-q", "-f",
					     "qcow2", "-o", "compat=1.1", "-b",
					     base, "-F", fmt, overlay, NULL };

		r = proc_run_checked(argv, line, sizeof(line));
	}
	if (r < 0) {
		unlink(overlay);
		r = call_fail(c, r, "Datapath_error",
			      "cannot create the reset-on-boot overlay: %s",
			      line);
		goto out;
	}
	r = fsync_dir_at(sr.imagesfd, ".");
	log_info("volume %s opened non-persistent: writes go to %s", t.key,
		 overlay);
out:
	sr_close(&sr);
	return r;
}

int dp_close(struct call *c, json_object **ret)
{
	char overlay[PATH_MAX];
	json_object *rec;
	struct dp_target t;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = dp_arg_target(c, false, &t)) < 0 ||
	    (r = open_sr(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	dp_overlay_path(&sr, t.key, overlay, sizeof(overlay));
	if (sr_volume_active(&sr, t.key, &rec) == 1) {
		bool on_overlay = !strcmp(rec_str(rec, "image"), overlay);

		json_object_put(rec);
		if (on_overlay) {
			r = call_fail(c, -EBUSY, "Volume_in_use",
				      "volume %s is still active on its "
				      "reset-on-boot overlay: deactivate it "
				      "first", t.key);
			goto out;
		}
	}
	/* discard the epoch's writes: the volume is as it was at open */
	if (unlink(overlay) == 0)
		(void)fsync_dir_at(sr.imagesfd, ".");
	r = 0;
out:
	sr_close(&sr);
	return r;
}
