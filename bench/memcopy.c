/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * memcopy: this machine's memory copy rate for 1 MiB copies, by working
 * set (bench/bench.sh runs it on the servers' CPU).  Every byte a 1 MiB
 * NBD request carries is copied several times (device into the server's
 * buffer, buffer into the socket, socket into the client), and the rate
 * of those copies falls once the bytes in flight no longer fit in the
 * caches: this gives the bench the numbers to say so.
 *
 *   memcopy MIB...   one line per MIB: "MIB<TAB>GB/s", copying 1 MiB at a
 *                    time from MIB MiB of sources into MIB MiB of
 *                    destinations, cycled, for about 0.3 s
 *
 * Exit 0, or 1 with a message (bad argument, no memory).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK		(1UL << 20)
#define MAX_MIB		4096UL
#define RUN_NS		300000000ULL

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL +
	       (unsigned long long)ts.tv_nsec;
}

static int measure(unsigned long mib, double *gbps)
{
	unsigned char *src = aligned_alloc(4096, mib * CHUNK);
	unsigned char *dst = aligned_alloc(4096, mib * CHUNK);
	unsigned long long t0, t, copies = 0;
	int r;

	if (!src || !dst) {
		free(src);
		free(dst);
		return -ENOMEM;
	}
	/* touch every page first: no page faults in the timed part */
	memset(src, 0x5a, mib * CHUNK);
	memset(dst, 0xa5, mib * CHUNK);
	t0 = now_ns();
	do {
		/* destinations in order, sources in a stride, so neither
		 * stream is the other's prefetch */
		unsigned long d = copies % mib, s = (copies * 7) % mib;

		memcpy(dst + d * CHUNK, src + s * CHUNK, CHUNK);
		copies++;
		t = now_ns();
	} while (t - t0 < RUN_NS || copies < 2 * mib);
	*gbps = (double)copies * CHUNK / (double)(t - t0);
	/* the last copy landed (and the compiler cannot drop the copies) */
	r = dst[(copies - 1) % mib * CHUNK] == 0x5a ? 0 : -EIO;
	free(src);
	free(dst);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: memcopy MIB...\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		char *end;
		unsigned long mib;
		double gbps;

		errno = 0;
		mib = strtoul(argv[i], &end, 10);
		if (errno || *end || !mib || mib > MAX_MIB) {
			fprintf(stderr, "memcopy: %s: not a size in MiB (1-%lu)\n",
				argv[i], MAX_MIB);
			return 1;
		}
		int r = measure(mib, &gbps);

		if (r < 0) {
			fprintf(stderr, "memcopy: %lu MiB: %s\n", mib,
				strerror(-r));
			return 1;
		}
		printf("%lu\t%.1f\n", mib, gbps);
	}
	return 0;
}
