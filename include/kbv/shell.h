/* Configured shell commands (dump, restore and load commands, hooks): run with
 * `bash -o pipefail -c`, so a failure anywhere in a pipeline is a failure. */
#ifndef KBV_SHELL_H
#define KBV_SHELL_H

#include <sys/types.h>

/* Start `cmd` with stdin from in_fd (-1: /dev/null) and stdout to a pipe (*fd, the
 * caller's to close); wait for it with kbv_cmd_finish(). */
int kbv_shell_start(const char *cmd, int in_fd, pid_t *pid, int *fd);
/* Start `cmd` reading a pipe (*fd, write it, close it), stdout to kbv_cmd_stdout(). */
int kbv_shell_start_writer(const char *cmd, pid_t *pid, int *fd);
/* Run a hook (`which` = "before", "after", ...) of source `source`, stdout to
 * kbv_cmd_stdout(); KBV_ESOURCE naming both when it fails. */
int kbv_shell_hook(const char *source, const char *which, const char *cmd);
/* The same with `extra` ("NAME=value" strings, NULL-terminated) added to the child's
 * environment; `which` names the command in messages ("before hook", "drill-cleanup-command"). */
int kbv_shell_start_writer_env(const char *cmd, char *const extra[], pid_t *pid, int *fd);
int kbv_shell_hook_env(const char *source, const char *which, const char *cmd, char *const extra[]);

#endif
