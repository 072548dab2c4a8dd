/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTP control-channel tracker: one struct ph_ftp_session per control
 * connection. It reassembles each direction by TCP sequence number, splits
 * it into lines, recognises the data-port commands and replies, and turns
 * them into pinhole actions (open / revoke / refuse / encrypted) under the
 * invariants of docs/ftp-tracking.md.
 *
 * Pure C: no BPF, no sockets, no clock (time is a parameter), no globals,
 * no allocation. The caller owns the session memory (about 10 KiB).
 *
 * Lines end with LF; a CR just before the LF is removed (so CRLF and bare
 * LF both end a line, like nf_conntrack_ftp). A lone CR is an ordinary
 * byte. A line longer than PH_FTP_LINE_MAX bytes (not counting CR LF) is
 * never parsed.
 */
#ifndef PH_USER_FTP_H
#define PH_USER_FTP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#define PH_FTP_LINE_MAX 512      /* bytes of a line without CR LF */
#define PH_FTP_OOO_SEGS 8        /* out-of-order segments held per direction */
#define PH_FTP_OOO_BYTES 4096    /* window held ahead of the next expected byte */
#define PH_FTP_BURST_MAX 8       /* data-port lines in a row from one side */
#define PH_FTP_MAX_ACTIONS 24    /* most actions one feed can return */
#define PH_FTP_SEG_MAX (1u << 20) /* longest segment ph_ftp_feed accepts */
#define PH_FTP_MIN_DATA_PORT 1024
#define PH_FTP_DEFAULT_TTL_NS (30ull * 1000000000ull)

enum ph_ftp_role {
	PH_FTP_ROLE_SERVER = 0, /* this host is the FTP server */
	PH_FTP_ROLE_CLIENT = 1, /* this host is the FTP client */
};

enum ph_ftp_action_kind {
	PH_FTP_OPEN = 1,  /* install key (struct ph_expect: deadline, dir) */
	PH_FTP_REVOKE,    /* delete key (it may already be used or expired) */
	PH_FTP_REFUSE,    /* nothing installed; reason says why (for logs) */
	PH_FTP_ENCRYPTED, /* control channel now encrypted: tracking stopped */
};

/* Which negotiation produced an action. */
enum ph_ftp_via {
	PH_FTP_VIA_NONE = 0,
	PH_FTP_VIA_PORT, /* PORT h1,h2,h3,h4,p1,p2 */
	PH_FTP_VIA_EPRT, /* EPRT |af|addr|port| */
	PH_FTP_VIA_PASV, /* PASV answered by 227 */
	PH_FTP_VIA_EPSV, /* EPSV answered by 229 */
	PH_FTP_VIA_MAX,
};

/* X(enum suffix, short name, text) */
#define PH_FTP_REFUSE_REASONS(X)                                              \
	X(BOUNCE, "bounce",                                                   \
	  "PORT/EPRT address is not the control connection's client")        \
	X(THIRD_PARTY, "third_party",                                         \
	  "227 address is not the control connection's server")              \
	X(LOW_PORT, "low_port", "data port below 1024")                       \
	X(BAD_NUMBER, "bad_number",                                           \
	  "malformed number: not decimal, sign, octet > 255, port 0 or > 65535") \
	X(BAD_SYNTAX, "bad_syntax", "malformed argument")                     \
	X(WRONG_FAMILY, "wrong_family",                                       \
	  "address family differs from the control connection's")            \
	X(UNSOLICITED, "unsolicited_reply",                                   \
	  "227/229 that does not answer the client's PASV/EPSV")             \
	X(MULTILINE, "multiline_reply", "227/229 sent as a multi-line reply") \
	X(LINE_TOO_LONG, "line_too_long",                                     \
	  "data-port command or reply longer than 512 bytes")                \
	X(FLOOD, "flood",                                                     \
	  "more than 8 data-port lines from one side without a line from the other")

#define PH_FTP_X_ENUM(e, n, t) PH_FTP_REFUSE_##e,
enum ph_ftp_refuse {
	PH_FTP_REFUSE_NONE = 0,
	PH_FTP_REFUSE_REASONS(PH_FTP_X_ENUM)
	PH_FTP_REFUSE_MAX,
};
#undef PH_FTP_X_ENUM

struct ph_ftp_config {
	int family;              /* AF_INET or AF_INET6 */
	__u8 client_addr[16];    /* v4-mapped for AF_INET */
	__u8 server_addr[16];
	__be16 client_port;      /* control ports, network byte order */
	__be16 server_port;
	enum ph_ftp_role role;
	__u64 ttl_ns;            /* pinhole lifetime; 0: PH_FTP_DEFAULT_TTL_NS */
	bool implicit_tls;       /* encrypted from the start (e.g. port 990) */
	/* nat-address of the service (1:1 NAT): addresses that may stand
	 * for this host's own (server_addr on a server, client_addr on a
	 * client) in 227 / PORT / EPRT. v4-mapped for IPv4. */
	int nnat;
	__u8 nat_addr[PH_NAT_ADDRS_MAX][16];
};

