/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Control socket: one JSON request per connection, one JSON reply.
 * Ops: status, suspend {timeout_ms}, resume {image?}, stop, coalesce {parent},
 * mirror {id, remote, state_file}, mirror_cancel {id}.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ctl-proto.h"
#include "fileio.h"
#include "log.h"
#include "server/server.h"
#include "control.h"
#include "listen.h"
#include "mirror.h"

/* The control socket: its listener and connections. */
struct control {
	struct ev_tag tag;		/* the listener's; first */
	struct server *srv;
	int fd;
	struct ctl_conn *conns;		/* all control connections */
	struct ctl_conn *waiters;	/* suspends waiting for their flush */
};

struct ctl_conn {
	struct ev_tag tag;		/* first */
	struct control *ctl;
	int fd;
	struct ctl_conn *next;		/* ctl->conns */
	struct ctl_conn *wait_next;	/* ctl->waiters */
	size_t len;
	char buf[CTL_REQUEST_MAX];
};

static void on_accept(struct ev_tag *tag, uint32_t events);
static void on_event(struct ev_tag *tag, uint32_t events);
static void suspend_done(void *opaque, int err);

int control_listen(struct server *srv, const char *path,
		   struct control **ret)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	int r;

	if (!ctl)
		return -ENOMEM;
	ctl->tag.kind = EV_HOOK;
	ctl->tag.on_event = on_accept;
	ctl->srv = srv;
	r = listen_unix(path, &ctl->fd);
	if (r < 0) {
		free(ctl);
		return r;
	}
	r = server_listener_add(srv, ctl->fd, &ctl->tag);
	if (r == 0)
		server_set_control(srv, suspend_done, ctl);
	if (r < 0) {
		close(ctl->fd);
		unlink(path);
		free(ctl);
		return r;
	}
	*ret = ctl;
	return 0;
}

static void ctl_close(struct ctl_conn *cc)
{
	struct control *ctl = cc->ctl;
	struct ctl_conn **pp;

	for (pp = &ctl->conns; *pp; pp = &(*pp)->next) {
		if (*pp == cc) {
			*pp = cc->next;
			break;
		}
	}
	for (pp = &ctl->waiters; *pp; pp = &(*pp)->wait_next) {
		if (*pp == cc) {
			*pp = cc->wait_next;
			break;
		}
	}
	server_epoll_del(ctl->srv, cc->fd);
	close(cc->fd);
	free(cc);
}

