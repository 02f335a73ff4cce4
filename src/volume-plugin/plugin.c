/* SPDX-License-Identifier: LGPL-2.1-only */
/* Plugin.* : what this SR type is and what it can do. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "active.h"
#include "cleanup.h"
#include "device.h"
#include "fileio.h"
#include "json-io.h"
#include "proc.h"
#include "vp.h"

/* What this plugin really does (xapi adds SR_* / VDI_* from the installed
 * method files too).  VDI_RESET_ON_BOOT/2 comes from xapi-storage-script
 * because Volume.clone exists. */
static const char *const features[] = {
	"SR_ATTACH", "SR_DETACH", "SR_CREATE", "SR_DELETE", "SR_PROBE",
	"SR_UPDATE", "SR_SCAN", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
	"VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE", "VDI_UPDATE",
	"VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "THIN_PROVISIONING",
	"LARGE_VDI", "VDI_ACTIVATE_READONLY", "VDI_CONFIG_CBT",
	/* storage migration: the datapath plugin's Data.mirror (source) and
	 * Datapath.import_activate (destination) */
	"VDI_MIRROR", "VDI_MIRROR_IN", NULL,
};

int vp_plugin_query(struct call *c, json_object **ret)
{
	const struct volume_plugin *p = vp_plugin(c);
	json_object *out = json_new_object(), *f = json_new_array(), *cfg;
	size_t i;

	json_add_string(out, "plugin", p->type);
	json_add_string(out, "name", p->name);
	json_add_string(out, "description", p->description);
	json_add_string(out, "vendor", "xapi-storage-ng project");
	json_add_string(out, "copyright", "Copyright the xapi-storage-ng "
			"authors; LGPL-2.1-only");
	json_add_string(out, "version", VERSION);
	json_add_string(out, "required_api_version", "5.0");
	for (i = 0; features[i]; i++)
		json_object_array_add(f, json_new_string(features[i]));
	json_add(out, "features", f);
	cfg = json_new_object();
	json_add_string(cfg, "device", "block device to hold the SR, e.g. "
			"/dev/sdb (required by SR.create; SR.attach finds it "
			"again by sr_uuid)");
	json_add_string(cfg, "force", "true to erase a device that already "
			"holds a filesystem or partition table");
	json_add_string(cfg, "image-format", "qcow2 (default, up to 64 TiB), "
			"vhd (up to 2040 GiB) or raw");
	json_add_string(cfg, "preallocation", "off (default), metadata "
			"(qcow2), falloc or full");
	json_add(out, "configuration", cfg);
	json_add(out, "required_cluster_stack", json_new_array());
	*ret = out;
	(void)c;
	return 0;
}

/* Attached SRs of this type: mount points under the mount root. */
static json_object *attached_srs(const struct volume_plugin *p)
{
	const char *root = host_paths()->mount_root;
	CLEANUP_CLOSEDIR DIR *d = opendir(root);
	json_object *out = json_new_array();
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char dir[PATH_MAX], src[PATH_MAX];
		struct sr sr;

		if (!uuid_is_valid(de->d_name))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
		if (mount_source_of(dir, src, sizeof(src)) != 1)
			continue;
		if (sr_open(dir, p->type, SR_LOCK_NONE, &sr) == 0) {
			json_object_array_add(out, json_new_string(dir));
			sr_close(&sr);
		}
	}
	return out;
}

int vp_plugin_ls(struct call *c, json_object **ret)
{
	*ret = attached_srs(vp_plugin(c));
	return 0;
}

