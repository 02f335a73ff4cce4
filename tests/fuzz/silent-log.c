/* SPDX-License-Identifier: LGPL-2.1-only */
/* Silent log.h implementation for the fuzzer (syslog per input is slow). */
#include <stdarg.h>
#include <stdbool.h>

#include "log.h"

void log_init(const char *ident, bool to_stderr)
{
	(void)ident;
	(void)to_stderr;
}

void log_set_dbg(const char *dbg)
{
	(void)dbg;
}

void log_msg(int priority, const char *fmt, ...)
{
	(void)priority;
	(void)fmt;
}

const char *log_last_error(void)
{
	return "";
}
