/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * ngdp-server core API (server.c): one process serves one image chain to
 * any number of NBD connections from a single epoll thread.  Only server.c
 * touches the fields of struct server; the other parts use the functions
 * below (connections: src/server/conn.h, control socket and volume record:
 * src/server/control.h, listening sockets: src/server/listen.h).
 * Requests flow
 *
 *   conn (parse) -> srv.waitq -> start (map extents) -> srv.submitq
 *   -> engine ops -> completion -> [flush barrier for FUA] -> conn output
 *
 * (blkif/backend.c submits ring requests the same way: req->owner is its
 * own, and its req->done answers on the ring.)
 *
 * FLUSH, FUA, TRIM, WRITE_ZEROES and any I/O that needs the unaligned slow
 * path are barriers: they wait until no data I/O is in flight, then run
 * synchronously in the loop thread, so nothing can overlap them.  So are
 * the chunks of a live coalesce (server_coalesce): while one is due, no
 * new guest request starts.
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "formats/bitmap.h"
#include "formats/format.h"
#include "nbd-proto.h"

struct io_engine;
struct io_op;
struct conn;

/* The NBD listeners, indexes of server.listen_fd. */
enum server_listener { LISTEN_UNIX, LISTEN_TCP, LISTEN_RO };

struct server_config {
	const char *image;
	const char *format;		/* NULL: probe */
	bool readonly;
	bool no_direct;
	const char *confine;
	const char *export_name;	/* "" by default */
	const char *engine;		/* auto, aio, uring */
	unsigned int queue_depth;
	unsigned int flush_interval_ms;	/* idle periodic flush, 0 = off */
	const char *heartbeat;		/* file whose mtime we refresh, or NULL */
	const char *volume_record;	/* <SR>/meta/v-<key>.json, or NULL */
};

enum req_state {
	REQ_FREE,
	REQ_PAYLOAD,		/* receiving the write payload */
	REQ_WAITING,		/* in srv.waitq */
	REQ_ACTIVE,		/* extents being submitted / in flight */
	REQ_FLUSHWAIT,		/* FLUSH or FUA: waits for the barrier */
	REQ_REPLY,		/* in the connection's output queue */
};

struct req;
/*
 * A request is finished (wire_err set): its submitter sends the reply or
 * drops it.  The server calls it exactly once per request it was handed.
 */
typedef void req_done_fn(struct req *req);

struct req {
	struct req *next;		/* waitq / submitq / flushq / free */
	struct req *out_next;		/* connection output queue */
	struct conn *conn;		/* the submitter's, opaque to the core */
	void *owner;			/* the same for other submitters
					 * (blkif/backend.c), NULL for NBD */
	req_done_fn *done;		/* set by the submitter (conn.c) */
	bool readonly;			/* the submitter's view is read-only */
	enum req_state state;
	struct nbd_request h;
	uint32_t wire_err;		/* NBD error to reply with */
	bool excl;			/* must run with no I/O in flight */

	void *buf;			/* pooled, 4096-aligned */
	unsigned int buf_class;
	int buf_slot;			/* the engine's registered buffer, or -1 */
	size_t payload_got;

	/*
	 * READ only, set by the submitter instead of a buf (blkif/backend.c:
	 * the frontend's granted pages).  When every data extent can go
	 * there with O_DIRECT the core reads straight into them and buf
	 * stays NULL; otherwise (compressed clusters, unaligned pieces) it
	 * reads into a pooled buf as for any request, and the submitter
	 * copies from buf on completion.  Kept valid until done is called.
	 */
	const struct iovec *dst;
	int ndst;
	struct iovec *dst_ops;		/* dst's slices, one run per data op */
	int dst_ops_cap, dst_ops_used;

	struct extent_list el;		/* mapping of the request */
	size_t next_ext;		/* next extent to submit */
	uint64_t next_pos;		/* its byte position in buf */
	unsigned int ops_pending;
	int io_err;			/* first -errno of the data ops */

	/* reply: headers in rbuf, data slices point into buf */
	uint8_t *rbuf;
	size_t rbuf_cap;
	struct iovec *iov;
	int niov, iov_cap, iov_idx;
	size_t out_meta;		/* reply bytes outside buf, queued */
	void *mirror;			/* mirror.c's, while its reply waits
					 * for the remote too */
};

