/* SPDX-License-Identifier: LGPL-2.1-only */
#include <errno.h>
#include <string.h>

#include "cbt-history.h"
#include "json-io.h"

static json_object *history_of(json_object *vol)
{
	json_object *h;

	if (json_object_object_get_ex(vol, "cbt_history", &h) &&
	    json_object_is_type(h, json_type_array))
		return h;
	return NULL;
}

size_t cbt_history_len(json_object *vol)
{
	json_object *h = history_of(vol);

	return h ? json_object_array_length(h) : 0;
}

const char *cbt_history_at(json_object *vol, size_t i)
{
	json_object *h = history_of(vol), *e;

	e = h ? json_object_array_get_idx(h, i) : NULL;
	return e && json_object_is_type(e, json_type_string) ?
		       json_object_get_string(e) : "";
}

json_object *cbt_history_copy(json_object *vol)
{
	json_object *nh = json_new_array();
	size_t i;

	for (i = 0; i < cbt_history_len(vol); i++)
		json_object_array_add(nh, json_new_string(cbt_history_at(vol,
									 i)));
	return nh;
}

int cbt_epochs_between(json_object *a, json_object *b, json_object **ret,
		       json_object **later)
{
	size_t na = cbt_history_len(a), nb = cbt_history_len(b), i;
	json_object *older = na <= nb ? a : b, *newer = na <= nb ? b : a;
	json_object *need;

	*ret = NULL;
	if (cbt_history_len(older) == 0)
		return -EINVAL;
	for (i = 0; i < cbt_history_len(older); i++)
		if (!cbt_history_at(older, i)[0] ||
		    strcmp(cbt_history_at(older, i), cbt_history_at(newer, i)))
			return -EINVAL;
	need = json_new_object();
	for (; i < cbt_history_len(newer); i++) {
		if (!cbt_history_at(newer, i)[0]) {
			json_object_put(need);
			return -EINVAL;
		}
		json_add_bool(need, cbt_history_at(newer, i), false);
	}
	*ret = need;
	if (later)
		*later = newer;
	return 0;
}
