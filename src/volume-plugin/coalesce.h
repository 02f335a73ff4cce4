/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Inside the coalesce job: coalesce.c finds the work, runs the job and
 * merges a child into its parent; coalesce-down.c merges a parent down
 * into its child, offline or live in the volume's datapath server.
 */
#ifndef VOLUME_COALESCE_H
#define VOLUME_COALESCE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "sr.h"

enum co_plan {
	CO_INTO_PARENT,		/* copy C's own data into H, V points at H */
	CO_DOWN_OFFLINE,	/* copy H's own data into C, C skips H */
	CO_DOWN_LIVE,		/* the same, done by V's datapath server */
};

/*
 * A hidden image H and its only child C: the leaf of exactly one volume V
 * (that nothing else references), or "shared": an immutable image that
 * snapshots or child images read (see coalesce.c).
 */
struct candidate {
	char vol[UUID_STR_LEN];		/* V, or a volume reading C */
	char child[UUID_STR_LEN];	/* C: V's image */
	char parent[UUID_STR_LEN];	/* H: C's parent, hidden */
	char grand[UUID_STR_LEN];	/* B: H's parent, "" when none */
	enum sr_fmt cfmt, pfmt, gfmt;
	bool shared;			/* C is not a volume's own leaf */
	bool live;			/* V is served read-write here */
	char control[PATH_MAX];		/* live: its server's control socket */
	enum co_plan plan;
};

/* The state of C's file when the job last looked (it must not change
 * behind the job's back). */
struct snap_of_child {
	struct timespec mtime, ctime;
	off_t size;
	ino_t ino;
};

/* The first candidate, skipping the children in 'skip' and, when
 * only_child is set, any other: 1 found, 0 none, -errno. */
int co_find_candidate(struct sr *sr, json_object *skip,
		      const char *only_child, struct candidate *ret,
		      bool *garbage);
int co_stat_child(struct sr *sr, const struct candidate *cd,
		  struct snap_of_child *s);
bool co_same_child(const struct snap_of_child *a,
		   const struct snap_of_child *b);
/* Is V not served by anybody (no activation, no reset-on-boot overlay)? */
int co_volume_idle(struct sr *sr, const char *key);

/*
 * Merge H down into C (coalesce-down.c).  The SR is not locked on entry;
 * snap is C's state under the exclusive lock that chose the candidate.
 * 1: merged and committed; 0: abandoned (the volume changed role, was
 * activated or written meanwhile), retried by a later job; -errno.
 */
int co_down_offline(const char *handle, const char *type,
		    const struct candidate *cd,
		    const struct snap_of_child *snap, uint64_t *copied);
int co_down_live(const char *handle, const char *type,
		 const struct candidate *cd, uint64_t *copied);

/* Does C's header already skip H (a merge down killed before its record
 * was written)?  1 yes, 0 no (it names H), -errno. */
int co_child_switched(struct sr *sr, const struct candidate *cd);

/* Bytes an image holds itself (not its backing files), for the plan. */
int co_own_bytes(struct sr *sr, const char *id, enum sr_fmt fmt,
		 uint64_t *ret);

#endif
