/* SPDX-License-Identifier: LGPL-2.1-only */
/* The ext4-ng SR type: VM disks as image files on a local ext4 filesystem. */
#include "volume-plugin.h"

static const struct volume_plugin ext4_ng = {
	.type = "ext4-ng",
	.fs = FS_EXT4,
	.name = "ext4-ng",
	.description = "Local SR storing QCOW2 (default), VHD or raw image "
		       "files on an ext4 filesystem, served by the ngdp "
		       "datapath",
};

int main(int argc, char **argv)
{
	return volume_plugin_main(&ext4_ng, argc, argv);
}
