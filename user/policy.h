/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy language: parse a policy file and compile it into exactly what
 * the BPF maps hold (include/pinhole/pinhole.h). Pure C, no kernel access:
 * `pinhole check` and the unit tests use it without root.
 * Language reference: docs/policy.md.
 */
#ifndef PH_USER_POLICY_H
#define PH_USER_POLICY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <pinhole/pinhole.h>

#define PH_NAME_MAX 64
/* Input bounds: longer lines and larger files are errors, not crashes. */
#define PH_POLICY_LINE_MAX 8192
#define PH_POLICY_FILE_MAX (16u << 20)
/* Peer entries of one policy (all its sets' tries together). */
#define PH_POLICY_MAX_PEER_ENTRIES (PH_MAX_PEERS / 2)
/*
 * Prefixes copied out of sets (every @name copies the set's prefixes, and
 * those of the sets it includes) in one policy: keeps checking linear in
 * the file and its memory bounded. 32 times the peer entries a policy can
 * hold, so no policy that fits the maps comes near it.
 */
#define PH_POLICY_MAX_SET_EXPANSION (32 * PH_POLICY_MAX_PEER_ENTRIES)
/* ftp-ttl: default and bounds, milliseconds. */
#define PH_FTP_TTL_DEFAULT_MS 30000u
#define PH_FTP_TTL_MIN_MS 1000u
#define PH_FTP_TTL_MAX_MS 600000u

/* One port range of a service, as written (col: its token, for errors). */
struct ph_port_range {
	__u16 lo, hi;
	int col;
};

/* One parsed service (a named rule of the policy file). */
struct ph_service {
	char name[PH_NAME_MAX];
	int line, col;        /* where it was declared */
	__u8 action;          /* enum ph_action */
	__u8 dir;             /* enum ph_dir */
	__u8 l4_mask;         /* bit (1 << PH_L4_TCP) | (1 << PH_L4_UDP) */
	__u8 match_sport;     /* 1: ports match the source port */
	__u16 flags;          /* PH_RF_* (PEER_ANY, FTP_TRACK, FTPS_RANGE, ...) */
	int nranges;
	struct ph_port_range *ranges; /* sorted by port, disjoint */
	int npeers;
	struct ph_peer_key *peers;  /* keys of the service's own trie */
	struct ph_peer_val *peer_vals;
	/* ftp-track: nat-address, the public addresses announced (v4-mapped) */
	int nnat;
	__u8 nat[PH_NAT_ADDRS_MAX][16];
	/* ftp-track / ftps-implicit: the active-data source port (the
	 * server's; 0 for other services) and how it is guarded */
	__u16 active_port;
	__u8 active_table;   /* enum ph_port_table the guard sits in */
	int active_open_by;  /* service whose rule lets the port pass without
			      * a pinhole (the explicit opt-out), or -1 */
};

/* One entry of the compiled peer tries: key and value in the trie of
 * peer set `set` (the loader places it in the slot it writes). */
struct ph_peer_entry {
	struct ph_peer_key key;
	struct ph_peer_val val;
	__u16 set;
};

/* Active-data source port of a tracked service when none is given. */
#define PH_ACTIVE_PORT_FTP 20
#define PH_ACTIVE_PORT_FTPS_IMPLICIT 989

/* A note about the policy that is not an error (e.g. a narrower service
 * overriding a wider one on some ports). */
struct ph_note {
	char text[256];
};

struct ph_policy {
	char path[PATH_MAX];
	/* settings */
	__u8 default_verdict[PH_DIR_MAX]; /* enum ph_action */
	__u8 icmp_echo[PH_DIR_MAX];       /* enum ph_action */
	__u32 ftp_ttl_ms;
	/* parsed */
	int nservices;
	struct ph_service *services;
	/* compiled: rule i is written to rules[slot * PH_MAX_RULES + i] */
	int nrules;
	struct ph_rule *rules;
	/* port_table[l4][table][port] = rule index + 1, or 0 */
	__u16 (*port_table)[PH_PT_MAX][65536];
	int npeer_entries;
	struct ph_peer_entry *peer_entries;
	int nnotes;
	struct ph_note *notes;
};

/* Error detail: "file:line:col: message". line 0: the file itself (e.g.
 * cannot be read); col counts bytes from 1. */
struct ph_policy_error {
	char file[PATH_MAX];
	int line, col;
	char msg[512];
};

/* Parse and compile. Returns 0, or -1 with *err filled (first error). On
 * error *pol holds nothing (freed and zeroed). */
int ph_policy_load_file(const char *path, struct ph_policy *pol,
			struct ph_policy_error *err);
/* Same from an open stream (e.g. stdin for `pinhole check -`); name is
 * used in messages and as the policy's path. */
int ph_policy_load_stream(FILE *f, const char *name, struct ph_policy *pol,
			  struct ph_policy_error *err);
/* Same from a string (name is used in messages). */
int ph_policy_load_string(const char *name, const char *text,
			  struct ph_policy *pol, struct ph_policy_error *err);
/* Same from a buffer that may hold NUL bytes (they are errors). */
int ph_policy_load_buffer(const char *name, const char *text, size_t len,
			  struct ph_policy *pol, struct ph_policy_error *err);
void ph_policy_free(struct ph_policy *pol);

/* Format an error as "file:line:col: error: msg" ("file: error: msg" for
 * line 0). */
void ph_policy_error_format(const struct ph_policy_error *err, char *buf,
			    size_t len);

/* `pinhole check` output: human summary, or JSON when json is true. */
void ph_policy_print_summary(const struct ph_policy *pol, FILE *out,
			     bool json);

/*
 * The policy in the policy language, normalised (docs/policy.md, "pinhole
 * show"): every setting, one line per service in service order, sets
 * expanded, ports sorted, peers in canonical order, no comments. It parses
 * back to the same compiled policy; `pinhole check --print FILE` and
 * `pinhole show` both print through it, so the two can be diffed.
 */
void ph_policy_print_source(const struct ph_policy *pol, FILE *out);

/* Service name of rule i (for stats/flows output); "?" if out of range. */
const char *ph_policy_rule_service(const struct ph_policy *pol, int rule);

/* The slot_meta a loader writes for this policy (generation and loaded_ns
 * left 0: the loader sets them). */
void ph_policy_slot_meta(const struct ph_policy *pol,
			 struct ph_slot_meta *meta);

/* A peer prefix of a compiled key as text: "10.0.0.0/8" (v4-mapped keys),
 * "2001:db8::/32", or "any" for ::/0. len >= 64 is always enough. */
void ph_peer_format(const struct ph_peer_key *key, char *buf, size_t len);

#endif /* PH_USER_POLICY_H */
