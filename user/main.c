// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pinhole CLI: a command table dispatching to do_<cmd>(). Contract (names,
 * options, exit codes) in docs/cli.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ftp.h"
#include "flows_cmd.h"
#include "ftps.h"
#include "loader.h"
#include "log.h"
#include "maps_io.h"
#include "observe.h"
#include "output.h"
#include "policy.h"
#include "service.h"
#include "show.h"
#include "tracker.h"
#include "upgrade.h"
#include "util.h"
#include "version.h"

/* Options a command accepts (beyond --pin-dir, -v, -j, -h). */
enum {
	O_POLICY = 1 << 0,
	O_MODE = 1 << 1,
	O_FAILSAFE = 1 << 2,
	O_FAIL_OPEN = 1 << 3,
	O_FAIL_CLOSED = 1 << 4,
	O_FLOWS = 1 << 5,
	O_HALF_OPEN = 1 << 6,
	O_ALL = 1 << 7,
	O_SYSLOG = 1 << 8,
	O_JSON = 1 << 9,  /* -j: only commands that print JSON take it */
	O_PRINT = 1 << 10,
	/* observability (user/observe.c) */
	O_BY = 1 << 11,
	O_PROM = 1 << 12,
	O_LISTEN = 1 << 13,
	O_TEXTFILE = 1 << 14,
	O_INTERVAL = 1 << 15,
	O_EVENTS = 1 << 16,
	O_DROP_RATE = 1 << 17,
	O_DROP_BURST = 1 << 18,
	O_COUNT = 1 << 19,
	O_DURATION = 1 << 20,
};
#define O_MONITOR (O_EVENTS | O_DROP_RATE | O_DROP_BURST | O_COUNT | O_DURATION)
#define O_LOAD (O_MODE | O_FAILSAFE | O_FAIL_OPEN | O_FAIL_CLOSED | O_FLOWS | O_HALF_OPEN)

struct ctx {
	char pin_dir[PATH_MAX];
	bool json, all, syslog, print;
	const char *policy;
	enum ph_xdp_mode mode;
	struct ph_load_opts load;
	struct ph_obs_opts obs;
	unsigned int given; /* O_* seen on the command line */
	/* detach: the interfaces it detached (printed at the end with -j) */
	char detached[PH_IFACES_MAX][IF_NAMESIZE];
	int ndetached;
	int argc;           /* positional arguments after the command */
	char **argv;
};

struct cmd {
	const char *name;
	int (*fn)(struct ctx *c);
	unsigned int opts;
	unsigned int caps; /* PH_NEED_* (service.h), checked before anything */
	int min_args, max_args; /* max -1: any */
	const char *usage;
	const char *help;  /* `pinhole help CMD`, `CMD --help` */
};

static const struct cmd *find_cmd(const char *name);
static void usage(FILE *out);

/* --------------------------------------------------------------- shared */

static int load_policy(const char *path, struct ph_policy *pol)
{
	struct ph_policy_error err;
	char msg[PATH_MAX + 1024];

	memset(pol, 0, sizeof(*pol));
	if (!strcmp(path, "-")) {
		/* The instance records the path of its policy (status, show,
		 * reload by path): a pipe has none. */
		pr_warn("--policy -: only 'check' reads a policy from stdin; give a file");
		return PH_EXIT_USER;
	}
	if (!ph_policy_load_file(path, pol, &err))
		return PH_EXIT_OK;
	ph_policy_error_format(&err, msg, sizeof(msg));
	fprintf(stderr, "%s%s\n", ph_log_prio(PH_LOG_WARN), msg);
	return PH_EXIT_USER;
}

struct iface_arg {
	const char *name;
	int ifindex;
};

/* Every name must exist here, and only once; checked before anything
 * is touched. */
static int resolve_ifaces(struct ctx *c, struct iface_arg *out)
{
	for (int i = 0; i < c->argc; i++) {
		const char *name = c->argv[i];

		out[i].name = name;
		out[i].ifindex = strlen(name) < IF_NAMESIZE ?
				 (int)if_nametoindex(name) : 0;
		if (!out[i].ifindex) {
			pr_warn("%s: no such interface (see 'ip link show')", name);
			return PH_EXIT_USER;
		}
		for (int j = 0; j < i; j++)
			if (out[j].ifindex == out[i].ifindex) {
				pr_warn("%s: interface listed twice", name);
				return PH_EXIT_USER;
			}
	}
	return PH_EXIT_OK;
}

static int open_existing(struct ph_instance *inst, const char *pin_dir)
{
	int r = ph_instance_open(inst, pin_dir);

	if (r == -ENOENT) {
		pr_warn("no pinhole instance at %s (nothing attached); start one with 'pinhole attach --policy FILE IFACE'",
			pin_dir);
		return PH_EXIT_USER;
	}
	if (r)
		return r;
	r = ph_instance_need_compatible(inst);
	if (r)
		ph_instance_close(inst);
	return r;
}

static const char *xdp_mode_name(__u8 attach_mode, __u32 flags)
{
	switch (attach_mode) {
	case XDP_ATTACHED_DRV: return "native";
	case XDP_ATTACHED_SKB: return "generic";
	case XDP_ATTACHED_HW: return "offload";
	case XDP_ATTACHED_MULTI: return "multi";
	}
	return flags & XDP_FLAGS_SKB_MODE ? "generic" : "native";
}

/* ---------------------------------------------------------------- check */

/* `check -` reads stdin; errors then name <stdin>:line:col. */
static int do_check(struct ctx *c)
{
	struct ph_policy_error err;
	struct ph_policy pol;
	char msg[PATH_MAX + 1024];
	int r;

	if (c->print && c->json) {
		pr_warn("check: --print prints policy text; -j prints JSON: choose one");
		return PH_EXIT_USER;
	}
	if (strcmp(c->argv[0], "-")) {
		r = load_policy(c->argv[0], &pol);
		if (r)
			return r;
	} else if (ph_policy_load_stream(stdin, "<stdin>", &pol, &err)) {
		ph_policy_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		return PH_EXIT_USER;
	}
	if (c->print)
		ph_policy_print_source(&pol, stdout);
	else
		ph_policy_print_summary(&pol, stdout, c->json);
	ph_policy_free(&pol);
	return PH_EXIT_OK;
}

/* ----------------------------------------------------------------- show */

/* The commands that read an instance: @fn on the instance under
 * --pin-dir, opened for the call and closed after it. */
typedef int (*instance_fn)(struct ph_instance *inst, struct ctx *c);

static int with_instance(struct ctx *c, instance_fn fn)
{
	struct ph_instance inst;
	int r = open_existing(&inst, c->pin_dir);

	if (r)
		return r;
	r = fn(&inst, c);
	ph_instance_close(&inst);
	return r;
}

static int show_on(struct ph_instance *inst, struct ctx *c)
{
	return ph_cmd_show(inst, c->json);
}

static int do_show(struct ctx *c)
{
	return with_instance(c, show_on);
}

/* -------------------------------------------------------- attach / run */

struct attached {
	struct ph_instance inst;
	bool created;
	__u32 generation;
	int n;        /* recs in use */
	int nadopted; /* recs[0..nadopted): taken over from a `run` that died */
	struct ph_iface recs[PH_IFACES_MAX];
};

/* The requested interfaces this instance already carries: refused, or
 * (run) adopted when a `run` attached them (PH_IFF_RUN): that run is gone,
 * since we hold the tracker lock it held. Adopted ones go to a->recs and
 * are flagged in *adopt. */
static int check_not_attached(struct ph_instance *inst,
			      const struct iface_arg *ifs, int nif, bool run,
			      struct attached *a, bool *adopt)
{
	struct ph_iface recs[PH_IFACES_MAX];
	int n = ph_ifaces_list(inst, recs, PH_IFACES_MAX);

	for (int i = 0; i < nif; i++) {
		adopt[i] = false;
		for (int k = 0; k < n; k++) {
			struct ph_iface_live live;

			if (recs[k].ifindex != (__u32)ifs[i].ifindex)
				continue;
			ph_iface_probe(inst, &recs[k], &live);
			if (live.state != PH_IFACE_LIVE)
				continue;
			if (run && (recs[k].flags & PH_IFF_RUN)) {
				adopt[i] = true;
				a->recs[a->n++] = recs[k];
				a->nadopted++;
				continue;
			}
			pr_warn("%s: already attached (pin dir %s); use reload or detach",
				ifs[i].name, inst->pin_dir);
			return PH_EXIT_USER;
		}
	}
	for (int i = 0; i < nif; i++) {
		int r = adopt[i] ? PH_EXIT_OK :
			ph_iface_check_free(ifs[i].name, ifs[i].ifindex);

		if (r)
			return r;
	}
	return PH_EXIT_OK;
}

/* The policy is the instance's: attaching with another one replaces it on
 * the interfaces already attached too. Say so (after the fact). */
static void note_policy_change(const struct ph_instance *inst,
			       const char *old, const char *path)
{
	char abs[PATH_MAX];

	if (!old[0])
		return;
	if (!realpath(path, abs))
		ph_strlcpy(abs, path, sizeof(abs));
	if (strcmp(abs, old))
		pr_info("policy %s replaced %s on every interface of %s", abs,
			old, inst->pin_dir);
}

/* Caller holds the lock. On failure, everything this did is undone (an
 * upgrade stays: the interfaces were filtered before and after it). */
static int attach_ifaces(struct ctx *c, const struct ph_policy *pol,
			 const struct iface_arg *ifs, int nif,
			 struct attached *a, bool run)
{
	char old[sizeof(((struct ph_state *)0)->policy) + 1] = "";
	bool adopt[PH_IFACES_MAX], upgrade;
	struct ph_upgrade_result up;
	struct ph_view v;
	int r;

	memset(a, 0, sizeof(*a));
	r = ph_instance_prepare(&a->inst, c->pin_dir, &c->load, &a->created,
				&upgrade);
	if (r)
		return r;
	if (upgrade) {
		r = ph_upgrade(&a->inst, pol, &up);
		if (r) {
			ph_instance_close(&a->inst);
			return r;
		}
	}
	a->inst.attach_flags = run ? PH_IFF_RUN : 0;
	r = check_not_attached(&a->inst, ifs, nif, run, a, adopt);
	if (r)
		goto undo;
	/* A new instance gets its policy before any packet reaches it; an
	 * existing one keeps enforcing its policy until the flip. */
	if (a->created) {
		r = ph_policy_install(&a->inst, pol, &a->generation);
		if (r)
			goto undo;
	} else if (!ph_view_read(&a->inst, &v)) {
		ph_strlcpy(old, v.st.policy, sizeof(old));
	}
	for (int i = 0; i < nif; i++) {
		if (adopt[i])
			continue;
		r = ph_iface_attach(&a->inst, ifs[i].name, ifs[i].ifindex,
				    c->mode, &a->recs[a->n]);
		if (r)
			goto undo;
		a->n++;
	}
	if (!a->created) {
		r = ph_policy_install(&a->inst, pol, &a->generation);
		if (r)
			goto undo;
		note_policy_change(&a->inst, old, pol->path);
	}
	return PH_EXIT_OK;
undo:
	/* Adopted interfaces stay as they were: enforced. */
	while (a->n > a->nadopted)
		ph_iface_detach(&a->inst, &a->recs[--a->n]);
	ph_instance_close(&a->inst);
	if (a->created)
		ph_instance_remove(c->pin_dir);
	return r;
}

