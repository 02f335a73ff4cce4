/* SPDX-License-Identifier: LGPL-2.1-only */
/* The ngdp datapath plugin's method table (one binary, symlinked per method). */
#include "dp.h"

/* Keep in step with methods.list (the installed files). */
static const struct method datapath_methods[] = {
	{ "Plugin.Query", dp_query },
	{ "Datapath.open", dp_open },
	{ "Datapath.attach", dp_attach },
	{ "Datapath.activate", dp_activate },
	{ "Datapath.activate_readonly", dp_activate_readonly },
	{ "Datapath.import_activate", dp_import_activate },
	{ "Datapath.deactivate", dp_deactivate },
	{ "Datapath.detach", dp_detach },
	{ "Datapath.close", dp_close },
	{ "Data.mirror", data_mirror },
	{ "Data.stat", data_stat },
	{ "Data.cancel", data_cancel },
	{ "Data.destroy", data_destroy },
	{ "Data.ls", data_ls },
};

int main(int argc, char **argv)
{
	return call_main(argc, argv, "ngdp", datapath_methods,
			 sizeof(datapath_methods) / sizeof(datapath_methods[0]),
			 NULL);
}
