/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Data.* handlers: storage migration's mirror (xapi's SXM source side).
 * The volume's running ngdp-server does the work (ctl "mirror"); this
 * plugin names the job, keeps its registry record and reads its status.
 *
 * State:
 *   <run>/mirror/<id>.json   registry record: uri, domain, remote, run_dir
 *                            (of the volume), control (its server's socket),
 *                            state_file, progress (the highest reported)
 *   <run>/mirror/<id>.state  the server's final status of the job (it
 *                            writes it when the job ends)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl-client.h"
#include "ctl-proto.h"
#include "dp.h"
#include "fileio.h"
#include "host.h"
#include "json-io.h"
#include "log.h"
#include "mirror-op.h"
#include "nbd-uri.h"

#define CTL_TIMEOUT_MS (30 * 1000)
#define RECORD_MAX (64 * 1024)
#define REC_SUFFIX ".json"
#define STATE_SUFFIX ".state"

static void mirror_dir(char *out, size_t len)
{
	snprintf(out, len, "%s/mirror", host_paths()->run_dir);
}

static int open_mirror_dir(struct call *c, int *ret_fd)
{
	char dir[PATH_MAX];
	int r, fd;

	mirror_dir(dir, sizeof(dir));
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "cannot create %s: %s",
				 dir, strerror(-r));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return call_fail(c, -errno, "Datapath_error", "%s: %m", dir);
	*ret_fd = fd;
	return 0;
}

/* A random id of MIRROR_ID_LEN hex digits. */
static int make_id(char *id, size_t len)
{
	unsigned char b[MIRROR_ID_LEN / 2];
	size_t i;

	if (len < MIRROR_ID_LEN + 1 ||
	    getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	for (i = 0; i < sizeof(b); i++)
		snprintf(id + 2 * i, 3, "%02x", b[i]);
	return 0;
}

static int save_record(int dirfd, const char *id, json_object *rec)
{
	char name[CTL_MIRROR_ID_MAX + 8];
	const char *text = json_to_text(rec);

	snprintf(name, sizeof(name), "%s" REC_SUFFIX, id);
	return write_file_atomic_at(dirfd, name, text, strlen(text));
}

/* The registry record of id: -ENOENT when there is none, -EUCLEAN when
 * it is not one this plugin wrote. */
static int load_record(int dirfd, const char *id, json_object **ret)
{
	static const char *const keys[] = { "uri", "domain", "remote",
					    "run_dir", "control",
					    "state_file" };
	CLEANUP_FREE char *buf = NULL;
	char name[CTL_MIRROR_ID_MAX + 8];
	json_object *rec, *v;
	size_t len, i;
	int r;

	snprintf(name, sizeof(name), "%s" REC_SUFFIX, id);
	r = read_file_at(dirfd, name, RECORD_MAX, &buf, &len);
	if (r < 0)
		return r;
	if (json_parse_exact(buf, len, &rec) < 0)
		return -EUCLEAN;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_object_get_ex(rec, keys[i], &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    (i >= 3 && json_object_get_string(v)[0] != '/')) {
			json_object_put(rec);
			return -EUCLEAN;
		}
	*ret = rec;
	return 0;
}

/* The operation argument's id, or the call fails. */
static int arg_operation(struct call *c, char *id, size_t len)
{
	json_object *op;
	char why[160];
	int r;

	if (!json_object_object_get_ex(c->args, "operation", &op))
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "missing parameter 'operation'");
	r = mirror_op_parse(op, id, len, why, sizeof(why));
	if (r < 0)
		return call_fail(c, r, r == -ENOTSUP ? "Unimplemented" :
				 "Invalid_argument", "%s", why);
	return 0;
}

/* The registry record of the call's operation, or the call fails. */
static int operation_record(struct call *c, int dirfd, const char *id,
			    json_object **ret)
{
	int r = load_record(dirfd, id, ret);

	if (r == -ENOENT)
		return call_fail(c, r, "Invalid_argument", "no mirror "
				 "operation %s on this host", id);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "the record of mirror "
				 "operation %s is unreadable: %s", id,
				 r == -EUCLEAN ? "not a record this plugin "
				 "wrote" : strerror(-r));
	return 0;
}

/* The volume is served on this host, read-write, for domain: the mirror
 * runs in the VM's own datapath server. */