/* attach -j: the instance, its policy and the interfaces attached. */
static void json_attached(const struct ctx *c, const struct attached *a,
			  const char *policy)
{
	struct ph_json j;

	ph_json_init(&j, stdout);
	ph_json_object_begin(&j);
	ph_json_kv_string(&j, "pin_dir", c->pin_dir);
	ph_json_kv_string(&j, "policy", policy);
	ph_json_kv_uint(&j, "generation", a->generation);
	ph_json_kv_bool(&j, "instance_created", a->created);
	ph_json_key(&j, "attached");
	ph_json_array_begin(&j);
	for (int i = 0; i < a->n; i++) {
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "name", a->recs[i].name);
		ph_json_kv_uint(&j, "ifindex", a->recs[i].ifindex);
		ph_json_kv_string(&j, "xdp_mode",
				  xdp_mode_name(0, a->recs[i].xdp_flags));
		ph_json_kv_uint(&j, "xdp_prog_id", a->recs[i].xdp_prog_id);
		ph_json_kv_string(&j, "xdp_attach", a->recs[i].xdp_dispatcher ?
				  "dispatcher" : "direct");
		ph_json_kv_uint(&j, "tc_prog_id", a->recs[i].tc_prog_id);
		ph_json_object_end(&j);
	}
	ph_json_array_end(&j);
	ph_json_object_end(&j);
	ph_json_finish(&j);
}

static void print_attached(const struct attached *a, const char *verb)
{
	for (int i = 0; i < a->n; i++)
		printf("pinhole: %s %s (%s XDP%s, prog ids %u/%u)\n",
		       i < a->nadopted ? "adopted" : verb, a->recs[i].name,
		       xdp_mode_name(0, a->recs[i].xdp_flags),
		       a->recs[i].xdp_dispatcher ? " in libxdp's dispatcher" : "",
		       a->recs[i].xdp_prog_id, a->recs[i].tc_prog_id);
}

/* Root, policy, interfaces: all checked before anything is touched. */
static int attach_prepare(struct ctx *c, struct ph_policy *pol,
			  struct iface_arg *ifs)
{
	int r;

	if (!c->policy) {
		pr_warn("missing --policy FILE (check it first with 'pinhole check FILE')");
		return PH_EXIT_USER;
	}
	r = load_policy(c->policy, pol);
	if (r)
		return r;
	r = resolve_ifaces(c, ifs);
	if (!r)
		r = ph_bpffs_prepare(c->pin_dir);
	if (r)
		ph_policy_free(pol);
	return r;
}

static int do_attach(struct ctx *c)
{
	struct iface_arg ifs[PH_IFACES_MAX];
	struct ph_policy pol;
	struct attached *a;
	int r, lock;

	if (c->argc > PH_IFACES_MAX) {
		pr_warn("at most %d interfaces per instance", PH_IFACES_MAX);
		return PH_EXIT_USER;
	}
	r = attach_prepare(c, &pol, ifs);
	if (r)
		return r;
	a = calloc(1, sizeof(*a));
	lock = a ? ph_lock(c->pin_dir) : -PH_EXIT_ENV;
	if (lock < 0) {
		free(a);
		ph_policy_free(&pol);
		return -lock;
	}
	r = attach_ifaces(c, &pol, ifs, c->argc, a, false);
	if (!r && c->json) {
		struct ph_view v;

		json_attached(c, a, ph_view_read(&a->inst, &v) ? pol.path :
				    v.st.policy);
		ph_instance_close(&a->inst);
	} else if (!r) {
		print_attached(a, "attached");
		printf("pinhole: enforcing %s (generation %u, pin dir %s)\n",
		       pol.path, a->generation, c->pin_dir);
		ph_instance_close(&a->inst);
	}
	ph_unlock(lock);
	ph_policy_free(&pol);
	free(a);
	return r;
}

/* Detach what `run` attached, if it is still ours; remove the instance
 * when nothing is left on it. */
static int run_teardown(struct ctx *c, const struct attached *a)
{
	struct ph_iface recs[PH_IFACES_MAX];
	struct ph_instance inst;
	int lock, r = PH_EXIT_OK, n;

	lock = ph_lock(c->pin_dir);
	if (lock < 0)
		return -lock;
	if (ph_instance_open(&inst, c->pin_dir)) {
		ph_unlock(lock); /* someone detached everything already */
		return PH_EXIT_OK;
	}
	n = ph_ifaces_list(&inst, recs, PH_IFACES_MAX);
	for (int i = 0; i < a->n; i++)
		for (int k = 0; k < n; k++)
			if (recs[k].ifindex == a->recs[i].ifindex &&
			    recs[k].attached_ns == a->recs[i].attached_ns) {
				int d = ph_iface_detach(&inst, &recs[k]);

				r = r ? r : d;
				if (!d)
					printf("pinhole: detached %s\n",
					       recs[k].name);
			}
	n = ph_ifaces_list(&inst, recs, PH_IFACES_MAX);
	ph_instance_close(&inst);
	if (n == 0)
		ph_instance_remove(c->pin_dir);
	ph_unlock(lock);
	return r;
}

/* The policy recorded in state (the one in force), compiled. */
static int load_recorded_policy(const struct ph_instance *inst,
				struct ph_policy *pol)
{
	struct ph_state st;

	if (ph_state_read(inst, &st) || !st.policy[0]) {
		pr_warn("%s records no policy; give one with --policy FILE",
			inst->pin_dir);
		return PH_EXIT_USER;
	}
	return load_policy(st.policy, pol);
}

/* Reload the instance's recorded policy (SIGHUP of run and daemon, or
 * `reload` without --policy); fn of ph_trk_run_opts.hup. An error leaves
 * the old policy in force and the process running. */
static int reload_recorded(void *ctx)
{
	struct ctx *c = ctx;
	struct ph_instance inst;
	struct ph_policy pol;
	char status[PATH_MAX + 64];
	__u32 gen = 0;
	int r, lock;

	ph_notify_reloading();
	lock = ph_lock(c->pin_dir);
	if (lock < 0) {
		ph_notify_ready("reload failed: cannot lock");
		return -lock;
	}
	r = ph_instance_open(&inst, c->pin_dir);
	if (r == 0) {
		r = ph_instance_need_compatible(&inst);
		if (!r)
			r = load_recorded_policy(&inst, &pol);
		if (!r) {
			r = ph_policy_install(&inst, &pol, &gen);
			if (!r)
				pr_info("SIGHUP: reloaded %s (generation %u)",
					pol.path, gen);
			snprintf(status, sizeof(status),
				 r ? "reload of %s failed; previous policy in force" :
				     "enforcing %s (generation %u)",
				 pol.path, gen);
			ph_policy_free(&pol);
		} else {
			snprintf(status, sizeof(status),
				 "reload failed; previous policy in force");
		}
		ph_instance_close(&inst);
	} else {
		snprintf(status, sizeof(status), "reload failed: no instance");
		r = PH_EXIT_USER;
	}
	ph_unlock(lock);
	ph_notify_ready(status);
	return r;
}

/* The tracker loop ended without a signal: the instance's pins went
 * away (detach elsewhere), or another build upgraded it in place.
 * Returns true to track again (same build), false to stop; *replaced
 * when another build took over. */
static bool instance_follow(const char *pin_dir, bool *replaced)
{
	struct ph_instance inst;
	bool same;

	*replaced = false;
	if (ph_instance_open(&inst, pin_dir))
		return false;
	same = inst.compatible && !strcmp(inst.build, ph_build_id());
	if (!same) {
		pr_info("%s was upgraded in place to %s by another pinhole; this %s (%s) stops without detaching, so that one of the new build takes over (exit %d)",
			pin_dir, inst.build[0] ? inst.build : "another build",
			"process", ph_build_id(), PH_EXIT_REPLACED);
		*replaced = true;
	} else {
		pr_info("%s was replaced by an instance of this build; tracking it",
			pin_dir);
	}
	ph_instance_close(&inst);
	return same;
}

/* Run the tracker until a stop signal (returned, > 0), a fatal error
 * (< 0), the instance's removal (0) or its takeover by another build
 * (*replaced). SIGHUP reloads. */
static int track(struct ctx *c, struct ph_trk_runner *trk,
		 const struct ph_trk_run_opts *topts, const sigset_t *stop,
		 bool *replaced)
{
	int sig;

	*replaced = false;
	for (;;) {
		sig = ph_trk_runner_loop(trk, stop);
		ph_trk_runner_close(trk);
		if (sig != 0 || !instance_follow(c->pin_dir, replaced))
			return sig;
		if (ph_trk_runner_open(&trk, c->pin_dir, topts))
			return -EIO;
	}
}

static void block_stop_signals(sigset_t *stop, sigset_t *old)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(stop);
	sigaddset(stop, SIGINT);
	sigaddset(stop, SIGTERM);
	sigaddset(stop, SIGHUP);
	sigprocmask(SIG_BLOCK, stop, old);
}

static int do_run(struct ctx *c)
{
	struct iface_arg ifs[PH_IFACES_MAX];
	struct ph_trk_run_opts topts = { .syslog = c->syslog,
					 .hup = reload_recorded, .hup_ctx = c };
	struct ph_trk_runner *trk = NULL;
	char status[PATH_MAX + 128];
	struct ph_policy pol;
	struct attached *a;
	sigset_t stop, old;
	bool replaced;
	int r, lock, trk_lock, sig, o;

	if (c->argc > PH_IFACES_MAX) {
		pr_warn("at most %d interfaces per instance", PH_IFACES_MAX);
		return PH_EXIT_USER;
	}
	r = attach_prepare(c, &pol, ifs);
	if (r)
		return r;
	/* One session tracker per instance: refuse before touching it. */
	trk_lock = ph_trk_lock(c->pin_dir);
	if (trk_lock < 0) {
		ph_policy_free(&pol);
		return -trk_lock;
	}
	a = calloc(1, sizeof(*a));
	lock = a ? ph_lock(c->pin_dir) : -PH_EXIT_ENV;
	if (lock < 0) {
		free(a);
		ph_unlock(trk_lock);
		ph_policy_free(&pol);
		return -lock;
	}
	/* From here a stop signal waits until we can act on it: it is then
	 * taken by the tracker's loop and detaches cleanly. */
	block_stop_signals(&stop, &old);
	r = attach_ifaces(c, &pol, ifs, c->argc, a, true);
	ph_unlock(lock);
	if (r)
		goto out;
	/* "ready" means tracked too: the ring buffer is open before it. */
	r = ph_trk_runner_open(&trk, c->pin_dir, &topts);
	if (r) {
		ph_instance_close(&a->inst);
		run_teardown(c, a);
		goto out;
	}

	if (a->nadopted)
		print_attached(a, "attached");
	printf("pinhole: ready: enforcing %s on", pol.path);
	o = snprintf(status, sizeof(status), "enforcing %s on", pol.path);
	for (int i = 0; i < a->n; i++) {
		printf(" %s", a->recs[i].name);
		if (o > 0 && (size_t)o < sizeof(status))
			o += snprintf(status + o, sizeof(status) - (size_t)o,
				      " %s", a->recs[i].name);
	}
	printf(" (generation %u, pin dir %s); SIGINT or SIGTERM detaches, SIGHUP reloads\n",
	       a->generation, c->pin_dir);
	fflush(stdout);
	ph_notify_ready(status);

	sig = track(c, trk, &topts, &stop, &replaced);
	ph_notify_stopping();
	ph_instance_close(&a->inst);
	if (replaced) {
		r = PH_EXIT_REPLACED;
		goto out;
	}
	if (sig > 0)
		pr_debug("got signal %d; detaching", sig);
	r = run_teardown(c, a);
	if (!r && sig < 0)
		r = PH_EXIT_ENV;
out:
	sigprocmask(SIG_SETMASK, &old, NULL);
	ph_unlock(trk_lock);
	ph_policy_free(&pol);
	free(a);
	return r;
}

