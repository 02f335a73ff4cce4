/* SPDX-License-Identifier: LGPL-2.1-only */
/* Data.* operations: ["MirrorV1", "<id>"] (mirror-op.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mirror-op.h"

bool mirror_id_is_valid(const char *id)
{
	size_t n = strspn(id, "0123456789abcdef");

	return n > 0 && n <= CTL_MIRROR_ID_MAX && id[n] == '\0';
}

int mirror_op_parse(json_object *op, char *id, size_t id_len, char *why,
		    size_t why_len)
{
	json_object *tag, *val;
	const char *t, *v;

	if (!json_object_is_type(op, json_type_array) ||
	    json_object_array_length(op) != 2 ||
	    !json_object_is_type((tag = json_object_array_get_idx(op, 0)),
				 json_type_string)) {
		snprintf(why, why_len, "an operation is [\"MirrorV1\", id]");
		return -EINVAL;
	}
	t = json_object_get_string(tag);
	val = json_object_array_get_idx(op, 1);
	if (strcasecmp(t, MIRROR_OP_TAG)) {
		bool copy = !strcasecmp(t, "CopyV1");

		snprintf(why, why_len, copy ? "CopyV1 operations are not "
			 "implemented (only MirrorV1)" : "unknown operation "
			 "kind '%.40s' (only MirrorV1)", t);
		return copy ? -ENOTSUP : -EINVAL;
	}
	if (!json_object_is_type(val, json_type_string) ||
	    !mirror_id_is_valid((v = json_object_get_string(val))) ||
	    strlen(v) >= id_len) {
		snprintf(why, why_len, "a MirrorV1 operation's id is 1 to %d "
			 "lower-case hex digits", CTL_MIRROR_ID_MAX);
		return -EINVAL;
	}
	snprintf(id, id_len, "%s", v);
	return 0;
}

json_object *mirror_op_new(const char *id)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, json_object_new_string(MIRROR_OP_TAG));
	json_object_array_add(a, json_object_new_string(id));
	return a;
}
