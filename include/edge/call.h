/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One plugin invocation, as xapi-storage-script makes it: argv[0] names the
 * method (a symlink), argv[1] is "--json", stdin holds the parameters object,
 * stdout receives exactly one JSON value: the result, or on failure (exit 1)
 * an error record {"code","params","backtrace"}.
 *
 * Handlers return 0 with *ret set (NULL means unit, printed as null), or a
 * negative errno after call_fail() has worded the error for an
 * administrator.  Only call_main() writes to stdout.
 */
#ifndef CALL_H
#define CALL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct call {
	const struct method *method;
	json_object *args;		/* the parameters object, owned */
	const char *dbg;
	const void *plugin;		/* the plugin's descriptor */
	char err_name[64];		/* e.g. "Volume_does_not_exist" */
	char err_msg[1024];		/* words for the administrator */
	char err_param[128];		/* Activated_on_another_host: host uuid */
};

typedef int (*call_handler)(struct call *c, json_object **ret);

struct method {
	const char *name;	/* wire name, e.g. "Volume.create" */
	call_handler fn;
};

/* Dispatch on basename(argv[0]), case-insensitively.  Returns the exit code. */
int call_main(int argc, char **argv, const char *plugin_name,
	      const struct method *table, size_t n, const void *plugin);

/* Record the error (first one wins) and return err (negative errno). */
int call_fail(struct call *c, int err, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * A problem that does not fail the call (e.g. a feature that had to be left
 * out): logged as a warning and kept, like errors, for Plugin.diagnostics.
 */
void call_warn(struct call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parameter getters: fail with Invalid_argument naming the parameter. */
int arg_string(struct call *c, const char *key, const char **ret);
int arg_text(struct call *c, const char *key, size_t max, const char **ret);
int arg_int64(struct call *c, const char *key, int64_t *ret);
int arg_bool(struct call *c, const char *key, bool *ret);
int arg_map(struct call *c, const char *key, json_object **ret);

/* For tests: the error record call_main() would print. */
json_object *call_error_record(const struct call *c);

#endif