/*
 * The session tracker alone, for an instance made by `attach`. It holds
 * only the tracker lock, so reload/detach/status keep working meanwhile;
 * a detach of the whole instance stops it (exit 0).
 */
static int do_daemon(struct ctx *c)
{
	struct ph_trk_run_opts topts = { .syslog = c->syslog,
					 .hup = reload_recorded, .hup_ctx = c };
	struct ph_trk_runner *trk;
	struct ph_instance inst;
	char status[PATH_MAX + 64];
	sigset_t stop, old;
	bool replaced = false;
	int r, lock, sig;

	r = ph_instance_open(&inst, c->pin_dir);
	if (r == -ENOENT) {
		pr_warn("no pinhole instance at %s: run attach first (pinhole --pin-dir %s attach --policy FILE IFACE)",
			c->pin_dir, c->pin_dir);
		return PH_EXIT_USER;
	}
	if (r)
		return r;
	r = ph_instance_need_compatible(&inst);
	ph_instance_close(&inst);
	if (r)
		return r;
	lock = ph_trk_lock(c->pin_dir);
	if (lock < 0)
		return -lock;
	block_stop_signals(&stop, &old);
	r = ph_trk_runner_open(&trk, c->pin_dir, &topts);
	if (!r) {
		printf("pinhole: ready: tracking FTP sessions of %s (pid %ld%s); SIGINT or SIGTERM stops, SIGHUP reloads the policy\n",
		       c->pin_dir, (long)getpid(),
		       ph_trk_runner_syslog(trk) ? ", logging to syslog" : "");
		fflush(stdout);
		snprintf(status, sizeof(status), "tracking FTP sessions of %s",
			 c->pin_dir);
		ph_notify_ready(status);
		sig = track(c, trk, &topts, &stop, &replaced);
		ph_notify_stopping();
		if (sig > 0)
			pr_debug("got signal %d; stopping", sig);
		r = replaced ? PH_EXIT_REPLACED :
		    sig < 0 ? PH_EXIT_ENV : PH_EXIT_OK;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	ph_unlock(lock);
	return r;
}

/* --------------------------------------------------------------- reload */

/* reload/upgrade: compile --policy if given (*have), before anything is
 * touched, then take the CLI lock. 0 or an exit code (nothing held). */
static int policy_then_lock(struct ctx *c, struct ph_policy *pol, bool *have,
			    int *lock)
{
	int r;

	*have = false;
	if (c->policy) {
		r = load_policy(c->policy, pol);
		if (r)
			return r;
		*have = true;
	}
	*lock = ph_lock(c->pin_dir);
	if (*lock < 0) {
		if (*have)
			ph_policy_free(pol);
		*have = false;
		return -*lock;
	}
	return PH_EXIT_OK;
}

static int do_reload(struct ctx *c)
{
	struct ph_instance inst;
	struct ph_policy pol;
	bool have = false;
	__u32 gen = 0;
	int r, lock;

	r = policy_then_lock(c, &pol, &have, &lock);
	if (r)
		return r; /* nothing touched: the old policy stays */
	r = open_existing(&inst, c->pin_dir);
	if (!r && !have) {
		/* No --policy: the one recorded in state, read again. */
		r = load_recorded_policy(&inst, &pol);
		have = !r;
	}
	if (!r)
		r = ph_policy_install(&inst, &pol, &gen);
	ph_instance_close(&inst);
	if (!r && c->json) {
		char abs[PATH_MAX];
		struct ph_json j;

		ph_json_init(&j, stdout);
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "pin_dir", c->pin_dir);
		/* The path as stored (status, show): absolute. */
		ph_json_kv_string(&j, "policy",
				  realpath(pol.path, abs) ? abs : pol.path);
		ph_json_kv_uint(&j, "generation", gen);
		ph_json_object_end(&j);
		ph_json_finish(&j);
	} else if (!r) {
		printf("pinhole: reloaded %s (generation %u, pin dir %s)\n",
		       pol.path, gen, c->pin_dir);
	}
	ph_unlock(lock);
	if (have)
		ph_policy_free(&pol);
	return r;
}

/* -------------------------------------------------------------- upgrade */

static int do_upgrade(struct ctx *c)
{
	struct ph_upgrade_result res;
	struct ph_instance inst;
	struct ph_policy pol;
	bool have = false;
	__u32 gen = 0;
	int r, lock;

	r = policy_then_lock(c, &pol, &have, &lock);
	if (r)
		return r;
	r = ph_instance_open(&inst, c->pin_dir);
	if (r == -ENOENT) {
		pr_warn("no pinhole instance at %s (nothing attached)", c->pin_dir);
		r = PH_EXIT_USER;
		goto out_unlock;
	}
	if (r)
		goto out_unlock;
	if (inst.compatible && !strcmp(inst.build, ph_build_id())) {
		printf("pinhole: %s already runs this build (%s)\n", c->pin_dir,
		       inst.build);
		if (have)
			r = ph_policy_install(&inst, &pol, &gen);
		goto out;
	}
	/* Another layout rebuilds the policy: the recorded one by default. */
	if (!have && !inst.compatible) {
		r = load_recorded_policy(&inst, &pol);
		if (r)
			goto out;
		have = true;
	}
	r = ph_upgrade(&inst, have ? &pol : NULL, &res);
	if (!r && have && !res.migrated)
		r = ph_policy_install(&inst, &pol, &gen);
	if (!r)
		printf("pinhole: upgraded %s on %d interface%s: %s (layout %u) -> %s (layout %u)%s\n",
		       c->pin_dir, res.nifaces, res.nifaces == 1 ? "" : "s",
		       res.from_build[0] ? res.from_build : "?", res.from_layout,
		       ph_build_id(), PH_LAYOUT_VERSION,
		       res.migrated ? ", flows migrated" : ", flows kept");
out:
	ph_instance_close(&inst);
out_unlock:
	ph_unlock(lock);
	if (have)
		ph_policy_free(&pol);
	return r;
}

/* --------------------------------------------------------------- detach */

static const struct ph_iface *find_rec(const struct ph_iface *recs, int n,
				       const char *name, int ifindex)
{
	for (int k = 0; k < n; k++) {
		if (ifindex && recs[k].ifindex == (__u32)ifindex)
			return &recs[k];
		/* The interface is gone: its record still names it. */
		if (!ifindex && !strncmp(recs[k].name, name, sizeof(recs[k].name)))
			return &recs[k];
	}
	return NULL;
}

/* "detached NAME" now, or in the JSON document at the end (-j). */
static void said_detached(struct ctx *c, const char *name)
{
	if (!c->json) {
		printf("pinhole: detached %s\n", name);
		return;
	}
	if (c->ndetached < PH_IFACES_MAX)
		ph_strlcpy(c->detached[c->ndetached++], name, IF_NAMESIZE);
}

static void json_detached(const struct ctx *c, bool removed)
{
	struct ph_json j;

	ph_json_init(&j, stdout);
	ph_json_object_begin(&j);
	ph_json_kv_string(&j, "pin_dir", c->pin_dir);
	ph_json_key(&j, "detached");
	ph_json_array_begin(&j);
	for (int i = 0; i < c->ndetached; i++)
		ph_json_string(&j, c->detached[i]);
	ph_json_array_end(&j);
	ph_json_kv_bool(&j, "instance_removed", removed);
	ph_json_object_end(&j);
	ph_json_finish(&j);
}

static int detach_named(struct ctx *c, struct ph_instance *inst,
			const struct ph_iface *recs, int n)
{
	const struct ph_iface *sel[PH_IFACES_MAX];
	int r = PH_EXIT_OK;

	if (c->argc > PH_IFACES_MAX) {
		pr_warn("at most %d interfaces per instance", PH_IFACES_MAX);
		return PH_EXIT_USER;
	}
	for (int i = 0; i < c->argc; i++) {
		const char *name = c->argv[i];
		int ifindex = strlen(name) < IF_NAMESIZE ?
			      (int)if_nametoindex(name) : 0;
		struct ph_iface_live live;

		sel[i] = find_rec(recs, n, name, ifindex);
		if (!sel[i] && !ifindex) {
			pr_warn("%s: no such interface (see 'ip link show')", name);
			return PH_EXIT_USER;
		}
		if (!sel[i]) {
			pr_warn("%s: not attached (pin dir %s)", name,
				c->pin_dir);
			return PH_EXIT_USER;
		}
		ph_iface_probe(inst, sel[i], &live);
		if (live.state == PH_IFACE_FOREIGN) {
			pr_warn("%s: attached from another network namespace; run detach there",
				name);
			return PH_EXIT_USER;
		}
	}
	for (int i = 0; i < c->argc; i++) {
		int d = ph_iface_detach(inst, sel[i]);

		r = r ? r : d;
		if (!d)
			said_detached(c, c->argv[i]);
	}
	return r;
}

static int detach_all(struct ctx *c, struct ph_instance *inst,
		      const struct ph_iface *recs, int n)
{
	int r = PH_EXIT_OK;

	for (int k = 0; k < n; k++) {
		struct ph_iface_live live;

		ph_iface_probe(inst, &recs[k], &live);
		if (live.state == PH_IFACE_FOREIGN) {
			pr_warn("%s: attached from another network namespace; run 'detach --all' there",
				recs[k].name);
			return PH_EXIT_USER;
		}
	}
	for (int k = 0; k < n; k++) {
		int d = ph_iface_detach(inst, &recs[k]);

		r = r ? r : d;
		if (!d)
			said_detached(c, recs[k].name);
	}
	return r;
}

static int do_detach(struct ctx *c)
{
	struct ph_iface recs[PH_IFACES_MAX];
	struct ph_instance inst;
	int r, n, lock;
	bool removed;

	if (c->all == (c->argc > 0)) {
		pr_warn("detach: name interfaces or give --all (not both)");
		return PH_EXIT_USER;
	}
	lock = ph_lock(c->pin_dir);
	if (lock < 0)
		return -lock;
	r = ph_instance_open(&inst, c->pin_dir);
	if (r == -ENOENT) {
		ph_unlock(lock);
		if (c->all) {
			/* The state asked for holds already: not an error
			 * (scripts and cleanup stacks run it blindly). */
			pr_info("nothing attached (no pinhole instance at %s); nothing to do",
				c->pin_dir);
			if (c->json)
				json_detached(c, false);
			return PH_EXIT_OK;
		}
		pr_warn("%s: not attached (pin dir %s)", c->argv[0], c->pin_dir);
		return PH_EXIT_USER;
	}
	if (r) {
		ph_unlock(lock);
		return r;
	}
	if (!inst.compatible)
		pr_info("%s: %s; detaching anyway", c->pin_dir, inst.why);
	n = ph_ifaces_list(&inst, recs, PH_IFACES_MAX);
	if (n < 0)
		n = 0;
	r = c->all ? detach_all(c, &inst, recs, n) :
		     detach_named(c, &inst, recs, n);
	n = ph_ifaces_list(&inst, recs, PH_IFACES_MAX);
	ph_instance_close(&inst);
	removed = n <= 0 && r != PH_EXIT_USER;
	if (removed) {
		ph_instance_remove(c->pin_dir);
		pr_debug("last interface detached; removed %s", c->pin_dir);
	}
	ph_unlock(lock);
	if (c->json && r != PH_EXIT_USER)
		json_detached(c, removed);
	return r;
}

