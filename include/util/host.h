/* SPDX-License-Identifier: LGPL-2.1-only */
/* This host's paths and identity, loaded once from the environment. */
#ifndef HOST_H
#define HOST_H

#include <limits.h>

#include "names.h"

struct host_paths {
	char mount_root[PATH_MAX];	/* XSNG_MOUNT_ROOT, /var/run/sr-mount */
	char run_dir[PATH_MAX];		/* XSNG_RUN_DIR, /var/run/xapi-storage-ng */
	char host_uuid[UUID_STR_LEN];	/* XSNG_HOST_UUID or the inventory */
};
const struct host_paths *host_paths(void);

#endif
