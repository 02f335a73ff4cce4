/* SPDX-License-Identifier: LGPL-2.1-only */
/* Starting and stopping the ngdp-server process that serves one volume. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "active.h"
#include "cleanup.h"
#include "ctl-client.h"
#include "ctl-proto.h"
#include "dp.h"
#include "fileio.h"
#include "json-io.h"
#include "log.h"
#include "proc.h"

#define READY_TIMEOUT_MS (60 * 1000)
#define STOP_TIMEOUT_MS (120 * 1000)
#define CTL_RELEASE_CALL_MS (10 * 1000)
/* the server gives the frontend 10 s to close after what it had taken
 * is answered */
#define RING_RELEASE_TIMEOUT_MS (30 * 1000)

void dp_overlay_path(struct sr *sr, const char *key, char *out, size_t len)
{
	snprintf(out, len, "%s/images/.np-%s.qcow2", sr->path, key);
}

int dp_volume_image(struct call *c, struct sr *sr, const char *key,
		    char *out, size_t len, char *fmt, size_t fmt_len,
		    bool *nonpersistent)
{
	json_object *vol;
	enum sr_fmt f;
	struct stat st;
	char rel[80], name[80];
	int r;

	/* the reset-on-boot overlay, which dp_open made: a regular file of
	 * this SR, never followed through a link */
	dp_overlay_path(sr, key, out, len);
	snprintf(name, sizeof(name), ".np-%s.qcow2", key);
	if (fstatat(sr->imagesfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(st.st_mode))
			return call_fail(c, -EUCLEAN, "SR_corrupt",
					 "%s is not a regular file: remove "
					 "it", out);
		*nonpersistent = true;
		snprintf(fmt, fmt_len, "qcow2");
		return 0;
	}
	*nonpersistent = false;
	r = dp_load_volume(c, sr, key, &vol);
	if (r < 0)
		return r;
	/* the format recorded when the image was made: a guest-writable
	 * image is never probed (it could claim to be anything) */
	if (sr_fmt_parse(rec_str(vol, "image-format"), &f) < 0) {
		json_object_put(vol);
		return call_fail(c, -EUCLEAN, "SR_corrupt", "volume %s has no "
				 "valid image format in its record", key);
	}
	snprintf(fmt, fmt_len, "%s", sr_fmt_qemu(f));
	sr_volume_image(vol, rel, sizeof(rel));
	snprintf(out, len, "%s/%s", sr->path, rel);
	json_object_put(vol);
	return 0;
}

void dp_import_socket(const struct dp_target *t, char *out, size_t len)
{
	snprintf(out, len, "%s/" IMPORT_SOCKET_NAME, t->run_dir);
}

/* ngdp-server lives next to this program (the plugin's real binary). */
int dp_server_program(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0)
		return -errno;
	self[n] = '\0';
	snprintf(out, len, "%s/ngdp-server", dirname(self));
	return access(out, X_OK) == 0 ? 0 : -ENOENT;
}

/* The last line the server logged, for the error message. */
static void last_log_line(const char *path, char *out, size_t len)
{
	CLEANUP_FREE char *buf = NULL;
	char *end, *start;

	out[0] = '\0';
	if (read_file_at(AT_FDCWD, path, 1 << 20, &buf, NULL) < 0)
		return;
	end = buf + strlen(buf);
	while (end > buf && end[-1] == '\n')
		*--end = '\0';
	start = strrchr(buf, '\n');
	snprintf(out, len, "%s", start ? start + 1 : buf);
}

static int wait_ready(int fd, pid_t pid, int *ret_status)
{
	struct timespec t0, now;
	char buf[16];
	size_t got = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = READY_TIMEOUT_MS - ((now.tv_sec - t0.tv_sec) * 1000 +
					   (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "ready"))
			return 0;
		if (got == sizeof(buf) - 1)
			break;
	}
	/* closed without "ready": the server exited; reap it */
	if (waitpid(pid, ret_status, 0) < 0)
		*ret_status = -1;
	return -EIO;
}

