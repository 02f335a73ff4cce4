/* SPDX-License-Identifier: LGPL-2.1-only */
/* SR records as both plugins report them to xapi: with worded errors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "call.h"
#include "sr.h"

int sr_call_load_volume(struct call *c, struct sr *sr, const char *key,
			json_object **ret)
{
	int r = sr_volume_load(sr, key, ret);

	if (r == -ENOENT)
		return call_fail(c, r, "Volume_does_not_exist",
				 "there is no volume %s in SR %s", key,
				 sr->uuid);
	if (r < 0)
		return call_fail(c, r, "SR_corrupt",
				 "the metadata of volume %s cannot be read: %s",
				 key, strerror(-r));
	return 0;
}

void sr_volume_image(const json_object *vol, char *out, size_t len)
{
	enum image_fmt fmt;

	if (image_fmt_parse(rec_str((json_object *)vol, "image-format"),
			    &fmt) < 0)
		fmt = FMT_QCOW2;
	snprintf(out, len, "images/");
	sr_image_filename(rec_str((json_object *)vol, "image"), fmt,
			  out + strlen(out), len - strlen(out));
}
