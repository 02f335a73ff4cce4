/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * NBD client connections (conn.c), as the core sees them: one conn_set
 * per server owns every connection, the reply-dirty list and the zombies
 * (dead connections freed after the epoll batch).  Requests go to the
 * core with server_submit() and come back through req->done.
 */
#ifndef SERVER_CONN_H
#define SERVER_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct conn;
struct conn_set;

int conn_set_new(struct server *srv, struct conn_set **ret);
/* Close every connection (requests still in the core are abandoned) and
 * free the set; NULL is a no-op.  Before the core frees its pools. */
void conn_set_free(struct conn_set *cs);
/* Take over the connected socket fd (readonly: a read-only view). */
int conn_new(struct conn_set *cs, int fd, bool readonly);
void conn_on_event(struct conn *c, uint32_t events);
/* Send queued replies, parse input left over, free the zombies: once per
 * loop iteration, after the epoll batch. */
void conn_flush_dirty(struct conn_set *cs);
/* Stop reading new requests (shutdown). */
void conn_stop_reading(struct conn_set *cs);
unsigned int conn_set_count(const struct conn_set *cs);
/* Connections opened ever, requests refused by validation. */
void conn_set_stats(const struct conn_set *cs, uint64_t *opened,
		    uint64_t *errors);

#endif