/* XSNG_DATAPATH_FLUSH_INTERVAL (ms, a whole number up to a day), or NULL
 * for the server's default; another value is said and ignored. */
static const char *flush_interval_arg(void)
{
	const char *s = getenv("XSNG_DATAPATH_FLUSH_INTERVAL");
	unsigned long long v;
	char *end;

	if (!s || !*s)
		return NULL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || s[0] == '-' || v > 24ULL * 3600 * 1000) {
		log_warn("XSNG_DATAPATH_FLUSH_INTERVAL='%.40s' is not a whole "
			 "number of ms: the server's default is used", s);
		return NULL;
	}
	return s;
}

int dp_server_start(struct call *c, struct sr *sr, const struct dp_target *t,
		    const char *image_path, const char *format, bool readonly,
		    const struct dp_ring *ring, json_object **ret_rec)
{
	char prog[PATH_MAX], rw[PATH_MAX], ro[PATH_MAX], ctl[PATH_MAX];
	char ring_spec[256], fail_mark[PATH_MAX];
	char logp[PATH_MAX], confine[PATH_MAX], line[512], heartbeat[PATH_MAX];
	char record[PATH_MAX], import[PATH_MAX];
	const char *engine = getenv("XSNG_DATAPATH_ENGINE");
	const char *flush_ms = flush_interval_arg();
	const char *argv[42];
	int pipefd[2], argc = 0, r, status = 0;
	json_object *rec;
	pid_t pid;

	r = dp_server_program(prog, sizeof(prog));
	if (r < 0)
		return call_fail(c, r, "Datapath_error",
				 "the datapath server %s is not installed", prog);
	r = mkdir_p(t->run_dir, 0700);
	if (r < 0)
		return call_fail(c, r, "Datapath_error", "cannot create %s: %s",
				 t->run_dir, strerror(-r));
	snprintf(rw, sizeof(rw), "%s/rw.sock", t->run_dir);
	snprintf(ro, sizeof(ro), "%s/ro.sock", t->run_dir);
	snprintf(ctl, sizeof(ctl), "%s/" CTL_SOCKET_NAME, t->run_dir);
	dp_import_socket(t, import, sizeof(import));
	snprintf(logp, sizeof(logp), "%s/server.log", t->run_dir);
	snprintf(confine, sizeof(confine), "%s/images", sr->path);
	snprintf(heartbeat, sizeof(heartbeat), "%s/.sr/active/%s.json",
		 sr->path, t->key);
	snprintf(record, sizeof(record), "%s/meta/v-%s.json", sr->path,
		 t->key);
	/* whatever a dead server left */
	unlink(rw);
	unlink(ro);
	unlink(ctl);
	unlink(import);

	argv[argc++] = prog;
	argv[argc++] = "--image";
	argv[argc++] = image_path;
	argv[argc++] = "--format";
	argv[argc++] = format;
	argv[argc++] = "--socket";
	argv[argc++] = rw;
	argv[argc++] = "--ro-socket";
	argv[argc++] = ro;
	argv[argc++] = "--control";
	argv[argc++] = ctl;
	argv[argc++] = "--export-name";
	argv[argc++] = t->key;
	argv[argc++] = "--confine";
	argv[argc++] = confine;
	argv[argc++] = "--ready-fd";
	argv[argc++] = "3";
	argv[argc++] = "--log-stderr";
	argv[argc++] = "--heartbeat";
	argv[argc++] = heartbeat;
	/* a suspend left without its resume (a failed or killed snapshot)
	 * ends, after its timeout, on the image this record then names */
	argv[argc++] = "--volume-record";
	argv[argc++] = record;
	/* Datapath.import_activate's socket: a path too long for a UNIX
	 * socket leaves it out (import_activate says so), not the server */
	if (strlen(import) < 108) {
		argv[argc++] = "--import-socket";
		argv[argc++] = import;
	}
	if (readonly)
		argv[argc++] = "--readonly";
	if (ring) {
		/* the qdisk device xenopsd plugs for that domain, marked with
		 * this volume by attach's XenDisk (sm-data) */
		snprintf(ring_spec, sizeof(ring_spec), "%s:%s:%s:%s",
			 ring->domain, ring->readonly ? "r" : "w", sr->uuid,
			 t->key);
		argv[argc++] = "--blkif-xen-domain";
		argv[argc++] = ring_spec;
		/* a ring that cannot connect makes attach fall back */
		dp_ring_fail_mark_path(t, fail_mark, sizeof(fail_mark));
		argv[argc++] = "--blkif-fail-mark";
		argv[argc++] = fail_mark;
	}
	if (engine && (!strcmp(engine, "aio") || !strcmp(engine, "uring"))) {
		argv[argc++] = "--engine";
		argv[argc++] = engine;
	}
	if (flush_ms) {
		argv[argc++] = "--flush-interval";
		argv[argc++] = flush_ms;
	}
	argv[argc] = NULL;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return call_fail(c, -errno, "Datapath_error", "pipe: %m");
	{
		/* its own session: it outlives this call and ignores our
		 * signals; never our stdout, which is xapi's JSON */
		struct proc_detached o = { .stderr_path = logp,
					   .ready_fd = pipefd[1] };

		r = proc_spawn_detached(argv, &o, &pid);
	}
	close(pipefd[1]);
	if (r < 0) {
		close(pipefd[0]);
		return call_fail(c, r, "Datapath_error",
				 "cannot start %s: %s", prog, strerror(-r));
	}
	r = wait_ready(pipefd[0], pid, &status);
	close(pipefd[0]);
	if (r < 0) {
		char how[64];

		/* judged by what happened to the process; its last log line
		 * only explains */
		if (r == -ETIMEDOUT) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, NULL, 0);
			snprintf(how, sizeof(how), "was not ready in %d s and "
				 "was killed", READY_TIMEOUT_MS / 1000);
		} else if (status != -1 && WIFEXITED(status)) {
			snprintf(how, sizeof(how), "exited with status %d",
				 WEXITSTATUS(status));
		} else if (status != -1 && WIFSIGNALED(status)) {
			snprintf(how, sizeof(how), "was killed by signal %d",
				 WTERMSIG(status));
		} else {
			snprintf(how, sizeof(how), "failed (%s)",
				 strerror(-r));
		}
		last_log_line(logp, line, sizeof(line));
		return call_fail(c, r, "Datapath_error",
				 "the datapath server for %s %s: %s", t->key,
				 how, line[0] ? line : "no message");
	}
	rec = json_new_object();
	json_add_string(rec, "host", host_paths()->host_uuid);
	json_add_int64(rec, "pid", pid);
	json_add_int64(rec, "starttime", process_starttime(pid));
	json_add_string(rec, "image", image_path);
	json_add_string(rec, "socket", rw);
	json_add_string(rec, "ro_socket", ro);
	json_add_string(rec, "control", ctl);
	json_add_string(rec, "export", t->key);
	json_add_bool(rec, "readonly", readonly);
	json_add(rec, "domains", json_new_object());
	if (ring) {
		json_object *o = json_new_object();

		json_add_string(o, "domain", ring->domain);
		json_add_string(o, "mode", ring->readonly ? "ro" : "rw");
		json_add(rec, "ring", o);
	}
	json_add_int64(rec, "started", (int64_t)time(NULL));
	log_info("started datapath server pid %d for %s (%s)", (int)pid,
		 t->key, image_path);
	*ret_rec = rec;
	return 0;
}