struct buf_pool {
	void *free[26][32];		/* by log2(size), 4 KiB .. 32 MiB */
	int slot[26][32];		/* their registered slots, or -1 */
	unsigned int nfree[26];
	size_t bytes;			/* held in the pool */
};

struct ctl_conn;
struct mirror_job;

#define SERVER_HOOK_LISTENERS 4

/* epoll tags: pointers to these identify the fd kind.  EV_HOOK: a
 * module's own fd (the control socket), the loop calls on_event. */
enum ev_kind { EV_LISTEN, EV_CONN, EV_ENGINE, EV_SIGNAL, EV_HOOK };
struct ev_tag {
	enum ev_kind kind;
	void (*on_event)(struct ev_tag *tag, uint32_t events);	/* EV_HOOK */
};

/*
 * Called once per loop turn after the scheduler ran (server_set_loop_hook):
 * returns true when it handed new requests to server_submit, which are
 * then scheduled at once (and the hook called again).
 */
typedef bool server_loop_hook_fn(void *opaque);

/*
 * Called while the server stops, once everything is drained and flushed,
 * and again every loop turn (at least every 50 ms): true holds the exit
 * back (a blkif ring closing with its frontend), false lets it go.
 */
typedef bool server_stop_hold_fn(void *opaque);

/*
 * The Xen ring's control (blkif/xen.c): release closes the ring of domain
 * domid without stopping the server (0, or -errno with *why); state names
 * where the ring is (CTL_RING_*).
 */
typedef int server_ring_release_fn(void *opaque, unsigned int domid,
				   const char **why);
typedef const char *server_ring_state_fn(void *opaque);

/* Called when a suspend's flush is done (err: its result, 0 or -errno). */
typedef void server_suspend_hook_fn(void *opaque, int err);

/* What the control socket reports (server_get_status). */
struct server_status {
	const char *image, *format, *engine;
	uint64_t size;
	bool readonly;
	unsigned int connections, in_flight;
	bool suspended, suspend_expired, dirty;
	uint64_t connections_total, reads, writes, flushes, trims,
		 write_zeroes, block_status, errors, slow_path, bytes_read,
		 bytes_written, registered_ios, direct_reads, bounced_reads,
		 grant_cache_evictions, direct_read_faults, blkif_failures;
	unsigned int blkif_rings;	/* blkif rings connected now */
	const char *blkif_device;	/* the Xen backend directory served */
	const char *blkif_ring;		/* CTL_RING_*, NULL: no Xen ring */
	const char *backing;		/* the top's backing file, or NULL */
	/* the live coalesce: co_state NULL when none was accepted */
	const char *co_state;		/* CTL_CO_RUNNING / _DONE / _FAILED */
	const char *co_parent, *co_error;	/* co_error: NULL unless failed */
	uint64_t co_copied, co_offset;
	/* changed block tracking: cbt_bitmap NULL when the record names none
	 * (or the server does not track this activation) */
	const char *cbt_bitmap;
	bool cbt_tracking, cbt_consistent;
	/* the mirror job: mi_state NULL when none was accepted */
	const char *mi_state;		/* CTL_MI_* */
	const char *mi_id, *mi_remote, *mi_error;	/* mi_error: failed */
	uint64_t mi_copied, mi_total;
};

enum coalesce_state { CO_NONE, CO_RUNNING, CO_DONE, CO_FAILED };

/*
 * The live coalesce job (issue 13, server.c): merges the top's backing
 * file down into the top in chunks, at barriers, then switches the chain.
 */
struct coalesce_job {
	enum coalesce_state state;
	char *parent;			/* as the control op named it */
	dev_t dev;			/* of the parent */
	ino_t ino;
	uint64_t end;			/* guest bytes to walk */
	uint64_t offset, copied;
	uint64_t due_ms;		/* next chunk not before */
	uint64_t guest_ops;		/* guest requests started, at the
					 * last chunk */
	bool guest_waited;		/* the guest had I/O in flight while
					 * a chunk was due */
	uint64_t chunks;
	uint64_t flush_retry_ms;	/* the final flush failed: retry then */
	char error[256];
};

