/* The command line's global options (filled by main.c and each command's option parsing),
 * the clocks the CLI reports with, and the worker threads (KBVAULT_THREADS). Depends on
 * nothing else of the CLI, so every CLI file may use it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "kbv/buf.h"

struct cli_opts cli;

void cli_utc_now(char *out, size_t cap)
{
	char secs[24];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, cap, "%s.%03ldZ", secs, ts.tv_nsec / 1000000);
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

size_t cli_threads(void)
{
	return (size_t)kbv_env_long("KBVAULT_THREADS", 1, CLI_THREADS_MAX, 0);
}
