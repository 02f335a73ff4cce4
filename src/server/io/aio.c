/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libaio engine: the only asynchronous path on dom0 kernels without
 * io_uring.  Completions signal an eventfd (io_set_eventfd) watched by the
 * server's epoll loop.
 */
#include <errno.h>
#include <libaio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "engine.h"

struct aio_priv {
	io_context_t ctx;
	struct iocb *iocbs;		/* depth of them */
	struct iocb **free_stack;	/* unused iocbs */
	unsigned int nfree;
	struct iocb **pending;		/* queued, not yet submitted */
	struct io_event *events;
	struct io_op *failed;		/* could not be submitted */
};

static int aio_init(struct io_engine *e, unsigned int depth)
{
	struct aio_priv *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->iocbs = calloc(depth, sizeof(*p->iocbs));
	p->free_stack = calloc(depth, sizeof(*p->free_stack));
	p->pending = calloc(depth, sizeof(*p->pending));
	p->events = calloc(depth, sizeof(*p->events));
	if (!p->iocbs || !p->free_stack || !p->pending || !p->events) {
		r = -ENOMEM;
		goto out_free;
	}
	for (unsigned int i = 0; i < depth; i++)
		p->free_stack[i] = &p->iocbs[i];
	p->nfree = depth;
	e->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->event_fd < 0) {
		r = -errno;
		goto out_free;
	}
	r = io_setup(depth, &p->ctx);	/* returns -errno */
	if (r < 0) {
		log_error("io_setup(%u): %s", depth, strerror(-r));
		close(e->event_fd);
		e->event_fd = -1;
		goto out_free;
	}
	e->priv = p;
	return 0;

out_free:
	free(p->iocbs);
	free(p->free_stack);
	free(p->pending);
	free(p->events);
	free(p);
	return r;
}

static void aio_queue(struct io_engine *e, struct io_op *op)
{
	struct aio_priv *p = e->priv;
	struct iocb *cb = p->free_stack[--p->nfree];

	if (op->niov > 0 && op->write)
		io_prep_pwritev(cb, op->fd, op->iov, op->niov,
				(long long)op->off);
	else if (op->niov > 0)
		io_prep_preadv(cb, op->fd, op->iov, op->niov,
			       (long long)op->off);
	else if (op->write)
		io_prep_pwrite(cb, op->fd, op->buf, op->len, (long long)op->off);
	else
		io_prep_pread(cb, op->fd, op->buf, op->len, (long long)op->off);
	io_set_eventfd(cb, e->event_fd);
	cb->data = op;
	p->pending[e->queued++] = cb;
}

/*
 * io_submit, or under fault injection ("submit-partial") one that takes at
 * most one iocb and answers EAGAIN every other call while I/O is in flight,
 * as the kernel may when it runs short of resources.
 */
static int do_submit(struct io_engine *e, io_context_t ctx, long nr,
		     struct iocb **v)
{
#ifdef NGDP_FAULT_INJECT
	static unsigned int calls;

	if (io_fault("submit-partial") && e->in_flight) {
		if (++calls % 2)
			return -EAGAIN;
		nr = 1;
	}
#else
	(void)e;
#endif
	return io_submit(ctx, nr, v);	/* returns -errno */
}

static int aio_submit(struct io_engine *e)
{
	struct aio_priv *p = e->priv;
	unsigned int done = 0;
	int r, first_err = 0;
	bool failed = false;

	while (done < e->queued) {
		r = do_submit(e, p->ctx, e->queued - done, p->pending + done);
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			break;	/* the rest stays queued: retried later */
		if (r > 0) {
			done += (unsigned int)r;
			e->in_flight += (unsigned int)r;
			continue;
		}
		/* the first iocb was refused: fail it, go on with the rest */
		{
			struct iocb *cb = p->pending[done++];
			struct io_op *op = cb->data;

			p->free_stack[p->nfree++] = cb;
			op->err = r < 0 ? r : -EIO;
			op->next = p->failed;
			p->failed = op;
			failed = true;
			if (!first_err)
				first_err = op->err;
		}
	}
	if (done && done < e->queued)
		memmove(p->pending, p->pending + done,
			(e->queued - done) * sizeof(*p->pending));
	e->queued -= done;
	if (failed) {
		uint64_t one = 1;

		/* completed through the next reap */
		if (write(e->event_fd, &one, sizeof(one)) < 0)
			log_error("eventfd write: %m");
	}
	return first_err;
}

static int aio_reap(struct io_engine *e, io_complete_fn fn, void *opaque)
{
	struct aio_priv *p = e->priv;
	struct timespec zero = { 0, 0 };
	int n;

	/* The eventfd is edge-triggered (engine.h): its counter is never
	 * read, which saves a system call per wake-up. */
	while (p->failed) {
		struct io_op *op = p->failed;

		p->failed = op->next;
		fn(op, op->err, opaque);
	}
	while (e->in_flight) {
		n = io_getevents(p->ctx, 0, e->depth, p->events, &zero);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			struct iocb *cb = p->events[i].obj;
			struct io_op *op = cb->data;
			long res = (long)p->events[i].res;

			p->free_stack[p->nfree++] = cb;
			e->in_flight--;
			fn(op, (int)res, opaque);
		}
		/* fewer than asked for: none left now; a later completion
		 * signals the eventfd again */
		if ((unsigned int)n < e->depth)
			break;
	}
	return 0;
}

static void aio_release(struct io_engine *e)
{
	struct aio_priv *p = e->priv;

	if (!p)
		return;
	io_destroy(p->ctx);
	if (e->event_fd >= 0)
		close(e->event_fd);
	free(p->iocbs);
	free(p->free_stack);
	free(p->pending);
	free(p->events);
	free(p);
	e->priv = NULL;
}

const struct io_engine_ops io_engine_aio = {
	.name = "aio",
	.init = aio_init,
	.queue = aio_queue,
	.submit = aio_submit,
	.reap = aio_reap,
	.release = aio_release,
};