static bool still_running(json_object *rec)
{
	return process_starttime((pid_t)rec_int(rec, "pid")) ==
	       rec_int(rec, "starttime");
}

static bool wait_gone(json_object *rec, int timeout_ms)
{
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	int waited = 0;

	while (still_running(rec)) {
		if (waited >= timeout_ms)
			return false;
		nanosleep(&nap, NULL);
		waited += 10;
	}
	return true;
}

int dp_server_stop(struct call *c, json_object *rec)
{
	json_object *req, *reply = NULL;
	pid_t pid = (pid_t)rec_int(rec, "pid");
	int r;

	if (!active_record_is_live(rec))
		return 0;
	/* "stop" flushes everything before the server exits */
	req = json_new_object();
	json_add_string(req, CTL_KEY_OP, CTL_OP_STOP);
	r = control_call(rec_str(rec, "control"), req, STOP_TIMEOUT_MS, &reply);
	json_object_put(req);
	json_object_put(reply);
	if (r < 0 && still_running(rec)) {
		log_warn("control socket of pid %d: %s; sending SIGTERM",
			 (int)pid, strerror(-r));
		kill(pid, SIGTERM);
	}
	if (!wait_gone(rec, STOP_TIMEOUT_MS)) {
		kill(pid, SIGKILL);
		wait_gone(rec, 5000);
		return call_fail(c, -ETIMEDOUT, "Datapath_error",
				 "the datapath server pid %d did not stop in "
				 "time and was killed; its last writes may "
				 "not be flushed", (int)pid);
	}
	log_info("stopped datapath server pid %d", (int)pid);
	return 0;
}

