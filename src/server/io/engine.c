/* SPDX-License-Identifier: LGPL-2.1-only */
/* I/O engine selection: io_uring when the kernel has it, else libaio. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "engine.h"

static int engine_try(const struct io_engine_ops *ops, unsigned int depth,
		      struct io_engine **ret)
{
	struct io_engine *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	e->ops = ops;
	e->event_fd = -1;
	e->depth = depth;
	r = ops->init(e, depth);
	if (r < 0) {
		free(e);
		return r;
	}
	*ret = e;
	return 0;
}

int io_engine_create(const char *name, unsigned int depth,
		     struct io_engine **ret)
{
	int r;

	if (!strcmp(name, "aio"))
		return engine_try(&io_engine_aio, depth, ret);
	if (!strcmp(name, "uring"))
		return engine_try(&io_engine_uring, depth, ret);
	if (strcmp(name, "auto"))
		return -EINVAL;
	/*
	 * io_uring_queue_init fails with ENOSYS on kernels without io_uring
	 * (XCP-ng 8's 4.19 dom0) and EPERM when disabled by sysctl or seccomp.
	 */
	r = engine_try(&io_engine_uring, depth, ret);
	if (r == 0)
		return 0;
	log_info("io_uring unavailable (%s), using libaio", strerror(-r));
	return engine_try(&io_engine_aio, depth, ret);
}

void io_engine_free(struct io_engine *e)
{
	if (!e)
		return;
	e->ops->release(e);
	free(e);
}

#ifdef NGDP_FAULT_INJECT
bool io_fault(const char *what)
{
	const char *list = getenv("NGDP_FAULT"), *p;
	size_t n = strlen(what);

	for (p = list; p && *p; p += strcspn(p, ","), p += *p == ',') {
		if (!strncmp(p, what, n) && (p[n] == ',' || !p[n]))
			return true;
	}
	return false;
}
#endif
