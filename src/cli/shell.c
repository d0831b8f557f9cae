#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shell.h"
#include "kbv/error.h"
#include "kbv/source.h"

static char *const *argv_of(const char *cmd, char *argv[6])
{
	argv[0] = "bash";
	argv[1] = "-o";
	argv[2] = "pipefail";
	argv[3] = "-c";
	argv[4] = (char *)cmd;
	argv[5] = NULL;
	return argv;
}

int shell_start(const char *cmd, int in_fd, pid_t *pid, int *fd)
{
	char *argv[6];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	int rc = kbv_cmd_spawn(argv_of(cmd, argv), NULL, in_fd, p[1], pid);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	*fd = p[0];
	return 0;
}

int shell_start_writer(const char *cmd, pid_t *pid, int *fd)
{
	char *argv[6];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	int rc = kbv_cmd_spawn(argv_of(cmd, argv), NULL, p[0], kbv_cmd_stderr(), pid);
	close(p[0]);
	if (rc < 0) {
		close(p[1]);
		return rc;
	}
	*fd = p[1];
	return 0;
}

int shell_hook(const char *source, const char *which, const char *cmd)
{
	char *argv[6], what[160];
	pid_t pid;
	snprintf(what, sizeof what, "the %s hook of source '%s'", which, source);
	int rc = kbv_cmd_spawn(argv_of(cmd, argv), NULL, -1, kbv_cmd_stderr(), &pid);
	if (rc < 0)
		return kbv_error_prefix(rc, "%s", what);
	return kbv_cmd_finish(pid, what, 0);
}
