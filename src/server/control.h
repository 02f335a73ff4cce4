/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * ngdp-server's control module (control*.c), the daemon's one door for
 * JSON: the control socket (status/suspend/resume/stop) and the volume
 * record.  The core calls these plain C functions; nothing here exposes
 * json-c.
 */
#ifndef SERVER_CONTROL_H
#define SERVER_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct control;
struct server_status;

/*
 * Listen on the control socket at path and register it, and the suspend
 * hook, with srv.  *ret is freed by control_close(), before
 * server_release().
 */
int control_listen(struct server *srv, const char *path,
		   struct control **ret);
/* Close the listener and every control connection; NULL is a no-op. */
void control_close(struct control *ctl);

/*
 * The image the volume record (<SR>/meta/v-<key>.json, at record) names:
 * <sr_dir>/images/<id>.<ext> into path, and the format to open it with in
 * *format (a static string).  A missing "image-format" is qcow2, the same
 * rule as the SR library's sr_volume_image.  -EBADMSG for a record that is
 * not what the plugins write, -errno when it cannot be read.
 */
int control_record_image(const char *record, const char *sr_dir,
			 char *path, size_t len, const char **format);
/*
 * The epoch bitmap the volume record names ("cbt_bitmap"), copied into
 * name (CBT_BITMAP_NAME_MAX + 1 bytes).  -ENOENT when it names none,
 * -EBADMSG when it is not a CBT_BITMAP_PREFIX + 16 hex name.
 */
int control_record_cbt(const char *record, char *name, size_t len);

/*
 * The mirror job's final status (st's mi_* fields, the status's "mirror"
 * object) as JSON into path, atomically (temp file, fsync, rename, fsync
 * of the directory).
 */
int control_write_mirror_state(const char *path,
			       const struct server_status *st);

#endif
