/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The import socket: each connection passes one fd with SCM_RIGHTS and is
 * closed; the fd becomes an NBD connection.  Connections wait in the event
 * loop for their message (a client that connects and says nothing never
 * blocks the server), at most IMPORT_PENDING_MAX of them at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "log.h"
#include "server/server.h"
#include "fdpass.h"
#include "import.h"
#include "listen.h"

#define IMPORT_PENDING_MAX 16
/* The text that comes with the fd (xapi's datapath name): read, ignored. */
#define IMPORT_TEXT_MAX 256
/* Room for a few fds, so that extra ones are received and closed rather
 * than lost in a truncated control message. */
#define IMPORT_FDS_MAX FDPASS_MAX

struct import {
	struct ev_tag tag;		/* the listener's; first */
	struct server *srv;
	int fd;
	char *path;
	struct import_conn *pending;
	unsigned int npending;
};

struct import_conn {
	struct ev_tag tag;		/* first */
	struct import *imp;
	int fd;
	struct import_conn *next;
};

static void on_accept(struct ev_tag *tag, uint32_t events);
static void on_message(struct ev_tag *tag, uint32_t events);

int import_listen(struct server *srv, const char *path, struct import **ret)
{
	struct import *imp = calloc(1, sizeof(*imp));
	int r;

	if (!imp || !(imp->path = strdup(path))) {
		free(imp);
		return -ENOMEM;
	}
	imp->tag.kind = EV_HOOK;
	imp->tag.on_event = on_accept;
	imp->srv = srv;
	r = listen_unix(path, &imp->fd);
	if (r == 0) {
		r = server_listener_add(srv, imp->fd, &imp->tag);
		if (r < 0) {
			close(imp->fd);
			unlink(path);
		}
	}
	if (r < 0) {
		free(imp->path);
		free(imp);
		return r;
	}
	*ret = imp;
	return 0;
}

static void conn_close(struct import_conn *ic)
{
	struct import *imp = ic->imp;
	struct import_conn **pp;

	for (pp = &imp->pending; *pp; pp = &(*pp)->next) {
		if (*pp == ic) {
			*pp = ic->next;
			break;
		}
	}
	imp->npending--;
	server_epoll_del(imp->srv, ic->fd);
	close(ic->fd);
	free(ic);
}

void import_close(struct import *imp)
{
	if (!imp)
		return;
	while (imp->pending)
		conn_close(imp->pending);
	server_listener_del(imp->srv, imp->fd);
	close(imp->fd);
	unlink(imp->path);
	free(imp->path);
	free(imp);
}

static void on_accept(struct ev_tag *tag, uint32_t events)
{
	struct import *imp = (struct import *)tag;

	(void)events;
	for (int fd; (fd = server_accept(imp->srv, imp->fd)) >= 0;) {
		struct import_conn *ic;

		if (server_stopping(imp->srv) ||
		    imp->npending >= IMPORT_PENDING_MAX) {
			log_warn("import socket: connection refused (%s)",
				 server_stopping(imp->srv) ? "stopping" :
				 "too many waiting to pass their fd");
			close(fd);
			continue;
		}
		ic = calloc(1, sizeof(*ic));
		if (!ic) {
			close(fd);
			return;
		}
		ic->tag.kind = EV_HOOK;
		ic->tag.on_event = on_message;
		ic->imp = imp;
		ic->fd = fd;
		if (server_epoll_add(imp->srv, fd, EPOLLIN, &ic->tag) < 0) {
			close(fd);
			free(ic);
			continue;
		}
		ic->next = imp->pending;
		imp->pending = ic;
		imp->npending++;
	}
}

/* The passed fd must be a stream socket: NBD runs on nothing else. */
static int check_stream_socket(int fd)
{
	struct stat st;
	int type = 0;
	socklen_t len = sizeof(type);

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type == SOCK_STREAM ? 0 : -EPROTOTYPE;
}

/* One message: the text and its fds.  Exactly one fd is served; any
 * other outcome closes what came and is logged. */
static void on_message(struct ev_tag *tag, uint32_t events)
{
	struct import_conn *ic = (struct import_conn *)tag;
	char text[IMPORT_TEXT_MAX];
	struct server *srv = ic->imp->srv;
	int fds[IMPORT_FDS_MAX];
	unsigned int nfds;
	bool truncated;
	ssize_t n;
	int r;

	(void)events;
	n = fdpass_recv(ic->fd, text, sizeof(text), fds, IMPORT_FDS_MAX,
			&nfds, &truncated);
	if (n == -EAGAIN || n == -EINTR)
		return;
	conn_close(ic);
	if (n < 0) {
		log_warn("import socket: recvmsg: %s", strerror((int)-n));
		goto out;
	}
	if (nfds != 1 || truncated) {
		log_warn("import socket: a client passed %u file descriptors%s "
			 "(exactly one is served): closed", nfds,
			 truncated ? " or more" : "");
		goto out;
	}
	r = check_stream_socket(fds[0]);
	if (r < 0) {
		log_warn("import socket: the passed fd is not a stream socket "
			 "(%s): closed", strerror(-r));
		goto out;
	}
	/* a read-only server's view is read-only on every socket */
	if (fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK) < 0 ||
	    server_add_conn(srv, fds[0], server_readonly(srv)) < 0) {
		log_warn("import socket: cannot serve the passed socket: %m");
		goto out;
	}
	/* the text (xapi's datapath name) is the client's: not logged */
	log_info("import socket: serving NBD on a passed socket");
	return;	/* the connection owns fds[0] now */
out:
	fdpass_close(fds, nfds);
}
