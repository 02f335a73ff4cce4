/* SPDX-License-Identifier: LGPL-2.1-only */
/* The volume plugin's method table: one binary, one symlink per method. */
#include "vp.h"

/* Keep in step with methods.list: the installed symlinks are the
 * capabilities xapi sees, so list only what is implemented here. */
static const struct method volume_methods[] = {
	{ "Plugin.Query", plugin_query },
	{ "Plugin.diagnostics", plugin_diagnostics },
	{ "Plugin.ls", plugin_ls },
	{ "SR.probe", sr_probe },
	{ "SR.create", sr_create },
	{ "SR.attach", sr_attach },
	{ "SR.detach", sr_detach },
	{ "SR.destroy", sr_destroy },
	{ "SR.stat", sr_stat },
	{ "SR.set_name", sr_set_name },
	{ "SR.set_description", sr_set_description },
	{ "SR.ls", sr_ls },
	{ "Volume.create", volume_create },
	{ "Volume.destroy", volume_destroy },
	{ "Volume.snapshot", volume_snapshot },
	{ "Volume.clone", volume_clone },
	{ "Volume.resize", volume_resize },
	{ "Volume.stat", volume_stat },
	{ "Volume.set_name", volume_set_name },
	{ "Volume.set_description", volume_set_description },
	{ "Volume.set", volume_set },
	{ "Volume.unset", volume_unset },
};

int volume_plugin_main(const struct volume_plugin *p, int argc, char **argv)
{
	return call_main(argc, argv, p->type, volume_methods,
			 sizeof(volume_methods) / sizeof(volume_methods[0]), p);
}
