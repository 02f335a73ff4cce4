/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Asynchronous I/O engines of ngdp-server (libaio, io_uring).  The server
 * queues any number of operations during one loop iteration, submits them
 * all with one system call, and reaps completions when the engine's eventfd
 * becomes readable in epoll.
 */
#ifndef SERVER_IO_ENGINE_H
#define SERVER_IO_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct io_op {
	int fd;
	bool write;
	void *buf;
	size_t len;
	uint64_t off;
	int buf_slot;		/* registered buffer that holds buf..buf+len,
				 * or -1 (see buf_register) */
	/*
	 * niov > 0: the operation transfers len bytes to or from iov[]
	 * (preadv/pwritev) instead of buf, never with a registered buffer.
	 * The submitter owns the array and keeps it until completion.
	 */
	struct iovec *iov;
	int niov;
	void *owner;		/* the request this operation belongs to */
	struct io_op *next;	/* free list / pending list link */
	int err;		/* engine-internal: submission error */
};

typedef void (*io_complete_fn)(struct io_op *op, int res, void *opaque);

struct io_engine;

struct io_engine_ops {
	const char *name;
	/* Set up for at most 'depth' operations in flight.  0 or -errno. */
	int (*init)(struct io_engine *e, unsigned int depth);
	/*
	 * Queue one operation (no system call).  The caller guarantees at
	 * most 'depth' operations queued or in flight.
	 */
	void (*queue)(struct io_engine *e, struct io_op *op);
	/*
	 * Submit what the kernel takes now.  Operations it cannot take yet
	 * (EAGAIN, or fewer submitted than queued) stay queued, in order,
	 * for the next call: the caller retries after completions are
	 * reaped, or after a short wait when nothing is in flight.  An
	 * operation the kernel refuses is completed with the error through
	 * the next reap.  Returns 0 or the first such -errno.
	 */
	int (*submit)(struct io_engine *e);
	/* Reap all available completions, calling fn for each. */
	int (*reap)(struct io_engine *e, io_complete_fn fn, void *opaque);
	/*
	 * Optional (NULL: not offered).  Register buf[0, len) with the
	 * kernel: its pages are pinned once, here, instead of on every
	 * O_DIRECT operation into it.  Returns the slot to name in
	 * io_op.buf_slot, or -errno (no slot free, or the kernel cannot):
	 * the buffer then serves unregistered.  Unregister before the
	 * memory is freed.
	 */
	int (*buf_register)(struct io_engine *e, void *buf, size_t len);
	void (*buf_unregister)(struct io_engine *e, int slot);
	void (*release)(struct io_engine *e);
};

struct io_engine {
	const struct io_engine_ops *ops;
	/*
	 * Signalled on every completion.  Watched edge-triggered (EPOLLET):
	 * each signal is a new edge, so reap() need not read the counter,
	 * but it must take every completion available when it runs.
	 */
	int event_fd;
	unsigned int depth;
	unsigned int queued;	/* queued, not yet submitted */
	unsigned int in_flight;	/* submitted, not yet reaped */
	void *priv;
};

extern const struct io_engine_ops io_engine_aio;
extern const struct io_engine_ops io_engine_uring;

/*
 * Create an engine by name: "aio", "uring" or "auto" (io_uring when the
 * kernel allows it, else libaio).  Returns 0 or -errno; *ret untouched on
 * error.
 */
int io_engine_create(const char *name, unsigned int depth,
		     struct io_engine **ret);
void io_engine_free(struct io_engine *e);

#ifdef NGDP_FAULT_INJECT
/*
 * Fault injection, compiled only into the test binary ngdp-server-fault:
 * true when the comma-separated list in $NGDP_FAULT names 'what'.
 */
bool io_fault(const char *what);
#endif

#endif