/* --------------------------------------------------------------- status */

/* Prints an indented table, or "(none)" when it has no rows, and frees it. */
static void indented_table_done(struct ph_table *t)
{
	if (t->nrows)
		ph_table_print(t, stdout, "  ");
	else
		printf("  (none)\n");
	ph_table_free(t);
}

static int do_status(struct ctx *c)
{
	static const char *const hdr[] = { "NAME", "|IFINDEX", "XDP", "|XDP PROG",
					   "|TC PROG", "STATE", "|ATTACHED" };
	static const struct { enum ph_map_id id; size_t key; } fill[] = {
		{ PH_MAP_FLOWS, sizeof(struct ph_flow_key) },
		{ PH_MAP_HALF_OPEN, sizeof(struct ph_flow_key) },
		{ PH_MAP_EXPECT, sizeof(struct ph_flow_key) },
		{ PH_MAP_FTPS_PEERS, sizeof(struct ph_ftps_peer_key) },
	};
	struct ph_iface recs[PH_IFACES_MAX];
	struct ph_iface_live live[PH_IFACES_MAX];
	__u64 count[ARRAY_SIZE(fill)], expired[ARRAY_SIZE(fill)] = {};
	bool partial[ARRAY_SIZE(fill)] = {};
	__u64 ring_used = 0;
	__u32 ring_size = 0;
	struct ph_instance inst;
	struct ph_view v;
	struct ph_table t;
	__u64 now = ph_now_ns();
	char age[32];
	int r, n, ring_err;
	long trk_pid = 0;
	bool trk;

	r = open_existing(&inst, c->pin_dir);
	if (r)
		return r;
	if (ph_view_read(&inst, &v)) {
		pr_warn("cannot read %s/state: %s", c->pin_dir, strerror(errno));
		ph_instance_close(&inst);
		return PH_EXIT_ENV;
	}
	n = ph_ifaces_list(&inst, recs, PH_IFACES_MAX);
	if (n < 0)
		n = 0;
	for (int i = 0; i < n; i++)
		ph_iface_probe(&inst, &recs[i], &live[i]);
	/* fill[0] and [1] are flows and half_open: counted with their
	 * expired entries in one walk. */
	ph_flows_count(&inst, count, expired, &partial[0]);
	partial[1] = partial[0];
	for (size_t i = 2; i < ARRAY_SIZE(fill); i++)
		ph_map_count(inst.fd[fill[i].id], fill[i].key,
			     inst.max_entries[fill[i].id], &count[i],
			     &partial[i]);
	ring_err = ph_ringbuf_fill(c->pin_dir, "events", &ring_used, &ring_size);
	trk = ph_trk_running(c->pin_dir, &trk_pid);
	ph_fmt_duration(now - v.meta[v.st.active_slot].loaded_ns, age,
			sizeof(age));

	if (c->json) {
		struct ph_json j;

		ph_json_init(&j, stdout);
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "pin_dir", c->pin_dir);
		ph_json_kv_uint(&j, "layout_version", v.st.layout_version);
		ph_json_kv_string(&j, "build", inst.build);
		ph_json_kv_string(&j, "policy", v.st.policy);
		ph_json_kv_uint(&j, "generation", v.st.generation);
		ph_json_kv_uint(&j, "active_slot", v.st.active_slot);
		ph_json_kv_uint(&j, "policy_age_s",
				(now - v.meta[v.st.active_slot].loaded_ns) /
					1000000000ull);
		ph_json_kv_bool(&j, "fail_open", v.st.fail_open);
		ph_json_kv_uint(&j, "failsafe_port", v.st.failsafe_port);
		ph_json_key(&j, "programs");
		ph_json_object_begin(&j);
		ph_json_kv_uint(&j, "xdp", inst.xdp_prog_id);
		ph_json_kv_uint(&j, "tc", inst.tc_prog_id);
		ph_json_object_end(&j);
		ph_json_key(&j, "interfaces");
		ph_json_array_begin(&j);
		for (int i = 0; i < n; i++) {
			ph_json_object_begin(&j);
			ph_json_kv_string(&j, "name", recs[i].name);
			ph_json_kv_uint(&j, "ifindex", recs[i].ifindex);
			ph_json_kv_string(&j, "xdp_mode",
					  xdp_mode_name(live[i].xdp_attach_mode,
							recs[i].xdp_flags));
			ph_json_kv_uint(&j, "xdp_prog_id", live[i].xdp_prog_id);
			ph_json_kv_string(&j, "xdp_attach",
					  recs[i].xdp_dispatcher ? "dispatcher" :
					  "direct");
			ph_json_kv_uint(&j, "tc_prog_id", live[i].tc_prog_id);
			ph_json_kv_string(&j, "state",
					  live[i].state == PH_IFACE_LIVE ? "attached" :
					  live[i].state == PH_IFACE_FOREIGN ? "other-netns" :
					  "gone");
			ph_json_kv_uint(&j, "attached_s",
					(now - recs[i].attached_ns) / 1000000000ull);
			ph_json_object_end(&j);
		}
		ph_json_array_end(&j);
		ph_json_key(&j, "maps");
		ph_json_object_begin(&j);
		for (size_t i = 0; i < ARRAY_SIZE(fill); i++) {
			ph_json_key(&j, ph_map_name(fill[i].id));
			ph_json_object_begin(&j);
			ph_json_kv_uint(&j, "entries", count[i]);
			ph_json_kv_uint(&j, "max_entries",
					inst.max_entries[fill[i].id]);
			if (i < 2)
				ph_json_kv_uint(&j, "expired", expired[i]);
			/* Cut short by the time budget: a lower bound. */
			ph_json_kv_bool(&j, "partial", partial[i]);
			ph_json_object_end(&j);
		}
		if (!ring_err) {
			ph_json_key(&j, "events");
			ph_json_object_begin(&j);
			ph_json_kv_string(&j, "type", "ringbuf");
			ph_json_kv_uint(&j, "bytes_used", ring_used);
			ph_json_kv_uint(&j, "bytes", ring_size);
			ph_json_kv_bool(&j, "tracker_running", trk);
			ph_json_object_end(&j);
		}
		ph_json_object_end(&j);
		ph_json_object_end(&j);
		ph_json_finish(&j);
		ph_instance_close(&inst);
		return PH_EXIT_OK;
	}

	printf("instance    %s (layout v%u)\n", c->pin_dir, v.st.layout_version);
	printf("build       %s%s\n", inst.build[0] ? inst.build : "(not recorded)",
	       strcmp(inst.build, ph_build_id()) ? " (not this binary's: see 'pinhole help upgrade')" : "");
	printf("policy      %s\n", v.st.policy[0] ? v.st.policy : "(none)");
	printf("generation  %u (slot %u, loaded %s ago)\n", v.st.generation,
	       v.st.active_slot, age);
	printf("on failure  %s", v.st.fail_open ? "fail-open" : "fail-closed");
	if (v.st.failsafe_port)
		printf("; failsafe port %u always open", v.st.failsafe_port);
	printf("\nprograms    xdp id %u, tc id %u\n", inst.xdp_prog_id,
	       inst.tc_prog_id);
	printf("interfaces\n");
	ph_table_init(&t, ARRAY_SIZE(hdr), hdr);
	for (int i = 0; i < n; i++) {
		char idx[16], xid[16], tid[16], mode[32];
		const char *row[ARRAY_SIZE(hdr)] = {
			recs[i].name, idx, mode, xid, tid,
			live[i].state == PH_IFACE_LIVE ? "attached" :
			live[i].state == PH_IFACE_FOREIGN ? "other netns" :
			"gone", age,
		};

		snprintf(idx, sizeof(idx), "%u", recs[i].ifindex);
		snprintf(mode, sizeof(mode), "%s%s",
			 xdp_mode_name(live[i].xdp_attach_mode, recs[i].xdp_flags),
			 recs[i].xdp_dispatcher ? " (dispatcher)" : "");
		snprintf(xid, sizeof(xid), "%u", live[i].xdp_prog_id);
		snprintf(tid, sizeof(tid), "%u", live[i].tc_prog_id);
		ph_fmt_duration(now - recs[i].attached_ns, age, sizeof(age));
		ph_table_add(&t, row);
	}
	indented_table_done(&t);
	printf("maps\n");
	for (size_t i = 0; i < ARRAY_SIZE(fill); i++) {
		printf("  %-10s %llu / %u", ph_map_name(fill[i].id),
		       (unsigned long long)count[i],
		       inst.max_entries[fill[i].id]);
		if (expired[i])
			printf(" (%llu expired, not yet removed)",
			       (unsigned long long)expired[i]);
		if (partial[i])
			printf(" (at least: counting took too long)");
		printf("\n");
	}
	if (!ring_err)
		printf("  %-10s ring buffer, %llu of %u bytes waiting (%s)\n",
		       "events", (unsigned long long)ring_used, ring_size,
		       trk ? "the tracker reads it" :
		       "no tracker reads it: start 'pinhole daemon'");
	ph_instance_close(&inst);
	return PH_EXIT_OK;
}

/* ---------------------------------------------------------------- stats */

