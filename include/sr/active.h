/* SPDX-License-Identifier: LGPL-2.1-only */
/* Activation records of volumes served by a datapath server (see sr.h). */
#ifndef ACTIVE_H
#define ACTIVE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sr;

/* A record of another host whose heartbeat is older than this is stale. */
#define ACTIVE_STALE_S 60

/* Field 22 of /proc/PID/stat (start time in clock ticks), or -1. */
int64_t process_starttime(pid_t pid);
bool active_record_is_live(json_object *rec);
int active_load(struct sr *sr, const char *key, json_object **ret);
int active_save(struct sr *sr, const char *key, json_object *rec);
int active_remove(struct sr *sr, const char *key);

#endif
