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
#include "bytes.h"
#include "cleanup.h"
#include "dp.h"
#include "fileio.h"
#include "fullio.h"
#include "json-io.h"
#include "log.h"
#include "proc.h"

#define SCHEME "ngdp://"
#define MAX_CHAIN 64

int dp_load_volume(struct call *c, struct sr *sr, const char *key,
		   json_object **ret)
{
	struct sr_why why;
	int r = sr_volume_load_why(sr, key, ret, &why);

	return r < 0 ? call_fail(c, r, why.code, "%s", why.text) : 0;
}

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

/* <run>/<S>: S is the shortest of these prefixes of the SR's uuid that no
 * other SR seen on this host has taken; <run>/<S>/sr names the owner. */
static int sr_run_dir(const struct sr *sr, char *out, size_t len)
{
	static const int prefix[] = { 8, 13, 18, 23, UUID_STR_LEN - 1 };
	char tmp[PATH_MAX + 64];
	size_t i;
	int r;

	for (i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++) {
		CLEANUP_FREE char *owner = NULL;
		char path[PATH_MAX + 16];
		int fd;

		snprintf(out, len, "%s/%.*s", host_paths()->run_dir, prefix[i],
			 sr->uuid);
		r = mkdir_p(out, 0700);
		if (r < 0)
			return r;
		snprintf(path, sizeof(path), "%s/sr", out);
		if (read_file_at(AT_FDCWD, path, 64, &owner, NULL) == 0) {
			if (!strcmp(owner, sr->uuid))
				return 0;
			continue;	/* another SR's */
		}
		/* write it whole, then link it in: a reader never sees half
		 * a name, and of two racing writers one wins */
		snprintf(tmp, sizeof(tmp), "%s/.sr-%d", out, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			  O_NOFOLLOW, 0600);
		if (fd < 0)
			return -errno;
		r = write_all(fd, sr->uuid, strlen(sr->uuid));
		close(fd);
		if (r == 0 && link(tmp, path) < 0 && errno != EEXIST)
			r = -errno;
		unlink(tmp);
		if (r < 0)
			return r;
		free(owner);
		owner = NULL;
		if (read_file_at(AT_FDCWD, path, 64, &owner, NULL) == 0 &&
		    !strcmp(owner, sr->uuid))
			return 0;
	}
	return -EEXIST;
}

int dp_bind_run_dir(struct call *c, struct dp_target *t, struct sr *sr)
{
	char dir[PATH_MAX];
	int r = sr_run_dir(sr, dir, sizeof(dir));

	if (r < 0)
		return call_fail(c, r, "Datapath_error",
				 "cannot set up the run directory of SR %s "
				 "under %s: %s", sr->uuid, host_paths()->run_dir,
				 strerror(-r));
	if (strlen(dir) + 1 + strlen(t->key) >= sizeof(t->run_dir))
		return call_fail(c, -ENAMETOOLONG, "Datapath_error",
				 "the run directory %s is too long",
				 host_paths()->run_dir);
	snprintf(t->run_dir, sizeof(t->run_dir), "%s/%s", dir, t->key);
	return 0;
}

/* Open the SR named by the URI, check that it holds the volume (a URI
 * naming another SR must never reach this one's activations), and bind
 * the run directory. */
int dp_open_target(struct call *c, struct dp_target *t,
		       enum sr_lock_mode mode, struct sr *sr)
{
	json_object *vol;
	int r = open_sr(c, t, mode, sr);

	if (r < 0)
		return r;
	r = dp_load_volume(c, sr, t->key, &vol);
	if (r == 0) {
		json_object_put(vol);
		r = dp_bind_run_dir(c, t, sr);
	}
	if (r < 0)
		sr_close(sr);
	return r;
}

/* <run dir>/d-<domain>.sock, the name handed to xapi; a domain name too
 * long for a UNIX socket path (dom0 users are "u0_" + xapi's datapath
 * name) is replaced by its 64-bit FNV-1a hash, marked by '=' (which domain
 * names cannot hold). */
