/* SPDX-License-Identifier: LGPL-2.1-only */
/* Changed block tracking in the volume records (cbt.c). */
#ifndef VOLUME_CBT_H
#define VOLUME_CBT_H

#include <stdbool.h>
#include <json-c/json.h>

#include "formats/bitmap.h"
#include "sr.h"

bool cbt_enabled(json_object *vol);
/* Volume.data_destroy'ed: a record for its CBT metadata, no data. */
bool vol_data_destroyed(json_object *vol);
/* A fresh epoch bitmap name. */
int cbt_new_epoch(char name[CBT_BITMAP_NAME_MAX]);
/* A snapshot of vol knows vol's epochs so far. */
void cbt_copy_to_snapshot(json_object *vol, json_object *snap);
/* vol tracks into epoch 'name' from now on. */
void cbt_start_epoch(json_object *vol, const char *name);
/* Store an empty epoch bitmap in image id (no server has it open). */
int cbt_create_empty(struct sr *sr, const char *id, enum sr_fmt fmt,
		     const char *name);

#endif
