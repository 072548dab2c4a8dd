/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTP control-channel tracking: what the datapath reports to the session
 * tracker through the `events` ring buffer, and what the tracker publishes
 * in pinned maps for `pinhole sessions` and bpftool.
 *
 * Why a BPF ring buffer and not a perf buffer: one buffer shared by all CPUs
 * keeps a control connection's segments in the order they were processed
 * (a perf buffer is per CPU, so a tracker would have to re-merge them), and
 * reserve/commit avoids an extra copy. The price is that XDP before 5.18 has
 * no bpf_xdp_load_bytes(), so payload is copied by a bounded loop.
 */
#ifndef PINHOLE_CTRL_H
#define PINHOLE_CTRL_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <pinhole/pinhole.h>

#define PH_CTRL_CAP 512            /* payload bytes copied per segment */
#define PH_EVENTS_RINGBUF_SIZE (1u << 22)
#define PH_FTP_CTRL_MAX 16384      /* tracked control connections */

enum ph_ev_type {
	PH_EV_CTRL_DATA = 1,   /* payload of a tracked control segment */
	PH_EV_CTRL_OPEN = 2,   /* control connection confirmed (handshake done) */
	PH_EV_CTRL_CLOSE = 3,  /* FIN both ways, RST, or idle expiry */
	PH_EV_EXPECT_USED = 4, /* a pinhole admitted its data connection */
	PH_EV_EXPECT_BPF = 5,  /* the datapath installed a pinhole itself */
	/* Where the in-kernel parser stands (data: struct ph_ctrl_sync): the
	 * bytes before it that no CTRL_DATA showed were lines that open or
	 * close nothing (quiet, not reported), or records the full ring
	 * buffer refused (PH_SYNC_LOST). Sent before the next record of the
	 * session, and at most every PH_FTP_SYNC_PERIOD_S while it is quiet. */
	PH_EV_CTRL_SYNC = 6,
};

/* Which end of the FTP session this host is. */
enum ph_ftp_host_role {
	PH_ROLE_SERVER = 0, /* the control connection came in */
	PH_ROLE_CLIENT = 1, /* this host opened the control connection */
};

/* One ring-buffer record. */
struct ph_event {
	__u64 ts_ns;                /* bpf_ktime_get_coarse_ns() domain */
	struct ph_flow_key key;     /* control connection (host-oriented) */
	struct ph_flow_key expect;  /* EXPECT_*: the pinhole's key */
	__u32 seq;                  /* TCP sequence number of data[0] */
	__u32 session;
	__u16 len;                  /* payload bytes in the segment */
	__u16 caplen;               /* bytes in data[] (<= PH_CTRL_CAP) */
	__u8 type;                  /* enum ph_ev_type */
	__u8 dir;                   /* hook that saw it: PH_DIR_IN / OUT */
	__u8 from_client;           /* 1: sent by the FTP client */
	__u8 tcp_flags;             /* FIN 0x01, SYN 0x02, RST 0x04, ... */
	__u8 host_role;             /* enum ph_ftp_host_role */
	__u8 encrypted;             /* session is FTPS (implicit or after AUTH) */
	__u8 pad[2];
	/* CTRL_DATA seen on egress (dir OUT): the ACK number the local stack
	 * sent (tcp_flags has ACK), i.e. how far it accepted the peer's
	 * stream. Such a record may have no payload (len 0): a pure ACK the
	 * datapath reports because the peer's stream has bytes it never
	 * reported (ph_ftp_ack() in user/ftp.h). */
	__u32 ack;
	__u8 data[PH_CTRL_CAP];
};

/* ftp_sessions: hash keyed by the control flow key, written by the tracker. */
enum ph_ftp_sess_state {
	PH_SS_PLAIN = 0,     /* commands parsed */
	PH_SS_AUTH = 1,      /* AUTH sent, waiting for the reply */
	PH_SS_ENCRYPTED = 2, /* FTPS: nothing parsed any more */
	PH_SS_CLOSED = 3,
};

struct ph_ftp_session_info {
	__u64 started_ns;
	__u64 last_ns;
	__u64 pinhole_deadline_ns;
	struct ph_flow_key pinhole;  /* valid when has_pinhole */
	__u32 session;
	__u8 role;        /* enum ph_ftp_host_role */
	__u8 state;       /* enum ph_ftp_sess_state */
	__u8 has_pinhole;
	__u8 pinhole_dir; /* enum ph_dir the data SYN must arrive in */
	__u32 lines;      /* control lines parsed */
	__u32 opened, used, expired, revoked, refused;
	__u32 pad;
};

