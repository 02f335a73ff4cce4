/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: SR records and garbage collection (src/sr/sr.c), on a plain
 * directory standing in for a mounted SR. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "json-io.h"
#include "sr.h"

static char root[64], srdir[128];
static const char *sr_uuid = "11111111-2222-4333-8444-555555555555";

/* One mount root for the whole group: host_paths() reads it once. */
static int group_setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/xsng-unit-sr.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	setenv("XSNG_MOUNT_ROOT", root, 1);
	snprintf(srdir, sizeof(srdir), "%s/%s", root, sr_uuid);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

/* A fresh, empty SR directory for each test. */
static int setup(void **state)
{
	char cmd[200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srdir);
	if (system(cmd) != 0 || mkdir(srdir, 0755) < 0)
		return -1;
	return sr_format(srdir, sr_uuid, "ext4-ng", "n", "d", FMT_QCOW2);
}

static int teardown(void **state)
{
	(void)state;
	return 0;
}

static void touch_image(struct sr *sr, const char *id)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "%s.qcow2", id);
	fd = openat(sr->imagesfd, name, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static bool image_exists(struct sr *sr, const char *id)
{
	char name[64];

	snprintf(name, sizeof(name), "%s.qcow2", id);
	return faccessat(sr->imagesfd, name, F_OK, 0) == 0;
}

static void add(struct sr *sr, const char *kind, const char *id,
		const char *link)
{
	json_object *r = json_new_object();
	struct staged_file f;

	if (kind[0] == 'v') {
		json_add_string(r, "key", id);
		json_add_string(r, "image", link);
		json_add_string(r, "image-format", "qcow2");
		assert_int_equal(sr_stage_volume(sr, r, &f), 0);
	} else {
		json_add_string(r, "id", id);
		json_add_string(r, "format", "qcow2");
		if (link)
			json_add_string(r, "parent", link);
		assert_int_equal(sr_stage_image(sr, r, &f), 0);
		touch_image(sr, id);
	}
	assert_int_equal(sr_commit(sr, &f, 1), 0);
	json_object_put(r);
}

#define BASE "aaaaaaaa-0000-4000-8000-000000000001"
#define MID "aaaaaaaa-0000-4000-8000-000000000002"
#define LEAF "aaaaaaaa-0000-4000-8000-000000000003"
#define SNAP_VOL "bbbbbbbb-0000-4000-8000-000000000001"
#define LIVE_VOL "bbbbbbbb-0000-4000-8000-000000000002"
#define ORPHAN "cccccccc-0000-4000-8000-000000000009"

static void test_open_checks(void **state)
{
	struct sr sr;
	char other[200];

	(void)state;
	assert_int_equal(sr_open(srdir, "ext4-ng", SR_LOCK_SHARED, &sr), 0);
	assert_string_equal(sr.uuid, sr_uuid);
	sr_close(&sr);
	assert_int_equal(sr_open(srdir, "xfs-ng", SR_LOCK_SHARED, &sr),
			 -EMEDIUMTYPE);
	assert_int_equal(sr_open("/etc", NULL, SR_LOCK_SHARED, &sr), -ENOENT);
	snprintf(other, sizeof(other), "%s/../%s", root, sr_uuid);
	assert_int_equal(sr_open(other, NULL, SR_LOCK_SHARED, &sr), -ENOENT);
}

static void test_records_roundtrip(void **state)
{
	json_object *v;
	struct sr sr;

	(void)state;
	assert_int_equal(sr_open(srdir, NULL, SR_LOCK_EXCLUSIVE, &sr), 0);
	add(&sr, "i", BASE, NULL);
	add(&sr, "v", LIVE_VOL, BASE);
	assert_int_equal(sr_volume_load(&sr, LIVE_VOL, &v), 0);
	assert_string_equal(rec_str(v, "image"), BASE);
	json_object_put(v);
	assert_int_equal(sr_volume_load(&sr, "../x", &v), -ENOENT);
	assert_int_equal(sr_volume_load(&sr, SNAP_VOL, &v), -ENOENT);
	sr_close(&sr);
}

static void test_gc_keeps_needed_images(void **state)
{
	struct sr sr;
	char name[64];
	int fd;

	(void)state;
	assert_int_equal(sr_open(srdir, NULL, SR_LOCK_EXCLUSIVE, &sr), 0);
	/* BASE <- MID <- LEAF; a snapshot volume on MID, a live one on LEAF */
	add(&sr, "i", BASE, NULL);
	add(&sr, "i", MID, BASE);
	add(&sr, "i", LEAF, MID);
	add(&sr, "v", SNAP_VOL, MID);
	add(&sr, "v", LIVE_VOL, LEAF);
	touch_image(&sr, ORPHAN);	/* a file without a record */
	/* a crashed VHD writer's temp file */
	fd = openat(sr.imagesfd, "." ORPHAN ".vhd.Ab12Cd", O_CREAT | O_WRONLY,
		    0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sr_collect_garbage(&sr, true), 0);
	assert_int_equal(faccessat(sr.imagesfd, "." ORPHAN ".vhd.Ab12Cd",
				   F_OK, 0), -1);
	assert_true(image_exists(&sr, BASE));
	assert_true(image_exists(&sr, MID));
	assert_true(image_exists(&sr, LEAF));
	assert_false(image_exists(&sr, ORPHAN));

	/* the snapshot goes: MID is still LEAF's parent, so it stays hidden */
	snprintf(name, sizeof(name), "v-%s.json", SNAP_VOL);
	assert_int_equal(unlink_durable_at(sr.metafd, name), 0);
	assert_int_equal(sr_collect_garbage(&sr, false), 0);
	assert_true(image_exists(&sr, MID));

	/* the live volume goes: the whole chain is freed */
	snprintf(name, sizeof(name), "v-%s.json", LIVE_VOL);
	assert_int_equal(unlink_durable_at(sr.metafd, name), 0);
	assert_int_equal(sr_collect_garbage(&sr, false), 0);
	assert_false(image_exists(&sr, LEAF));
	assert_false(image_exists(&sr, MID));
	assert_false(image_exists(&sr, BASE));
	sr_close(&sr);
}

/* One unreadable record fails the whole scan, and garbage collection then
 * deletes nothing: that record may be what keeps an image alive. */
static void test_scan_refuses_corrupt(void **state)
{
	json_object *vols = NULL;
	char why[1024];
	struct sr sr;
	int fd;

	(void)state;
	assert_int_equal(sr_open(srdir, NULL, SR_LOCK_EXCLUSIVE, &sr), 0);
	add(&sr, "i", BASE, NULL);
	add(&sr, "v", LIVE_VOL, BASE);
	add(&sr, "i", LEAF, NULL);	/* only the broken record needs it */
	fd = openat(sr.metafd, "v-" SNAP_VOL ".json", O_CREAT | O_WRONLY, 0644);
	assert_true(write(fd, "{broken", 7) == 7);
	close(fd);
	assert_int_equal(sr_scan(&sr, &vols, NULL), -EUCLEAN);
	assert_null(vols);
	assert_non_null(strstr(sr.problem, "v-" SNAP_VOL ".json"));
	assert_int_equal(sr_collect_garbage(&sr, true), -EUCLEAN);
	assert_true(image_exists(&sr, LEAF));
	sr_gc_blocked_reason(&sr, why, sizeof(why));
	assert_non_null(strstr(why, "v-" SNAP_VOL ".json"));
	/* repaired: collection runs again and forgets the reason */
	assert_int_equal(unlinkat(sr.metafd, "v-" SNAP_VOL ".json", 0), 0);
	assert_int_equal(sr_collect_garbage(&sr, true), 0);
	assert_false(image_exists(&sr, LEAF));
	sr_gc_blocked_reason(&sr, why, sizeof(why));
	assert_string_equal(why, "");
	sr_close(&sr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_keeps_needed_images, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_refuses_corrupt, setup, teardown),
	};

	/* a count of failures: 77 would read as "skipped" */
	return cmocka_run_group_tests_name("sr-meta", tests, group_setup,
					   group_teardown) ? 1 : 0;
}