static int check_active_rw(struct call *c, struct sr *sr,
			   const struct dp_target *t, json_object **ret_rec)
{
	json_object *rec = NULL, *domains, *mode;
	int r = sr_volume_active(sr, t->key, &rec);

	if (r < 0)
		return call_fail(c, r, "Datapath_error", "activation record: "
				 "%s", strerror(-r));
	if (r == 0 || strcmp(rec_str(rec, "host"), host_paths()->host_uuid) ||
	    !json_object_object_get_ex(rec, "domains", &domains) ||
	    !json_object_object_get_ex(domains, t->domain, &mode) ||
	    !json_object_is_type(mode, json_type_string) ||
	    strcmp(json_object_get_string(mode), "rw") ||
	    rec_bool(rec, "readonly")) {
		json_object_put(rec);
		return call_fail(c, -ENOTCONN, "Datapath_error",
				 "volume %s is not active read-write for "
				 "domain '%s' on this host: a mirror runs in "
				 "the VM's running datapath (attach and "
				 "activate it first)", t->key, t->domain);
	}
	*ret_rec = rec;
	return 0;
}

/* The server's error text from a control reply, or the errno's words. */
static const char *ctl_error(int r, json_object *reply)
{
	json_object *e;

	if (reply && json_object_object_get_ex(reply, CTL_KEY_ERROR, &e) &&
	    json_object_is_type(e, json_type_string))
		return json_object_get_string(e);
	return strerror(-r);
}

/*
 * The background copy's limit: XSNG_MIRROR_MAX_MIBS in the plugin's
 * environment (MiB/s, a whole number; unset or 0: none), for a host whose
 * disk the migration must not saturate.  Guest writes are mirrored at
 * their own pace whatever it says.
 */
static int mirror_max_rate(struct call *c, uint64_t *ret)
{
	const char *s = getenv("XSNG_MIRROR_MAX_MIBS");
	unsigned long long v;
	char *end;

	*ret = 0;
	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || s[0] == '-' || v > (1ULL << 30))
		return call_fail(c, -EINVAL, "Datapath_error",
				 "XSNG_MIRROR_MAX_MIBS='%.40s' is not a whole "
				 "number of MiB/s", s);
	*ret = (uint64_t)v << 20;
	return 0;
}

int data_mirror(struct call *c, json_object **ret)
{
	json_object *active = NULL, *rec, *req, *reply = NULL;
	char id[CTL_MIRROR_ID_MAX + 1], dir[PATH_MAX], state[PATH_MAX];
	char ctl[PATH_MAX], name[CTL_MIRROR_ID_MAX + 8];
	const char *remote;
	struct nbd_uri nu;
	struct dp_target t;
	uint64_t max_rate;
	CLEANUP_CLOSE int dirfd = -1;
	struct sr sr;
	int r;

	if ((r = dp_arg_target(c, true, &t)) < 0 ||
	    (r = arg_string(c, "remote", &remote)) < 0 ||
	    (r = mirror_max_rate(c, &max_rate)) < 0)
		return r;
	r = nbd_uri_parse(remote, &nu);
	if (r < 0)
		return call_fail(c, r, "Invalid_argument", "remote '%.200s%s' "
				 "is not an NBD URI of a Unix socket "
				 "(nbd+unix:///<export>?socket=<absolute "
				 "path> or nbd:unix:<absolute path>"
				 "[:exportname=<name>])%s", remote,
				 strlen(remote) > 200 ? "..." : "",
				 r == -ENAMETOOLONG ? ": too long" : "");
	if ((r = dp_open_target(c, &t, SR_LOCK_SHARED, &sr)) < 0)
		return r;
	r = check_active_rw(c, &sr, &t, &active);
	sr_close(&sr);
	if (r < 0)
		return r;
	snprintf(ctl, sizeof(ctl), "%s", rec_str(active, "control"));
	json_object_put(active);
	if (ctl[0] != '/')
		return call_fail(c, -EUCLEAN, "Datapath_error", "the "
				 "activation record of %s names no control "
				 "socket", t.key);
	if ((r = open_mirror_dir(c, &dirfd)) < 0)
		return r;
	if (make_id(id, sizeof(id)) < 0)
		return call_fail(c, -EIO, "Datapath_error",
				 "cannot draw a random operation id");
	mirror_dir(dir, sizeof(dir));
	snprintf(state, sizeof(state), "%s/%s" STATE_SUFFIX, dir, id);
	rec = json_new_object();
	json_add_string(rec, "uri", t.uri);
	json_add_string(rec, "domain", t.domain);
	json_add_string(rec, "remote", remote);
	json_add_string(rec, "run_dir", t.run_dir);
	json_add_string(rec, "control", ctl);
	json_add_string(rec, "state_file", state);
	r = save_record(dirfd, id, rec);
	json_object_put(rec);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "cannot write the "
				 "mirror record in %s: %s", dir, strerror(-r));
	/* recorded first: a job the server runs always has its record */
	req = json_new_object();
	json_add_string(req, CTL_KEY_OP, CTL_OP_MIRROR);
	json_add_string(req, CTL_KEY_ID, id);
	json_add_string(req, CTL_KEY_REMOTE, remote);
	json_add_string(req, CTL_KEY_STATE_FILE, state);
	if (max_rate)
		json_add(req, CTL_KEY_MAX_RATE,
			 json_object_new_int64((int64_t)max_rate));
	r = control_call(ctl, req, CTL_TIMEOUT_MS, &reply);
	json_object_put(req);
	if (r < 0) {
		snprintf(name, sizeof(name), "%s" REC_SUFFIX, id);
		(void)unlinkat(dirfd, name, 0);
		r = call_fail(c, r, "Datapath_error", "the datapath server of "
			      "volume %s did not start the mirror to %.200s: "
			      "%s", t.key, remote, ctl_error(r, reply));
		json_object_put(reply);
		return r;
	}
	json_object_put(reply);
	log_info("volume %s: mirror %s to %s started", t.key, id, remote);
	*ret = mirror_op_new(id);
	return 0;
}

