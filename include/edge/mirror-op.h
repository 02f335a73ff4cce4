/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Data.* operations (storage migration): the wire form ["MirrorV1", "<id>"]
 * (tag matched case-insensitively) and the ids the datapath plugin makes,
 * [0-9a-f]{1,CTL_MIRROR_ID_MAX}.
 */
#ifndef EDGE_MIRROR_OP_H
#define EDGE_MIRROR_OP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctl-proto.h"

#define MIRROR_OP_TAG	"MirrorV1"
#define MIRROR_ID_LEN	32	/* the ids this plugin makes */

bool mirror_id_is_valid(const char *id);
/*
 * Parse an operation into id (CTL_MIRROR_ID_MAX + 1 bytes).  0; -ENOTSUP
 * for a well-formed operation of another kind (CopyV1); -EINVAL for
 * anything else.  why gets a sentence either way.
 */
int mirror_op_parse(json_object *op, char *id, size_t id_len, char *why,
		    size_t why_len);
json_object *mirror_op_new(const char *id);

#endif
