/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTP session tracker: consumes the datapath's `events` ring buffer
 * (include/pinhole/ctrl.h), runs one user/ftp.c parser per control
 * connection, and is the authority for the pinholes in `expect`: it
 * installs, confirms (when the datapath installed first), revokes and
 * expires them, publishes `ftp_sessions` and `ftp_totals`, and logs one
 * line per pinhole event. docs/tracker.md has the whole story.
 *
 * Two layers:
 *   core    ph_trk_*(): pure, no BPF, no clock (time is a parameter). It
 *           reaches the maps and the log only through struct ph_trk_ops,
 *           so tests/unit/test_tracker.c drives it with fakes.
 *   runner  ph_trk_runner_*(): the pinned maps, the ring buffer, the
 *           signal/epoll loop and the periodic sweep.
 */
#ifndef PH_USER_TRACKER_H
#define PH_USER_TRACKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>
#include <pinhole/ctrl.h>

#define PH_TRK_NSEC 1000000000ull
#define PH_TRK_SWEEP_NS (500ull * 1000000ull)   /* sweep period */
#define PH_TRK_FTPS_NS (1ull * PH_TRK_NSEC)       /* ftps_peers reconciliation */
#define PH_TRK_LINGER_NS (5ull * PH_TRK_NSEC)   /* closed sessions stay visible */
/* No event at all for this long: the CLOSE was lost; close it ourselves. */
#define PH_TRK_IDLE_NS ((PH_TCP_EST_TIMEOUT_S + 60ull) * PH_TRK_NSEC)
#define PH_TRK_ORPHAN_SCAN_NS (10ull * PH_TRK_NSEC) /* full `expect` scan */
/* ... and every open session's control flow (ops->ctrl_live). */
#define PH_TRK_BPF_SLOTS 4      /* datapath pinholes awaiting confirmation */
#define PH_TRK_LOG_RATE 50      /* log lines per second, sustained */
#define PH_TRK_LOG_BURST 200

enum ph_trk_log_level {
	PH_TRK_LOG_WARN = 0, /* datapath disagreements, errors */
	PH_TRK_LOG_INFO,     /* one line per pinhole event */
	PH_TRK_LOG_DEBUG,    /* sessions opening and closing (-v) */
};

/*
 * What the core does to the world. Return 0 or -errno. expect_del of a
 * missing key returns -ENOENT (harmless: used or expired meanwhile).
 * expect_next may be NULL (no orphan scan); it returns the entry after
 * prev (prev NULL: the first), or -ENOENT at the end.
 */
struct ph_trk_ops {
	int (*expect_put)(void *ctx, const struct ph_flow_key *k,
			  const struct ph_expect *v);
	int (*expect_del)(void *ctx, const struct ph_flow_key *k);
	int (*expect_next)(void *ctx, const struct ph_flow_key *prev,
			   struct ph_flow_key *next, struct ph_expect *v);
	int (*session_put)(void *ctx, const struct ph_flow_key *k,
			   const struct ph_ftp_session_info *v);
	int (*session_del)(void *ctx, const struct ph_flow_key *k);
	int (*totals_put)(void *ctx, const struct ph_ftp_totals *t);
	/* The nat-address list of the service of control connection @k
	 * (@server: this host is its server), at most @max addresses into
	 * @out; returns how many (0: none). May be NULL. */
	int (*nat_get)(void *ctx, const struct ph_flow_key *k, bool server,
		       __u8 (*out)[16], int max);
	/* One line without a trailing newline, e.g. "ftp: open tcp ...". */
	void (*log)(void *ctx, int level, const char *line);
	/* Is control connection @k with datapath session id @session still
	 * live (its flow established)? May be NULL (always yes). Asked before
	 * a session is made from a record other than CTRL_OPEN (records a
	 * full ring buffer kept longer than their connection lived), and of
	 * every open session at the orphan scan (a lost CTRL_CLOSE). */
	bool (*ctrl_live)(void *ctx, const struct ph_flow_key *k,
			  __u32 session);
};

struct ph_trk_config {
	__u32 max_sessions; /* 0: PH_FTP_CTRL_MAX */
	__u64 ttl_ns;       /* pinhole lifetime of new sessions; 0: 30 s */
	__u64 linger_ns;    /* 0: PH_TRK_LINGER_NS */
	__u64 idle_ns;      /* 0: PH_TRK_IDLE_NS */
	__u32 log_rate;     /* 0: PH_TRK_LOG_RATE */
	__u32 log_burst;    /* 0: PH_TRK_LOG_BURST */
	__u64 hash_seed[2]; /* 0, 0: from getrandom() */
	bool debug;         /* emit PH_TRK_LOG_DEBUG lines */
};

struct ph_tracker;

/* initial: totals to continue from (a restarted daemon), or NULL. */
struct ph_tracker *ph_trk_new(const struct ph_trk_config *cfg,
			      const struct ph_trk_ops *ops, void *ctx,
			      const struct ph_ftp_totals *initial);
void ph_trk_free(struct ph_tracker *t);

/*
 * One ring-buffer record (a struct ph_event, possibly shorter than
 * sizeof: data[] may be cut after caplen bytes). now: CLOCK_MONOTONIC_
 * COARSE, the datapath's clock. Bounded work: one segment, at most
 * PH_FTP_MAX_ACTIONS actions per parser call. Returns 0, or -EINVAL for a
 * malformed record (counted, ignored).
 */
