/* SPDX-License-Identifier: LGPL-2.1-only */
/* Logging to syslog and, when run by hand, stderr. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char log_ident[128] = "xapi-storage-ng";
static char log_dbg[128];
static char last_error[2048];
static bool log_stderr;

void log_init(const char *ident, bool to_stderr)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_stderr = to_stderr || isatty(STDERR_FILENO) ||
		     getenv("XSNG_LOG_STDERR") != NULL;
	openlog(log_ident, LOG_PID, LOG_DAEMON);
}

void log_set_dbg(const char *dbg)
{
	size_t n = strcspn(dbg, "\n");

	if (n >= sizeof(log_dbg))
		n = sizeof(log_dbg) - 1;
	memcpy(log_dbg, dbg, n);
	log_dbg[n] = '\0';
}

const char *log_last_error(void)
{
	return last_error;
}

void log_msg(int priority, const char *fmt, ...)
{
	int saved_errno = errno;
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);	/* glibc expands %m here */
	va_end(ap);

	if (priority == LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
	if (log_dbg[0])
		syslog(priority, "[%s] %s", log_dbg, msg);
	else
		syslog(priority, "%s", msg);
	if (log_stderr && (priority <= LOG_INFO || getenv("XSNG_DEBUG")))
		fprintf(stderr, "%s: %s\n", log_ident, msg);
	errno = saved_errno;
}
