/* SPDX-License-Identifier: LGPL-2.1-only */
/* The xfs-ng SR type: VM disks as image files on a local XFS filesystem. */
#include "volume-plugin.h"

static const struct volume_plugin xfs_ng = {
	.type = "xfs-ng",
	.fs = FS_XFS,
	.name = "xfs-ng",
	.description = "Local SR storing QCOW2 (default), VHD or raw image "
		       "files on an XFS filesystem, served by the ngdp "
		       "datapath",
};

int main(int argc, char **argv)
{
	return volume_plugin_main(&xfs_ng, argc, argv);
}