/* ftp_totals: array [1], totals since the instance started. */
#define PH_FTP_REFUSE_SLOTS 16
struct ph_ftp_totals {
	__u64 sessions;      /* control sessions seen */
	__u64 opened;        /* pinholes installed (tracker or datapath) */
	__u64 opened_bpf;    /* ... of which the datapath installed first */
	__u64 used;
	__u64 expired;
	__u64 revoked;
	__u64 refused;
	__u64 refused_by_reason[PH_FTP_REFUSE_SLOTS]; /* index: user/ftp.h enum */
	__u64 events;
	__u64 events_lost;   /* sequence gaps the tracker had to resync over */
	__u64 ftps_fixed;    /* ftps_peers entries the tracker corrected */
	/* Appended (layout 11): */
	__u64 syncs;         /* SYNC records taken (the datapath's position) */
	__u64 quiet_bytes;   /* bytes the datapath did not report (quiet or lost) */
	__u64 adopted;       /* sessions taken from ftp_ctrl at start */
	__u64 kept;          /* datapath pinholes kept unjudged (lines not seen whole) */
};

/* ---------------------------------------------------------------------- */
/* The datapath's own half of FTP tracking (bpf/lib/ftp.h,                 */
/* docs/datapath.md "FTP control connections"). Userspace only reads these. */
/* ---------------------------------------------------------------------- */

/* Payload of a segment reported as up to this many consecutive CTRL_DATA
 * records of at most PH_CTRL_CAP bytes each (seq, len = caplen per record;
 * a longer segment's last record has caplen < len). */
#define PH_CTRL_CHUNKS 4

/* PH_EV_CTRL_OPEN: data[] holds this (caplen = sizeof), taken from the
 * handshake: the sequence number of each side's first data byte. */
struct ph_ctrl_open_data {
	__u32 client_nxt;
	__u32 server_nxt;
};

/* A quiet session still sends a SYNC this often (the tracker's idle timer
 * and `pinhole sessions` see it alive). */
#define PH_FTP_SYNC_PERIOD_S 10

/* ph_ctrl_sync.flags */
#define PH_SYNC_LOST (1u << 0)      /* records were lost, not only quiet */
#define PH_SYNC_HEARTBEAT (1u << 1) /* sent for the period, not a record */

/* ph_ftp_parse.flags */
#define PH_FTPC_ENCRYPTED (1u << 0) /* implicit FTPS, or 234 seen: no parsing */
#define PH_FTPC_PINHOLE (1u << 1)   /* ph_ftp_parse.pinhole is installed */
/* The stream of the server (client) resumes after the next LF: the local
 * stack acknowledged bytes of it the parser never saw (a gap). */
#define PH_FTPC_SKIP_SERVER (1u << 2)
#define PH_FTPC_SKIP_CLIENT (1u << 3)

/* ph_ftp_parse.last_cmd: the client command awaiting its reply */
enum ph_ftpc_cmd {
	PH_FTPC_CMD_NONE = 0,
	PH_FTPC_CMD_OTHER,
	PH_FTPC_CMD_PORT,
	PH_FTPC_CMD_EPRT,
	PH_FTPC_CMD_PASV,
	PH_FTPC_CMD_EPSV,
	PH_FTPC_CMD_AUTH,
};

/* One direction of a control connection, as the in-kernel parser sees it. */
struct ph_ftp_stream_bpf {
	__u64 head;     /* first 8 bytes of the line (byte i: bits 8i..8i+7) */
	__u32 nxt;      /* sequence number of the next byte to parse */
	__u16 line_len; /* bytes of the current line so far (saturating) */
	__u8 cr;        /* the last of them is a CR */
	__u8 burst;     /* data-port lines since the other side's last line */
};

/* What the in-kernel parser knows of a session (user/ftp.c's state, cut
 * down to what one segment needs). */
struct ph_ftp_parse {
	struct ph_ftp_stream_bpf st[2]; /* [0] from the server, [1] the client */
	struct ph_flow_key pinhole;     /* valid with PH_FTPC_PINHOLE */
	__u8 flags;           /* PH_FTPC_* */
	__u8 last_cmd;        /* enum ph_ftpc_cmd */
	__u8 awaiting;        /* last_cmd has had no final reply yet */
	__u8 epsv_bad_family; /* EPSV 1/2 naming the other family */
	__u8 last_cmd_opened; /* the pinhole came from last_cmd (PORT/EPRT) */
	__u8 in_multiline;
	__u16 ml_code;        /* code of the open multi-line reply */
};