static int do_stats(struct ctx *c)
{
	static const char *const hdr[] = { "REASON", "|IN PACKETS", "|IN BYTES",
					   "|OUT PACKETS", "|OUT BYTES",
					   "DESCRIPTION" };
	struct ph_counter sum[PH_COUNTER_ENTRIES];
	struct ph_counter tot[2][PH_DIR_MAX] = {}; /* [drop][dir] */
	struct ph_instance inst;
	struct ph_view v;
	struct ph_table t;
	int r, err;

	r = open_existing(&inst, c->pin_dir);
	if (r)
		return r;
	if (c->obs.prometheus || (c->obs.by && strcmp(c->obs.by, "reason"))) {
		r = ph_obs_stats(&inst, &c->obs, c->json);
		ph_instance_close(&inst);
		return r;
	}
	err = ph_counters_read(&inst, sum);
	if (!err)
		err = ph_view_read(&inst, &v);
	ph_instance_close(&inst);
	if (err) {
		pr_warn("cannot read counters from %s: %s", c->pin_dir,
			strerror(-err));
		return PH_EXIT_ENV;
	}
	for (int rs = 0; rs < PH_R_MAX; rs++)
		for (int d = 0; d < PH_DIR_MAX; d++) {
			const struct ph_counter *x = &sum[PH_COUNTER_IDX(d, rs)];

			tot[PH_REASON_IS_DROP(rs)][d].packets += x->packets;
			tot[PH_REASON_IS_DROP(rs)][d].bytes += x->bytes;
		}

	if (c->json) {
		struct ph_json j;

		ph_json_init(&j, stdout);
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "pin_dir", c->pin_dir);
		ph_json_kv_uint(&j, "generation", v.st.generation);
		ph_json_key(&j, "totals");
		ph_json_object_begin(&j);
		for (int drop = 0; drop < 2; drop++) {
			ph_json_key(&j, drop ? "drop" : "pass");
			ph_json_object_begin(&j);
			ph_json_kv_counter(&j, "in", &tot[drop][PH_DIR_IN]);
			ph_json_kv_counter(&j, "out", &tot[drop][PH_DIR_OUT]);
			ph_json_object_end(&j);
		}
		ph_json_object_end(&j);
		ph_json_key(&j, "reasons");
		ph_json_array_begin(&j);
		for (int rs = 0; rs < PH_R_MAX; rs++) {
			ph_json_object_begin(&j);
			ph_json_kv_string(&j, "name", ph_reasons[rs].name);
			ph_json_kv_string(&j, "verdict",
					  PH_REASON_IS_DROP(rs) ? "drop" : "pass");
			ph_json_kv_string(&j, "description", ph_reasons[rs].text);
			ph_json_kv_counter(&j, "in", &sum[PH_COUNTER_IDX(PH_DIR_IN, rs)]);
			ph_json_kv_counter(&j, "out", &sum[PH_COUNTER_IDX(PH_DIR_OUT, rs)]);
			ph_json_object_end(&j);
		}
		ph_json_array_end(&j);
		ph_json_object_end(&j);
		ph_json_finish(&j);
		return PH_EXIT_OK;
	}

	ph_table_init(&t, ARRAY_SIZE(hdr), hdr);
	for (int rs = 0; rs < PH_R_MAX; rs++) {
		const struct ph_counter *in = &sum[PH_COUNTER_IDX(PH_DIR_IN, rs)];
		const struct ph_counter *out = &sum[PH_COUNTER_IDX(PH_DIR_OUT, rs)];
		char ip[24], ib[24], op[24], ob[24];
		const char *row[] = { ph_reasons[rs].name, ip, ib, op, ob,
				      ph_reasons[rs].text };

		if (!ph_log_verbose() && !in->packets && !out->packets)
			continue;
		snprintf(ip, sizeof(ip), "%llu", (unsigned long long)in->packets);
		snprintf(ib, sizeof(ib), "%llu", (unsigned long long)in->bytes);
		snprintf(op, sizeof(op), "%llu", (unsigned long long)out->packets);
		snprintf(ob, sizeof(ob), "%llu", (unsigned long long)out->bytes);
		ph_table_add(&t, row);
	}
	printf("pin dir %s, policy generation %u\n", c->pin_dir,
	       v.st.generation);
	printf("passed: in %llu packets, out %llu; dropped: in %llu, out %llu\n",
	       (unsigned long long)tot[0][PH_DIR_IN].packets,
	       (unsigned long long)tot[0][PH_DIR_OUT].packets,
	       (unsigned long long)tot[1][PH_DIR_IN].packets,
	       (unsigned long long)tot[1][PH_DIR_OUT].packets);
	if (t.nrows)
		ph_table_print(&t, stdout, "");
	else
		printf("(no packets counted yet; -v lists every reason)\n");
	ph_table_free(&t);
	return PH_EXIT_OK;
}

/* ---------------------------------------------------------------- flows */

static int flows_on(struct ph_instance *inst, struct ctx *c)
{
	return ph_cmd_flows(inst, c->json, c->argc, c->argv);
}

static int do_flows(struct ctx *c)
{
	bool change = c->argc && (!strcmp(c->argv[0], "delete") ||
				  !strcmp(c->argv[0], "flush"));
	int lock = -1, r;

	if (change) {
		lock = ph_lock(c->pin_dir);
		if (lock < 0)
			return -lock;
	}
	r = with_instance(c, flows_on);
	if (lock >= 0)
		ph_unlock(lock);
	return r;
}

/* ------------------------------------------------------------- sessions */

struct sess_row {
	struct ph_flow_key key;
	struct ph_ftp_session_info i;
};

struct hole_row {
	struct ph_flow_key key;
	struct ph_expect e;
};

static int cmp_sess(const void *a, const void *b)
{
	const struct sess_row *x = a, *y = b;

	return x->i.started_ns < y->i.started_ns ? -1 :
	       x->i.started_ns > y->i.started_ns;
}

static int cmp_hole(const void *a, const void *b)
{
	const struct hole_row *x = a, *y = b;

	return x->e.deadline_ns < y->e.deadline_ns ? -1 :
	       x->e.deadline_ns > y->e.deadline_ns;
}

/* Up to max entries of a hash map (key, then value, back to back). */
static int read_hash(int fd, void *rows, size_t key_size, size_t row_size,
		     int max)
{
	char prev[64], *row = rows;
	int n = 0;

	while (n < max && !bpf_map_get_next_key(fd, n ? prev : NULL, row)) {
		memcpy(prev, row, key_size);
		if (bpf_map_lookup_elem(fd, row, row + key_size))
			continue; /* gone meanwhile */
		row += row_size;
		n++;
	}
	return n;
}

/* Client and server ends of a control connection. */
static void sess_ends(const struct sess_row *s, char *cl, char *sv, size_t len)
{
	const struct ph_flow_key *k = &s->key;
	bool server = s->i.role == PH_ROLE_SERVER;

	ph_trk_fmt_endpoint(server ? k->remote : k->local,
			    server ? k->rport : k->lport, cl, len);
	ph_trk_fmt_endpoint(server ? k->local : k->remote,
			    server ? k->lport : k->rport, sv, len);
}

static __u64 remaining_ns(__u64 deadline, __u64 now)
{
	return (__s64)(deadline - now) > 0 ? deadline - now : 0;
}

static void json_endpoint(struct ph_json *j, const char *what,
			  const __u8 addr[16], __be16 port)
{
	char a[64], k[32];

	ph_fmt_addr(addr, a, sizeof(a));
	snprintf(k, sizeof(k), "%s_addr", what);
	ph_json_kv_string(j, k, a);
	snprintf(k, sizeof(k), "%s_port", what);
	ph_json_kv_uint(j, k, ntohs(port));
}

static void json_pinhole(struct ph_json *j, const struct ph_flow_key *k,
			 __u8 dir, __u32 session, __u64 ttl_ns)
{
	char p[8], id[16];

	snprintf(id, sizeof(id), "%08x", session);
	ph_json_object_begin(j);
	ph_json_kv_string(j, "proto", ph_proto_name(k->proto, p, sizeof(p)));
	json_endpoint(j, "local", k->local, k->lport);
	json_endpoint(j, "remote", k->remote, k->rport);
	ph_json_kv_string(j, "dir", ph_trk_dir_name(dir));
	ph_json_kv_string(j, "session", id);
	ph_json_kv_uint(j, "ttl_ms", ttl_ns / 1000000ull);
	ph_json_object_end(j);
}

static int cmp_ftps(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ph_ftps_peer_key));
}

/* What `sessions` shows besides the sessions: the pending pinholes, the
 * live FTPS control connections by peer (ftps_peers), the totals. */
struct sess_extra {
	const struct hole_row *hs;
	int nh;
	const struct ph_ftps_entry *fp;
	int nfp;
	const struct ph_ftp_totals *tot;
	const struct ph_ftp_dp_stats *dp; /* NULL: not readable */
};

static void sessions_json(const char *pin_dir, bool running, long pid,
			  const struct sess_row *ss, int ns,
			  const struct sess_extra *x, __u64 now)
{
	const struct hole_row *hs = x->hs;
	const struct ph_ftp_totals *tot = x->tot;
	int nh = x->nh;
	struct ph_json j;
	char id[16];

	ph_json_init(&j, stdout);
	ph_json_object_begin(&j);
	ph_json_kv_string(&j, "pin_dir", pin_dir);
	ph_json_key(&j, "tracker");
	ph_json_object_begin(&j);
	ph_json_kv_bool(&j, "running", running);
	ph_json_kv_uint(&j, "pid", running && pid > 0 ? (__u64)pid : 0);
	ph_json_object_end(&j);
	ph_json_key(&j, "sessions");
	ph_json_array_begin(&j);
	for (int i = 0; i < ns; i++) {
		const struct sess_row *s = &ss[i];
		bool server = s->i.role == PH_ROLE_SERVER;
		const struct ph_flow_key *k = &s->key;

		snprintf(id, sizeof(id), "%08x", s->i.session);
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "session", id);
		ph_json_kv_string(&j, "role", ph_trk_role_name(s->i.role));
		json_endpoint(&j, "client", server ? k->remote : k->local,
			      server ? k->rport : k->lport);
		json_endpoint(&j, "server", server ? k->local : k->remote,
			      server ? k->lport : k->rport);
		ph_json_kv_string(&j, "state", ph_trk_state_name(s->i.state));
		ph_json_kv_uint(&j, "age_ms", (now > s->i.started_ns ?
					       now - s->i.started_ns : 0) / 1000000ull);
		ph_json_kv_uint(&j, "idle_ms", (now > s->i.last_ns ?
						now - s->i.last_ns : 0) / 1000000ull);
		ph_json_kv_uint(&j, "lines", s->i.lines);
		ph_json_kv_uint(&j, "opened", s->i.opened);
		ph_json_kv_uint(&j, "used", s->i.used);
		ph_json_kv_uint(&j, "expired", s->i.expired);
		ph_json_kv_uint(&j, "revoked", s->i.revoked);
		ph_json_kv_uint(&j, "refused", s->i.refused);
		ph_json_key(&j, "pinhole");
		if (s->i.has_pinhole)
			json_pinhole(&j, &s->i.pinhole, s->i.pinhole_dir,
				     s->i.session,
				     remaining_ns(s->i.pinhole_deadline_ns, now));
		else
			ph_json_null(&j);
		ph_json_object_end(&j);
	}
	ph_json_array_end(&j);
	ph_json_key(&j, "pinholes");
	ph_json_array_begin(&j);
	for (int i = 0; i < nh; i++)
		json_pinhole(&j, &hs[i].key, hs[i].e.dir, hs[i].e.session,
			     remaining_ns(hs[i].e.deadline_ns, now));
	ph_json_array_end(&j);
	ph_json_key(&j, "ftps_peers");
	ph_json_array_begin(&j);
	for (int i = 0; i < x->nfp; i++) {
		char a[64];

		ph_json_object_begin(&j);
		ph_fmt_addr(x->fp[i].key.remote, a, sizeof(a));
		ph_json_kv_string(&j, "remote_addr", a);
		ph_fmt_addr(x->fp[i].key.local, a, sizeof(a));
		ph_json_kv_string(&j, "local_addr", a);
		ph_json_kv_uint(&j, "connections", x->fp[i].refs);
		ph_json_kv_uint(&j, "changed_ms",
				(now > x->fp[i].last_ns ? now - x->fp[i].last_ns : 0) /
					1000000ull);
		ph_json_object_end(&j);
	}
	ph_json_array_end(&j);
	ph_json_key(&j, "totals");
	ph_json_object_begin(&j);
	ph_json_kv_uint(&j, "sessions", tot->sessions);
	ph_json_kv_uint(&j, "opened", tot->opened);
	ph_json_kv_uint(&j, "opened_bpf", tot->opened_bpf);
	ph_json_kv_uint(&j, "used", tot->used);
	ph_json_kv_uint(&j, "expired", tot->expired);
	ph_json_kv_uint(&j, "revoked", tot->revoked);
	ph_json_kv_uint(&j, "refused", tot->refused);
	ph_json_key(&j, "refused_by_reason");
	ph_json_object_begin(&j);
	for (int r = 1; r < PH_FTP_REFUSE_MAX; r++)
		ph_json_kv_uint(&j, ph_ftp_refuse_name(r),
				tot->refused_by_reason[r]);
	ph_json_object_end(&j);
	ph_json_kv_uint(&j, "events", tot->events);
	ph_json_kv_uint(&j, "events_lost", tot->events_lost);
	ph_json_kv_uint(&j, "ftps_fixed", tot->ftps_fixed);
	ph_json_kv_uint(&j, "syncs", tot->syncs);
	ph_json_kv_uint(&j, "quiet_bytes", tot->quiet_bytes);
	ph_json_kv_uint(&j, "adopted", tot->adopted);
	ph_json_kv_uint(&j, "kept", tot->kept);
	ph_json_object_end(&j);
	if (x->dp) {
		const struct ph_ftp_dp_stats *d = x->dp;

		ph_json_key(&j, "datapath");
		ph_json_object_begin(&j);
		ph_json_kv_uint(&j, "sessions", d->sessions);
		ph_json_kv_uint(&j, "segments", d->segments);
		ph_json_kv_uint(&j, "events", d->events);
		ph_json_kv_uint(&j, "events_lost", d->events_lost);
		ph_json_kv_uint(&j, "pinholes", d->pinholes);
		ph_json_kv_uint(&j, "desyncs", d->desyncs);
		ph_json_kv_uint(&j, "conflicts", d->conflicts);
		ph_json_kv_uint(&j, "ctrl_full", d->ctrl_full);
		ph_json_kv_uint(&j, "ftps_counted", d->ftps_counted);
		ph_json_kv_uint(&j, "ftps_released", d->ftps_released);
		ph_json_kv_uint(&j, "ftps_full", d->ftps_full);
		ph_json_kv_uint(&j, "quiet", d->quiet);
		ph_json_kv_uint(&j, "syncs", d->syncs);
		ph_json_kv_uint(&j, "unreported", d->unreported);
		ph_json_object_end(&j);
	}
	ph_json_object_end(&j);
	ph_json_finish(&j);
}

