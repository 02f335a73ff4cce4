/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests: storage migration's remote NBD URIs (src/util/nbd-uri.c),
 * Data.* operations and mirror ids (src/edge/mirror-op.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mirror-op.h"
#include "nbd-uri.h"

static void expect_uri(const char *uri, const char *sock, const char *exp)
{
	struct nbd_uri u;

	assert_int_equal(nbd_uri_parse(uri, &u), 0);
	assert_string_equal(u.socket, sock);
	assert_string_equal(u.export_name, exp);
}

static void expect_bad_uri(const char *uri, int err)
{
	struct nbd_uri u;

	assert_int_equal(nbd_uri_parse(uri, &u), err);
	/* nothing half-parsed is left */
	assert_string_equal(u.socket, "");
	assert_string_equal(u.export_name, "");
}

static void test_uri_forms(void **state)
{
	(void)state;
	/* as xapi sends it */
	expect_uri("nbd+unix:///abc?socket=/var/run/nbdproxy/export/vm1",
		   "/var/run/nbdproxy/export/vm1", "abc");
	expect_uri("nbd+unix:///?socket=/s", "/s", "");
	/* percent-encoding in both parts */
	expect_uri("nbd+unix:///a%20b%2Fc?socket=/run/x%3Ay", "/run/x:y",
		   "a b/c");
	expect_uri("nbd+unix:///%41?socket=/%2e%2eb", "/..b", "A");
	/* the legacy form */
	expect_uri("nbd:unix:/run/a.sock", "/run/a.sock", "");
	expect_uri("nbd:unix:/run/a.sock:exportname=k-1", "/run/a.sock",
		   "k-1");
	expect_uri("nbd:unix:/run/a.sock:exportname=", "/run/a.sock", "");
}

static void test_uri_rejected(void **state)
{
	char big[NBD_URI_MAX + 16], path[200];

	(void)state;
	expect_bad_uri("", -EINVAL);
	expect_bad_uri("nbd://host:10809/x", -EINVAL);
	expect_bad_uri("nbds+unix:///x?socket=/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x", -EINVAL);		/* no socket */
	expect_bad_uri("nbd+unix:///x?", -EINVAL);
	expect_bad_uri("nbd+unix:///x?sock=/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/s&tls=on", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/s#frag", -EINVAL);
	expect_bad_uri("nbd+unix://host/x?socket=/s", -EINVAL);
	/* relative, traversal, empty components (encoded or not) */
	expect_bad_uri("nbd+unix:///x?socket=run/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/run/../etc/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/run/%2e%2e/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/run/./s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/run//s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/run/s/", -EINVAL);
	expect_bad_uri("nbd:unix:../s", -EINVAL);
	expect_bad_uri("nbd:unix:/a/../s:exportname=x", -EINVAL);
	expect_bad_uri("nbd:unix:", -EINVAL);
	/* bad or dangerous percent-encoding, control characters */
	expect_bad_uri("nbd+unix:///x%?socket=/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x%4?socket=/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x%zz?socket=/s", -EINVAL);
	expect_bad_uri("nbd+unix:///x?socket=/s%00.evil", -EINVAL);
	expect_bad_uri("nbd+unix:///x%0a?socket=/s", -EINVAL);
	expect_bad_uri("nbd:unix:/s\n", -EINVAL);
	/* overlong socket path (sun_path), URI */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	snprintf(big, sizeof(big), "nbd:unix:%.*s", NBD_URI_SOCKET_MAX + 1,
		 path);
	expect_bad_uri(big, -ENAMETOOLONG);
	snprintf(big, sizeof(big), "nbd:unix:%.*s", NBD_URI_SOCKET_MAX, path);
	{
		struct nbd_uri u;

		assert_int_equal(nbd_uri_parse(big, &u), 0);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "nbd:unix:/", 10);
	big[sizeof(big) - 1] = '\0';
	expect_bad_uri(big, -ENAMETOOLONG);
}

static void test_ids(void **state)
{
	char id[CTL_MIRROR_ID_MAX + 2];

	(void)state;
	assert_true(mirror_id_is_valid("0"));
	assert_true(mirror_id_is_valid("0123456789abcdef0123456789abcdef"));
	assert_false(mirror_id_is_valid(""));
	assert_false(mirror_id_is_valid("ABC"));
	assert_false(mirror_id_is_valid("ab-c"));
	assert_false(mirror_id_is_valid("../x"));
	assert_false(mirror_id_is_valid("ab\n"));
	memset(id, 'a', CTL_MIRROR_ID_MAX);
	id[CTL_MIRROR_ID_MAX] = '\0';
	assert_true(mirror_id_is_valid(id));
	id[CTL_MIRROR_ID_MAX] = 'a';
	id[CTL_MIRROR_ID_MAX + 1] = '\0';
	assert_false(mirror_id_is_valid(id));
}

/* Parse text as JSON and then as an operation. */
static int parse_op(const char *text, char *id)
{
	json_object *op = json_tokener_parse(text);
	char why[160];
	int r;

	r = mirror_op_parse(op, id, CTL_MIRROR_ID_MAX + 1, why, sizeof(why));
	assert_true(why[0] != '\0' || r == 0);
	json_object_put(op);
	return r;
}

static void test_operations(void **state)
{
	char id[CTL_MIRROR_ID_MAX + 1];
	json_object *op;

	(void)state;
	assert_int_equal(parse_op("[\"MirrorV1\", \"00ff\"]", id), 0);
	assert_string_equal(id, "00ff");
	assert_int_equal(parse_op("[\"mirrorv1\", \"1\"]", id), 0);
	assert_int_equal(parse_op("[\"MIRRORV1\", \"1\"]", id), 0);
	assert_int_equal(parse_op("[\"CopyV1\", \"1\"]", id), -ENOTSUP);
	assert_int_equal(parse_op("[\"Mirror\", [\"a\", \"b\"]]", id), -EINVAL);
	assert_int_equal(parse_op("[\"MirrorV1\"]", id), -EINVAL);
	assert_int_equal(parse_op("[\"MirrorV1\", \"1\", \"2\"]", id), -EINVAL);
	assert_int_equal(parse_op("[\"MirrorV1\", 1]", id), -EINVAL);
	assert_int_equal(parse_op("[\"MirrorV1\", \"../x\"]", id), -EINVAL);
	assert_int_equal(parse_op("[\"MirrorV1\", \"\"]", id), -EINVAL);
	assert_int_equal(parse_op("[1, \"1\"]", id), -EINVAL);
	assert_int_equal(parse_op("{\"MirrorV1\": \"1\"}", id), -EINVAL);
	assert_int_equal(parse_op("\"MirrorV1\"", id), -EINVAL);
	assert_int_equal(parse_op("null", id), -EINVAL);
	/* what mirror returns parses back */
	op = mirror_op_new("abc");
	assert_string_equal(json_object_to_json_string_ext(op,
				JSON_C_TO_STRING_PLAIN), "[\"MirrorV1\",\"abc\"]");
	json_object_put(op);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_forms),
		cmocka_unit_test(test_uri_rejected),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_operations),
	};

	return cmocka_run_group_tests_name("mirror-op", tests, NULL, NULL) ?
	       1 : 0;
}