/* PH_EV_CTRL_SYNC: data[] holds this (caplen = sizeof): the in-kernel
 * parser's state at the first byte it has not reported (ps.st[i].nxt),
 * with the line in progress (ps.st[i].head, line_len: exact while
 * line_len <= 8) and its pinhole (ps.pinhole with PH_FTPC_PINHOLE). */
struct ph_ctrl_sync {
	struct ph_ftp_parse ps;
	__u8 flags;  /* PH_SYNC_* */
	__u8 pad[7];
};

/* ph_ftp_ctrl.sync */
#define PH_FTPC_SYNC_DUE (1u << 0)  /* records not reported since the last SYNC */
#define PH_FTPC_SYNC_LOST (1u << 1) /* ... some of them refused by the ring */

/* ftp_ctrl: hash keyed by the control flow key, written by the datapath
 * only, one entry per confirmed control connection. */
struct ph_ftp_ctrl {
	struct bpf_spin_lock lock; /* guards busy, desync and the copy of ps */
	__u8 busy;    /* a CPU is parsing a segment of this session right now */
	__u8 desync;  /* the in-kernel parser gave up on this session */
	__u8 role;    /* enum ph_ftp_host_role */
	__u8 family;  /* 4 or 6 */
	__u32 session;
	__u8 ftps;    /* this session holds one count in ftps_peers: taken
		       * and given back under the lock, so exactly once */
	__u8 sync;    /* PH_FTPC_SYNC_*: a SYNC is due before the next record */
	__u8 pad[2];
	__u64 created_ns;
	struct ph_ftp_parse ps;
	__u64 sync_ns; /* last record or SYNC reported (for the period) */
};

/* ftp_dp_stats: per-CPU array [1], the datapath's FTP counters. */
struct ph_ftp_dp_stats {
	__u64 sessions;    /* control connections confirmed (CTRL_OPEN) */
	__u64 segments;    /* control segments with payload reported */
	__u64 events;      /* records written to `events` */
	__u64 events_lost; /* records the full ring buffer refused */
	__u64 pinholes;    /* pinholes the datapath installed */
	__u64 desyncs;     /* sessions whose in-kernel parser stopped */
	__u64 conflicts;   /* segments of one session on two CPUs at once */
	__u64 ctrl_full;   /* control connections without an ftp_ctrl entry */
	__u64 ftps_counted;  /* FTPS control sessions counted in ftps_peers */
	__u64 ftps_released; /* ... and given back (close, replacement) */
	__u64 ftps_full;     /* ... not counted: ftps_peers was full */
	/* Appended (layout 11): */
	__u64 quiet;       /* records not reported: they open or close nothing */
	__u64 syncs;       /* SYNC records written */
	__u64 unreported;  /* pinholes installed whose EXPECT_BPF the ring refused */
};

/* ---------------------------------------------------------------------- */
/* FTPS control sessions (docs/datapath.md, "FTPS passive ranges").        */
/* ---------------------------------------------------------------------- */

/*
 * ftps_peers: hash (not LRU: an eviction would silently drop a live
 * session) keyed by the peer and the local address of live FTPS control
 * connections, v4-mapped like ph_flow_key. A SYN to an `ftps-range` port
 * is admitted only if {its source, its destination} has refs > 0 (and a
 * socket listens on the port). The datapath adds one per FTPS control
 * connection when it becomes one (implicit: handshake completed; explicit:
 * 234 after AUTH) and takes it back when the connection closes; the
 * session tracker recomputes the counts from the flow table every second
 * and corrects what drifted (flows evicted or expired without a close).
 */
struct ph_ftps_peer_key {
	__u8 remote[16]; /* the FTPS peer (client on a server, server on a client) */
	__u8 local[16];  /* this host's address of the control connection */
};

struct ph_ftps_peer {
	struct bpf_spin_lock lock; /* guards refs and last_ns */
	__u32 refs;                /* live FTPS control connections */
	__u64 last_ns;             /* last change: a count taken or given
				    * back, or a correction by the tracker */
};
#define PH_FTPS_PEERS_MAX 16384

#endif /* PINHOLE_CTRL_H */