static void sessions_text(const char *pin_dir, bool running, long pid,
			  const struct sess_row *ss, int ns,
			  const struct sess_extra *x, __u64 now)
{
	static const char *const shdr[] = { "SESSION", "ROLE", "CLIENT", "SERVER",
					    "STATE", "|AGE", "|IDLE", "|LINES",
					    "PINHOLE", "|TTL" };
	static const char *const phdr[] = { "PINHOLE", "SESSION", "|TTL" };
	static const char *const fhdr[] = { "PEER", "LOCAL", "|CONNECTIONS",
					    "|CHANGED" };
	const struct hole_row *hs = x->hs;
	const struct ph_ftp_totals *tot = x->tot;
	int nh = x->nh;
	struct ph_table t;
	char id[16], cl[64], sv[64], age[32], idle[32], lines[16], ph[160], ttl[32];
	bool any = false;

	printf("pin dir     %s\n", pin_dir);
	if (running)
		printf("tracker     running (pid %ld)\n", pid);
	else
		printf("tracker     not running: start 'pinhole --pin-dir %s daemon' (until then the datapath alone opens, revokes and expires pinholes; nothing logs them)\n",
		       pin_dir);
	printf("sessions\n");
	ph_table_init(&t, ARRAY_SIZE(shdr), shdr);
	for (int i = 0; i < ns; i++) {
		const struct sess_row *s = &ss[i];
		const char *row[] = { id, ph_trk_role_name(s->i.role), cl, sv,
				      ph_trk_state_name(s->i.state), age, idle,
				      lines, ph, ttl };

		snprintf(id, sizeof(id), "%08x", s->i.session);
		sess_ends(s, cl, sv, sizeof(cl));
		ph_fmt_duration(now > s->i.started_ns ? now - s->i.started_ns : 0,
				age, sizeof(age));
		ph_fmt_duration(now > s->i.last_ns ? now - s->i.last_ns : 0,
				idle, sizeof(idle));
		snprintf(lines, sizeof(lines), "%u", s->i.lines);
		if (s->i.has_pinhole) {
			ph_trk_fmt_pinhole(&s->i.pinhole, s->i.pinhole_dir, ph,
					   sizeof(ph));
			ph_fmt_duration(remaining_ns(s->i.pinhole_deadline_ns, now),
					ttl, sizeof(ttl));
		} else {
			ph_strlcpy(ph, "-", sizeof(ph));
			ph_strlcpy(ttl, "-", sizeof(ttl));
		}
		ph_table_add(&t, row);
	}
	indented_table_done(&t);
	printf("pending pinholes\n");
	ph_table_init(&t, ARRAY_SIZE(phdr), phdr);
	for (int i = 0; i < nh; i++) {
		const char *row[] = { ph, id, ttl };

		ph_trk_fmt_pinhole(&hs[i].key, hs[i].e.dir, ph, sizeof(ph));
		snprintf(id, sizeof(id), "%08x", hs[i].e.session);
		ph_fmt_duration(remaining_ns(hs[i].e.deadline_ns, now), ttl,
				sizeof(ttl));
		ph_table_add(&t, row);
	}
	indented_table_done(&t);
	printf("ftps peers  (live FTPS control connections: ftps-range admits their peers)\n");
	ph_table_init(&t, ARRAY_SIZE(fhdr), fhdr);
	for (int i = 0; i < x->nfp; i++) {
		const char *row[] = { cl, sv, lines, age };

		ph_fmt_addr(x->fp[i].key.remote, cl, sizeof(cl));
		ph_fmt_addr(x->fp[i].key.local, sv, sizeof(sv));
		snprintf(lines, sizeof(lines), "%u", x->fp[i].refs);
		ph_fmt_duration(now > x->fp[i].last_ns ? now - x->fp[i].last_ns : 0,
				age, sizeof(age));
		ph_table_add(&t, row);
	}
	indented_table_done(&t);
	printf("totals      %llu sessions; pinholes: %llu opened (%llu by the datapath first), %llu used, %llu expired, %llu revoked, %llu refused\n",
	       (unsigned long long)tot->sessions, (unsigned long long)tot->opened,
	       (unsigned long long)tot->opened_bpf, (unsigned long long)tot->used,
	       (unsigned long long)tot->expired, (unsigned long long)tot->revoked,
	       (unsigned long long)tot->refused);
	for (int r = 1; r < PH_FTP_REFUSE_MAX; r++) {
		if (!tot->refused_by_reason[r])
			continue;
		printf("%s %s %llu", any ? "," : "refused    ",
		       ph_ftp_refuse_name(r),
		       (unsigned long long)tot->refused_by_reason[r]);
		any = true;
	}
	if (any)
		printf("\n");
	printf("events      %llu read, %llu with lost bytes, %llu syncs (%llu bytes not reported: quiet or lost)\n",
	       (unsigned long long)tot->events,
	       (unsigned long long)tot->events_lost,
	       (unsigned long long)tot->syncs,
	       (unsigned long long)tot->quiet_bytes);
	if (tot->adopted || tot->kept)
		printf("            %llu sessions taken over from the datapath at start, %llu datapath pinholes kept unjudged\n",
		       (unsigned long long)tot->adopted,
		       (unsigned long long)tot->kept);
	if (tot->ftps_fixed)
		printf("ftps        %llu ftps_peers entries corrected by the tracker\n",
		       (unsigned long long)tot->ftps_fixed);
	if (x->dp) {
		const struct ph_ftp_dp_stats *d = x->dp;

		printf("datapath    %llu control connections, %llu segments, %llu records (%llu lost: ring buffer full; %llu quiet, not reported; %llu syncs), %llu pinholes installed (%llu unreported), %llu desyncs, %llu conflicts, %llu without parser state\n",
		       (unsigned long long)d->sessions,
		       (unsigned long long)d->segments,
		       (unsigned long long)d->events,
		       (unsigned long long)d->events_lost,
		       (unsigned long long)d->quiet,
		       (unsigned long long)d->syncs,
		       (unsigned long long)d->pinholes,
		       (unsigned long long)d->unreported,
		       (unsigned long long)d->desyncs,
		       (unsigned long long)d->conflicts,
		       (unsigned long long)d->ctrl_full);
		printf("            ftps_peers: %llu counted, %llu given back, %llu refused (table full)\n",
		       (unsigned long long)d->ftps_counted,
		       (unsigned long long)d->ftps_released,
		       (unsigned long long)d->ftps_full);
	}
}

static int do_sessions(struct ctx *c)
{
	struct ph_ftp_totals tot = {};
	struct ph_ftp_dp_stats dp;
	struct ph_ftps_entry *fp = NULL;
	struct ph_instance inst;
	struct ph_trk_pins pins;
	struct sess_extra x;
	struct sess_row *ss;
	struct hole_row *hs;
	__u32 key = 0;
	int r, ns, nh, nfp;
	bool running;
	long pid;

	r = open_existing(&inst, c->pin_dir);
	if (r)
		return r;
	ph_instance_close(&inst);
	r = ph_trk_pins_open(&pins, c->pin_dir);
	if (r) {
		pr_warn("cannot open the FTP tracking maps of %s: %s", c->pin_dir,
			strerror(-r));
		return PH_EXIT_ENV;
	}
	ss = calloc(PH_FTP_CTRL_MAX, sizeof(*ss));
	hs = calloc(PH_EXPECT_MAX, sizeof(*hs));
	if (!ss || !hs) {
		free(ss);
		free(hs);
		ph_trk_pins_close(&pins);
		pr_warn("out of memory");
		return PH_EXIT_ENV;
	}
	_Static_assert(sizeof(struct sess_row) == sizeof(struct ph_flow_key) +
		       sizeof(struct ph_ftp_session_info), "sess_row padding");
	_Static_assert(sizeof(struct hole_row) == sizeof(struct ph_flow_key) +
		       sizeof(struct ph_expect), "hole_row padding");
	ns = read_hash(pins.sessions, ss, sizeof(ss->key), sizeof(*ss),
		       PH_FTP_CTRL_MAX);
	nh = read_hash(pins.expect, hs, sizeof(hs->key), sizeof(*hs),
		       PH_EXPECT_MAX);
	nfp = ph_ftps_read_peers(pins.ftps_peers, &fp);
	if (nfp < 0)
		nfp = 0;
	bpf_map_lookup_elem(pins.totals, &key, &tot);
	ph_trk_pins_close(&pins);
	running = ph_trk_running(c->pin_dir, &pid);
	qsort(ss, (size_t)ns, sizeof(*ss), cmp_sess);
	qsort(hs, (size_t)nh, sizeof(*hs), cmp_hole);
	if (nfp)
		qsort(fp, (size_t)nfp, sizeof(*fp), cmp_ftps);
	x = (struct sess_extra){ .hs = hs, .nh = nh, .fp = fp, .nfp = nfp,
				 .tot = &tot };
	r = ph_ftp_dp_stats_read(c->pin_dir, &dp);
	if (r)
		pr_debug("cannot read %s/ftp_dp_stats: %s", c->pin_dir,
			 strerror(-r));
	else
		x.dp = &dp;
	if (c->json)
		sessions_json(c->pin_dir, running, pid, ss, ns, &x,
			      ph_now_coarse_ns());
	else
		sessions_text(c->pin_dir, running, pid, ss, ns, &x,
			      ph_now_coarse_ns());
	free(ss);
	free(hs);
	free(fp);
	return PH_EXIT_OK;
}

