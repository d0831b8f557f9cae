/* Child processes and file trees: where streams come from (a child's stdout, files and
 * directories). */
#ifndef KBV_PROC_H
#define KBV_PROC_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Children's stderr: ours by default; kbv_cmd_set_stderr(fd) gives every child started
 * from now on `fd` instead (-1: ours again). kbv_cmd_stderr() is the fd in effect, for a
 * child whose stdout should go where stderr goes. "stderr ours" below means this fd. */
void kbv_cmd_set_stderr(int fd);
int kbv_cmd_stderr(void);
/* Where the stdout of children whose output is not data goes (hooks, restore commands):
 * our stderr by default; kbv_cmd_set_stdout(fd) changes it (-1: our stderr again). */
void kbv_cmd_set_stdout(int fd);
int kbv_cmd_stdout(void);

/* Start argv[0] (PATH search) with stdout to a pipe; *fd is the read end. Its stdin is
 * /dev/null, its stderr is ours. */
int kbv_cmd_start(char *const argv[], pid_t *pid, int *fd);
/* The same with an environment of its own (NULL: ours). */
int kbv_cmd_start_env(char *const argv[], char *const envp[], pid_t *pid, int *fd);
/* Start argv[0] (PATH search) with stdin from in_fd and stdout to out_fd (-1: /dev/null for
 * either), stderr ours, environment envp (NULL: ours). An in_fd that is a pipe is widened
 * first (kbv_pipe_widen). */
int kbv_cmd_spawn(char *const argv[], char *const envp[], int in_fd, int out_fd, pid_t *pid);
/* Wait for the child. KBV_ESOURCE, with a message naming `what`, when it exited non-zero
 * or was killed. `kill_first` sends SIGTERM first (the reader gave up). */
int kbv_cmd_finish(pid_t pid, const char *what, int kill_first);

/* Walk `path` (lstat; directories recursively, names sorted). fn gets the path on disk,
 * the stream name (`name` plus the relative part) and the lstat result; returning
 * KBV_WALK_SKIP leaves that path out (a directory: with everything below it), any other
 * non-zero value stops the walk with that value. */
#define KBV_WALK_SKIP 1
typedef int (*kbv_walk_fn)(void *arg, const char *path, const char *name, const struct stat *st);
int kbv_walk(const char *path, const char *name, kbv_walk_fn fn, void *arg);

/* The stream name of a path given on the command line: leading "/" and "./" removed,
 * repeated slashes folded, trailing slashes dropped. KBV_EINVAL for ".." components or an
 * empty result. */
int kbv_path_to_name(const char *path, char *out, size_t cap);

#endif