int ph_trk_event(struct ph_tracker *t, const void *rec, size_t size,
		 __u64 now);

/*
 * A live control connection found in ftp_ctrl (a tracker starting next to
 * a running datapath): the session is made from the datapath's state,
 * its streams at the datapath's position, its pinhole kept (docs/
 * tracker.md, "Restarts and failures"). Returns 0, -EEXIST (known
 * already), or -errno.
 */
int ph_trk_adopt(struct ph_tracker *t, const struct ph_flow_key *k,
		 const struct ph_ftp_ctrl *c, __u64 now);

/* Expire pinholes, close idle sessions, drop lingering closed ones,
 * publish ftp_sessions / ftp_totals. Call every PH_TRK_SWEEP_NS. */
/* A SYNC record's parser state (@lost: records were lost before it) as
 * ftp.h's ph_ftp_resume, as the tracker applies it. */
struct ph_ftp_resume;
void ph_trk_sync_to_resume(const struct ph_ctrl_sync *d, bool lost,
			   struct ph_ftp_resume *r);

void ph_trk_sweep(struct ph_tracker *t, __u64 now);

/* The policy changed: every open session takes its service's current
 * nat-address list (ops->nat_get), as the datapath does. */
void ph_trk_policy_changed(struct ph_tracker *t);

/* Pinhole lifetime for sessions created from now on (policy reload). */
void ph_trk_set_ttl(struct ph_tracker *t, __u64 ttl_ns);

/* Before exit: unpublish every session (their state dies with us). */
void ph_trk_unpublish(struct ph_tracker *t);

const struct ph_ftp_totals *ph_trk_totals(const struct ph_tracker *t);
__u32 ph_trk_nsessions(const struct ph_tracker *t);

/* FTPS (docs/tracker.md "FTPS sessions"): is the control connection @k
 * an open session the tracker knows as encrypted (implicit, or after a
 * 234)? Is any? */
bool ph_trk_is_ftps(const struct ph_tracker *t, const struct ph_flow_key *k);
bool ph_trk_any_ftps(const struct ph_tracker *t);
/* Count ftps_peers corrections in ftp_totals.ftps_fixed. */
void ph_trk_add_ftps_fixed(struct ph_tracker *t, __u64 n);

/* Names for logs and `pinhole sessions`. */
const char *ph_trk_state_name(__u8 state); /* "plain", "auth", ... */
const char *ph_trk_role_name(__u8 role);   /* "server", "client" */
const char *ph_trk_dir_name(__u8 dir);     /* "in", "out" */
/* "tcp 10.0.0.1:30001 <- 10.0.0.2:*" (in) or "tcp 10.0.0.2:* -> 10.0.0.1:5001" (out). */
void ph_trk_fmt_pinhole(const struct ph_flow_key *k, __u8 dir, char *buf,
			size_t len);
/* "10.0.0.1:30001", "[2001:db8::1]:*" (port 0). */
void ph_trk_fmt_endpoint(const __u8 addr[16], __be16 port, char *buf,
			 size_t len);

/* ------------------------------------------------------------ runner */

/* The pins the tracker and `pinhole sessions` use; -1 when missing. */
struct ph_trk_pins {
	int events, expect, sessions, totals, state, slot_meta, flows,
		ftps_peers, syn_watch, ports, rules, ftp_nat, ftp_ctrl;
};

/* Opens every pin above. Returns 0, -ENOENT (one is missing: no
 * instance, or one without FTP tracking), or -errno. */
int ph_trk_pins_open(struct ph_trk_pins *p, const char *pin_dir);
void ph_trk_pins_close(struct ph_trk_pins *p);

/*
 * One session tracker per pin dir: flock on /run/pinhole/<pin dir
 * escaped>.tracker.lock (separate from the CLI lock, so a running daemon
 * blocks no other command). Returns an fd >= 0, or -PH_EXIT_USER when a
 * tracker already runs (message names its pid), -PH_EXIT_ENV after a
 * message.
 */
int ph_trk_lock(const char *pin_dir);
/* Is a tracker running for pin_dir? *pid when known (else 0). */
bool ph_trk_running(const char *pin_dir, long *pid);

struct ph_trk_run_opts {
	bool syslog; /* log to syslog (daemon facility) instead of stderr */
	/* If set, SIGHUP (when in the stop set) calls hup(hup_ctx) and the
	 * loop goes on (reload) instead of returning. */
	int (*hup)(void *ctx);
	void *hup_ctx;
};

struct ph_trk_runner;

/* Opens the pins and the ring buffer; events are consumed from the first
 * call of ph_trk_runner_loop(). Returns a PH_EXIT_* code after a message. */
int ph_trk_runner_open(struct ph_trk_runner **out, const char *pin_dir,
		       const struct ph_trk_run_opts *o);
/* Runs until a signal of stop (blocked by the caller) arrives: returns
 * it. Returns 0 when the instance disappeared (detached elsewhere), or a
 * negative errno on a fatal error (after a message). */
int ph_trk_runner_loop(struct ph_trk_runner *r, const sigset_t *stop);

/* The socket syslog(3) writes to. */
#define PH_SYSLOG_PATH "/dev/log"
/* Does the runner log to syslog? False with --syslog when nothing listens
 * on PH_SYSLOG_PATH (it then logs to stderr, and said so). */
bool ph_trk_runner_syslog(const struct ph_trk_runner *r);
void ph_trk_runner_close(struct ph_trk_runner *r);

#endif /* PH_USER_TRACKER_H */