/* ------------------------------------------------- observe (observe.c) */

static int do_exporter(struct ctx *c)
{
	if (c->json) {
		pr_warn("exporter: -j does not apply (the exposition is Prometheus text)");
		return PH_EXIT_USER;
	}
	return ph_obs_exporter(c->pin_dir, &c->obs);
}

static int monitor_on(struct ph_instance *inst, struct ctx *c)
{
	return ph_obs_monitor(inst, &c->obs, c->json);
}

static int do_monitor(struct ctx *c)
{
	return with_instance(c, monitor_on);
}

static int explain_on(struct ph_instance *inst, struct ctx *c)
{
	return ph_obs_explain(inst, c->argc, c->argv, c->json);
}

static int do_explain(struct ctx *c)
{
	return with_instance(c, explain_on);
}

/* ------------------------------------------------------------ dispatch */

static void cmd_help(const struct cmd *cmd, FILE *out);

static int do_help(struct ctx *c)
{
	const struct cmd *cmd;

	if (c->argc == 0) {
		usage(stdout);
		return PH_EXIT_OK;
	}
	cmd = find_cmd(c->argv[0]);
	if (!cmd) {
		pr_warn("help: unknown command '%s'; see pinhole --help",
			c->argv[0]);
		return PH_EXIT_USER;
	}
	cmd_help(cmd, stdout);
	return PH_EXIT_OK;
}

#define CAPS_LOAD (PH_NEED_BPF | PH_NEED_NET | PH_NEED_PERFMON)

static const struct cmd cmds[] = {
	{ "check", do_check, O_JSON | O_PRINT, 0, 1, 1, "check [--print] POLICY|-",
	  "Parse and compile POLICY (- for stdin) without touching the kernel (no\n"
	  "privileges needed); print the compiled summary (--print: the policy\n"
	  "normalised), or file:line:col: error: ...\n" },
	{ "show", do_show, O_JSON, PH_NEED_BPF, 0, 0, "show [-j]",
	  "The policy in force, as the kernel has it.\n" },
	{ "run", do_run, O_POLICY | O_LOAD | O_SYSLOG, CAPS_LOAD, 1, -1,
	  "run --policy POLICY [--mode auto|native|generic] [--syslog] IFACE...",
	  "Attach, then track FTP sessions in the foreground (for systemd:\n"
	  "Type=notify, READY=1 once tracking). SIGINT/SIGTERM detach what this\n"
	  "run attached; SIGHUP reloads the recorded policy. After a crash, run\n"
	  "again with the same pin dir adopts the interfaces the dead run had\n"
	  "attached (enforcement never stopped). An instance of another build or\n"
	  "layout is upgraded in place first (see upgrade). Exit 3: another build\n"
	  "upgraded the instance; this run stopped without detaching.\n" },
	{ "attach", do_attach, O_POLICY | O_LOAD | O_JSON, CAPS_LOAD, 1, -1,
	  "attach --policy POLICY [--mode auto|native|generic] [-j] IFACE...",
	  "Attach XDP ingress + TC egress to each IFACE and enforce POLICY; the\n"
	  "programs stay after the command exits. An interface this instance\n"
	  "already carries is refused (use reload or detach). An instance of\n"
	  "another build or layout is upgraded in place first (see upgrade).\n" },
	{ "upgrade", do_upgrade, O_POLICY, CAPS_LOAD, 0, 0,
	  "upgrade [--policy POLICY]",
	  "Replace the programs of a running instance by this binary's, with no\n"
	  "moment where an interface is unfiltered (XDP_FLAGS_REPLACE,\n"
	  "BPF_TC_F_REPLACE; in libxdp's dispatcher the new member joins before\n"
	  "the old one leaves). Same pin layout: the maps and every flow are kept.\n"
	  "Another layout: new maps, flows/pinholes migrated, the policy rebuilt\n"
	  "(--policy, default the recorded one). A run or daemon of the old build\n"
	  "stops tracking (exit 3) without detaching.\n" },
	{ "daemon", do_daemon, O_SYSLOG, PH_NEED_BPF, 0, 0, "daemon [--syslog]",
	  "FTP session tracker alone, for an instance made by attach. SIGHUP\n"
	  "reloads the recorded policy; SIGINT/SIGTERM stop it (enforcement\n"
	  "stays).\n" },
	{ "reload", do_reload, O_POLICY | O_JSON, PH_NEED_BPF, 0, 0,
	  "reload [--policy POLICY] [-j]",
	  "Atomic policy swap (two slots, one write). Without --policy, the\n"
	  "recorded policy file is read again. On error the old policy stays.\n" },
	{ "detach", do_detach, O_ALL | O_JSON, PH_NEED_BPF | PH_NEED_NET, 0, -1,
	  "detach IFACE... | --all [-j]",
	  "Remove pinhole's programs from the interfaces (only if they are ours);\n"
	  "with the last one, the pins pinhole made and the pin dir.\n" },
	{ "status", do_status, O_JSON, PH_NEED_BPF, 0, 0, "status [-j]",
	  "Instance, build, policy, generation, interfaces and table fill.\n" },
	{ "stats", do_stats, O_JSON | O_BY | O_PROM, PH_NEED_BPF, 0, 0,
	  "stats [-j] [--by reason|service|iface] | stats --prometheus",
	  "Packets and bytes per verdict reason (or service, interface), inbound\n"
	  "and outbound.\n" },
	{ "flows", do_flows, O_JSON, PH_NEED_BPF, 0, -1,
	  "flows [delete FILTER... | flush | FILTER...] [-j]",
	  "Entries of the flow and half-open tables; delete or flush them.\n" },
	{ "sessions", do_sessions, O_JSON, PH_NEED_BPF, 0, 0, "sessions [-j]",
	  "FTP sessions, pending pinholes, FTPS peers and tracker totals.\n" },
	{ "exporter", do_exporter, O_LISTEN | O_TEXTFILE | O_INTERVAL, PH_NEED_BPF, 0,
	  0, "exporter --listen ADDR:PORT | --textfile PATH [--interval S]",
	  "Prometheus metrics over HTTP, or a textfile for node_exporter.\n" },
	{ "monitor", do_monitor, O_MONITOR | O_JSON, PH_NEED_BPF, 0, 0,
	  "monitor [-j] [--events flow,pinhole,drop] [--drop-rate N] [--drop-burst N] [--count N] [--duration S]",
	  "Live flow, pinhole and drop events.\n" },
	{ "explain", do_explain, O_JSON, PH_NEED_BPF, 4, 7,
	  "explain [-j] [in|out] PROTO SRC[:PORT] to DST[:PORT] [FLAGS]",
	  "What the datapath would do with such a packet, and why.\n" },
	{ "help", do_help, 0, 0, 0, 1, "help [COMMAND]",
	  "The global usage, or one command's.\n" },
};
static const size_t ncmds = ARRAY_SIZE(cmds);

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < ncmds; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static void usage(FILE *out)
{
	fputs("usage: pinhole [--pin-dir DIR] [-v] [-j] COMMAND [ARGS]\n\n"
	      "commands:\n", out);
	for (size_t i = 0; i < ncmds; i++)
		fprintf(out, "  pinhole %s\n", cmds[i].usage);
	fprintf(out,
		"\noptions (before or after the command):\n"
		"  --pin-dir DIR        instance pin directory (default %s, or $PINHOLE_PIN_DIR)\n"
		"  -v, --verbose        debug and libbpf logs (-vv: libbpf debug too);\n"
		"                       stats lists every reason\n"
		"  -j, --json           JSON output (check, show, status, stats, flows, sessions,\n"
		"                       monitor, explain, attach, reload, detach; refused by\n"
		"                       run, daemon, exporter)\n"
		"  -p, --policy FILE    policy to enforce (run, attach, reload, upgrade)\n"
		"  -m, --mode MODE      XDP mode: auto (native, else generic), native, generic\n"
		"  --failsafe-port N    TCP port always admitted inbound (e.g. 22)\n"
		"  --fail-open          pass packets when an internal lookup fails\n"
		"  --fail-closed        drop them (the default)\n"
		"  --flows N            size of the flow table (default %u)\n"
		"  --half-open N        size of the half-open table (default %u)\n"
		"  -a, --all            detach every interface\n"
		"  --syslog             FTP tracker log to syslog, not stderr (daemon, run)\n"
		"  --by WHAT            stats by reason (default), service or iface\n"
		"  --prometheus         stats in the Prometheus text format\n"
		"  --listen ADDR:PORT   exporter: serve /metrics over HTTP\n"
		"  --textfile PATH      exporter: write PATH for node_exporter (atomic rename)\n"
		"  --interval S         exporter --textfile: every S seconds (0: once; default %u)\n"
		"  --events LIST        monitor: flow,pinhole,drop (default all)\n"
		"  --drop-rate N        monitor: drop events per second per CPU (default %u)\n"
		"  --drop-burst N       monitor: drop events in a burst (default %u)\n"
		"  --count N            monitor: exit after N events\n"
		"  --duration S         monitor: exit after S seconds\n"
		"  -h, --help           this text; 'pinhole help CMD' or 'pinhole CMD --help'\n"
		"  -V, --version        version, build id, pin layout\n"
		"\nexit codes: 0 ok, 1 user error, 2 environment error (missing capabilities,\n"
		"no BPF, ...), 3 run/daemon replaced by another build (upgrade)\n"
		"see pinhole(8), pinhole.policy(5), docs/cli.md\n",
		PH_DEFAULT_PIN_DIR, PH_FLOWS_MAX_DEFAULT, PH_HALF_OPEN_MAX_DEFAULT,
		PH_OBS_DEFAULT_INTERVAL_S, PH_OBS_DEFAULT_DROP_RATE,
		PH_OBS_DEFAULT_DROP_BURST);
}

static const struct {
	unsigned int bit;
	const char *text;
} opt_help[] = {
	{ O_POLICY, "  -p, --policy FILE    the policy (pinhole.policy(5))" },
	{ O_MODE, "  -m, --mode MODE      XDP mode: auto (native, else generic), native, generic" },
	{ O_FAILSAFE, "  --failsafe-port N    TCP port always admitted inbound (e.g. 22)" },
	{ O_FAIL_OPEN, "  --fail-open          pass packets when an internal lookup fails" },
	{ O_FAIL_CLOSED, "  --fail-closed        drop them (the default)" },
	{ O_FLOWS, "  --flows N            size of the flow table" },
	{ O_HALF_OPEN, "  --half-open N        size of the half-open table" },
	{ O_ALL, "  -a, --all            every interface of the instance" },
	{ O_SYSLOG, "  --syslog             tracker log lines to syslog instead of stderr" },
};