static void ctl_send(struct ctl_conn *cc, json_object *reply)
{
	struct timeval tv = { .tv_sec = 1 };
	const char *s = json_object_to_json_string_ext(reply,
						       JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s), done = 0;

	/* tiny replies: a blocking send bounded by a timeout is simplest */
	fcntl(cc->fd, F_SETFL, fcntl(cc->fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(cc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (done < len) {
		ssize_t w = send(cc->fd, s + done, len - done, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	send(cc->fd, "\n", 1, MSG_NOSIGNAL);
	json_object_put(reply);
	ctl_close(cc);
}

static json_object *reply_error(int err, const char *what)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, CTL_KEY_OK, json_object_new_boolean(0));
	json_object_object_add(o, CTL_KEY_ERROR, json_object_new_string(what));
	json_object_object_add(o, CTL_KEY_ERRNO, json_object_new_int(-err));
	return o;
}

static json_object *reply_ok(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, CTL_KEY_OK, json_object_new_boolean(1));
	return o;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* A string, or null for NULL. */
static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* The status's "mirror" object, also the job's state file. */
static json_object *mirror_object(const struct server_status *st)
{
	json_object *m = json_object_new_object();

	add_str(m, CTL_MI_ID, st->mi_id);
	add_str(m, CTL_MI_REMOTE, st->mi_remote);
	add_str(m, CTL_MI_STATE, st->mi_state);
	add_u64(m, CTL_MI_COPIED, st->mi_copied);
	add_u64(m, CTL_MI_TOTAL, st->mi_total);
	if (st->mi_error)
		add_str(m, CTL_MI_ERROR, st->mi_error);
	return m;
}

int control_write_mirror_state(const char *path,
			       const struct server_status *st)
{
	json_object *m = mirror_object(st);
	const char *s = json_object_to_json_string_ext(m,
						       JSON_C_TO_STRING_PLAIN);
	int r = write_file_atomic(path, s, strlen(s));

	json_object_put(m);
	return r;
}

static json_object *status(const struct server *srv)
{
	json_object *o = reply_ok();
	struct server_status st;

	server_get_status(srv, &st);
	add_u64(o, CTL_ST_PID, (uint64_t)getpid());
	add_str(o, CTL_ST_IMAGE, st.image);
	add_str(o, CTL_ST_FORMAT, st.format);
	add_str(o, CTL_ST_ENGINE, st.engine);
	add_u64(o, CTL_ST_SIZE, st.size);
	json_object_object_add(o, CTL_ST_READONLY,
			       json_object_new_boolean(st.readonly));
	add_u64(o, CTL_ST_CONNECTIONS, st.connections);
	add_u64(o, CTL_ST_IN_FLIGHT, st.in_flight);
	json_object_object_add(o, CTL_ST_SUSPENDED,
			       json_object_new_boolean(st.suspended));
	json_object_object_add(o, CTL_ST_SUSPEND_EXPIRED,
			       json_object_new_boolean(st.suspend_expired));
	json_object_object_add(o, CTL_ST_DIRTY,
			       json_object_new_boolean(st.dirty));
	add_u64(o, CTL_ST_CONNECTIONS_TOTAL, st.connections_total);
	add_u64(o, CTL_ST_READS, st.reads);
	add_u64(o, CTL_ST_WRITES, st.writes);
	add_u64(o, CTL_ST_FLUSHES, st.flushes);
	add_u64(o, CTL_ST_TRIMS, st.trims);
	add_u64(o, CTL_ST_WRITE_ZEROES, st.write_zeroes);
	add_u64(o, CTL_ST_BLOCK_STATUS, st.block_status);
	add_u64(o, CTL_ST_ERRORS, st.errors);
	add_u64(o, CTL_ST_SLOW_PATH, st.slow_path);
	add_u64(o, CTL_ST_BYTES_READ, st.bytes_read);
	add_u64(o, CTL_ST_BYTES_WRITTEN, st.bytes_written);
	add_u64(o, CTL_ST_REGISTERED_IOS, st.registered_ios);
	add_u64(o, CTL_ST_DIRECT_READS, st.direct_reads);
	add_u64(o, CTL_ST_BOUNCED_READS, st.bounced_reads);
	add_u64(o, CTL_ST_GRANT_CACHE_EVICTIONS, st.grant_cache_evictions);
	add_u64(o, CTL_ST_DIRECT_READ_FAULTS, st.direct_read_faults);
	add_u64(o, CTL_ST_BLKIF_RINGS, st.blkif_rings);
	add_str(o, CTL_ST_BLKIF_DEVICE, st.blkif_device);
	add_u64(o, CTL_ST_BLKIF_FAILURES, st.blkif_failures);
	add_str(o, CTL_ST_BLKIF_RING, st.blkif_ring);
	add_str(o, CTL_ST_BACKING, st.backing);
	if (st.co_state) {
		json_object *c = json_object_new_object();

		add_str(c, CTL_CO_PARENT, st.co_parent);
		add_str(c, CTL_CO_STATE, st.co_state);
		add_u64(c, CTL_CO_COPIED, st.co_copied);
		add_u64(c, CTL_CO_OFFSET, st.co_offset);
		if (st.co_error)
			add_str(c, CTL_CO_ERROR, st.co_error);
		json_object_object_add(o, CTL_ST_COALESCE, c);
	}
	{
		json_object *c = json_object_new_object();

		add_str(c, CTL_CBT_BITMAP, st.cbt_bitmap);
		json_object_object_add(c, CTL_CBT_TRACKING,
				       json_object_new_boolean(st.cbt_tracking));
		json_object_object_add(c, CTL_CBT_CONSISTENT,
				       json_object_new_boolean(st.cbt_consistent));
		json_object_object_add(o, CTL_ST_CBT, c);
	}
	if (st.mi_state)
		json_object_object_add(o, CTL_ST_MIRROR, mirror_object(&st));
	return o;
}

/* A string argument, or NULL. */
static const char *str_arg(json_object *req, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void ctl_mirror(struct ctl_conn *cc, json_object *req)
{
	const char *id = str_arg(req, CTL_KEY_ID),
		   *remote = str_arg(req, CTL_KEY_REMOTE),
		   *state_file = str_arg(req, CTL_KEY_STATE_FILE);
	int64_t max_rate = 0;
	json_object *v;
	char why[512];
	int r;

	if (json_object_object_get_ex(req, CTL_KEY_MAX_RATE, &v) &&
	    (!json_object_is_type(v, json_type_int) ||
	     (max_rate = json_object_get_int64(v)) < 0)) {
		ctl_send(cc, reply_error(-EINVAL, "\"max_rate\" must be an "
			 "integer >= 0 (bytes per second)"));
		return;
	}
	if (!id || !remote || !state_file) {
		ctl_send(cc, reply_error(-EINVAL, "mirror needs \"id\", "
			 "\"remote\" and \"state_file\" (strings)"));
		return;
	}
	r = mirror_start(cc->ctl->srv, id, remote, state_file,
			 (uint64_t)max_rate, why, sizeof(why));
	ctl_send(cc, r < 0 ? reply_error(r, why) : status(cc->ctl->srv));
}

static void ctl_handle(struct ctl_conn *cc, json_object *req)
{
	struct control *ctl = cc->ctl;
	struct server *srv = ctl->srv;
	json_object *v;
	const char *op;
	int r;

	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, CTL_KEY_OP, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		ctl_send(cc, reply_error(-EINVAL, "expected {\"op\": ...}"));
		return;
	}
	op = json_object_get_string(v);
	if (!strcmp(op, CTL_OP_STATUS)) {
		ctl_send(cc, status(srv));
	} else if (!strcmp(op, CTL_OP_SUSPEND)) {
		int64_t t = 0;

		if (json_object_object_get_ex(req, CTL_KEY_TIMEOUT_MS, &v)) {
			if (!json_object_is_type(v, json_type_int) ||
			    (t = json_object_get_int64(v)) < 0) {
				ctl_send(cc, reply_error(-EINVAL,
							 "bad timeout_ms"));
				return;
			}
		}
		if (server_stopping(srv)) {
			ctl_send(cc, reply_error(-ESHUTDOWN, "stopping"));
			return;
		}
		server_suspend(srv, (uint64_t)t);
		/* the reply comes from suspend_done() */
		server_epoll_del(srv, cc->fd);
		cc->wait_next = ctl->waiters;
		ctl->waiters = cc;
	} else if (!strcmp(op, CTL_OP_RESUME)) {
		const char *img = NULL;

		if (json_object_object_get_ex(req, CTL_KEY_IMAGE, &v)) {
			if (!json_object_is_type(v, json_type_string)) {
				ctl_send(cc, reply_error(-EINVAL, "bad image"));
				return;
			}
			img = json_object_get_string(v);
		}
		r = server_resume(srv, img);
		ctl_send(cc, r < 0 ? reply_error(r, strerror(-r)) : status(srv));
	} else if (!strcmp(op, CTL_OP_COALESCE)) {
		const char *parent, *why = NULL;

		if (!json_object_object_get_ex(req, CTL_KEY_PARENT, &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    *(parent = json_object_get_string(v)) != '/') {
			ctl_send(cc, reply_error(-EINVAL, "coalesce needs "
				"\"parent\": the absolute path of the "
				"backing file to merge"));
			return;
		}
		r = server_coalesce(srv, parent, &why);
		ctl_send(cc, r < 0 ? reply_error(r, why) : status(srv));
	} else if (!strcmp(op, CTL_OP_MIRROR)) {
		ctl_mirror(cc, req);
	} else if (!strcmp(op, CTL_OP_MIRROR_CANCEL)) {
		const char *why = NULL, *id = str_arg(req, CTL_KEY_ID);

		r = id ? mirror_cancel(srv, id, &why) : -EINVAL;
		ctl_send(cc, r < 0 ? reply_error(r, id ? why :
			"mirror_cancel needs \"id\"") : status(srv));
	} else if (!strcmp(op, CTL_OP_BLKIF_RELEASE)) {
		const char *why = "bad domain";
		int64_t d = -1;

		if (json_object_object_get_ex(req, CTL_KEY_DOMAIN, &v) &&
		    json_object_is_type(v, json_type_int))
			d = json_object_get_int64(v);
		if (d < 1 || d > 0x7fef)	/* DOMID_FIRST_RESERVED */
			r = -EINVAL;
		else if (!srv->ring_release)
			r = -ENOENT, why = "this server serves no Xen ring";
		else
			r = srv->ring_release(srv->ring_opaque,
					      (unsigned int)d, &why);
		ctl_send(cc, r < 0 ? reply_error(r, why) : status(srv));
	} else if (!strcmp(op, CTL_OP_STOP)) {
		server_request_stop(srv);
		ctl_send(cc, reply_ok());
	} else {
		ctl_send(cc, reply_error(-EINVAL, "unknown op"));
	}
}

static void on_accept(struct ev_tag *tag, uint32_t events)
{
	struct control *ctl = (struct control *)tag;
	struct server *srv = ctl->srv;

	(void)events;
	for (int fd; (fd = server_accept(srv, ctl->fd)) >= 0;) {
		struct ctl_conn *cc;

		cc = malloc(sizeof(*cc));
		if (!cc) {
			close(fd);
			continue;
		}
		cc->tag.kind = EV_HOOK;
		cc->tag.on_event = on_event;
		cc->ctl = ctl;
		cc->fd = fd;
		cc->len = 0;
		cc->wait_next = NULL;
		if (server_epoll_add(srv, fd, EPOLLIN, cc) < 0) {
			close(fd);
			free(cc);
			continue;
		}
		cc->next = ctl->conns;
		ctl->conns = cc;
	}
}

static void on_event(struct ev_tag *tag, uint32_t events)
{
	struct ctl_conn *cc = (struct ctl_conn *)tag;
	struct json_tokener *tok;
	json_object *req;
	ssize_t n;

	(void)events;
	n = recv(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - cc->len - 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ctl_close(cc);
		return;
	}
	cc->len += (size_t)n;
	tok = json_tokener_new();
	if (!tok) {
		ctl_close(cc);
		return;
	}
	req = json_tokener_parse_ex(tok, cc->buf, (int)cc->len);
	if (!req && json_tokener_get_error(tok) == json_tokener_continue &&
	    cc->len < sizeof(cc->buf) - 1) {
		json_tokener_free(tok);
		return;	/* wait for the rest */
	}
	json_tokener_free(tok);
	if (!req) {
		ctl_send(cc, reply_error(-EINVAL, "bad JSON request"));
		return;
	}
	ctl_handle(cc, req);
	json_object_put(req);
}

/* The server's suspend hook: a suspend's flush is done (err: its result). */
static void suspend_done(void *opaque, int err)
{
	struct control *ctl = opaque;
	struct ctl_conn *cc;

	while ((cc = ctl->waiters)) {
		ctl->waiters = cc->wait_next;
		cc->wait_next = NULL;
		if (err < 0) {
			ctl_send(cc, reply_error(err, "flush failed"));
		} else {
			json_object *o = status(ctl->srv);

			ctl_send(cc, o);
		}
	}
}

void control_close(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->conns)
		ctl_close(ctl->conns);
	server_set_control(ctl->srv, NULL, NULL);
	server_listener_del(ctl->srv, ctl->fd);
	close(ctl->fd);
	free(ctl);
}
