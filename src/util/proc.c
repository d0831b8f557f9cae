#include "kbv/proc.h"
#include "kbv/error.h"
#include "kbv/fsio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int child_stderr = -1; /* -1: ours */
static int child_stdout = -1; /* of hooks and the like; -1: our stderr */

void kbv_cmd_set_stdout(int fd)
{
	child_stdout = fd;
}

int kbv_cmd_stdout(void)
{
	return child_stdout >= 0 ? child_stdout : STDERR_FILENO;
}

void kbv_cmd_set_stderr(int fd)
{
	child_stderr = fd;
}

int kbv_cmd_stderr(void)
{
	return child_stderr >= 0 ? child_stderr : STDERR_FILENO;
}

int kbv_cmd_spawn(char *const argv[], char *const envp[], int in_fd, int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (child_stderr >= 0)
		posix_spawn_file_actions_adddup2(&fa, child_stderr, STDERR_FILENO);
	if (in_fd >= 0) {
		/* what goes into a child's stdin is a stream written in order (a restore into
		 * psql, tar, a restore command): a pipe there is widened (fsio.h) */
		kbv_pipe_widen(in_fd);
		posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	} else
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	/* Nothing else of ours reaches a child: the index, packs, the lock, pipes to other
	 * children (every descriptor is O_CLOEXEC too; this is the backstop). */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	int e = posix_spawnp(pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0)
		return kbv_error(KBV_ESOURCE, "cannot run '%s': %s", argv[0], strerror(e));
	return 0;
}

int kbv_cmd_start_env(char *const argv[], char *const envp[], pid_t *pid, int *fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return kbv_error(KBV_EIO, "pipe: %s", strerror(errno));
	int rc = kbv_cmd_spawn(argv, envp, -1, p[1], pid);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	*fd = p[0];
	return 0;
}

int kbv_cmd_start(char *const argv[], pid_t *pid, int *fd)
{
	return kbv_cmd_start_env(argv, NULL, pid, fd);
}

int kbv_cmd_finish(pid_t pid, const char *what, int kill_first)
{
	int st;
	if (kill_first)
		kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return kbv_error(KBV_ESOURCE, "wait for %s: %s", what, strerror(errno));
	if (kill_first)
		return 0;
	if (WIFSIGNALED(st))
		return kbv_error(KBV_ESOURCE, "%s was killed by signal %d (%s)", what, WTERMSIG(st),
				 strsignal(WTERMSIG(st)));
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		return kbv_error(KBV_ESOURCE, "%s exited with status %d", what, WEXITSTATUS(st));
	return 0;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int kbv_walk(const char *path, const char *name, kbv_walk_fn fn, void *arg)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return kbv_error(KBV_ESOURCE, "cannot read '%s': %s", path, strerror(errno));
	int rc = fn(arg, path, name, &st);
	if (rc == KBV_WALK_SKIP)
		return 0;
	if (rc != 0 || !S_ISDIR(st.st_mode))
		return rc;
	DIR *d = opendir(path);
	if (!d)
		return kbv_error(KBV_ESOURCE, "cannot read directory '%s': %s", path, strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn) {
				rc = kbv_error(KBV_ENOMEM, "out of memory");
				goto out;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = kbv_error(KBV_ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof *names, cmpstr);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char p[PATH_MAX], nm[PATH_MAX];
		if ((rc = kbv_path(p, sizeof p, "%s/%s", path, names[i])) < 0 ||
		    (rc = kbv_path(nm, sizeof nm, "%s/%s", name, names[i])) < 0)
			break;
		rc = kbv_walk(p, nm, fn, arg);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int kbv_path_to_name(const char *path, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return kbv_error(KBV_EINVAL, "path '%s' contains '..'; give it without '..'", path);
		if (o + n + 2 > cap)
			return kbv_error(KBV_EINVAL, "path '%s' is too long", path);
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	if (!o)
		return kbv_error(KBV_EINVAL, "path '%s' names no file (give a path below '/')", path);
	out[o] = 0;
	return 0;
}
