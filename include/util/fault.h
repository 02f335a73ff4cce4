/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Crash points for tests: fault_point("name") kills the calling process
 * with SIGKILL when the environment variable XSNG_FAULT equals "name", so
 * a test can stop a call exactly between two steps whose order matters
 * for crash safety.  Without the variable it does nothing.
 */
#ifndef FAULT_H
#define FAULT_H

void fault_point(const char *name);

#endif