int dp_server_status(json_object *rec, int timeout_ms, json_object **ret)
{
	json_object *req = json_new_object();
	int r;

	*ret = NULL;
	json_add_string(req, CTL_KEY_OP, CTL_OP_STATUS);
	r = control_call(rec_str(rec, "control"), req, timeout_ms, ret);
	json_object_put(req);
	if (r < 0) {
		json_object_put(*ret);
		*ret = NULL;
	}
	return r;
}

/* Is the server's ring released (or is there no ring, or no server)? */
static bool ring_released(json_object *rec)
{
	json_object *st, *v;
	bool done;

	if (dp_server_status(rec, 5000, &st) < 0)
		return true;	/* gone: nothing of it serves the ring */
	done = !json_object_object_get_ex(st, CTL_ST_BLKIF_RING, &v) ||
	       !json_object_is_type(v, json_type_string) ||
	       !strcmp(json_object_get_string(v), CTL_RING_RELEASED);
	json_object_put(st);
	return done;
}

int dp_server_release_ring(struct call *c, json_object *rec,
			   const char *domain)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	json_object *req, *reply = NULL, *v;
	int r, waited;

	if (!active_record_is_live(rec))
		return 0;
	req = json_new_object();
	json_add_string(req, CTL_KEY_OP, CTL_OP_BLKIF_RELEASE);
	json_add(req, CTL_KEY_DOMAIN,
		 json_object_new_int64(strtoll(domain, NULL, 10)));
	r = control_call(rec_str(rec, "control"), req, CTL_RELEASE_CALL_MS,
			 &reply);
	json_object_put(req);
	if (r < 0) {
		/* a server older than the op, or one that does not serve
		 * this ring: nothing of it to close */
		log_warn("domain %s: the datapath server pid %d did not take "
			 "blkif_release: %s", domain, (int)rec_int(rec, "pid"),
			 r == -EREMOTEIO && reply &&
			 json_object_object_get_ex(reply, CTL_KEY_ERROR, &v) ?
			 json_object_get_string(v) : strerror(-r));
		json_object_put(reply);
		return 0;
	}
	json_object_put(reply);
	for (waited = 0; waited < RING_RELEASE_TIMEOUT_MS; waited += 50) {
		if (ring_released(rec)) {
			log_info("domain %s: the blkif ring is closed; the "
				 "server pid %d stays for the other domains",
				 domain, (int)rec_int(rec, "pid"));
			return 0;
		}
		nanosleep(&nap, NULL);
	}
	return call_fail(c, -ETIMEDOUT, "Datapath_error",
			 "the blkif ring of domain %s was not closed in %d s: "
			 "its guest may still use it", domain,
			 RING_RELEASE_TIMEOUT_MS / 1000);
}
