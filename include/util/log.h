/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Logging: syslog (tagged with the program and the call's dbg), plus stderr
 * when run by hand (stderr is a TTY) or when asked.  Never stdout: stdout is
 * the JSON result.  All functions preserve errno, so "%m" works.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <syslog.h>

/* ident: e.g. "ext4-ng/Volume.create".  to_stderr: also copy to stderr. */
void log_init(const char *ident, bool to_stderr);
/* The xapi "dbg" string of the current call (first line only is kept). */
void log_set_dbg(const char *dbg);
void log_msg(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The last message logged at LOG_ERR (for error records), or "". */
const char *log_last_error(void);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