static void domain_link(const struct dp_target *t, char *out, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	const char *p;

	snprintf(out, len, "%s/d-%s.sock", t->run_dir, t->domain);
	if (strlen(out) < 108)	/* sizeof(sockaddr_un.sun_path) */
		return;
	for (p = t->domain; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 1099511628211ULL;
	}
	snprintf(out, len, "%s/d=%016" PRIx64 ".sock", t->run_dir, h);
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
	/* storage migration: Data.mirror here (source), import_activate
	 * (destination) */
	json_object_array_add(f, json_new_string("VDI_MIRROR"));
	json_object_array_add(f, json_new_string("VDI_MIRROR_IN"));
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
	enum sr_fmt fmt;
	struct stat st;
	int depth, r;

	r = dp_load_volume(c, sr, key, &vol);
	if (r < 0)
		return r;
	if (!sr_volume_has_data(vol)) {
		json_object_put(vol);
		return call_fail(c, -EINVAL, "Invalid_argument", "volume %s "
				 "holds no data (its data was destroyed; only "
				 "its changed-block metadata is kept)", key);
	}
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

/* <run dir>/d-<domain>.ring: attach offered the domain the blkif ring. */
static void ring_mark_path(const struct dp_target *t, char *out, size_t len)
{
	snprintf(out, len, "%s/d-%s.ring", t->run_dir, t->domain);
}

/* Write the mark (tmpfs: a crash loses the run directory with it). */
static int ring_mark_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		      O_NOFOLLOW, 0600);
	int r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, "qdisk\n", 6);
	close(fd);
	return r;
}

static bool has_ring(const struct dp_target *t)
{
	char p[PATH_MAX];

	ring_mark_path(t, p, sizeof(p));
	return access(p, F_OK) == 0;
}

/* The domain whose ring rec's server serves ("" for none). */
static const char *ring_domain_of(json_object *rec)
{
	json_object *o;

	if (!rec || !json_object_object_get_ex(rec, "ring", &o) ||
	    !json_object_is_type(o, json_type_object))
		return "";
	return rec_str(o, "domain");
}

/* A live server of the volume that does not serve t's domain's ring: it
 * cannot take one now (the ring is a server option). */
static bool served_without_ring(struct sr *sr, const struct dp_target *t)
{
	json_object *rec = NULL;
	bool r = sr_volume_active(sr, t->key, &rec) == 1 &&
		 strcmp(ring_domain_of(rec), t->domain);

	json_object_put(rec);
	return r;
}

/* The XenDisk of the ring (docs/blkif-handoff.md 4.2): xenopsd writes
 * params = the Nbd uri, qemu-params = "ngdp:<key>" (not qemuback's "vdi:")
 * and extra as sm-data/<k>, the marks ngdp-server claims the device by. */
static json_object *ring_xendisk(const char *sr_uuid, const char *key)
{
	json_object *xd = json_new_object(), *extra = json_new_object();
	char params[64];

	snprintf(params, sizeof(params), "ngdp:%s", key);
	json_add_string(xd, "backend_type", "qdisk");
	json_add_string(xd, "params", params);
	json_add_string(extra, "ngdp-sr", sr_uuid);
	json_add_string(extra, "ngdp-volume", key);
	json_add(xd, "extra", extra);
	return xd;
}

