/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A volume plugin (SR type) is a descriptor; all SR.* and Volume.* logic is
 * shared (src/volume-plugin/).  plugins/<type>/plugin.c defines one and its
 * main() calls volume_plugin_main().
 */
#ifndef VOLUME_PLUGIN_H
#define VOLUME_PLUGIN_H

enum fs_kind { FS_EXT4, FS_XFS };

struct volume_plugin {
	const char *type;		/* SR type = directory suffix, "ext4-ng" */
	enum fs_kind fs;
	const char *name;		/* short name for Plugin.query */
	const char *description;
};

int volume_plugin_main(const struct volume_plugin *p, int argc, char **argv);

#endif
