/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libFuzzer target: the input is what a client sends on one NBD
 * connection (handshake, then requests).  It goes through a socketpair
 * into the real connection parser, scheduler and io_uring engine of
 * ngdp-server, on a small raw image in /dev/shm (removed at exit).  A thread feeds the input
 * and drains the replies.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server/server.h"

#define IMAGE_SIZE (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int memfd = -1;
static char image_path[64] = "/dev/shm/fuzz-nbd.XXXXXX";

static void remove_image(void)
{
	unlink(image_path);
}

struct feed {
	int fd, server_fd;
	const uint8_t *data;
	size_t size;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	size_t done = 0;
	char buf[65536];
	int pending;

	while (done < f->size) {
		ssize_t w = send(f->fd, f->data + done, f->size - done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN)
			goto drain;
		/* the server is not reading: drain its replies meanwhile */
		if (recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT) == 0)
			return NULL;
		usleep(100);
	}
	/* let the server consume the input before the end of file */
	for (int i = 0; i < 2000; i++) {
		if (ioctl(f->server_fd, FIONREAD, &pending) < 0 || !pending)
			break;
		if (recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT) == 0)
			return NULL;
		usleep(50);
	}
	usleep(200);
drain:
	shutdown(f->fd, SHUT_WR);
	while (recv(f->fd, buf, sizeof(buf), 0) > 0)
		;
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz-nbd", false);
	/* a tmpfs file: image_open wants a real path */
	memfd = mkstemp(image_path);
	if (memfd < 0)
		abort();
	atexit(remove_image);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server_config cfg = {
		.image = image_path,
		.format = "raw",
		.no_direct = true,
		.export_name = "",
		.engine = "uring",	/* io_destroy costs ~35 ms a run */
		.queue_depth = 16,
	};
	struct server srv;
	struct feed f;
	pthread_t th;
	int sv[2];

	if (ftruncate(memfd, 0) < 0 || ftruncate(memfd, IMAGE_SIZE) < 0)
		abort();
	if (server_init(&srv, &cfg) < 0)
		abort();
	server_exit_when_idle(&srv);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	if (server_add_conn(&srv, sv[0], false) < 0)
		abort();
	f.fd = sv[1];
	f.server_fd = sv[0];
	f.data = data;
	f.size = size;
	if (pthread_create(&th, NULL, feeder, &f))
		abort();
	server_run(&srv);
	pthread_join(th, NULL);
	close(sv[1]);
	server_release(&srv);
	return 0;
}