struct server {
	struct server_config cfg;
	struct image *img;
	uint64_t size;
	unsigned int align;		/* largest dio_align of the chain */
	bool fast_zero;			/* top format has ->zero */
	struct io_engine *eng;
	int epfd;
	int sigfd;
	/* unix, tcp, read-only unix; -1 when unused.  Connections accepted on
	 * LISTEN_RO get a read-only view whatever export they ask for. */
	int listen_fd[3];
	/* the modules' own listeners (control, import, blkif-shm): paused
	 * with the NBD listeners when accept fails */
	int hook_listen_fd[SERVER_HOOK_LISTENERS];
	struct ev_tag *hook_listen_tag[SERVER_HOOK_LISTENERS];
	server_loop_hook_fn *loop_hook;	/* blkif/shm.c's, or NULL */
	void *loop_hook_opaque;
	server_stop_hold_fn *stop_hold;	/* blkif/xen.c's, or NULL */
	void *stop_hold_opaque;
	server_ring_release_fn *ring_release;	/* blkif/xen.c's, or NULL */
	server_ring_state_fn *ring_state;
	void *ring_opaque;
	server_suspend_hook_fn *suspend_hook;
	void *suspend_hook_opaque;

	struct conn_set *conns;		/* conn.c's */

	struct req *free_reqs;
	unsigned int nfree_reqs;
	struct req *waitq, *waitq_tail;
	struct req *submitq, *submitq_tail;
	struct req *flushq, *flushq_tail;
	struct req *held;		/* mapped, waits for no I/O in flight
					 * to take the synchronous path */
	unsigned int active;		/* requests in REQ_ACTIVE */
	bool flush_wanted;		/* internal barrier flush requested */

	struct io_op *ops;		/* engine op pool */
	struct io_op *free_ops;
	struct buf_pool pool;
	void *zero_buf;			/* 1 MiB of zeros, aligned */

	bool dirty;			/* unflushed writes or metadata */
	uint64_t dirty_since_ms;

	/* suspend / resume (control socket) */
	bool suspended;
	bool suspend_expired;
	uint64_t suspend_deadline_ms;	/* 0: no timeout */
	bool suspend_flush_pending;	/* the suspend's flush not done yet */
	char *sr_dir;			/* from cfg.volume_record */
	uint64_t record_retry_ms, record_log_ms;

	bool stopping;
	bool stop_flushed;
	int stop_flush_err;		/* the final flush's result */
	int exit_status;
	bool exit_when_idle;		/* fuzzing: stop when no connection */
	bool quit;

	struct ev_tag tag_listen, tag_engine, tag_signal;
	/* accept failed for want of resources: listeners off until then */
	bool accept_paused;
	uint64_t accept_resume_ms, accept_log_ms, accept_failures;
	uint64_t heartbeat_ms;		/* last refresh of cfg.heartbeat */

	struct coalesce_job co;
	struct mirror_job *mirror;	/* mirror.c's, or NULL */

	/*
	 * Changed block tracking (issue 14): the epoch bitmap the volume
	 * record names ("cbt_bitmap"), in memory while tracking, stored in
	 * the top image with in_use set while serving and without at a
	 * suspend or a clean stop.  cbt_name[0] == 0: none.
	 * cbt_consistent false: it was found in use (a server died while
	 * tracking it) or could not be stored; never tracked nor stored
	 * then, so the epoch stays reported as not trustworthy.
	 */
	char cbt_name[CBT_BITMAP_NAME_MAX + 1];
	bool cbt_tracking, cbt_consistent;
	struct dirty_bitmap cbt_bm;

	/* counters for status (conn.c counts its own) */
	uint64_t n_reads, n_writes, n_flushes, n_trims, n_zeroes,
		 n_block_status, n_errors, n_slow, bytes_read, bytes_written,
		 n_registered_ios, n_direct_reads, n_bounced_reads,
		 n_grant_cache_evictions, n_direct_read_faults,
		 n_blkif_failures;
	/* a read into a destination vector failed with EFAULT: every read
	 * goes through a buffer from then on */
	bool direct_reads_off;
	/* blkif: rings connected (blkif/backend.c), and the Xen backend
	 * directory served or claimed, NULL for none (blkif/xen.c) */
	unsigned int n_blkif_rings;
	const char *blkif_device;
};

/* ---- lifecycle (main.c, the fuzzer) */
int server_init(struct server *srv, const struct server_config *cfg);
void server_release(struct server *srv);
int server_run(struct server *srv);
int server_setup_signals(struct server *srv);
/*
 * Listen for NBD clients: LISTEN_UNIX and LISTEN_RO on a Unix socket path
 * (LISTEN_RO: its connections get a read-only view of any export),
 * LISTEN_TCP on ADDR:PORT.
 */