struct ph_ftp_action {
	enum ph_ftp_action_kind kind;
	enum ph_ftp_refuse reason; /* REFUSE only */
	enum ph_ftp_via via;       /* OPEN, REVOKE, REFUSE */
	__u8 dir;                  /* enum ph_dir: where the data SYN will be seen */
	/*
	 * OPEN / REVOKE: the expectation key, host-oriented, proto TCP, the
	 * initiating side's port 0 (wildcard). Zero for REFUSE / ENCRYPTED.
	 */
	struct ph_flow_key key;
	__u64 deadline_ns;         /* OPEN / REVOKE: now + ttl at open */
	/* What the peer announced, when it parsed (REFUSE: for the log). */
	__u8 announced_addr[16];   /* v4-mapped; zero for EPSV/229 */
	__u16 announced_port;      /* host byte order; 0 if not parsed */
};

struct ph_ftp_stats {
	__u64 bytes[2];           /* consumed in order; [0] server, [1] client */
	__u64 dup_bytes;          /* already consumed: ignored */
	__u64 ooo_segments;       /* held out of order */
	__u64 gaps;               /* out-of-order bound exceeded: data lost */
	__u64 ack_gaps;           /* the local stack acknowledged bytes never seen */
	__u64 ooo_replaced;       /* held bytes replaced by a later copy (Linux rule) */
	__u64 contested;          /* held bytes whose kept copy is uncertain */
	__u64 resyncs;            /* streams restarted at the next line */
	__u64 lines;              /* complete lines processed */
	__u64 lf[2];              /* line ends per side, discarded lines too */
	__u64 resumed;            /* ph_ftp_resume() calls that moved a stream */
	__u64 resumed_bytes;      /* bytes skipped by them (never fed) */
	__u64 lines_discarded;    /* too long, or cut by a gap: never parsed */
	__u64 lines_ignored;      /* client lines while AUTH awaits its reply */
	__u64 encrypted_bytes;    /* fed after encryption: ignored */
	__u64 opened;
	__u64 revoked;
	__u64 refused[PH_FTP_REFUSE_MAX]; /* by reason (FLOOD: every one) */
	__u64 actions_lost;       /* output full (a bug: should stay 0) */
};

/* ---- internal state (in the header only for sizeof) ---- */

enum ph_ftp_cmd {
	PH_FTP_CMD_NONE = 0,
	PH_FTP_CMD_OTHER,
	PH_FTP_CMD_PORT,
	PH_FTP_CMD_EPRT,
	PH_FTP_CMD_PASV,
	PH_FTP_CMD_EPSV,
	PH_FTP_CMD_AUTH,
};

/* A held out-of-order segment. joined: it began where the one before it
 * ended, so Linux may have merged the two (see ftp.c, hold()). */
struct ph_ftp_seg {
	__u32 seq, end;
	bool joined;
};

struct ph_ftp_stream {
	__u32 nxt;                /* next expected sequence number */
	bool synced;              /* nxt is known */
	bool skip_to_eol;         /* resynchronising after a gap */
	bool overlong;            /* current line exceeded the buffer */
	__u16 line_len;
	__u8 nseg;
	__u32 burst;              /* data-port lines since the other side spoke */
	struct ph_ftp_seg seg[PH_FTP_OOO_SEGS]; /* by seq; ends increase too */
	char line[PH_FTP_LINE_MAX + 1]; /* + the CR before LF */
	/* held bytes whose copy the endpoint may not have kept (contested) */
	__u8 ooo_taint[PH_FTP_OOO_BYTES / 8];
	__u8 ooo[PH_FTP_OOO_BYTES];   /* held bytes, each the copy Linux keeps */
};

struct ph_ftp_session {
	struct ph_ftp_config cfg;
	struct ph_ftp_stream st[2]; /* [0] from the server, [1] from the client */
	/* client command awaiting its final reply (invariant 3) */
	enum ph_ftp_cmd last_cmd;
	bool awaiting;
	bool epsv_bad_family;    /* EPSV <n> of the other family */
	bool last_cmd_opened;    /* the pending pinhole came from last_cmd */
	/* server reply state */
	bool in_multiline;
	__u16 ml_code;
	/* the one pending pinhole (invariant 6) */
	bool has_pending;
	struct ph_ftp_action pending;
	bool encrypted;
	bool closed;
	struct ph_ftp_stats stats;
};

/* ---- API ---- */

/* Returns 0 or -EINVAL (bad family, IPv4 address not v4-mapped, role). */
int ph_ftp_init(struct ph_ftp_session *s, const struct ph_ftp_config *cfg);