int dp_attach(struct call *c, json_object **ret)
{
	json_object *impls, *nbd, *v;
	struct dp_target t;
	char uri[PATH_MAX + 128], link[PATH_MAX], why[512], dev[32];
	char sr_uuid[UUID_STR_LEN], mark[PATH_MAX];
	struct dp_ring_host host;
	unsigned int domid;
	struct sr sr;
	bool ring;
	int r, index;

	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = dp_open_target(c, &t, SR_LOCK_SHARED, &sr)) < 0)
		return r;
	r = check_chain(c, &sr, t.key);
	snprintf(sr_uuid, sizeof(sr_uuid), "%s", sr.uuid);
	dp_ring_probe(t.domain, &host);
	if (r == 0 && host.enabled) {
		CLEANUP_FREE char *failed = NULL;

		host.served_without_ring = served_without_ring(&sr, &t);
		dp_ring_fail_mark_path(&t, host.failed_mark,
				       sizeof(host.failed_mark));
		if (read_file_at(AT_FDCWD, host.failed_mark, 4096, &failed,
				 NULL) == 0)
			dp_ring_fail_reason(failed, host.failed,
					    sizeof(host.failed));
		if (failed && !host.failed[0])
			snprintf(host.failed, sizeof(host.failed), "no reason");
	}
	sr_close(&sr);
	if (r < 0)
		return r;
	r = mkdir_p(t.run_dir, 0700);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "cannot create %s: %s",
				 t.run_dir, strerror(-r));
	domain_link(&t, link, sizeof(link));
	if (strlen(link) >= 108)	/* sizeof(sockaddr_un.sun_path) */
		return call_fail(c, -ENAMETOOLONG, "Datapath_error",
				 "the socket path %s is too long for a UNIX "
				 "socket: use a shorter run directory "
				 "(XSNG_RUN_DIR)", link);
	snprintf(uri, sizeof(uri), "nbd:unix:%s:exportname=%s", link, t.key);
	impls = json_new_array();
	/* the choice holds while the VBD is plugged: xenopsd writes the kind
	 * from this answer, and activate reads the mark */
	ring = dp_ring_decide(t.domain, &host, &domid, why, sizeof(why));
	ring_mark_path(&t, mark, sizeof(mark));
	if (!ring) {
		unlink(mark);	/* an earlier attach's choice */
		if (host.enabled)
			log_info("volume %s, domain '%s': blkif ring not "
				 "offered: %s", t.key, t.domain, why);
	} else if ((r = ring_mark_write(mark)) < 0) {
		json_object_put(impls);
		return call_fail(c, r, "Datapath_error", "cannot write %s: %s",
				 mark, strerror(-r));
	}
	if (ring) {
		/* no BlockDevice: xenopsd's params must be the Nbd uri */
		nbd_kernel_release(&t);	/* an earlier attach's claim */
		v = json_new_array();
		json_object_array_add(v, json_new_string("XenDisk"));
		json_object_array_add(v, ring_xendisk(sr_uuid, t.key));
		json_object_array_add(impls, v);
		log_info("volume %s, domain '%s': the blkif ring (qdisk)",
			 t.key, t.domain);
	} else if ((r = nbd_kernel_prepare(why, sizeof(why))) == 0 &&
	    (r = nbd_kernel_reserve(&t, &index, why, sizeof(why))) == 0) {
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
		log_info("volume %s, domain '%s': %s", t.key, t.domain, dev);
	} else {
		/* xenopsd needs a XenDisk to plug a VBD: say why there is none */
		call_warn(c, "volume %s, domain '%s': no /dev/nbdN for blkback, "
			  "NBD only (VMs cannot start from it): %s", t.key,
			  t.domain, why[0] ? why : strerror(-r));
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

#define QCOW2_MAGIC 0x514649fbU	/* "QFI\xfb" */
#define QCOW2_INCOMPAT_DIRTY 1ULL
#define QCOW2_INCOMPAT_CORRUPT 2ULL

/*
 * The incompatible-feature bits of a QCOW2 image (0 for version 2): the
 * header's magic at 0, version at 4, incompatible_features at 72 (v3).
 */
static int qcow2_incompat(const char *image, uint64_t *ret)
{
	CLEANUP_CLOSE int fd = open(image, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint8_t h[80];
	int r;

	if (fd < 0)
		return -errno;
	r = pread_full(fd, h, sizeof(h), 0);
	if (r < 0)
		return r == -ENODATA ? -EUCLEAN : r;
	if (load_be32(h) != QCOW2_MAGIC)
		return -EUCLEAN;
	*ret = load_be32(h + 4) >= 3 ? load_be64(h + 72) : 0;
	return 0;
}

/*
 * Before a server opens a QCOW2 image read-write: clusters leaked by a
 * server that was killed are given back now, before the image can become
 * a snapshot (read-only forever); an image marked dirty (lazy refcounts)
 * or corrupt gets the full repair the format requires.  qemu-img check's
 * exit status, after -r: 0 consistent, 1 check not completed, 2 corrupt,
 * 3 leaks only, 63 format cannot be checked.
 */
static int repair_qcow2(struct call *c, const char *image)
{
	struct proc_result res;
	const char *mode = "leaks";
	char line[512];
	uint64_t incompat = 0;
	int r;

	r = qcow2_incompat(image, &incompat);
	if (r < 0)
		return call_fail(c, r, "SR_corrupt", "%s is not a QCOW2 image "
				 "(its header cannot be read: %s)", image,
				 strerror(-r));
	if (incompat & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT)) {
		mode = "all";
		log_warn("%s is marked %s: repairing it (qemu-img check -r all)",
			 image, incompat & QCOW2_INCOMPAT_CORRUPT ? "corrupt" :
			 "dirty");
	}
	{
		const char *const argv[] = { "qemu-img", "check", "-q", "-r",
					     mode, "-f", "qcow2", image, NULL };

		r = proc_run(argv, &res);
	}
	if (r < 0) {
		proc_result_release(&res);
		return call_fail(c, r, "Datapath_error", "cannot run qemu-img "
				 "to check %s: %s", image, strerror(-r));
	}
	proc_last_line(res.err[0] ? res.err : res.out, line, sizeof(line));
	r = res.status;
	proc_result_release(&res);
	switch (r) {
	case 0:
		return 0;
	case 3:
		/* leaks are lost space, not lost data */
		log_warn("%s still has leaked clusters after repair", image);
		return 0;
	case 2:
		return call_fail(c, -EUCLEAN, "SR_corrupt", "%s is corrupt "
				 "and 'qemu-img check -r %s' could not repair "
				 "it: %s", image, mode, line);
	default:
		return call_fail(c, -EIO, "Datapath_error", "'qemu-img check "
				 "-r %s' of %s did not complete (exit status "
				 "%d): %s", mode, image, r, line);
	}
}

static int start_server(struct call *c, struct sr *sr,
			const struct dp_target *t, const struct dp_ring *ring,
			json_object **ret_rec)
{
	char image[PATH_MAX], fmt[8];
	bool np, readonly = false;
	json_object *vol;
	int r;

	r = dp_volume_image(c, sr, t->key, image, sizeof(image), fmt,
			    sizeof(fmt), &np);
	if (r < 0)
		return r;
	if (!np && sr_volume_load(sr, t->key, &vol) == 0) {
		/* snapshots are served read-only whoever asks */
		readonly = !rec_bool(vol, "read_write");
		json_object_put(vol);
	}
	if (!readonly && !strcmp(fmt, "qcow2")) {
		r = repair_qcow2(c, image);
		if (r < 0)
			return r;
	}
	return dp_server_start(c, sr, t, image, fmt, readonly, ring, ret_rec);
}

/* Connect (or, after a server restart, reconnect) the domain's /dev/nbdN,
 * if attach claimed one, through the domain's socket link: the ro link
 * gives a read-only device. */
static int connect_device(const struct dp_target *t, bool restarted,
			  char *why, size_t len)
{
	char link[PATH_MAX];
	int index = nbd_kernel_index(t);

	why[0] = '\0';
	if (index < 0)
		return 0;	/* NBD only (attach said why) */
	if (!restarted && nbd_kernel_connected(index))
		return 0;	/* activate again: idempotent */
	domain_link(t, link, sizeof(link));
	return nbd_kernel_connect(index, link, t->key, 4, why, len);
}

/* The domains of a dead server of this host whose links are still there:
 * the new server takes them over, and their devices are reconnected. */
static void carry_domains(struct sr *sr, const struct dp_target *t,
			  json_object *rec)
{
	json_object *old, *to = domains_of(rec);
	char link[PATH_MAX];
	struct stat st;

	if (active_load(sr, t->key, &old) < 0)
		return;
	if (!strcmp(rec_str(old, "host"), host_paths()->host_uuid)) {
		json_object_object_foreach(domains_of(old), d, mode) {
			struct dp_target o = *t;

			snprintf(o.domain, sizeof(o.domain), "%s", d);
			domain_link(&o, link, sizeof(link));
			if (lstat(link, &st) == 0 && S_ISLNK(st.st_mode))
				json_add(to, d, json_object_get(mode));
		}
	}
	json_object_put(old);
}

/* The ring a dead server of this host served for another domain that is
 * still attached with it: the new server must serve it again (and
 * re-adopts it, blkif/xen.c).  Copies the domain into out. */
static bool carried_ring(struct sr *sr, const struct dp_target *t,
			 char *out, size_t len, bool *readonly)
{
	json_object *old, *o;
	struct dp_target d = *t;
	bool r = false;

	if (active_load(sr, t->key, &old) < 0)
		return false;
	snprintf(d.domain, sizeof(d.domain), "%s", ring_domain_of(old));
	if (!strcmp(rec_str(old, "host"), host_paths()->host_uuid) &&
	    d.domain[0] && strcmp(d.domain, t->domain) && has_ring(&d) &&
	    json_object_object_get_ex(old, "ring", &o)) {
		snprintf(out, len, "%s", d.domain);
		*readonly = !strcmp(rec_str(o, "mode"), "ro");
		r = true;
	}
	json_object_put(old);
	return r;
}

/* Activate the volume for the call's domain; *ret_t: the target it
 * parsed (import_activate needs its run directory). */
static int activate(struct call *c, bool readonly, struct dp_target *ret_t)
{
	json_object *rec = NULL;
	char link[PATH_MAX], why[512];
	struct dp_target t;
	struct sr sr;
	bool started = false, ring;
	int r;

	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = dp_open_target(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	ring = has_ring(&t);	/* attach's choice */
	r = check_chain(c, &sr, t.key);
	if (r < 0)
		goto out;
	r = sr_volume_active(&sr, t.key, &rec);
	if (r < 0) {
		r = call_fail(c, r, "Datapath_error", "activation record: %s",
			      strerror(-r));
		goto out;
	}
	if (r == 1 && strcmp(rec_str(rec, "host"), host_paths()->host_uuid)) {
		snprintf(c->err_param, sizeof(c->err_param), "%s",
			 rec_str(rec, "host"));
		r = call_fail(c, -EBUSY, "Activated_on_another_host",
			      "volume %s is active on host %s", t.key,
			      rec_str(rec, "host"));
		goto out;
	}
	if (r == 1 && ring && strcmp(ring_domain_of(rec), t.domain)) {
		/* the ring is a server option: a server started for other
		 * domains in between cannot take it */
		r = call_fail(c, -EBUSY, "Datapath_error",
			      "volume %s, domain '%s': attach offered the "
			      "blkif ring, but the volume is now served for "
			      "other domains by a server without it: detach "
			      "and attach again (it then gets /dev/nbdN)",
			      t.key, t.domain);
		goto out;
	}
	if (r == 0) {
		struct dp_ring rg = { .domain = t.domain, .readonly = readonly };
		char other[sizeof(t.domain)];
		bool carried = !ring && carried_ring(&sr, &t, other,
						     sizeof(other),
						     &rg.readonly);

		/* not served (or its server died): start one */
		json_object_put(rec);
		rec = NULL;
		if (carried)
			rg.domain = other;
		r = start_server(c, &sr, &t, ring || carried ? &rg : NULL,
				 &rec);
		started = true;
		if (r < 0)
			goto out;
		carry_domains(&sr, &t, rec);
	}
	if (!readonly && rec_bool(rec, "readonly")) {
		r = call_fail(c, -EROFS, "Invalid_argument",
			      "volume %s is a read-only snapshot: it can only "
			      "be activated read-only", t.key);
		goto out_unsaved;
	}
	/* this domain's socket name leads to the rw or the ro listener;
	 * repeating an activate just re-points it (idempotent) */
	domain_link(&t, link, sizeof(link));
	unlink(link);
	if (symlink(readonly ? "ro.sock" : "rw.sock", link) < 0) {
		r = call_fail(c, -errno, "Datapath_error", "symlink %s: %m",
			      link);
		goto out_unsaved;
	}
	json_add_string(domains_of(rec), t.domain, readonly ? "ro" : "rw");
	r = active_save(&sr, t.key, rec);
	if (r < 0) {
		r = call_fail(c, r, "Datapath_error",
			      "cannot save the activation record: %s",
			      strerror(-r));
		goto out_unsaved;
	}
	if (started) {
		/* a new server replaces a dead one: the other domains'
		 * devices still hold the dead connections */
		json_object_object_foreach(domains_of(rec), d, mode) {
			struct dp_target o = t;

			(void)mode;
			if (!strcmp(d, t.domain))
				continue;
			snprintf(o.domain, sizeof(o.domain), "%s", d);
			if (connect_device(&o, true, why, sizeof(why)) < 0)
				call_warn(c, "volume %s, domain '%s': cannot "
					  "reconnect its /dev/nbd%d: %s", t.key,
					  d, nbd_kernel_index(&o), why);
		}
	}
	/* this domain's /dev/nbdN: connected once per server (the ring's
	 * domain has none: the server claims its qdisk device) */
	r = ring ? 0 : connect_device(&t, started, why, sizeof(why));
	if (r < 0) {
		r = call_fail(c, r, "Datapath_error",
			      "volume %s, domain '%s': cannot connect "
			      "/dev/nbd%d: %s", t.key, t.domain,
			      nbd_kernel_index(&t), why);
		goto out;
	}
	log_info("volume %s active for domain '%s' (%s%s), server pid %" PRId64,
		 t.key, t.domain, readonly ? "ro" : "rw",
		 ring ? ", blkif ring" : "", rec_int(rec, "pid"));
	goto out;
out_unsaved:
	/* a server started for this call that no record names would run
	 * for ever: stop it (the call's error stays the first one) */
	if (started && rec)
		(void)dp_server_stop(c, rec);
out:
	json_object_put(rec);
	sr_close(&sr);
	*ret_t = t;
	return r;
}

int dp_activate(struct call *c, json_object **ret)
{
	struct dp_target t;

	(void)ret;
	return activate(c, false, &t);
}

int dp_activate_readonly(struct call *c, json_object **ret)
{
	struct dp_target t;

	(void)ret;
	return activate(c, true, &t);
}

/*
 * Datapath.import_activate: the volume active read-write for the domain
 * (activated now if it was not: activate is idempotent), and the path of
 * its server's import socket, where xapi passes an NBD connection's fd.
 */
int dp_import_activate(struct call *c, json_object **ret)
{
	char path[PATH_MAX];
	struct dp_target t;
	struct stat st;
	int r;

	r = activate(c, false, &t);
	if (r < 0)
		return r;
	dp_import_socket(&t, path, sizeof(path));
	if (strlen(path) >= 108)	/* sizeof(sockaddr_un.sun_path) */
		return call_fail(c, -ENAMETOOLONG, "Datapath_error",
				 "the import socket path %s is too long for a "
				 "UNIX socket: use a shorter run directory "
				 "(XSNG_RUN_DIR)", path);
	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return call_fail(c, -ENOENT, "Datapath_error",
				 "the datapath server of volume %s has no "
				 "import socket (%s): it was started by an "
				 "older version; deactivate the volume "
				 "everywhere and activate it again", t.key,
				 path);
	*ret = json_new_string(path);
	return 0;
}

/* Disconnect the domain's /dev/nbdN, if it has one connected. */
static int disconnect_device(struct call *c, const struct dp_target *t)
{
	int index = nbd_kernel_index(t), r;

	if (index < 0 || !nbd_kernel_connected(index))
		return 0;
	r = nbd_kernel_disconnect(index);
	if (r < 0)
		return call_fail(c, r, "Datapath_error",
				 "volume %s, domain '%s': cannot disconnect "
				 "/dev/nbd%d: %s", t->key, t->domain, index,
				 r == -EBUSY ? "it is still open (is a VBD "
				 "still plugged?)" : strerror(-r));
	log_info("/dev/nbd%d disconnected", index);
	return 0;
}

/* Drop one domain (and its device); the last one out stops the server. */
static int deactivate_domain(struct call *c, struct sr *sr,
			     const struct dp_target *t)
{
	json_object *rec, *domains;
	char link[PATH_MAX];
	int r, rr;

	r = active_load(sr, t->key, &rec);
	if (r == 0 && strcmp(rec_str(rec, "host"), host_paths()->host_uuid)) {
		snprintf(c->err_param, sizeof(c->err_param), "%s",
			 rec_str(rec, "host"));
		r = call_fail(c, -EBUSY, "Activated_on_another_host",
			      "volume %s is active on host %s", t->key,
			      rec_str(rec, "host"));
		json_object_put(rec);
		return r;
	}
	rr = disconnect_device(c, t);
	if (rr < 0) {
		json_object_put(r == 0 ? rec : NULL);
		return rr;
	}
	domain_link(t, link, sizeof(link));
	unlink(link);
	if (r < 0)
		return 0;	/* nothing active: deactivate is idempotent */
	domains = domains_of(rec);
	json_object_object_del(domains, t->domain);
	if (json_object_object_length(domains) > 0 &&
	    active_record_is_live(rec)) {
		/* the server stays: close this domain's ring under it */
		if (!strcmp(ring_domain_of(rec), t->domain)) {
			r = dp_server_release_ring(c, rec, t->domain);
			if (r < 0) {
				json_object_put(rec);
				return r;
			}
			json_object_object_del(rec, "ring");
		}
		r = active_save(sr, t->key, rec);
		json_object_put(rec);
		return r < 0 ? call_fail(c, r, "Datapath_error",
					 "cannot save the activation record: "
					 "%s", strerror(-r)) : 0;
	}
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
	    (r = dp_open_target(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	r = deactivate_domain(c, &sr, &t);
	sr_close(&sr);
	return r;
}

/* The run directory goes once nothing in it is needed: no server socket
 * and no other domain's link or device claim (server.log alone is not a
 * reason to stay). */
static void remove_run_dir_if_unused(const struct dp_target *t)
{
	CLEANUP_CLOSEDIR DIR *d = opendir(t->run_dir);
	struct dirent *de;
	char p[PATH_MAX];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "server.log"))
			return;
	snprintf(p, sizeof(p), "%s/server.log", t->run_dir);
	unlink(p);
	(void)rmdir(t->run_dir);
}

int dp_detach(struct call *c, json_object **ret)
{
	json_object *rec;
	struct dp_target t;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = dp_arg_target(c, true, &t)) < 0)
		return r;
	r = open_sr(c, &t, SR_LOCK_EXCLUSIVE, &sr);
	if (r < 0) {
		/* "should never fail": the SR went, and its state with it */
		log_warn("detach of %s: %s", t.key, c->err_msg);
		c->err_name[0] = '\0';
		return 0;
	}
	r = sr_volume_load(&sr, t.key, &rec);
	if (r == 0) {
		json_object_put(rec);
		r = dp_bind_run_dir(c, &t, &sr);
	} else {
		/* a URI naming an SR that does not hold the volume */
		r = dp_load_volume(c, &sr, t.key, &rec);
	}
	if (r < 0) {
		sr_close(&sr);
		return r;
	}
	if (active_load(&sr, t.key, &rec) == 0) {
		if (json_object_object_get_ex(domains_of(rec), t.domain, NULL)) {
			log_warn("detach of %s for '%s' without deactivate: "
				 "deactivating", t.key, t.domain);
			if (deactivate_domain(c, &sr, &t) < 0)
				log_error("detach: %s", c->err_msg);
		}
		json_object_put(rec);
	}
	sr_close(&sr);
	/* this domain's device only: the others' stay */
	if (disconnect_device(c, &t) < 0)
		log_error("detach: %s", c->err_msg);
	nbd_kernel_release(&t);
	{
		char mark[PATH_MAX];

		ring_mark_path(&t, mark, sizeof(mark));
		unlink(mark);
	}
	remove_run_dir_if_unused(&t);
	c->err_name[0] = '\0';
	return 0;
}

