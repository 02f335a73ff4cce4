/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The blkif ring over shared memory (include/proto/blkif-shm.h): a Unix
 * socket where a frontend passes a sealed memfd (ring pages, then data
 * pages) and two eventfds.  Grant references are data page indexes; the
 * "kick" eventfd plays the event channel towards us, "notify" the one
 * back.  Everything the frontend sends is checked before it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "blkif-shm.h"
#include "log.h"
#include "server/blkif-backend.h"
#include "server/server.h"
#include "../fdpass.h"
#include "../listen.h"
#include "shm.h"

/* Connections waiting to send their hello, at most. */
#define SHM_PENDING_MAX 4

struct shm_ring {
	struct ev_tag sock_tag, kick_tag;
	struct blkif_shm *shm;
	int sock, fds[BLKIF_SHM_NFDS];
	uint8_t *mem;
	size_t mem_bytes, ring_bytes;
	uint32_t data_pages;
	struct blkif_backend *be;
	bool zombie;			/* torn down; freed after the batch */
	bool released;			/* the backend gave mem back */
	struct shm_ring *next_zombie;
};

struct shm_pending {
	struct ev_tag tag;		/* first */
	struct blkif_shm *shm;
	int fd;
	struct shm_pending *next;
};

struct blkif_shm {
	struct ev_tag tag;		/* the listener's; first */
	struct server *srv;
	int fd;
	char *path;
	struct shm_pending *pending;
	unsigned int npending;
	struct shm_ring *ring;		/* the frontend attached, or NULL */
	/* released rings: events of this epoll batch may still name them */
	struct shm_ring *zombies;
};

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

static void on_accept(struct ev_tag *tag, uint32_t events);
static void on_hello(struct ev_tag *tag, uint32_t events);
static void on_sock(struct ev_tag *tag, uint32_t events);
static void on_kick(struct ev_tag *tag, uint32_t events);
static bool loop_hook(void *opaque);

/* ------------------------------------------------------------ transport */

static void *shm_map(void *transport, uint32_t gref)
{
	struct shm_ring *sr = transport;

	if (gref >= sr->data_pages)
		return NULL;
	return sr->mem + sr->ring_bytes + (size_t)gref * BLKIF_PAGE_SIZE;
}