/* The SYN of one direction: its first data byte is syn_seq + 1. Without
 * it, the first segment fed starts the stream (assumed at a line start).
 * Returns -EBUSY if that direction already carried data. */
int ph_ftp_set_isn(struct ph_ftp_session *s, int from_client, __u32 syn_seq);

/*
 * One TCP segment's payload. Writes up to max_out actions, returns how
 * many, or -EINVAL (max_out < PH_FTP_MAX_ACTIONS, len > PH_FTP_SEG_MAX,
 * data NULL with len > 0). Actions are in order: apply them in order.
 */
int ph_ftp_feed(struct ph_ftp_session *s, int from_client, __u32 seq,
		const void *data, size_t len, __u64 now_ns,
		struct ph_ftp_action *out, int max_out);

/*
 * The local TCP stack acknowledged the stream of one side up to @ack (the
 * ACK of a segment this host sent: the segment's own record, seen on
 * egress). Bytes before @ack that were never fed reached the endpoint
 * anyway (IP fragments, lost records): they are a gap, and the stream
 * resynchronises at the next line from @ack on; what was held below or
 * beyond it is dropped (the endpoint's copies of it are unknown). Returns
 * true if it declared a gap. Never yields actions.
 */
bool ph_ftp_ack(struct ph_ftp_session *s, int from_client, __u32 ack);

/*
 * Where another parser of the same stream stands (the datapath's, which
 * parsed bytes this session was never fed: docs/tracker.md, "Quiet and
 * lost records"): per side the next sequence number and the line in
 * progress, and the command/reply pairing there.
 */
struct ph_ftp_resume {
	__u32 nxt[2];          /* [0] the server's stream, [1] the client's */
	__u16 line_len[2];     /* bytes of the line in progress */
	__u8 head[2][8];       /* its first bytes: all of it if line_len <= 8 */
	bool skip[2];          /* that line is dropped (it began in a gap) */
	__u32 burst[2];        /* data-port lines since the other side spoke */
	enum ph_ftp_cmd last_cmd;
	bool awaiting;
	bool epsv_bad_family;
	bool last_cmd_opened;
	bool in_multiline;
	__u16 ml_code;
	bool encrypted;        /* a 234 was among the bytes skipped */
	/* The bytes skipped may have held anything, not only lines that open
	 * or close nothing: then the pending pinhole goes unless it is
	 * @keep (the other parser's own pinhole, which it still holds). */
	bool lost;
	bool has_keep;
	struct ph_flow_key keep;
};

/* Most actions one ph_ftp_resume() can return: both streams may deliver
 * what they held, and a pending pinhole may go. */
#define PH_FTP_RESUME_MAX_ACTIONS (2 * PH_FTP_MAX_ACTIONS + 2)

/* ph_ftp_resume() result bits */
#define PH_FTP_RESUMED 1u   /* a stream moved forward */
#define PH_FTP_RESUME_BLIND 2u /* a line in progress is not known whole:
				* the pairing failed closed around it */

/*
 * Moves every stream that is behind @r forward to it (held segments below
 * it are dropped, the line in progress becomes the one @r describes) and,
 * if no stream of ours is ahead of @r, takes its pairing state. A stream
 * ahead of @r, or level with it, is left alone. Writes actions (a REVOKE
 * when @r->lost drops the pending pinhole; what held segments made
 * contiguous yield; max_out >= PH_FTP_RESUME_MAX_ACTIONS) and returns
 * their number in *nact; returns the PH_FTP_RESUME* bits, or -EINVAL.
 */
int ph_ftp_resume(struct ph_ftp_session *s, const struct ph_ftp_resume *r,
		  __u64 now_ns, struct ph_ftp_action *out, int max_out,
		  int *nact);

/* Control connection closed: revokes the pending pinhole. Returns the
 * number of actions (0 or 1); later feeds are ignored. */
int ph_ftp_close(struct ph_ftp_session *s, struct ph_ftp_action *out,
		 int max_out);

/* The caller removed the pending pinhole itself (it was used, or it
 * expired): forget it without a REVOKE. */
void ph_ftp_forget_pending(struct ph_ftp_session *s);

/* The pending pinhole (an OPEN action), if any. */
bool ph_ftp_pending(const struct ph_ftp_session *s, struct ph_ftp_action *out);
bool ph_ftp_encrypted(const struct ph_ftp_session *s);
const struct ph_ftp_stats *ph_ftp_stats(const struct ph_ftp_session *s);

const char *ph_ftp_refuse_name(enum ph_ftp_refuse r); /* "bounce", ... */
const char *ph_ftp_refuse_text(enum ph_ftp_refuse r);
const char *ph_ftp_action_name(enum ph_ftp_action_kind k); /* "open", ... */
const char *ph_ftp_via_name(enum ph_ftp_via v);            /* "PORT", ... */

#endif /* PH_USER_FTP_H */