static void cmd_help(const struct cmd *cmd, FILE *out)
{
	fprintf(out, "usage: pinhole [--pin-dir DIR] [-v] %s\n\n%s", cmd->usage,
		cmd->help);
	fputs("\noptions:\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(opt_help); i++)
		if (cmd->opts & opt_help[i].bit)
			fprintf(out, "%s\n", opt_help[i].text);
	fputs("  --pin-dir DIR        the instance (default " PH_DEFAULT_PIN_DIR
	      ", or $PINHOLE_PIN_DIR)\n  -v, --verbose        debug logs\n", out);
	if (cmd->caps)
		fprintf(out, "\nneeds:   %s%s%s (or root)\n",
			cmd->caps & PH_NEED_BPF ? "CAP_BPF" : "",
			cmd->caps & PH_NEED_NET ? ", CAP_NET_ADMIN" : "",
			cmd->caps & PH_NEED_PERFMON ? ", CAP_PERFMON" : "");
	fputs("see pinhole(8) and docs/cli.md\n", out);
}

static void print_version(void)
{
	printf("pinhole %s\nbuild %s\npin layout %u\nlibbpf %s\n", PH_VERSION,
	       ph_build_id(), PH_LAYOUT_VERSION, libbpf_version_string());
}

enum {
	OPT_PIN_DIR = 256,
	OPT_FAILSAFE,
	OPT_FAIL_OPEN,
	OPT_FAIL_CLOSED,
	OPT_FLOWS,
	OPT_HALF_OPEN,
	OPT_SYSLOG,
	OPT_VERSION,
	OPT_PRINT,
	OPT_BY,
	OPT_PROM,
	OPT_LISTEN,
	OPT_TEXTFILE,
	OPT_INTERVAL,
	OPT_EVENTS,
	OPT_DROP_RATE,
	OPT_DROP_BURST,
	OPT_COUNT,
	OPT_DURATION,
};

static const struct option long_opts[] = {
	{ "pin-dir", required_argument, NULL, OPT_PIN_DIR },
	{ "verbose", no_argument, NULL, 'v' },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "policy", required_argument, NULL, 'p' },
	{ "mode", required_argument, NULL, 'm' },
	{ "failsafe-port", required_argument, NULL, OPT_FAILSAFE },
	{ "fail-open", no_argument, NULL, OPT_FAIL_OPEN },
	{ "fail-closed", no_argument, NULL, OPT_FAIL_CLOSED },
	{ "flows", required_argument, NULL, OPT_FLOWS },
	{ "half-open", required_argument, NULL, OPT_HALF_OPEN },
	{ "all", no_argument, NULL, 'a' },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "version", no_argument, NULL, 'V' },
	{ "print", no_argument, NULL, OPT_PRINT },
	{ "by", required_argument, NULL, OPT_BY },
	{ "prometheus", no_argument, NULL, OPT_PROM },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "textfile", required_argument, NULL, OPT_TEXTFILE },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "events", required_argument, NULL, OPT_EVENTS },
	{ "drop-rate", required_argument, NULL, OPT_DROP_RATE },
	{ "drop-burst", required_argument, NULL, OPT_DROP_BURST },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ NULL, 0, NULL, 0 },
};

static const char *opt_name(unsigned int bit)
{
	switch (bit) {
	case O_POLICY: return "--policy";
	case O_MODE: return "--mode";
	case O_FAILSAFE: return "--failsafe-port";
	case O_FAIL_OPEN: return "--fail-open";
	case O_FAIL_CLOSED: return "--fail-closed";
	case O_FLOWS: return "--flows";
	case O_HALF_OPEN: return "--half-open";
	case O_ALL: return "--all";
	case O_SYSLOG: return "--syslog";
	case O_JSON: return "-j (--json)";
	case O_PRINT: return "--print";
	case O_BY: return "--by";
	case O_PROM: return "--prometheus";
	case O_LISTEN: return "--listen";
	case O_TEXTFILE: return "--textfile";
	case O_INTERVAL: return "--interval";
	case O_EVENTS: return "--events";
	case O_DROP_RATE: return "--drop-rate";
	case O_DROP_BURST: return "--drop-burst";
	case O_COUNT: return "--count";
	case O_DURATION: return "--duration";
	}
	return "?";
}

static int bad_number(const char *opt, const char *arg, __u32 max)
{
	pr_warn("%s '%s': expected a number from 1 to %u", opt, arg, max);
	return PH_EXIT_USER;
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, struct ctx *c, int *verbose,
		      bool *help, bool *version)
{
	const char *pin = getenv("PINHOLE_PIN_DIR");
	__u32 v;
	int opt, r;

	if (!pin || !*pin)
		pin = PH_DEFAULT_PIN_DIR;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vjhVp:m:a", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'V': *version = true; break;
		case OPT_PIN_DIR: pin = optarg; break;
		case 'v': (*verbose)++; break;
		case 'j': c->json = true; c->given |= O_JSON; break;
		case OPT_PRINT: c->print = true; c->given |= O_PRINT; break;
		case 'h': *help = true; break;
		case 'p': c->policy = optarg; c->given |= O_POLICY; break;
		case 'a': c->all = true; c->given |= O_ALL; break;
		case OPT_SYSLOG: c->syslog = true; c->given |= O_SYSLOG; break;
		case 'm':
			c->given |= O_MODE;
			if (!strcmp(optarg, "auto"))
				c->mode = PH_MODE_AUTO;
			else if (!strcmp(optarg, "native") || !strcmp(optarg, "drv"))
				c->mode = PH_MODE_NATIVE;
			else if (!strcmp(optarg, "generic") || !strcmp(optarg, "skb"))
				c->mode = PH_MODE_GENERIC;
			else {
				pr_warn("--mode '%s': use auto, native or generic", optarg);
				return PH_EXIT_USER;
			}
			break;
		case OPT_FAILSAFE:
			if (!ph_parse_u32(optarg, 1, 65535, &v))
				return bad_number("--failsafe-port", optarg, 65535);
			c->load.failsafe_port = (__u16)v;
			c->load.failsafe_set = true;
			c->given |= O_FAILSAFE;
			break;
		case OPT_FAIL_OPEN:
		case OPT_FAIL_CLOSED:
			c->load.fail_open = opt == OPT_FAIL_OPEN;
			c->load.fail_open_set = true;
			c->given |= opt == OPT_FAIL_OPEN ? O_FAIL_OPEN : O_FAIL_CLOSED;
			break;
		case OPT_FLOWS:
		case OPT_HALF_OPEN:
			if (!ph_parse_u32(optarg, 1, 1u << 24, &v))
				return bad_number(opt == OPT_FLOWS ? "--flows" :
						  "--half-open", optarg, 1u << 24);
			if (opt == OPT_FLOWS)
				c->load.flows_max = v;
			else
				c->load.half_open_max = v;
			c->given |= opt == OPT_FLOWS ? O_FLOWS : O_HALF_OPEN;
			break;
		case OPT_BY: c->obs.by = optarg; c->given |= O_BY; break;
		case OPT_PROM: c->obs.prometheus = true; c->given |= O_PROM; break;
		case OPT_LISTEN: c->obs.listen = optarg; c->given |= O_LISTEN; break;
		case OPT_TEXTFILE: c->obs.textfile = optarg; c->given |= O_TEXTFILE; break;
		case OPT_EVENTS: c->obs.events = optarg; c->given |= O_EVENTS; break;
		case OPT_INTERVAL:
			if (!ph_parse_u32(optarg, 0, 86400, &c->obs.interval_s)) {
				pr_warn("--interval '%s': expected seconds from 0 to 86400", optarg);
				return PH_EXIT_USER;
			}
			c->given |= O_INTERVAL;
			break;
		case OPT_DROP_RATE:
		case OPT_DROP_BURST:
		case OPT_COUNT:
		case OPT_DURATION: {
			static const struct { int opt; const char *name; unsigned int bit; } n[] = {
				{ OPT_DROP_RATE, "--drop-rate", O_DROP_RATE },
				{ OPT_DROP_BURST, "--drop-burst", O_DROP_BURST },
				{ OPT_COUNT, "--count", O_COUNT },
				{ OPT_DURATION, "--duration", O_DURATION },
			};
			__u32 *dst = opt == OPT_DROP_RATE ? &c->obs.drop_rate :
				     opt == OPT_DROP_BURST ? &c->obs.drop_burst :
				     opt == OPT_COUNT ? &c->obs.count :
							&c->obs.duration_s;

			for (size_t i = 0; i < ARRAY_SIZE(n); i++)
				if (n[i].opt == opt) {
					if (!ph_parse_u32(optarg, 1, 1000000, dst))
						return bad_number(n[i].name, optarg, 1000000);
					c->given |= n[i].bit;
				}
			break;
		}
		case ':':
			pr_warn("option %s needs a value; see pinhole --help",
				argv[optind - 1]);
			return PH_EXIT_USER;
		default:
			pr_warn("unknown option '%s'; see pinhole --help",
				argv[optind - 1]);
			return PH_EXIT_USER;
		}
	}
	if ((c->given & O_FAIL_OPEN) && (c->given & O_FAIL_CLOSED)) {
		pr_warn("--fail-open and --fail-closed contradict each other");
		return PH_EXIT_USER;
	}
	r = ph_pin_dir_normalize(pin, c->pin_dir, sizeof(c->pin_dir));
	if (r)
		return r;
	c->argc = argc - optind;
	c->argv = argv + optind;
	return -1;
}

int main(int argc, char **argv)
{
	struct ctx c = { .obs.interval_s = PH_OBS_DEFAULT_INTERVAL_S };
	bool help = false, version = false;
	int verbose = 0;
	const struct cmd *cmd;
	unsigned int extra;
	int r;

	r = parse_args(argc, argv, &c, &verbose, &help, &version);
	ph_log_init(verbose);
	if (version) {
		print_version();
		return PH_EXIT_OK;
	}
	if (r >= 0)
		return r;
	if (c.argc == 0) {
		usage(help ? stdout : stderr);
		return help ? PH_EXIT_OK : PH_EXIT_USER;
	}
	cmd = find_cmd(c.argv[0]);
	if (!cmd) {
		pr_warn("unknown command '%s'; see pinhole --help", c.argv[0]);
		return PH_EXIT_USER;
	}
	if (help) {
		/* `pinhole CMD --help`, `pinhole --help help CMD` */
		if (cmd->fn == do_help && c.argc > 1 && find_cmd(c.argv[1]))
			cmd = find_cmd(c.argv[1]);
		cmd_help(cmd, stdout);
		return PH_EXIT_OK;
	}
	c.argc--;
	c.argv++;
	extra = c.given & ~cmd->opts;
	if (extra & O_JSON) {
		/* Say why rather than ignore it: scripts would parse text. */
		pr_warn("%s: -j (JSON) is not supported: %s", cmd->name,
			!strcmp(cmd->name, "run") || !strcmp(cmd->name, "daemon") ?
			"it runs in the foreground and logs text lines; use 'attach -j' (and 'daemon'), then 'status -j'" :
			"this command prints no document");
		return PH_EXIT_USER;
	}
	if (extra) {
		pr_warn("%s: option %s does not apply; usage: pinhole %s",
			cmd->name, opt_name(extra & -extra), cmd->usage);
		return PH_EXIT_USER;
	}
	if (c.argc < cmd->min_args || (cmd->max_args >= 0 && c.argc > cmd->max_args)) {
		if (c.argc > cmd->max_args && cmd->max_args >= 0)
			pr_warn("%s: unexpected argument '%s'; usage: pinhole %s",
				cmd->name, c.argv[cmd->max_args], cmd->usage);
		else
			pr_warn("%s: missing argument; usage: pinhole %s",
				cmd->name, cmd->usage);
		return PH_EXIT_USER;
	}
	if (cmd->caps) {
		/* Capabilities, not uid 0: before anything is read. */
		r = ph_caps_check(cmd->name, cmd->caps);
		if (!r)
			r = ph_pin_dir_check(c.pin_dir);
		if (r)
			return r;
	}
	return cmd->fn(&c);
}