static void shm_notify(void *transport)
{
	struct shm_ring *sr = transport;
	uint64_t one = 1;

	/* EAGAIN: the counter is full, the frontend has a wake-up due */
	if (write(sr->fds[BLKIF_SHM_FD_NOTIFY], &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_debug("blkif-shm: notify: %m");
}

/* Reads in flight after a teardown land in mem: unmapped only now. */
static void shm_released(void *transport)
{
	struct shm_ring *sr = transport;

	munmap(sr->mem, sr->mem_bytes);
	sr->mem = NULL;
	sr->released = true;
}

static const struct blkif_transport_ops shm_ops = {
	.map = shm_map,
	.notify = shm_notify,
	.released = shm_released,
};

/* ------------------------------------------------------------ the ring */

static void ring_teardown(struct blkif_shm *shm, const char *why)
{
	struct shm_ring *sr = shm->ring;

	if (!sr)
		return;
	log_info("blkif-shm: ring released: %s", why);
	/* mem is unmapped when the backend releases it (shm_released) */
	blkif_backend_detach(sr->be);
	server_epoll_del(shm->srv, sr->fds[BLKIF_SHM_FD_KICK]);
	server_epoll_del(shm->srv, sr->sock);
	close(sr->sock);
	fdpass_close(sr->fds, BLKIF_SHM_NFDS);
	sr->zombie = true;
	sr->next_zombie = shm->zombies;
	shm->zombies = sr;
	shm->ring = NULL;
}

/*
 * Free the torn-down rings whose memory the backend released; all of them
 * when the server closes (its loop is over: nothing completes any more).
 */
static void free_zombies(struct blkif_shm *shm, bool all)
{
	struct shm_ring **pp = &shm->zombies;

	while (*pp) {
		struct shm_ring *sr = *pp;

		if (!sr->released && !all) {
			pp = &sr->next_zombie;
			continue;
		}
		*pp = sr->next_zombie;
		if (!sr->released)
			munmap(sr->mem, sr->mem_bytes);
		free(sr);
	}
}

static void ring_poll(struct blkif_shm *shm)
{
	if (shm->ring && blkif_backend_poll(shm->ring->be) < 0)
		ring_teardown(shm, "the frontend broke the ring protocol");
}

static void on_kick(struct ev_tag *tag, uint32_t events)
{
	struct shm_ring *sr = container_of(tag, struct shm_ring, kick_tag);
	uint64_t v;

	(void)events;
	if (sr->zombie)
		return;
	/* drained before the requests are looked at: a kick that comes
	 * after this read is seen again */
	if (read(sr->fds[BLKIF_SHM_FD_KICK], &v, sizeof(v)) < 0 &&
	    errno != EAGAIN)
		log_debug("blkif-shm: kick: %m");
	ring_poll(sr->shm);
}

/* The frontend sends nothing after its hello: anything is the end. */
static void on_sock(struct ev_tag *tag, uint32_t events)
{
	struct shm_ring *sr = container_of(tag, struct shm_ring, sock_tag);

	(void)events;
	if (sr->zombie)
		return;
	ring_teardown(sr->shm, "the frontend closed its socket");
}

static bool loop_hook(void *opaque)
{
	struct blkif_shm *shm = opaque;
	int r;

	free_zombies(shm, false);	/* after the epoll batch */
	if (!shm->ring || !blkif_backend_wants_poll(shm->ring->be))
		return false;
	r = blkif_backend_poll(shm->ring->be);
	if (r < 0)
		ring_teardown(shm, "the frontend broke the ring protocol");
	return r > 0;
}

/* ------------------------------------------------------------ hello */

static bool is_eventfd(int fd)
{
	char link[PATH_MAX], path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return !strcmp(link, "anon_inode:[eventfd]");
}

/* Check the hello and its fds; a sentence in *why when refused. */
static int check_hello(const struct blkif_shm_hello *h, const int *fds,
		       size_t *mem_bytes, const char **why)
{
	size_t ring_pages;
	struct statfs sfs;
	struct stat st;
	int seals;

	if (h->magic != BLKIF_SHM_MAGIC || h->version != BLKIF_SHM_VERSION ||
	    h->reserved) {
		*why = "bad magic, version or reserved field";
		return -EPROTO;
	}
	if (h->ring_order > BLKIF_MAX_RING_PAGE_ORDER) {
		*why = "ring order above 4";
		return -EINVAL;
	}
	if (h->abi != BLKIF_SHM_ABI_X86_64 && h->abi != BLKIF_SHM_ABI_X86_32) {
		*why = "unknown ABI";
		return -EINVAL;
	}
	if (h->data_pages < 1 || h->data_pages > BLKIF_SHM_MAX_DATA_PAGES) {
		*why = "data page count out of range";
		return -EINVAL;
	}
	ring_pages = (size_t)1 << h->ring_order;
	*mem_bytes = (ring_pages + h->data_pages) * BLKIF_PAGE_SIZE;
	if (fstat(fds[BLKIF_SHM_FD_MEM], &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "the memory fd is not a memfd";
		return -EINVAL;
	}
	/* not hugetlbfs: its pages can be missing at fault time (SIGBUS) */
	if (fstatfs(fds[BLKIF_SHM_FD_MEM], &sfs) < 0 ||
	    sfs.f_type != TMPFS_MAGIC) {
		*why = "the memory fd is not a plain (tmpfs) memfd";
		return -EINVAL;
	}
	seals = fcntl(fds[BLKIF_SHM_FD_MEM], F_GET_SEALS);
	if (seals < 0) {
		*why = "the memory fd is not a memfd (no seals)";
		return -EINVAL;
	}
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
	    (F_SEAL_SHRINK | F_SEAL_GROW)) {
		*why = "the memfd is not sealed against shrinking and growing";
		return -EINVAL;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size != *mem_bytes) {
		*why = "the memfd's size is not (ring + data pages) * 4096";
		return -EINVAL;
	}
	for (int i = BLKIF_SHM_FD_KICK; i <= BLKIF_SHM_FD_NOTIFY; i++) {
		int fl = fcntl(fds[i], F_GETFL);

		if (!is_eventfd(fds[i])) {
			*why = "the kick or notify fd is not an eventfd";
			return -EINVAL;
		}
		if (fl < 0 || !(fl & O_NONBLOCK)) {
			*why = "the kick or notify eventfd is blocking";
			return -EINVAL;
		}
	}
	return 0;
}

static void send_reply(struct server *srv, int sock, int status)
{
	struct blkif_shm_reply rep = {
		.magic = BLKIF_SHM_REPLY_MAGIC,
		.version = BLKIF_SHM_VERSION,
		.status = status,
	};

	if (!status) {
		bool ro = server_readonly(srv);

		rep.info = ro ? BLKIF_VDISK_READONLY : 0;
		rep.sectors = server_size(srv) / BLKIF_SECTOR_SIZE;
		rep.sector_size = BLKIF_SECTOR_SIZE;
		rep.max_indirect_segments = BLKIF_BACKEND_INDIRECT_SEGMENTS;
		rep.features = BLKIF_SHM_F_FLUSH | BLKIF_SHM_F_BARRIER |
			       (ro ? 0 : BLKIF_SHM_F_DISCARD);
	}
	/* a frontend that does not read it learns by the closed socket */
	if (send(sock, &rep, sizeof(rep), MSG_DONTWAIT | MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(rep))
		log_debug("blkif-shm: cannot send the reply: %m");
}

/* Attach the checked frontend; takes sock and fds on success. */
static int attach(struct blkif_shm *shm, int sock, const int *fds,
		  const struct blkif_shm_hello *h, size_t mem_bytes)
{
	struct shm_ring *sr = calloc(1, sizeof(*sr));
	struct blkif_backend_config cfg;
	void *mem;
	int r;

	if (!sr)
		return -ENOMEM;
	mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fds[BLKIF_SHM_FD_MEM], 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		free(sr);
		return r;
	}
	sr->shm = shm;
	sr->sock = sock;
	memcpy(sr->fds, fds, sizeof(sr->fds));
	sr->mem = mem;
	sr->mem_bytes = mem_bytes;
	sr->ring_bytes = (size_t)BLKIF_PAGE_SIZE << h->ring_order;
	sr->data_pages = h->data_pages;
	sr->sock_tag = (struct ev_tag){ .kind = EV_HOOK, .on_event = on_sock };
	sr->kick_tag = (struct ev_tag){ .kind = EV_HOOK, .on_event = on_kick };
	cfg = (struct blkif_backend_config){
		.ring = mem,
		.ring_bytes = sr->ring_bytes,
		.abi = h->abi == BLKIF_SHM_ABI_X86_32 ? BLKIF_ABI_X86_32 :
							BLKIF_ABI_X86_64,
		.max_indirect_segments = BLKIF_BACKEND_INDIRECT_SEGMENTS,
		.ops = &shm_ops,
		.transport = sr,
		.name = "blkif-shm",
		/* every data page can be held: nothing to recycle */
		.max_held = h->data_pages,
	};
	r = blkif_backend_new(shm->srv, &cfg, &sr->be);
	if (r == 0) {
		r = server_epoll_mod(shm->srv, sock, EPOLLIN | EPOLLRDHUP,
				     &sr->sock_tag);
		if (r == 0)
			r = server_epoll_add(shm->srv, fds[BLKIF_SHM_FD_KICK],
					     EPOLLIN, &sr->kick_tag);
		if (r < 0)
			blkif_backend_detach(sr->be);	/* unmaps mem */
	} else {
		munmap(mem, mem_bytes);
	}
	if (r < 0) {
		free(sr);
		return r;
	}
	shm->ring = sr;
	return 0;
}

static void pending_close(struct shm_pending *p, bool close_fd)
{
	struct blkif_shm *shm = p->shm;
	struct shm_pending **pp;

	for (pp = &shm->pending; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	shm->npending--;
	if (close_fd) {
		server_epoll_del(shm->srv, p->fd);
		close(p->fd);
	}
	free(p);
}

static void on_hello(struct ev_tag *tag, uint32_t events)
{
	struct shm_pending *p = (struct shm_pending *)tag;
	struct blkif_shm *shm = p->shm;
	struct blkif_shm_hello h;
	int fds[FDPASS_MAX], sock = p->fd, r;
	const char *why = NULL;
	unsigned int nfds;
	size_t mem_bytes = 0;
	bool truncated;
	ssize_t n;

	(void)events;
	n = fdpass_recv(sock, &h, sizeof(h), fds, FDPASS_MAX, &nfds,
			&truncated);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n < 0) {
		why = strerror((int)-n);
		r = (int)n;
	} else if (n != sizeof(h) || nfds != BLKIF_SHM_NFDS || truncated) {
		why = "a hello of the wrong size, or not three fds";
		r = -EPROTO;
	} else if (shm->ring) {
		why = "another frontend is attached";
		r = -EBUSY;
	} else if (server_stopping(shm->srv)) {
		why = "the server is stopping";
		r = -ESHUTDOWN;
	} else {
		r = check_hello(&h, fds, &mem_bytes, &why);
	}
	if (r == 0) {
		r = attach(shm, sock, fds, &h, mem_bytes);
		if (r < 0)
			why = strerror(-r);
	}
	if (r < 0) {
		log_warn("blkif-shm: frontend refused: %s", why);
		send_reply(shm->srv, sock, r);
		fdpass_close(fds, nfds);
		pending_close(p, true);
		return;
	}
	pending_close(p, false);	/* the ring owns sock now */
	send_reply(shm->srv, sock, 0);
	log_info("blkif-shm: frontend attached (ring order %u, %s ABI, %u "
		 "data pages)", h.ring_order,
		 h.abi == BLKIF_SHM_ABI_X86_32 ? "x86_32" : "x86_64",
		 h.data_pages);
	ring_poll(shm);	/* requests queued before the hello */
}

static void on_accept(struct ev_tag *tag, uint32_t events)
{
	struct blkif_shm *shm = (struct blkif_shm *)tag;

	(void)events;
	for (int fd; (fd = server_accept(shm->srv, shm->fd)) >= 0;) {
		struct shm_pending *p;

		if (shm->npending >= SHM_PENDING_MAX) {
			log_warn("blkif-shm: connection refused (too many "
				 "waiting to send their hello)");
			close(fd);
			continue;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			return;
		}
		p->tag = (struct ev_tag){ .kind = EV_HOOK, .on_event = on_hello };
		p->shm = shm;
		p->fd = fd;
		if (server_epoll_add(shm->srv, fd, EPOLLIN, &p->tag) < 0) {
			close(fd);
			free(p);
			continue;
		}
		p->next = shm->pending;
		shm->pending = p;
		shm->npending++;
	}
}

/* ------------------------------------------------------------ lifecycle */

int blkif_shm_listen(struct server *srv, const char *path,
		     struct blkif_shm **ret)
{
	struct blkif_shm *shm = calloc(1, sizeof(*shm));
	int r;

	if (!shm || !(shm->path = strdup(path))) {
		free(shm);
		return -ENOMEM;
	}
	shm->tag = (struct ev_tag){ .kind = EV_HOOK, .on_event = on_accept };
	shm->srv = srv;
	r = listen_unix(path, &shm->fd);
	if (r == 0) {
		r = server_listener_add(srv, shm->fd, &shm->tag);
		if (r < 0) {
			close(shm->fd);
			unlink(path);
		}
	}
	if (r < 0) {
		free(shm->path);
		free(shm);
		return r;
	}
	server_set_loop_hook(srv, loop_hook, shm);
	*ret = shm;
	return 0;
}

void blkif_shm_close(struct blkif_shm *shm)
{
	if (!shm)
		return;
	server_set_loop_hook(shm->srv, NULL, NULL);
	ring_teardown(shm, "the server is closing");
	free_zombies(shm, true);
	while (shm->pending)
		pending_close(shm->pending, true);
	server_listener_del(shm->srv, shm->fd);
	close(shm->fd);
	unlink(shm->path);
	free(shm->path);
	free(shm);
}
