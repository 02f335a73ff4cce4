/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A blkif frontend over ngdp-server's --blkif-shm socket (test helper):
 * sets up the ring and data pages in a sealed memfd and the two eventfds,
 * and drives the ring as Linux blkfront does (req_prod / rsp_event, the
 * notification hold-off of Xen's ring.h).  Grant references are data
 * page indexes.
 *
 * Usage: blkif-front SOCKET MODE [ARGS]
 *   verify [REF]     writes of varied segment layouts (partial sectors,
 *                    INDIRECT, flush and barrier with data), read back and
 *                    compared with a shadow copy; flush; discard reads
 *                    zeros; REF: write the expected disk content there
 *   compare REF      read the whole disk through the ring and compare it
 *                    with the file REF: in whole pages, in random segment
 *                    layouts, and in random batches of 8 reads at once
 *   bench SECS QD [KIB]  reads at queue depth QD over the disk: 4 KiB at
 *                    random, or KIB (a multiple of 4, up to 1024)
 *                    sequentially in whole pages; prints "iops=N lat_us=N"
 *   expect-ro        writes and discards answered BLKIF_RSP_ERROR, reads OK
 *   hold SECS        attach, print "attached", keep the ring SECS seconds
 *   probe            attach and detach
 *   bad-hello FLAW   a hello the server must refuse (exit 3): order,
 *                    no-data, magic, not-memfd, size, unsealed, blocking,
 *                    pipe, two-fds
 *   garbage          publish an impossible req_prod: the server must drop
 *                    the ring (our socket closes)
 *   bad-index        grant references out of bounds: BLKIF_RSP_ERROR
 *   abandon          close with requests in flight
 *   abandon-taken    1 MiB reads, close once the backend took them all
 *                    (its req_event passed our req_prod): exit 0 then
 *   fill             more bytes in flight than the backend's cap
 * Environment: BLKIF_FRONT_ABI=x86_32 (default x86_64),
 * BLKIF_FRONT_ORDER (ring page order, default 2), BLKIF_FRONT_SEED.
 * Exit: 0 pass, 1 failure, 2 usage, 3 the server refused the frontend.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blkif-proto.h"
#include "blkif-shm.h"

#define PAGE BLKIF_PAGE_SIZE
#define SECT BLKIF_SECTOR_SIZE
#define MAX_SEGS 256		/* per request (our INDIRECT requests) */
#define IND_PAGES 1		/* 256 segments fit one indirect page */
#define TIMEOUT_MS 30000

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("blkif-front: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* xorshift64*: the same sequence for the same seed */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct fseg {
	uint32_t gref;
	uint8_t first, last;
};

struct freq {
	bool busy, done;
	uint8_t op;		/* BLKIF_OP_* (READ/WRITE for INDIRECT too) */
	bool indirect;
	uint64_t sector, nr_sectors;	/* nr_sectors: DISCARD */
	unsigned int nsegs;
	struct fseg segs[MAX_SEGS];
	uint32_t ind_gref;	/* override for tests, else the slot's */
	int16_t status;
	uint64_t t0;
};

struct front {
	int sock, kick, notify;
	uint8_t *mem;
	size_t ring_bytes;
	uint32_t data_pages;
	bool x32;
	uint32_t nr_ents, entry_size;
	uint32_t req_prod_pvt, rsp_cons;
	struct blkif_shm_reply info;
	uint64_t size;		/* bytes */
	unsigned int nslots, pages_per_slot;
	struct freq *slots;
	unsigned int in_flight;
	uint64_t notifies;
};

static volatile uint32_t *hdr(struct front *f, unsigned int i)
{
	return (volatile uint32_t *)(void *)(f->mem + 4 * i);
}
#define REQ_PROD 0
#define REQ_EVENT 1
#define RSP_PROD 2
#define RSP_EVENT 3

static uint8_t *page(struct front *f, uint32_t gref)
{
	if (gref >= f->data_pages)
		die("internal: gref %u out of our pages", gref);
	return f->mem + f->ring_bytes + (size_t)gref * PAGE;
}

/* The first data page of a slot; its indirect page is the last one. */
static uint32_t slot_page(const struct front *f, unsigned int slot)
{
	return slot * f->pages_per_slot;
}

/* bad-hello: what to get wrong (NULL: nothing) */
static const char *flaw;

static bool flawed(const char *what)
{
	return flaw && !strcmp(flaw, what);
}

static void front_open(struct front *f, const char *path, unsigned int order,
		       unsigned int nslots, unsigned int pages_per_slot)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct blkif_shm_hello h = {
		.magic = BLKIF_SHM_MAGIC, .version = BLKIF_SHM_VERSION,
		.ring_order = (uint8_t)order,
	};
	const char *abi = getenv("BLKIF_FRONT_ABI");
	union {
		char buf[CMSG_SPACE(sizeof(int) * BLKIF_SHM_NFDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	size_t bytes;
	int fds[BLKIF_SHM_NFDS], n;

	memset(f, 0, sizeof(*f));
	f->x32 = abi && !strcmp(abi, "x86_32");
	f->entry_size = f->x32 ? BLKIF_X86_32_ENTRY_SIZE :
				 BLKIF_X86_64_ENTRY_SIZE;
	f->ring_bytes = (size_t)PAGE << order;
	f->nr_ents = (uint32_t)((f->ring_bytes - BLKIF_RING_HEADER_SIZE) /
				f->entry_size);
	while (f->nr_ents & (f->nr_ents - 1))
		f->nr_ents &= f->nr_ents - 1;
	f->nslots = nslots;
	f->pages_per_slot = pages_per_slot;
	f->data_pages = nslots * pages_per_slot;
	h.abi = f->x32 ? BLKIF_SHM_ABI_X86_32 : BLKIF_SHM_ABI_X86_64;
	h.data_pages = f->data_pages;
	f->slots = calloc(nslots, sizeof(*f->slots));
	if (!f->slots)
		die("out of memory");

	bytes = f->ring_bytes + (size_t)f->data_pages * PAGE;
	if (flawed("order"))
		h.ring_order = BLKIF_MAX_RING_PAGE_ORDER + 1;
	if (flawed("no-data"))
		h.data_pages = 0;
	if (flawed("magic"))
		h.magic ^= 1;
	if (flawed("not-memfd"))	/* a file on the disk's filesystem */
		fds[0] = open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	else
		fds[0] = memfd_create("blkif-front",
				      MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fds[0] < 0 ||
	    ftruncate(fds[0], (off_t)(bytes + (flawed("size") ? PAGE : 0))) < 0 ||
	    (!flawed("unsealed") && !flawed("not-memfd") &&
	     fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0))
		die("memfd: %m");
	f->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
		      0);
	if (f->mem == MAP_FAILED)
		die("mmap: %m");
	/* SHARED_RING_INIT */
	*hdr(f, REQ_PROD) = 0;
	*hdr(f, RSP_PROD) = 0;
	*hdr(f, REQ_EVENT) = 1;
	*hdr(f, RSP_EVENT) = 1;
	f->kick = fds[1] = eventfd(0, (flawed("blocking") ? 0 : EFD_NONBLOCK) |
				     EFD_CLOEXEC);
	f->notify = fds[2] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fds[1] < 0 || fds[2] < 0)
		die("eventfd: %m");
	if (flawed("pipe")) {	/* a pipe where the kick eventfd goes */
		int p[2];

		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
			die("pipe: %m");
		fds[1] = p[0];
	}

	f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->sock < 0 || strlen(path) >= sizeof(sa.sun_path))
		die("socket: %m");
	strcpy(sa.sun_path, path);
	if (connect(f->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s: %m", path);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	if (flawed("two-fds")) {
		cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
		msg.msg_controllen = CMSG_SPACE(2 * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, 2 * sizeof(int));
	} else {
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	}
	if (sendmsg(f->sock, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		die("sendmsg: %m");
	close(fds[0]);
	n = (int)recv(f->sock, &f->info, sizeof(f->info), MSG_WAITALL);
	if (n != (int)sizeof(f->info) ||
	    f->info.magic != BLKIF_SHM_REPLY_MAGIC)
		die("no reply from the server (%d bytes)", n);
	if (f->info.status) {
		fprintf(stderr, "blkif-front: refused: %s\n",
			strerror(-f->info.status));
		exit(3);
	}
	f->size = f->info.sectors * SECT;
}

/* Write one request into the ring at req_prod_pvt (not published yet). */
static void put_request(struct front *f, unsigned int id)
{
	struct freq *r = &f->slots[id];
	union {
		uint8_t b[BLKIF_X86_64_ENTRY_SIZE];
		struct blkif_x86_64_request_rw rw;
		struct blkif_x86_64_request_discard d;
		struct blkif_x86_64_request_indirect ind;
	} w;
	uint8_t *slot = f->mem + BLKIF_RING_HEADER_SIZE +
			(size_t)(f->req_prod_pvt & (f->nr_ents - 1)) *
			f->entry_size;

	memset(&w, 0, sizeof(w));
	if (r->op == BLKIF_OP_DISCARD) {
		w.d.operation = BLKIF_OP_DISCARD;
		w.d.id = id;
		w.d.sector_number = r->sector;
		w.d.nr_sectors = r->nr_sectors;
	} else if (r->indirect) {
		struct blkif_wire_segment *ws;
		uint32_t ig = r->ind_gref ? r->ind_gref :
			      slot_page(f, id) + f->pages_per_slot - 1;

		w.ind.operation = BLKIF_OP_INDIRECT;
		w.ind.indirect_op = r->op;
		w.ind.nr_segments = (uint16_t)r->nsegs;
		w.ind.id = id;
		w.ind.sector_number = r->sector;
		w.ind.indirect_grefs[0] = ig;
		if (ig < f->data_pages) {
			ws = (struct blkif_wire_segment *)(void *)page(f, ig);
			for (unsigned int i = 0; i < r->nsegs; i++)
				ws[i] = (struct blkif_wire_segment){
					.gref = r->segs[i].gref,
					.first_sect = r->segs[i].first,
					.last_sect = r->segs[i].last,
				};
		}
	} else {
		w.rw.operation = r->op;
		w.rw.nr_segments = (uint8_t)r->nsegs;
		w.rw.id = id;
		w.rw.sector_number = r->sector;
		for (unsigned int i = 0; i < r->nsegs; i++)
			w.rw.seg[i] = (struct blkif_wire_segment){
				.gref = r->segs[i].gref,
				.first_sect = r->segs[i].first,
				.last_sect = r->segs[i].last,
			};
	}
	if (f->x32) {
		/* the x86_32 layout: the x86_64 one without its padding word */
		memcpy(slot, w.b, 4);
		memcpy(slot + 4, w.b + 8, BLKIF_X86_32_ENTRY_SIZE - 4);
	} else {
		memcpy(slot, w.b, BLKIF_X86_64_ENTRY_SIZE);
	}
	f->req_prod_pvt++;
	r->busy = true;
	r->done = false;
	r->t0 = now_ns();
	f->in_flight++;
}

static void kick(struct front *f)
{
	uint64_t one = 1;

	if (write(f->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		die("kick: %m");
}

/* RING_PUSH_REQUESTS_AND_CHECK_NOTIFY */
static void push(struct front *f)
{
	uint32_t old = *hdr(f, REQ_PROD), new = f->req_prod_pvt;

	__atomic_store_n((uint32_t *)hdr(f, REQ_PROD), new, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((uint32_t)(new - *hdr(f, REQ_EVENT)) < (uint32_t)(new - old)) {
		f->notifies++;
		kick(f);
	}
}

static void queue(struct front *f, unsigned int id)
{
	if (f->req_prod_pvt - f->rsp_cons >= f->nr_ents)
		die("internal: ring full");
	put_request(f, id);
	push(f);
}

/* Take the responses published; then RING_FINAL_CHECK_FOR_RESPONSES. */
static unsigned int reap(struct front *f)
{
	unsigned int n = 0;

	for (;;) {
		uint32_t rp = __atomic_load_n((uint32_t *)hdr(f, RSP_PROD),
					      __ATOMIC_ACQUIRE);

		if (rp - f->rsp_cons > f->req_prod_pvt - f->rsp_cons)
			die("the backend published an impossible rsp_prod");
		while (f->rsp_cons != rp) {
			const uint8_t *s = f->mem + BLKIF_RING_HEADER_SIZE +
				(size_t)(f->rsp_cons & (f->nr_ents - 1)) *
				f->entry_size;
			uint64_t id;
			uint8_t op;
			int16_t st;
			struct freq *r;

			memcpy(&id, s, 8);
			op = s[8];
			memcpy(&st, s + 10, 2);
			if (id >= f->nslots || !f->slots[id].busy)
				die("response for an unknown id %llu",
				    (unsigned long long)id);
			r = &f->slots[id];
			if (op != r->op)
				die("response op %u for a request of op %u",
				    op, r->op);
			r->status = st;
			r->busy = false;
			r->done = true;
			f->in_flight--;
			f->rsp_cons++;
			n++;
		}
		__atomic_store_n((uint32_t *)hdr(f, RSP_EVENT), f->rsp_cons + 1,
				 __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n((uint32_t *)hdr(f, RSP_PROD),
				    __ATOMIC_ACQUIRE) == f->rsp_cons)
			return n;
	}
}

/* Wait for at least one response (die after TIMEOUT_MS). */
static unsigned int wait_some(struct front *f)
{
	uint64_t deadline = now_ns() + (uint64_t)TIMEOUT_MS * 1000000;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = f->notify, .events = POLLIN },
			{ .fd = f->sock, .events = POLLIN },
		};
		unsigned int n = reap(f);
		uint64_t v;

		if (n)
			return n;
		if (now_ns() > deadline)
			die("no response in %d ms (%u in flight)", TIMEOUT_MS,
			    f->in_flight);
		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			die("poll: %m");
		if (p[1].revents)
			die("the server closed the ring's socket");
		if (read(f->notify, &v, sizeof(v)) < 0 && errno != EAGAIN)
			die("notify: %m");
	}
}

static void wait_all(struct front *f)
{
	while (f->in_flight)
		wait_some(f);
}

/* ------------------------------------------------------------ layouts */

/* make_segs fills whole pages from their first sector (compare mode) */
static bool whole_pages;

/* Random segments covering `sectors` (1..8*MAX_SEGS) for slot id. */
static unsigned int make_segs(struct front *f, unsigned int id,
			      unsigned int sectors, unsigned int max_segs)
{
	struct freq *r = &f->slots[id];
	unsigned int n = 0;

	while (sectors) {
		unsigned int left_segs = max_segs - n, first, cnt;

		if (left_segs == 0)
			die("internal: too few segments");
		/* as few sectors as possible per segment, so that the rest
		 * still fits: at least ceil(sectors / left_segs) */
		cnt = (sectors + left_segs - 1) / left_segs;
		if (whole_pages)
			cnt = 8;
		else if (cnt < 8)
			cnt += (unsigned int)rnd_below(9 - cnt);
		if (cnt > sectors)
			cnt = sectors;
		first = whole_pages ? 0 : (unsigned int)rnd_below(9 - cnt);
		r->segs[n] = (struct fseg){
			.gref = slot_page(f, id) + n,
			.first = (uint8_t)first,
			.last = (uint8_t)(first + cnt - 1),
		};
		sectors -= cnt;
		n++;
	}
	r->nsegs = n;
	return n;
}

/* Copy between a request's segments and a linear buffer. */
static void segs_copy(struct front *f, unsigned int id, uint8_t *buf,
		      bool to_pages)
{
	struct freq *r = &f->slots[id];

	for (unsigned int i = 0; i < r->nsegs; i++) {
		uint8_t *p = page(f, r->segs[i].gref) + r->segs[i].first * SECT;
		size_t len = (size_t)(r->segs[i].last - r->segs[i].first + 1) *
			     SECT;

		if (to_pages)
			memcpy(p, buf, len);
		else
			memcpy(buf, p, len);
		buf += len;
	}
}

/* Sectors a request may carry: direct up to 11 pages, else indirect. */
static void set_rw(struct front *f, unsigned int id, uint8_t op,
		   uint64_t sector, unsigned int sectors, bool indirect)
{
	struct freq *r = &f->slots[id];
	unsigned int max = indirect ? f->pages_per_slot - IND_PAGES :
				      BLKIF_MAX_SEGMENTS_PER_REQUEST;

	r->op = op;
	r->indirect = indirect;
	r->sector = sector;
	r->ind_gref = 0;
	make_segs(f, id, sectors, max);
}

/* ------------------------------------------------------------ modes */

static uint8_t *shadow;
/* global: what it points to stays reachable at exit (LeakSanitizer) */
static struct front the_front;

static void read_check(struct front *f, unsigned int id, const char *what)
{
	struct freq *r = &f->slots[id];
	size_t len = 0;
	uint8_t *buf;

	if (r->status != BLKIF_RSP_OKAY)
		die("%s: read of sector %llu failed (%d)", what,
		    (unsigned long long)r->sector, r->status);
	for (unsigned int i = 0; i < r->nsegs; i++)
		len += (size_t)(r->segs[i].last - r->segs[i].first + 1) * SECT;
	buf = malloc(len);
	if (!buf)
		die("out of memory");
	segs_copy(f, id, buf, false);
	if (memcmp(buf, shadow + r->sector * SECT, len)) {
		for (size_t i = 0; i < len; i++)
			if (buf[i] != shadow[r->sector * SECT + i])
				die("%s: byte %llu reads %u, expected %u", what,
				    (unsigned long long)(r->sector * SECT + i),
				    buf[i], shadow[r->sector * SECT + i]);
	}
	free(buf);
}

/* Read [sector, +sectors) in requests of at most 2048 sectors, compare. */
static void read_range(struct front *f, uint64_t sector, uint64_t sectors,
		       bool compare, const char *what)
{
	unsigned int per = (f->pages_per_slot - IND_PAGES) * 8;

	while (sectors) {
		unsigned int n = sectors < per ? (unsigned int)sectors : per;

		set_rw(f, 0, BLKIF_OP_READ, sector, n,
		       f->info.max_indirect_segments > 0 && n > 88);
		queue(f, 0);
		wait_all(f);
		if (compare) {
			read_check(f, 0, what);
		} else {
			if (f->slots[0].status)
				die("%s: read failed", what);
			segs_copy(f, 0, shadow + sector * SECT, false);
		}
		sector += n;
		sectors -= n;
	}
}

static int mode_verify(struct front *f, const char *ref)
{
	uint64_t total = f->size / SECT;
	unsigned int batch = f->nslots < 8 ? f->nslots : 8;
	uint64_t region = total / batch;
	uint8_t *tmp = malloc((size_t)MAX_SEGS * PAGE);

	shadow = malloc(f->size);
	if (!shadow || !tmp || f->size < (1 << 20))
		die("out of memory or disk too small");
	if (f->info.max_indirect_segments < MAX_SEGS)
		die("the backend offers %u indirect segments, we need %u",
		    f->info.max_indirect_segments, MAX_SEGS);
	/* what the disk holds now is the reference */
	read_range(f, 0, total, false, "initial read");

	for (int round = 0; round < 60; round++) {
		/* a batch of writes in flight at once, disjoint ranges */
		for (unsigned int id = 0; id < batch; id++) {
			bool ind = rnd() & 1;
			unsigned int max = ind ? MAX_SEGS * 8 :
					 BLKIF_MAX_SEGMENTS_PER_REQUEST * 8;
			unsigned int n = 1 + (unsigned int)rnd_below(max);
			uint64_t sector;
			uint8_t op;
			size_t len = (size_t)n * SECT;

			if (n > region)
				n = (unsigned int)region;
			sector = id * region + rnd_below(region - n + 1);
			switch (rnd_below(6)) {
			case 0: op = BLKIF_OP_FLUSH_DISKCACHE; ind = false; break;
			case 1: op = BLKIF_OP_WRITE_BARRIER; ind = false; break;
			default: op = BLKIF_OP_WRITE; break;
			}
			if (!ind && n > BLKIF_MAX_SEGMENTS_PER_REQUEST * 8)
				n = BLKIF_MAX_SEGMENTS_PER_REQUEST * 8;
			len = (size_t)n * SECT;
			set_rw(f, id, op, sector, n, ind);
			for (size_t i = 0; i < len; i++)
				tmp[i] = (uint8_t)(rnd() >> 56);
			segs_copy(f, id, tmp, true);
			memcpy(shadow + sector * SECT, tmp, len);
			put_request(f, id);
		}
		push(f);
		wait_all(f);
		for (unsigned int id = 0; id < batch; id++)
			if (f->slots[id].status != BLKIF_RSP_OKAY)
				die("round %d: write %u (op %u) failed: %d",
				    round, id, f->slots[id].op,
				    f->slots[id].status);
		/* read back with other layouts, some in flight together */
		for (unsigned int id = 0; id < batch; id++) {
			unsigned int n = 1 + (unsigned int)rnd_below(
					(f->pages_per_slot - IND_PAGES) * 8);

			if (n > region)
				n = (unsigned int)region;
			set_rw(f, id, BLKIF_OP_READ,
			       id * region + rnd_below(region - n + 1), n,
			       n > 88 || (rnd() & 1));
			put_request(f, id);
		}
		push(f);
		wait_all(f);
		for (unsigned int id = 0; id < batch; id++)
			read_check(f, id, "read back");
	}
	/* a flush without data */
	f->slots[0] = (struct freq){ .op = BLKIF_OP_FLUSH_DISKCACHE };
	queue(f, 0);
	wait_all(f);
	if (f->slots[0].status)
		die("flush failed: %d", f->slots[0].status);
	read_range(f, 0, total, true, "full read back");

	/* discard 1 MiB (aligned for any cluster size up to it): zeros */
	if (f->info.features & BLKIF_SHM_F_DISCARD) {
		uint64_t s = (total / 2) & ~(uint64_t)2047;

		f->slots[0] = (struct freq){ .op = BLKIF_OP_DISCARD,
					     .sector = s, .nr_sectors = 2048 };
		queue(f, 0);
		wait_all(f);
		if (f->slots[0].status)
			die("discard failed: %d", f->slots[0].status);
		memset(shadow + s * SECT, 0, 2048 * SECT);
		read_range(f, s, 2048, true, "read after discard");
	}
	read_range(f, 0, total, true, "final read back");
	if (ref) {
		FILE *fp = fopen(ref, "w");

		if (!fp || fwrite(shadow, 1, f->size, fp) != f->size ||
		    fclose(fp))
			die("cannot write %s: %m", ref);
	}
	free(tmp);
	printf("verify: ok (%llu notifications sent)\n",
	       (unsigned long long)f->notifies);
	return 0;
}

static int mode_compare(struct front *f, const char *ref)
{
	uint64_t total = f->size / SECT;
	unsigned int per = (f->pages_per_slot - IND_PAGES) * 8;
	FILE *fp = fopen(ref, "r");

	shadow = malloc(f->size);
	if (!shadow || !fp)
		die("cannot read %s: %m", ref);
	if (fread(shadow, 1, f->size, fp) != f->size || fgetc(fp) != EOF)
		die("%s does not hold exactly the disk's %llu bytes", ref,
		    (unsigned long long)f->size);
	fclose(fp);
	whole_pages = true;
	read_range(f, 0, total, true, "whole pages");
	whole_pages = false;
	read_range(f, 0, total, true, "random layouts");
	for (int round = 0; round < 64; round++) {
		for (unsigned int id = 0; id < f->nslots; id++) {
			unsigned int n = 1 + (unsigned int)rnd_below(per);

			if (n > total)
				n = (unsigned int)total;
			set_rw(f, id, BLKIF_OP_READ, rnd_below(total - n + 1),
			       n, n > 88 || (rnd() & 1));
			put_request(f, id);
		}
		push(f);
		wait_all(f);
		for (unsigned int id = 0; id < f->nslots; id++)
			read_check(f, id, "batch");
	}
	printf("compare: the disk reads as %s\n", ref);
	return 0;
}

/* The next bench read of slot id: 4 KiB at random, or sequential. */
static void bench_next(struct front *f, unsigned int id, unsigned int kib,
		       uint64_t *seq)
{
	uint64_t pages = f->size / PAGE, sectors = (uint64_t)kib * 2;

	if (kib == 4) {
		f->slots[id] = (struct freq){
			.op = BLKIF_OP_READ, .nsegs = 1,
			.sector = rnd_below(pages) * 8,
			.segs[0] = { .gref = slot_page(f, id), .last = 7 },
		};
	} else {
		if (*seq + sectors > f->size / SECT)
			*seq = 0;
		set_rw(f, id, BLKIF_OP_READ, *seq, (unsigned int)sectors,
		       sectors > BLKIF_MAX_SEGMENTS_PER_REQUEST * 8);
		*seq += sectors;
	}
	put_request(f, id);
}

static int mode_bench(struct front *f, double secs, unsigned int qd,
		      unsigned int kib)
{
	uint64_t pages = f->size / PAGE, end, done = 0, lat = 0, seq = 0;

	if (pages < kib / 4)
		die("disk too small");
	whole_pages = true;
	end = now_ns() + (uint64_t)(secs * 1e9);
	for (unsigned int id = 0; id < qd; id++)
		bench_next(f, id, kib, &seq);
	push(f);
	while (f->in_flight) {
		uint64_t t;

		wait_some(f);
		t = now_ns();
		for (unsigned int id = 0; id < qd; id++) {
			struct freq *r = &f->slots[id];

			if (!r->done)
				continue;
			r->done = false;
			if (r->status)
				die("read failed: %d", r->status);
			done++;
			lat += t - r->t0;
			if (t < end)
				bench_next(f, id, kib, &seq);
		}
		push(f);
	}
	printf("iops=%llu lat_us=%llu\n",
	       (unsigned long long)(done / secs),
	       (unsigned long long)(done ? lat / done / 1000 : 0));
	return 0;
}

static int mode_expect_ro(struct front *f)
{
	set_rw(f, 0, BLKIF_OP_WRITE, 0, 8, false);
	queue(f, 0);
	wait_all(f);
	if (f->slots[0].status != BLKIF_RSP_ERROR)
		die("a write on a read-only disk answered %d",
		    f->slots[0].status);
	f->slots[0] = (struct freq){ .op = BLKIF_OP_DISCARD, .nr_sectors = 8 };
	queue(f, 0);
	wait_all(f);
	if (f->slots[0].status != BLKIF_RSP_ERROR)
		die("a discard on a read-only disk answered %d",
		    f->slots[0].status);
	set_rw(f, 0, BLKIF_OP_READ, 0, 8, false);
	queue(f, 0);
	wait_all(f);
	if (f->slots[0].status != BLKIF_RSP_OKAY)
		die("a read on a read-only disk failed: %d",
		    f->slots[0].status);
	printf("expect-ro: ok\n");
	return 0;
}

static int mode_hold(struct front *f, double secs)
{
	printf("attached\n");
	fflush(stdout);
	usleep((useconds_t)(secs * 1e6));
	(void)f;
	return 0;
}

/* The server must close our socket (ring torn down) within the timeout. */
static int wait_closed(struct front *f)
{
	struct pollfd p = { .fd = f->sock, .events = POLLIN };
	char c;

	if (poll(&p, 1, TIMEOUT_MS) <= 0 || recv(f->sock, &c, 1, 0) != 0)
		die("the server kept the ring");
	return 0;
}

static int mode_garbage(struct front *f)
{
	/* more requests than the ring holds: impossible */
	__atomic_store_n((uint32_t *)hdr(f, REQ_PROD), f->nr_ents + 7,
			 __ATOMIC_RELEASE);
	kick(f);
	wait_closed(f);
	printf("garbage: the server dropped the ring\n");
	return 0;
}

static int mode_bad_index(struct front *f)
{
	/* a segment beyond the data pages */
	set_rw(f, 0, BLKIF_OP_READ, 0, 8, false);
	f->slots[0].segs[0].gref = f->data_pages + 100;
	set_rw(f, 1, BLKIF_OP_WRITE, 8, 16, false);
	f->slots[1].segs[f->slots[1].nsegs - 1].gref = 0xffffffffU;
	/* an indirect page beyond them */
	set_rw(f, 2, BLKIF_OP_READ, 0, 200, true);
	f->slots[2].ind_gref = f->data_pages;
	put_request(f, 0);
	put_request(f, 1);
	put_request(f, 2);
	push(f);
	wait_all(f);
	for (unsigned int id = 0; id < 3; id++)
		if (f->slots[id].status != BLKIF_RSP_ERROR)
			die("request %u with a bad grant reference answered %d",
			    id, f->slots[id].status);
	/* and the ring still works */
	set_rw(f, 0, BLKIF_OP_READ, 0, 64, true);
	queue(f, 0);
	wait_all(f);
	if (f->slots[0].status)
		die("a good read after bad ones failed: %d",
		    f->slots[0].status);
	printf("bad-index: ok\n");
	return 0;
}

static int mode_abandon(struct front *f)
{
	uint64_t total = f->size / SECT;

	for (unsigned int id = 0; id < f->nslots && id < f->nr_ents; id++) {
		set_rw(f, id, id & 1 ? BLKIF_OP_WRITE : BLKIF_OP_READ,
		       rnd_below(total / 2048) * 2048, 2048, true);
		put_request(f, id);
	}
	push(f);
	printf("abandon: %u requests in flight, leaving\n", f->in_flight);
	return 0;	/* exit closes everything */
}

static int mode_abandon_taken(struct front *f)
{
	uint64_t total = f->size / SECT;
	unsigned int n = 0;

	for (unsigned int id = 0; id < f->nslots && id < f->nr_ents; id++) {
		set_rw(f, id, BLKIF_OP_READ, rnd_below(total / 2048) * 2048,
		       2048, true);
		put_request(f, id);
		n++;
	}
	push(f);
	/* the backend's final check sets req_event one past what it took */
	for (int i = 0; i < 500; i++) {
		if (*hdr(f, REQ_EVENT) == f->req_prod_pvt + 1) {
			printf("abandon-taken: %u reads taken, leaving\n", n);
			return 0;
		}
		usleep(10000);
	}
	die("the backend did not take the %u reads in 5 s", n);
	return 1;
}

static int mode_fill(struct front *f)
{
	uint64_t total = f->size / SECT;
	unsigned int n = f->nslots;

	/* every request reads 1 MiB into the same pages (slot 0's) */
	for (unsigned int id = 0; id < n; id++) {
		struct freq *r = &f->slots[id];

		set_rw(f, 0, BLKIF_OP_READ, 0, 2048, true);
		if (id) {
			*r = f->slots[0];
		}
		r->sector = rnd_below(total / 2048) * 2048;
		r->ind_gref = slot_page(f, 0) + f->pages_per_slot - 1;
		put_request(f, id);
	}
	push(f);
	wait_all(f);
	for (unsigned int id = 0; id < n; id++)
		if (f->slots[id].status)
			die("read %u failed: %d", id, f->slots[id].status);
	printf("fill: %u MiB were in flight, all answered\n", n);
	return 0;
}

int main(int argc, char *argv[])
{
	const char *env_order = getenv("BLKIF_FRONT_ORDER");
	const char *seed = getenv("BLKIF_FRONT_SEED");
	unsigned int order = env_order ? (unsigned int)atoi(env_order) : 2;
	const char *mode;

	if (argc < 3)
		goto usage;
	mode = argv[2];
	if (seed)
		rng_state ^= strtoull(seed, NULL, 0) * 0x100000001b3ULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "verify") && argc <= 4) {
		front_open(&the_front, argv[1], order, 8, MAX_SEGS + IND_PAGES);
		return mode_verify(&the_front, argc == 4 ? argv[3] : NULL);
	}
	if (!strcmp(mode, "compare") && argc == 4) {
		front_open(&the_front, argv[1], order, 8, MAX_SEGS + IND_PAGES);
		return mode_compare(&the_front, argv[3]);
	}
	if (!strcmp(mode, "bench") && (argc == 5 || argc == 6)) {
		unsigned int qd = (unsigned int)atoi(argv[4]);
		unsigned int kib = argc == 6 ? (unsigned int)atoi(argv[5]) : 4;
		double secs = atof(argv[3]);

		/* the smallest ring that holds qd requests */
		while (order < BLKIF_MAX_RING_PAGE_ORDER &&
		       ((PAGE << order) - 64) / 112 < qd)
			order++;
		/* 4 KiB random, or sequential in whole pages up to 1 MiB */
		if (qd < 1 || secs <= 0 || kib < 4 || kib % 4 ||
		    kib > MAX_SEGS * 4)
			goto usage;
		front_open(&the_front, argv[1], order, qd,
			   kib == 4 ? 1 : kib / 4 + IND_PAGES);
		if (qd > the_front.nr_ents)
			die("queue depth %u above the ring's %u", qd,
			    the_front.nr_ents);
		return mode_bench(&the_front, secs, qd, kib);
	}
	if (!strcmp(mode, "expect-ro") && argc == 3) {
		front_open(&the_front, argv[1], order, 1, 2);
		return mode_expect_ro(&the_front);
	}
	if (!strcmp(mode, "hold") && argc == 4) {
		front_open(&the_front, argv[1], order, 1, 2);
		return mode_hold(&the_front, atof(argv[3]));
	}
	if (!strcmp(mode, "probe") && argc == 3) {
		front_open(&the_front, argv[1], order, 1, 2);
		return 0;
	}
	if (!strcmp(mode, "bad-hello") && argc == 4) {
		flaw = argv[3];
		front_open(&the_front, argv[1], order, 1, 2);
		fprintf(stderr, "blkif-front: a hello with '%s' was accepted\n",
			flaw);
		return 1;
	}
	if (!strcmp(mode, "garbage") && argc == 3) {
		front_open(&the_front, argv[1], order, 1, 2);
		return mode_garbage(&the_front);
	}
	if (!strcmp(mode, "bad-index") && argc == 3) {
		front_open(&the_front, argv[1], order, 3, MAX_SEGS + IND_PAGES);
		return mode_bad_index(&the_front);
	}
	if (!strcmp(mode, "abandon") && argc == 3) {
		front_open(&the_front, argv[1], order, 16, MAX_SEGS + IND_PAGES);
		return mode_abandon(&the_front);
	}
	if (!strcmp(mode, "abandon-taken") && argc == 3) {
		front_open(&the_front, argv[1], order, 16, MAX_SEGS + IND_PAGES);
		return mode_abandon_taken(&the_front);
	}
	if (!strcmp(mode, "fill") && argc == 3) {
		/* 160 requests of 1 MiB: more than the 64 MiB cap */
		front_open(&the_front, argv[1], BLKIF_MAX_RING_PAGE_ORDER, 160,
			   MAX_SEGS + IND_PAGES);
		return mode_fill(&the_front);
	}
usage:
	fprintf(stderr, "usage: blkif-front SOCKET verify [REF] | compare REF | "
		"bench SECS QD [KIB] "
		"| expect-ro | hold SECS | probe | bad-hello FLAW | garbage | "
		"bad-index | "
		"abandon | abandon-taken | fill\n");
	return 2;
}
