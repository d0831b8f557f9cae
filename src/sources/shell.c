#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbv/error.h"
#include "kbv/shell.h"
#include "kbv/proc.h"

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

int kbv_shell_start(const char *cmd, int in_fd, pid_t *pid, int *fd)
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

/* Our environment with `extra` ("NAME=value", NULL-terminated) set on top, for one child;
 * free() the array only (the strings are borrowed). NULL when out of memory. */
static char **env_plus(char *const extra[])
{
	extern char **environ;
	size_t n = 0, k = 0, j = 0;
	while (environ[n])
		n++;
	while (extra[k])
		k++;
	char **e = calloc(n + k + 1, sizeof *e);
	if (!e)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t x = 0;
		while (x < k && strncmp(environ[i], extra[x], (size_t)(strchr(extra[x], '=') - extra[x]) + 1))
			x++;
		if (x == k)
			e[j++] = environ[i];
	}
	for (size_t x = 0; x < k; x++)
		e[j++] = extra[x];
	return e;
}

int kbv_shell_start_writer(const char *cmd, pid_t *pid, int *fd)
{
	char *none[] = { NULL };
	return kbv_shell_start_writer_env(cmd, none, pid, fd);
}

int kbv_shell_start_writer_env(const char *cmd, char *const extra[], pid_t *pid, int *fd)
{
	char *argv[6];
	int p[2];
	char **env = env_plus(extra);
	if (!env)
		return kbv_error(KBV_ENOMEM, "out of memory");
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(env);
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	}
	int rc = kbv_cmd_spawn(argv_of(cmd, argv), env, p[0], kbv_cmd_stdout(), pid);
	free(env);
	close(p[0]);
	if (rc < 0) {
		close(p[1]);
		return rc;
	}
	*fd = p[1];
	return 0;
}

int kbv_shell_hook(const char *source, const char *which, const char *cmd)
{
	char *none[] = { NULL };
	return kbv_shell_hook_env(source, which, cmd, none);
}

int kbv_shell_hook_env(const char *source, const char *which, const char *cmd, char *const extra[])
{
	char *argv[6], what[160];
	pid_t pid;
	char **env = env_plus(extra);
	if (!env)
		return kbv_error(KBV_ENOMEM, "out of memory");
	snprintf(what, sizeof what, "the %s of source '%s'", which, source);
	int rc = kbv_cmd_spawn(argv_of(cmd, argv), env, -1, kbv_cmd_stdout(), &pid);
	free(env);
	if (rc < 0)
		return kbv_error_prefix(rc, "%s", what);
	return kbv_cmd_finish(pid, what, 0);
}