static void append(char **text, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void append(char **text, size_t *len, const char *fmt, ...)
{
	char *more = NULL, *nt;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&more, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	nt = realloc(*text, *len + (size_t)n + 1);
	if (nt) {
		memcpy(nt + *len, more, (size_t)n + 1);
		*text = nt;
		*len += (size_t)n;
	}
	free(more);
}

static void describe_sr(char **t, size_t *len, const char *dir)
{
	json_object *vols = NULL, *imgs = NULL, *refs;
	char src[PATH_MAX];
	int64_t hidden_bytes = 0;
	int hidden = 0, active;
	struct sr sr;
	size_t i;

	if (sr_open(dir, NULL, SR_LOCK_SHARED, &sr) < 0) {
		append(t, len, "  %s: cannot open\n", dir);
		return;
	}
	if (mount_source_of(dir, src, sizeof(src)) != 1)
		src[0] = '\0';
	active = sr_count_active(&sr, NULL, 0);
	{
		char why[1024];

		sr_gc_blocked_reason(&sr, why, sizeof(why));
		if (why[0])
			append(t, len, "  SR %s: garbage collection stopped: "
			       "%s\n", sr.uuid, why);
	}
	if (sr_scan(&sr, &vols, &imgs) < 0) {
		append(t, len, "  SR %s at %s: METADATA PROBLEM: %s\n",
		       sr.uuid, dir, sr.problem[0] ? sr.problem :
		       "meta/ cannot be read");
	} else {
		/* hidden images: kept only because other images need them */
		refs = json_new_object();
		for (i = 0; i < json_object_array_length(vols); i++)
			if (sr_volume_has_data(json_object_array_get_idx(vols,
									i)))
				json_add_bool(refs, rec_str(
					json_object_array_get_idx(vols, i),
					"image"), true);
		json_object_object_foreach(imgs, id, img) {
			char rel[80], name[64];
			enum sr_fmt f;

			if (json_object_object_get_ex(refs, id, NULL) ||
			    sr_image_fmt(img, &f) < 0)
				continue;
			sr_image_filename(id, f, name, sizeof(name));
			snprintf(rel, sizeof(rel), "images/%s", name);
			hidden++;
			hidden_bytes += sr_file_allocated(&sr, rel);
		}
		json_object_put(refs);
		append(t, len, "  SR %s (%s) on %s at %s: %zu volumes, %d "
		       "active, %d hidden images using %" PRId64 " bytes\n",
		       sr.uuid, sr.type, src, dir,
		       json_object_array_length(vols), active, hidden,
		       hidden_bytes);
	}
	{
		char line[1024];

		vp_coalesce_describe(&sr, line, sizeof(line));
		append(t, len, "  SR %s: %s\n", sr.uuid, line);
	}
	json_object_put(vols);
	json_object_put(imgs);
	sr_close(&sr);
}

int vp_plugin_diagnostics(struct call *c, json_object **ret)
{
	const struct volume_plugin *p = vp_plugin(c);
	const char *const qemu_img[] = { "qemu-img", "--version", NULL };
	CLEANUP_FREE char *errors = NULL;
	json_object *srs = attached_srs(p);
	struct proc_result res;
	char *text = NULL, path[PATH_MAX + 32];
	size_t len = 0, i, n;

	append(&text, &len, "%s %s (xapi-storage-ng), host %s\n", p->type,
	       VERSION, host_paths()->host_uuid);
	if (proc_run(qemu_img, &res) == 0 && res.status == 0)
		append(&text, &len, "qemu-img: %.*s\n",
		       (int)strcspn(res.out, "\n"), res.out);
	else
		append(&text, &len, "qemu-img: NOT FOUND (needed to create "
		       "images)\n");
	proc_result_release(&res);
	append(&text, &len, "mount root %s, run directory %s\n",
	       host_paths()->mount_root, host_paths()->run_dir);
	n = json_object_array_length(srs);
	append(&text, &len, "attached SRs: %zu\n", n);
	for (i = 0; i < n; i++)
		describe_sr(&text, &len, json_object_get_string(
				json_object_array_get_idx(srs, i)));
	json_object_put(srs);
	snprintf(path, sizeof(path), "%s/recent-errors", host_paths()->run_dir);
	if (read_file_at(AT_FDCWD, path, 1 << 20, &errors, NULL) == 0) {
		/* the last 20 lines */
		const char *s = errors + strlen(errors);
		int lines = 0;

		while (s > errors && lines <= 20)
			if (*--s == '\n')
				lines++;
		append(&text, &len, "recent errors:\n%s", s == errors ? s : s + 1);
	} else {
		append(&text, &len, "recent errors: none\n");
	}
	*ret = json_new_string(text ? text : "");
	free(text);
	return 0;
}