int dp_open(struct call *c, json_object **ret)
{
	char overlay[PATH_MAX], leaf[PATH_MAX], line[512], fmt[8], name[80];
	json_object *rec;
	const char *base;
	struct dp_target t;
	bool persistent, np;
	struct sr sr;
	int r;

	(void)ret;
	if ((r = dp_arg_target(c, false, &t)) < 0 ||
	    (r = arg_bool(c, "persistent", &persistent)) < 0 ||
	    (r = dp_open_target(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
		return r;
	dp_overlay_path(&sr, t.key, overlay, sizeof(overlay));
	snprintf(name, sizeof(name), ".np-%s.qcow2", t.key);
	r = sr_volume_active(&sr, t.key, &rec);
	if (r == 1) {
		bool on_overlay = !strcmp(rec_str(rec, "image"), overlay);

		json_object_put(rec);
		/* persistent with the volume served from its own image: nothing
		 * to drop; anything else would pull the image from under a
		 * running server */
		if (persistent && !on_overlay) {
			r = 0;
			goto out;
		}
		r = call_fail(c, -EBUSY, "Volume_in_use",
			      "volume %s is active: open it before "
			      "activating", t.key);
		goto out;
	}
	/* A new epoch starts from the volume as it is: drop any overlay left
	 * by an epoch that was never closed (an unclean stop).  Left there, a
	 * persistent disk would run on it and lose its writes at the next
	 * close. */
	if (unlinkat(sr.imagesfd, name, 0) == 0) {
		log_warn("volume %s: dropped the reset-on-boot overlay of an "
			 "epoch that was not closed", t.key);
		(void)fsync_dir_at(sr.imagesfd, ".");
	}
	if (persistent) {
		r = 0;
		goto out;
	}
	r = dp_volume_image(c, &sr, t.key, leaf, sizeof(leaf), fmt,
			    sizeof(fmt), &np);
	if (r < 0)
		goto out;
	base = strrchr(leaf, '/') + 1;
	{
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
	    (r = dp_open_target(c, &t, SR_LOCK_EXCLUSIVE, &sr)) < 0)
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
