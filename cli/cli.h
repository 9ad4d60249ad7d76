/* SPDX-License-Identifier: MIT */
#ifndef ZUBLK_CLI_H
#define ZUBLK_CLI_H

#include <sys/types.h>

#include "zublk.h"

/* Each verb: argc/argv start at the verb itself. Returns the exit status. */
int cmd_add(int argc, char **argv);
int cmd_del(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_mirror(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_udev_owner(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_stop(int argc, char **argv);
void cmd_help(FILE *f);

/*
 * Start a daemon for @cfg and wait (at most @timeout_s) until its device is
 * live; print the device path.  On failure: the daemon's error, nothing left.
 */
int cli_spawn_daemon(const char *verb, const struct zublk_dev_config *cfg,
		     const struct zublk_target_ops *ops, struct zublk_opts *opts,
		     unsigned timeout_s);
/*
 * Wait (bounded) for a daemon process to go; false if it is still there.
 * A pid now used by a process that is not zublk counts as gone.
 */
bool cli_wait_daemon_gone(pid_t pid, unsigned timeout_s);
/* Seconds on the monotonic clock. */
double cli_now_s(void);
/*
 * @pid, the driver's daemon pid of device @id, if that process holds
 * /dev/ublkc@id (or cannot be looked into); else 0.  A daemon that died
 * (kill -9, the device quiesced) leaves its pid in the driver, and another
 * process, even another zublk, may have it now.
 */
pid_t cli_daemon_pid(unsigned id, pid_t pid);
/*
 * What holds /dev/ublkb@id open, in @buf, to follow the device's name: "is
 * mounted at DIR", "is used by md0" (a device stacked on it) or "is still
 * open by pid N (comm)"; false if nothing is found.
 */
bool cli_find_holder(unsigned id, char *buf, size_t len);
/* Room for what cli_find_holder() writes: a mount's directory is up to 1023 bytes. */
#define CLI_HOLDER_MAX 1100

/* "zublk: VERB: message" on stderr. */
void cli_err(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct option;
/*
 * After getopt_long() returned '?' (or an option @verb does not take,
 * @c): one line naming the option as given ("-x", "--bogus").
 */
void cli_bad_opt(const char *verb, char **argv, const struct option *lopts, int c);
/*
 * Option @c (getopt's value) seen before, as *@seen records: one line naming
 * it and true; else records it.  @seen: 256 bools, zeroed before the loop.
 */
bool cli_twice(const char *verb, char **argv, int c, bool *seen);
/*
 * 0, or -1 after one line naming @what and @s: @s has a control character
 * (a newline would split the state file's lines and the daemon's reports).
 */
int cli_check_text(const char *verb, const char *what, const char *s);
/*
 * Send the daemon of device @id a request (zublk_ctl_request()); its answer
 * in @reply.  On failure, says why in one line: the daemon's answer, or
 * "no such device" when there is no daemon and no device.
 */
int cli_ctl_request(const char *verb, unsigned id, int argc, char **argv, char *reply,
		    size_t len);
/* Opens the control device or says why not. */
int cli_ctrl_open(const char *verb, struct zublk_ctrl **c);
/* The driver's device ids: 0 up to UBLK_MAX_UBLKS (its minors, 1 << 20) less one. */
#define CLI_MAX_ID ((1U << 20) - 1)
/* Parses a device id for -n. */
int cli_parse_id(const char *verb, const char *s, unsigned *id);
/*
 * Tells device @id's daemon (@pid; none: nothing) that its device is about
 * to be stopped or deleted (the target's ->stopping), not waiting.
 */
void cli_tell_stopping(unsigned id, pid_t pid);
/* Deletes device @id and waits (bounded) for its daemon to go. */
int cli_del_dev(const char *verb, struct zublk_ctrl *c, unsigned id, unsigned timeout_s,
		bool async);
/*
 * A state file's shared-memory files (zublk_state.shmem, "index:path" lines,
 * "indexr:path" for one mapped read-only; zublk_state.shmem_id, "dev.ino.len"
 * lines; both cut up in place) into @index, @path, @read_only and, unless
 * NULL, @id (0s where not recorded); how many, or -EINVAL.
 */
int cli_state_shmem(char *lines, char *id_lines, int index[ZUBLK_MAX_SHMEM],
		    const char *path[ZUBLK_MAX_SHMEM], bool read_only[ZUBLK_MAX_SHMEM],
		    struct zublk_shmem_id id[ZUBLK_MAX_SHMEM]);
/* Ids of the ublk devices that exist now, sorted; returns how many. */
int cli_list_ids(unsigned *ids, int max);

#endif
