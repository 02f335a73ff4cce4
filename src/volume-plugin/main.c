/* SPDX-License-Identifier: LGPL-2.1-only */
/* The volume plugin's method table: one binary, one symlink per method. */
#include "vp.h"

/* Keep in step with methods.list: the installed symlinks are the
 * capabilities xapi sees, so list only what is implemented here. */
static const struct method volume_methods[] = {
	{ "Plugin.Query", vp_plugin_query },
	{ "Plugin.diagnostics", vp_plugin_diagnostics },
	{ "Plugin.ls", vp_plugin_ls },
	{ "SR.probe", vp_sr_probe },
	{ "SR.create", vp_sr_create },
	{ "SR.attach", vp_sr_attach },
	{ "SR.detach", vp_sr_detach },
	{ "SR.destroy", vp_sr_destroy },
	{ "SR.stat", vp_sr_stat },
	{ "SR.set_name", vp_sr_set_name },
	{ "SR.set_description", vp_sr_set_description },
	{ "SR.ls", vp_sr_ls },
	{ "Volume.create", vp_volume_create },
	{ "Volume.destroy", vp_volume_destroy },
	{ "Volume.snapshot", vp_volume_snapshot },
	{ "Volume.clone", vp_volume_clone },
	{ "Volume.resize", vp_volume_resize },
	{ "Volume.stat", vp_volume_stat },
	{ "Volume.set_name", vp_volume_set_name },
	{ "Volume.set_description", vp_volume_set_description },
	{ "Volume.set", vp_volume_set },
	{ "Volume.unset", vp_volume_unset },
	{ "Volume.enable_cbt", vp_volume_enable_cbt },
	{ "Volume.disable_cbt", vp_volume_disable_cbt },
	{ "Volume.data_destroy", vp_volume_data_destroy },
	{ "Volume.list_changed_blocks", vp_volume_list_changed_blocks },
};

int volume_plugin_main(const struct volume_plugin *p, int argc, char **argv)
{
	if (vp_coalesce_is_job(argc, argv))
		return vp_coalesce_job(p, argc, argv);
	return call_main(argc, argv, p->type, volume_methods,
			 sizeof(volume_methods) / sizeof(volume_methods[0]), p);
}
