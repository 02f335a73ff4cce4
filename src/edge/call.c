/* SPDX-License-Identifier: LGPL-2.1-only */
/* The edge of every plugin call: parse stdin, dispatch, print the result or
 * the one error record. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "fileio.h"
#include "json-io.h"
#include "log.h"
#include "names.h"
#include "host.h"

int call_fail(struct call *c, int err, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (c->err_name[0])	/* keep the first, most precise, error */
		return err < 0 ? err : -EIO;
	snprintf(c->err_name, sizeof(c->err_name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
	/* messages quote input bytes and are cut at a byte count: make them
	 * valid UTF-8, as JSON strings must be */
	utf8_sanitize(c->err_msg, sizeof(c->err_msg));
	return err < 0 ? err : -EIO;
}

static int arg_missing(struct call *c, const char *key, int r,
		       const char *type)
{
	if (r == -ENOENT)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "the parameter '%s' is missing", key);
	return call_fail(c, -EINVAL, "Invalid_argument",
			 "the parameter '%s' must be %s", key, type);
}

int arg_string(struct call *c, const char *key, const char **ret)
{
	int r = json_get_string(c->args, key, ret);

	return r < 0 ? arg_missing(c, key, r, "a string without NUL bytes")
		     : 0;
}

int arg_text(struct call *c, const char *key, size_t max, const char **ret)
{
	const char *why;
	int r = arg_string(c, key, ret);

	if (r < 0)
		return r;
	why = text_check(*ret, strlen(*ret), max);
	if (why)
		return call_fail(c, -EINVAL, "Invalid_argument",
				 "the parameter '%s' %s (at most %zu bytes of "
				 "UTF-8 text)", key, why, max);
	return 0;
}

int arg_int64(struct call *c, const char *key, int64_t *ret)
{
	int r = json_get_int64(c->args, key, ret);

	return r < 0 ? arg_missing(c, key, r, "a 64-bit integer") : 0;
}

int arg_bool(struct call *c, const char *key, bool *ret)
{
	int r = json_get_bool(c->args, key, ret);

	return r < 0 ? arg_missing(c, key, r, "true or false") : 0;
}

int arg_map(struct call *c, const char *key, json_object **ret)
{
	int r = json_get_string_map(c->args, key, ret);

	return r < 0 ? arg_missing(c, key, r,
				   "an object with string values") : 0;
}

json_object *call_error_record(const struct call *c)
{
	json_object *rec = json_new_object(), *params = json_new_array();
	json_object *bt = json_new_object();

	json_add_string(rec, "code", "SR_BACKEND_FAILURE");
	json_object_array_add(params, json_new_string(c->err_name));
	/* xapi redirects the call when params are exactly this pair */
	if (!strcmp(c->err_name, "Activated_on_another_host"))
		json_object_array_add(params, json_new_string(c->err_param));
	else
		json_object_array_add(params, json_new_string(c->err_msg));
	json_add(rec, "params", params);
	json_add_string(bt, "error", c->err_msg);
	json_add(bt, "files", json_new_array());
	json_add(bt, "lines", json_new_array());
	json_add(rec, "backtrace", bt);
	return rec;
}

static const char *call_plugin_name = "?";

/* Keep the last errors for Plugin.diagnostics (bounded file). */
static void remember_line(const char *plugin, const char *method,
			  const char *name, const char *msg)
{
	char path[PATH_MAX + 32], line[1400], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int fd;

	snprintf(path, sizeof(path), "%s/recent-errors", host_paths()->run_dir);
	if (mkdir_p(host_paths()->run_dir, 0700) < 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	/* start over past 64 KiB: diagnostics shows only the tail anyway */
	if (lseek(fd, 0, SEEK_END) > 64 * 1024 && ftruncate(fd, 0) < 0) {
		close(fd);
		return;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(line, sizeof(line), "%s %s %s: %s: %.1000s\n", stamp, plugin,
		 method, name, msg);
	(void)write_all(fd, line, strlen(line));
	close(fd);
}

static void remember_error(const char *plugin, const struct call *c)
{
	remember_line(plugin, c->method ? c->method->name : "?", c->err_name,
		      c->err_msg);
}

void call_warn(struct call *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
	remember_line(call_plugin_name, c->method ? c->method->name : "?",
		      "Warning", msg);
}

int call_main(int argc, char **argv, const char *plugin_name,
	      const struct method *table, size_t n, const void *plugin)
{
	struct call c = { .plugin = plugin };
	const char *base = strrchr(argv[0], '/');
	json_object *result = NULL, *out;
	char ident[160];
	size_t i;
	int r;

	base = base ? base + 1 : argv[0];
	call_plugin_name = plugin_name;
	/* a peer closing a socket must give EPIPE, not kill the call */
	signal(SIGPIPE, SIG_IGN);
	snprintf(ident, sizeof(ident), "%s/%s", plugin_name, base);
	log_init(ident, false);
	for (i = 0; i < n; i++)
		if (!strcasecmp(table[i].name, base))
			c.method = &table[i];
	/* only "--json" is accepted: that is how xapi-storage-script calls us */
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json"))) {
		r = call_fail(&c, -EINVAL, "Invalid_argument",
			      "usage: %s --json < parameters.json", base);
		goto out;
	}
	if (!c.method) {
		r = call_fail(&c, -ENOSYS, "Unimplemented",
			      "%s does not implement the method '%s'",
			      plugin_name, base);
		goto out;
	}
	r = json_read_request(STDIN_FILENO, REQUEST_MAX, &c.args);
	if (r < 0) {
		r = call_fail(&c, r, "Invalid_argument",
			      r == -EFBIG ? "the parameters are larger than "
					    "1 MiB" :
					    "the parameters on stdin are not "
					    "one JSON object");
		goto out;
	}
	r = arg_string(&c, "dbg", &c.dbg);
	if (r < 0)
		goto out;
	log_set_dbg(c.dbg);
	r = c.method->fn(&c, &result);
	if (r < 0 && !c.err_name[0])
		call_fail(&c, r, "Internal_error", "%s failed: %s", base,
			  strerror(-r));
out:
	if (r < 0) {
		log_error("%s: %s", c.err_name, c.err_msg);
		remember_error(plugin_name, &c);
		out = call_error_record(&c);
		(void)json_write(STDOUT_FILENO, out);
		json_object_put(out);
	} else if (json_write(STDOUT_FILENO, result) < 0) {
		r = -EIO;
	}
	json_object_put(result);
	json_object_put(c.args);
	return r < 0 ? 1 : 0;
}