/* The server's "mirror" status object of job id, from its control socket
 * (0), or -ENOENT when it does not run that job (or is gone). */
static int server_mirror_status(json_object *rec, const char *id,
				json_object **ret)
{
	json_object *reply, *m, *mid;
	int r = dp_server_status(rec, CTL_TIMEOUT_MS, &reply);

	if (r == 0 && json_object_object_get_ex(reply, CTL_ST_MIRROR, &m) &&
	    json_object_is_type(m, json_type_object) &&
	    json_object_object_get_ex(m, CTL_MI_ID, &mid) &&
	    json_object_is_type(mid, json_type_string) &&
	    !strcmp(json_object_get_string(mid), id)) {
		*ret = json_object_get(m);
		json_object_put(reply);
		return 0;
	}
	json_object_put(reply);
	return -ENOENT;
}

/* The job's final status, as the server left it in the state file. */
static int state_file_status(json_object *rec, const char *id,
			     json_object **ret)
{
	CLEANUP_FREE char *buf = NULL;
	json_object *m, *mid;
	size_t len;
	int r;

	r = read_file_at(AT_FDCWD, rec_str(rec, "state_file"), RECORD_MAX,
			 &buf, &len);
	if (r < 0)
		return r;
	if (json_parse_exact(buf, len, &m) < 0)
		return -EUCLEAN;
	if (!json_object_is_type(m, json_type_object) ||
	    !json_object_object_get_ex(m, CTL_MI_ID, &mid) ||
	    !json_object_is_type(mid, json_type_string) ||
	    strcmp(json_object_get_string(mid), id)) {
		json_object_put(m);
		return -EUCLEAN;
	}
	*ret = m;
	return 0;
}

/* A non-negative integer member, or 0. */
static double num(json_object *o, const char *key)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	n = json_object_get_int64(v);
	return n > 0 ? (double)n : 0;
}

int data_stat(struct call *c, json_object **ret)
{
	char id[CTL_MIRROR_ID_MAX + 1];
	json_object *rec, *m = NULL, *p;
	CLEANUP_CLOSE int dirfd = -1;
	bool complete = false, failed = true;
	double progress = 0, last = 0;
	const char *state;
	int r;

	if ((r = arg_operation(c, id, sizeof(id))) < 0 ||
	    (r = open_mirror_dir(c, &dirfd)) < 0 ||
	    (r = operation_record(c, dirfd, id, &rec)) < 0)
		return r;
	if (json_object_object_get_ex(rec, "progress", &p) &&
	    json_object_is_type(p, json_type_double))
		last = json_object_get_double(p);
	/* the running server, else its last word; neither: it died */
	if (server_mirror_status(rec, id, &m) == 0 ||
	    state_file_status(rec, id, &m) == 0) {
		state = json_object_get_string(
			json_object_object_get(m, CTL_MI_STATE));
		state = state ? state : "";
		complete = !strcmp(state, CTL_MI_SYNCED) ||
			   !strcmp(state, CTL_MI_STOPPED);
		failed = !complete && strcmp(state, CTL_MI_COPYING);
		if (num(m, CTL_MI_TOTAL) > 0)
			progress = num(m, CTL_MI_COPIED) / num(m, CTL_MI_TOTAL);
		if (complete || progress > 1)
			progress = 1;
		if (failed)
			log_warn("mirror %s: %s%s%s", id, state,
				 json_object_object_get(m, CTL_MI_ERROR) ?
				 ": " : "",
				 json_object_get_string(json_object_object_get(
					 m, CTL_MI_ERROR)) ?: "");
		json_object_put(m);
	} else {
		log_warn("mirror %s: its datapath server is gone and left no "
			 "state: failed", id);
	}
	/* never backwards across calls (xapi shows it as the task's) */
	if (progress < last)
		progress = last;
	if (progress > last) {
		json_add(rec, "progress", json_object_new_double(progress));
		if (save_record(dirfd, id, rec) < 0)
			log_warn("mirror %s: cannot save its progress", id);
	}
	json_object_put(rec);
	*ret = json_new_object();
	json_add_bool(*ret, "failed", failed);
	json_add_bool(*ret, "complete", complete);
	json_add(*ret, "progress", json_object_new_double(progress));
	return 0;
}

