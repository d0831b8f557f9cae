/* Configured shell commands (dump, restore and load commands, hooks): run with
 * `bash -o pipefail -c`, so a failure anywhere in a pipeline is a failure. */
#ifndef KBV_CLI_SHELL_H
#define KBV_CLI_SHELL_H

#include <sys/types.h>

/* Start `cmd` with stdin from in_fd (-1: /dev/null) and stdout to a pipe (*fd). */
int shell_start(const char *cmd, int in_fd, pid_t *pid, int *fd);
/* Start `cmd` reading a pipe (*fd, write it, close it), stdout to our stderr. */
int shell_start_writer(const char *cmd, pid_t *pid, int *fd);
/* Run a hook (`which` = "before", "after", ...) of source `source`, stdout to our stderr;
 * KBV_ESOURCE naming both when it fails. */
int shell_hook(const char *source, const char *which, const char *cmd);
/* The same with `extra` ("NAME=value" strings, NULL-terminated) added to the child's
 * environment; `which` names the command in messages ("before hook", "drill-cleanup-command"). */
int shell_start_writer_env(const char *cmd, char *const extra[], pid_t *pid, int *fd);
int shell_hook_env(const char *source, const char *which, const char *cmd, char *const extra[]);

#endif