int server_listen(struct server *srv, enum server_listener which,
		  const char *addr);
/* Listening there now (false once stopping closed the listeners). */
bool server_listening(const struct server *srv, enum server_listener which);
/* Serve NBD on the connected socket fd (the fuzzer's way in). */
int server_add_conn(struct server *srv, int fd, bool readonly);
/* Fuzzing: leave server_run() once no connection is left. */
void server_exit_when_idle(struct server *srv);
bool server_stopping(const struct server *srv);

/* ---- the event loop, for the modules' own fds (conn.c, control.c) */
int server_epoll_add(struct server *srv, int fd, uint32_t events, void *tag);
int server_epoll_mod(struct server *srv, int fd, uint32_t events, void *tag);
void server_epoll_del(struct server *srv, int fd);
/* One loop hook (fn NULL: none). */
void server_set_loop_hook(struct server *srv, server_loop_hook_fn *fn,
			  void *opaque);
/* One stop hold (fn NULL: none). */
void server_set_stop_hold(struct server *srv, server_stop_hold_fn *fn,
			  void *opaque);
/* The Xen ring's control (release NULL: none). */
void server_set_ring_control(struct server *srv,
			     server_ring_release_fn *release,
			     server_ring_state_fn *state, void *opaque);
/* accept(2) failed with err (not EAGAIN): back off, log rate-limited. */
void server_accept_failed(struct server *srv, int err);
/*
 * A module's listening socket (an EV_HOOK tag): watched for EPOLLIN and
 * paused with the NBD listeners while accept fails.  -ENOSPC beyond
 * SERVER_HOOK_LISTENERS.
 */
int server_listener_add(struct server *srv, int fd, struct ev_tag *tag);
void server_listener_del(struct server *srv, int fd);
/*
 * The next connection on listener lfd (non-blocking, close-on-exec), or
 * -1 when none is waiting or accept failed (then the listeners pause:
 * server_accept_failed).
 */
int server_accept(struct server *srv, int lfd);

/* ---- requests (conn.c): in with server_submit, out through req->done */
/* Hand a request (validated, payload received) to the scheduler. */
void server_submit(struct server *srv, struct req *req);
struct req *server_req_get(struct server *srv);
void server_req_put(struct server *srv, struct req *req);
int server_buf_get(struct server *srv, struct req *req, size_t len);
/* Bytes a buffer for a request of len bytes takes. */
size_t server_buf_size(size_t len);
/* The export, as a connection's handshake sees it now. */
uint64_t server_size(const struct server *srv);
bool server_readonly(const struct server *srv);
bool server_fast_zero(const struct server *srv);
const char *server_export_name(const struct server *srv);

/* ---- control (control.c) */
/*
 * The control module's suspend hook (its listener: server_listener_add).
 * hook NULL unregisters.
 */
void server_set_control(struct server *srv, server_suspend_hook_fn *hook,
			void *opaque);
void server_get_status(const struct server *srv, struct server_status *st);
/* Drain and flush, then hold new I/O; the hook gets the flush's result. */
int server_suspend(struct server *srv, uint64_t timeout_ms);
/* Resume (on image, a new top of the chain, when not NULL). */
int server_resume(struct server *srv, const char *image);
void server_request_stop(struct server *srv);
/*
 * Start merging the top's backing file (parent, a path naming the same
 * file) into the top while serving.  0: started, or that very parent's
 * job is running or done already.  -errno with *why, a sentence for the
 * administrator: not writable, an overlay, no such backing, another job.
 */
int server_coalesce(struct server *srv, const char *parent,
		    const char **why);

/* ---- the mirror job (mirror.c) */
struct mirror_job *server_mirror(const struct server *srv);
/* Hang job off srv (the previous one was freed by the caller). */
void server_set_mirror(struct server *srv, struct mirror_job *job);
bool server_suspended(const struct server *srv);
/*
 * Read the guest view [offset, offset + len) into buf (4096-aligned),
 * synchronously: only with no data I/O in flight (a barrier).  *zero:
 * the chain maps the whole range as zeros.
 */
int server_read_guest(struct server *srv, uint64_t offset, uint64_t len,
		      void *buf, bool *zero);

#endif