/* Stop job id if its server runs it (a job over, or a server gone: there
 * is nothing to stop). */
static int cancel_job(struct call *c, json_object *rec, const char *id)
{
	json_object *m = NULL, *req, *reply = NULL;
	const char *state;
	int r;

	if (server_mirror_status(rec, id, &m) < 0)
		return 0;
	state = json_object_get_string(json_object_object_get(m, CTL_MI_STATE));
	if (!state || (strcmp(state, CTL_MI_COPYING) &&
		       strcmp(state, CTL_MI_SYNCED))) {
		json_object_put(m);
		return 0;
	}
	json_object_put(m);
	req = json_new_object();
	json_add_string(req, CTL_KEY_OP, CTL_OP_MIRROR_CANCEL);
	json_add_string(req, CTL_KEY_ID, id);
	r = control_call(rec_str(rec, "control"), req, CTL_TIMEOUT_MS, &reply);
	json_object_put(req);
	if (r < 0)
		r = call_fail(c, r, "Datapath_error", "cannot cancel mirror "
			      "%s: %s", id, ctl_error(r, reply));
	else
		log_info("mirror %s cancelled", id);
	json_object_put(reply);
	return r;
}

int data_cancel(struct call *c, json_object **ret)
{
	char id[CTL_MIRROR_ID_MAX + 1];
	CLEANUP_CLOSE int dirfd = -1;
	json_object *rec;
	int r;

	(void)ret;
	if ((r = arg_operation(c, id, sizeof(id))) < 0 ||
	    (r = open_mirror_dir(c, &dirfd)) < 0 ||
	    (r = operation_record(c, dirfd, id, &rec)) < 0)
		return r;
	r = cancel_job(c, rec, id);
	json_object_put(rec);
	return r;
}

/* An unknown id is fine: destroy is cleanup, and a retried destroy (or
 * one after a host reboot emptied the run directory) must not fail. */
int data_destroy(struct call *c, json_object **ret)
{
	char id[CTL_MIRROR_ID_MAX + 1], name[CTL_MIRROR_ID_MAX + 8];
	CLEANUP_CLOSE int dirfd = -1;
	json_object *rec;
	int r;

	(void)ret;
	if ((r = arg_operation(c, id, sizeof(id))) < 0 ||
	    (r = open_mirror_dir(c, &dirfd)) < 0)
		return r;
	r = load_record(dirfd, id, &rec);
	if (r == 0) {
		r = cancel_job(c, rec, id);
		json_object_put(rec);
		if (r < 0)
			return r;
	}
	snprintf(name, sizeof(name), "%s" STATE_SUFFIX, id);
	(void)unlinkat(dirfd, name, 0);
	snprintf(name, sizeof(name), "%s" REC_SUFFIX, id);
	if (unlinkat(dirfd, name, 0) == 0)
		log_info("mirror %s destroyed", id);
	return 0;
}

int data_ls(struct call *c, json_object **ret)
{
	CLEANUP_CLOSEDIR DIR *d = NULL;
	CLEANUP_CLOSE int dirfd = -1;
	json_object *list;
	struct dirent *de;
	int r;

	if ((r = open_mirror_dir(c, &dirfd)) < 0)
		return r;
	d = fdopendir(dirfd);
	if (!d)
		return call_fail(c, -errno, "Datapath_error", "mirror "
				 "directory: %m");
	dirfd = -1;	/* the DIR owns it */
	list = json_new_array();
	while ((de = readdir(d))) {
		char id[CTL_MIRROR_ID_MAX + 8];
		size_t n = strlen(de->d_name);

		if (n <= strlen(REC_SUFFIX) || n >= sizeof(id) ||
		    strcmp(de->d_name + n - strlen(REC_SUFFIX), REC_SUFFIX))
			continue;
		snprintf(id, sizeof(id), "%.*s",
			 (int)(n - strlen(REC_SUFFIX)), de->d_name);
		if (mirror_id_is_valid(id))
			json_object_array_add(list, mirror_op_new(id));
	}
	*ret = list;
	return 0;
}
