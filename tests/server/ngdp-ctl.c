/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Test helper: send one request to an ngdp-server control socket.
 *   ngdp-ctl SOCKET JSON            send JSON, print the reply
 *   ngdp-ctl SOCKET coalesce PARENT send {"op":"coalesce","parent":PARENT}
 *   ngdp-ctl SOCKET get KEY[.SUB]   print one field of the status: a
 *                                   string as it is, null as "null"
 * Exit 0 when the reply says "ok": true (get: and the field exists).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl-proto.h"

static int request(const char *path, const char *req, char *buf,
		   size_t cap)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 0;
	ssize_t n;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "socket path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		return -1;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		perror("write");
		close(fd);
		return -1;
	}
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	return 0;
}

static int reply_ok(json_object *o)
{
	json_object *v;

	return o && json_object_object_get_ex(o, CTL_KEY_OK, &v) &&
	       json_object_get_boolean(v);
}

/* Print status field key ("a" or "a.b"); 0 when found. */
static int get_field(json_object *o, const char *key)
{
	char k[256], *dot;
	json_object *v;

	if (strlen(key) >= sizeof(k))
		return 1;
	strcpy(k, key);
	dot = strchr(k, '.');
	if (dot)
		*dot = '\0';
	if (!json_object_object_get_ex(o, k, &v))
		return 1;
	if (dot && (!json_object_is_type(v, json_type_object) ||
		    !json_object_object_get_ex(v, dot + 1, &v)))
		return 1;
	if (!v)
		puts("null");
	else if (json_object_is_type(v, json_type_string))
		puts(json_object_get_string(v));
	else
		puts(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	return 0;
}

int main(int argc, char *argv[])
{
	static char buf[65536];
	const char *req;
	json_object *o = NULL, *r;
	int rc;

	if (argc == 3) {
		req = argv[2];
	} else if (argc == 4 && !strcmp(argv[2], "coalesce")) {
		o = json_object_new_object();
		json_object_object_add(o, CTL_KEY_OP,
				       json_object_new_string(CTL_OP_COALESCE));
		json_object_object_add(o, CTL_KEY_PARENT,
				       json_object_new_string(argv[3]));
		req = json_object_to_json_string(o);
	} else if (argc == 4 && !strcmp(argv[2], "get")) {
		req = "{\"" CTL_KEY_OP "\":\"" CTL_OP_STATUS "\"}";
	} else {
		fprintf(stderr, "usage: ngdp-ctl SOCKET JSON | SOCKET coalesce PARENT | SOCKET get KEY\n");
		return 2;
	}
	rc = request(argv[1], req, buf, sizeof(buf));
	json_object_put(o);
	if (rc < 0)
		return 1;
	r = json_tokener_parse(buf);
	if (argc == 4 && !strcmp(argv[2], "get")) {
		rc = reply_ok(r) ? get_field(r, argv[3]) : 1;
		if (rc)
			fputs(buf, stderr);
	} else {
		fputs(buf, stdout);
		rc = reply_ok(r) ? 0 : 1;
	}
	json_object_put(r);
	return rc;
}
