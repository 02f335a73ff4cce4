/* SPDX-License-Identifier: LGPL-2.1-only */
/* TEMPORARY (lead's stand-in until wip-cbt-server lands). */
#include <errno.h>
#include <string.h>

#include "formats/bitmap.h"
#include "formats/format.h"

bool cbt_bitmap_name_ok(const char *name)
{
	size_t i, n = strlen(CBT_BITMAP_PREFIX);

	if (strncmp(name, CBT_BITMAP_PREFIX, n) || strlen(name) != n + 16)
		return false;
	for (i = n; name[i]; i++)
		if (!strchr("0123456789abcdef", name[i]))
			return false;
	return true;
}

int image_bitmap_adopt(struct image *dst, struct image *src)
{
	char **names = NULL;
	size_t i;
	int r = image_bitmap_list(src, &names);

	if (r == -ENOTSUP)
		return 0;
	for (i = 0; r == 0 && names[i]; i++) {
		struct dirty_bitmap bm;
		bool in_use = false;

		if (strncmp(names[i], CBT_BITMAP_PREFIX,
			    strlen(CBT_BITMAP_PREFIX)))
			continue;
		r = image_bitmap_load(src, names[i], &bm, &in_use);
		if (r < 0)
			break;
		if (bm.virtual_size != dst->virtual_size)
			r = dirty_bitmap_resize(&bm, dst->virtual_size);
		if (r == 0)
			r = image_bitmap_store(dst, names[i], &bm, in_use);
		dirty_bitmap_free(&bm);
	}
	image_bitmap_names_free(names);
	return r;
}
