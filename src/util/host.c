/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Where this host keeps things, and which host it is: process
 * configuration that both plugins and the SR model read.  Tests relocate
 * the paths with XSNG_MOUNT_ROOT, XSNG_RUN_DIR and XSNG_HOST_UUID.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fileio.h"
#include "host.h"

static struct host_paths paths;
static bool paths_loaded;

static void load_host_uuid(char out[UUID_STR_LEN])
{
	CLEANUP_FREE char *buf = NULL;
	const char *env = getenv("XSNG_HOST_UUID");
	char *p;

	if (env && uuid_is_valid(env)) {
		snprintf(out, UUID_STR_LEN, "%s", env);
		return;
	}
	/* XCP-ng / XenServer: INSTALLATION_UUID='...' */
	if (read_file_at(AT_FDCWD, "/etc/xensource-inventory", 65536, &buf,
			 NULL) == 0 &&
	    (p = strstr(buf, "INSTALLATION_UUID="))) {
		p += strlen("INSTALLATION_UUID=");
		if (*p == '\'')
			p++;
		if (strlen(p) >= 36) {
			snprintf(out, UUID_STR_LEN, "%.36s", p);
			if (uuid_is_valid(out))
				return;
		}
	}
	free(buf);
	buf = NULL;
	/* elsewhere (tests, plain Debian): the machine id, shaped as a UUID */
	if (read_file_at(AT_FDCWD, "/etc/machine-id", 256, &buf, NULL) == 0 &&
	    strlen(buf) >= 32) {
		snprintf(out, UUID_STR_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", buf,
			 buf + 8, buf + 12, buf + 16, buf + 20);
		if (uuid_is_valid(out))
			return;
	}
	snprintf(out, UUID_STR_LEN, "00000000-0000-0000-0000-000000000000");
}

const struct host_paths *host_paths(void)
{
	const char *v;

	if (paths_loaded)
		return &paths;
	v = getenv("XSNG_MOUNT_ROOT");
	snprintf(paths.mount_root, sizeof(paths.mount_root), "%s",
		 v && v[0] == '/' ? v : "/var/run/sr-mount");
	v = getenv("XSNG_RUN_DIR");
	snprintf(paths.run_dir, sizeof(paths.run_dir), "%s",
		 v && v[0] == '/' ? v : "/var/run/xapi-storage-ng");
	load_host_uuid(paths.host_uuid);
	paths_loaded = true;
	return &paths;
}
