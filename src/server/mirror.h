/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The mirror job (issue 15, storage migration; mirror.c): copies the
 * guest view to a remote NBD export while mirroring every guest write,
 * zero and discard to it synchronously.  The control module starts and
 * cancels it; server.c calls the hooks below from its loop.
 */
#ifndef SERVER_MIRROR_H
#define SERVER_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct server_status;
struct req;
struct mirror_job;

/*
 * Start a job (ctl-proto.h "mirror").  0: started, or the job of that id
 * exists already.  -errno with a sentence for the administrator in why.
 * Connects and negotiates with the remote before it returns (bounded).
 * max_rate: the background copy's limit, bytes per second (0: none).
 */
int mirror_start(struct server *srv, const char *id, const char *remote,
		 const char *state_file, uint64_t max_rate, char *why,
		 size_t why_len);
/* "mirror_cancel": 0 (also for a job over already), -ENOENT. */
int mirror_cancel(struct server *srv, const char *id, const char **why);
/* The job's part of the status (st->mi_state NULL: no job). */
void mirror_get_status(const struct mirror_job *job,
		       struct server_status *st);
void mirror_free(struct mirror_job *job);

/* ---- hooks of the server's loop (server.c); job may be NULL */
/* A guest write that must wait: it overlaps remote I/O in flight or the
 * next chunk of the copy. */
bool mirror_write_blocked(const struct mirror_job *job, const struct req *req);
/* A chunk of the background copy is due (run it at a barrier). */
bool mirror_chunk_wanted(const struct mirror_job *job);
/* Copy one chunk; no data I/O in flight. */
void mirror_chunk_step(struct mirror_job *job);
/* A guest WRITE, WRITE_ZEROES or TRIM starts: send it to the remote too;
 * its reply waits for the remote's. */
void mirror_guest_write(struct mirror_job *job, struct req *req);
void mirror_timers(struct mirror_job *job, uint64_t now_ms);
/* Milliseconds until the next chunk is due by the rate limit (0: due now
 * or no limit, UINT64_MAX: no chunk waits for the clock). */
uint64_t mirror_next_chunk_ms(const struct mirror_job *job, uint64_t now_ms);
/* A clean stop, after the final local flush (local_err: its result):
 * finish the job.  true once the server may exit. */
bool mirror_stop_step(struct mirror_job *job, int local_err);

#endif
