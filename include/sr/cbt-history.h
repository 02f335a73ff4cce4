/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The changed-block epochs of a volume record (CBT): "cbt_history", the
 * epoch bitmap names since CBT was enabled, oldest first, up to the
 * volume's own point in time.  A snapshot copies it; the volume then
 * appends a new epoch.  See src/volume-plugin/cbt.c.
 */
#ifndef SR_CBT_HISTORY_H
#define SR_CBT_HISTORY_H

#include <stddef.h>
#include <json-c/json.h>

size_t cbt_history_len(json_object *vol);
/* Entry i ("" when it is not a string). */
const char *cbt_history_at(json_object *vol, size_t i);
/* A new array with the same names. */
json_object *cbt_history_copy(json_object *vol);
/*
 * The epochs whose writes lie between volumes a and b, in either order:
 * the entries of the longer history after the shorter one, which must be
 * a non-empty prefix of it.  *ret: a new object, name -> false.  -EINVAL
 * when they share no history (another line, or CBT was disabled and
 * enabled again in between); *later (optional) is a or b, whichever is
 * the later one.
 */
int cbt_epochs_between(json_object *a, json_object *b, json_object **ret,
		       json_object **later);

#endif
