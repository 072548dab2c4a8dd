// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Building blocks of an XDP policy datapath, one per program, each on top
 * of the bare floor (one per-CPU counter bump): what a 40-byte hash lookup,
 * an LRU insert, an LPM lookup... cost on this machine. bench.py reports
 * them as ns above the floor, a cost model for reading pinhole's figures.
 * Keys and values have pinhole's sizes (include/pinhole/pinhole.h).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <pinhole/pinhole.h>

struct stat {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stat);
} bare_stats SEC(".maps");

#define HASH_MAP(name, type_, n, k, v, fl)                                    \
	struct {                                                              \
		__uint(type, type_);                                          \
		__uint(max_entries, n);                                       \
		__type(key, k);                                               \
		__type(value, v);                                             \
		__uint(map_flags, fl);                                        \
	} name SEC(".maps")

struct key16 {
	__be32 local, remote;
	__be16 lport, rport;
	__u8 proto, pad[3];
};

#define FK struct ph_flow_key
HASH_MAP(m_hash, BPF_MAP_TYPE_HASH, PH_EXPECT_MAX, FK, struct ph_expect, 0);
HASH_MAP(m_lru, BPF_MAP_TYPE_LRU_HASH, PH_FLOWS_MAX_DEFAULT, FK, struct ph_flow, 0);
HASH_MAP(m_lru16, BPF_MAP_TYPE_LRU_HASH, PH_FLOWS_MAX_DEFAULT, struct key16,
	 struct ph_flow, 0);
HASH_MAP(m_lru_new, BPF_MAP_TYPE_LRU_HASH, PH_HALF_OPEN_MAX_DEFAULT, FK,
	 struct ph_flow, 0);
HASH_MAP(m_lru_pcpu, BPF_MAP_TYPE_LRU_HASH, PH_HALF_OPEN_MAX_DEFAULT, FK,
	 struct ph_flow, BPF_F_NO_COMMON_LRU);
HASH_MAP(m_lpm, BPF_MAP_TYPE_LPM_TRIE, PH_PEER_SET_MAX, struct ph_peer_key,
	 struct ph_peer_val, BPF_F_NO_PREALLOC);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_PORT_ENTRIES);
	__type(key, __u32);
	__type(value, __u16);
} m_array SEC(".maps");

__u64 seq = 0;

static __always_inline int floor_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct stat *s = bpf_map_lookup_elem(&bare_stats, &key);

	if (s) {
		s->packets++;
		s->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

/* A flow key as the datapath builds it: v4-mapped addresses. */
static __always_inline void make_key(struct ph_flow_key *k, __u32 remote)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->local[10] = k->local[11] = 0xff;
	k->local[12] = 10, k->local[13] = 197, k->local[15] = 2;
	k->remote[10] = k->remote[11] = 0xff;
	__builtin_memcpy(&k->remote[12], &remote, 4);
	k->lport = 0x5000;
	k->rport = 0x409c;
	k->proto = 6;
}

SEC("xdp")
int b_floor(struct xdp_md *ctx)
{
	return floor_count(ctx);
}

SEC("xdp")
int b_ktime_coarse(struct xdp_md *ctx)
{
	seq += bpf_ktime_get_coarse_ns() & 1;
	return floor_count(ctx);
}

SEC("xdp")
int b_ktime(struct xdp_md *ctx)
{
	seq += bpf_ktime_get_ns() & 1;
	return floor_count(ctx);
}

SEC("xdp")
int b_jiffies64(struct xdp_md *ctx)
{
	seq += bpf_jiffies64() & 1;
	return floor_count(ctx);
}

SEC("xdp")
int b_array_x3(struct xdp_md *ctx)
{
	__u32 a = 1, b = 65617, c = 131150;
	__u16 *x = bpf_map_lookup_elem(&m_array, &a);
	__u16 *y = bpf_map_lookup_elem(&m_array, &b);
	__u16 *z = bpf_map_lookup_elem(&m_array, &c);

	if (x && y && z)
		seq += *x + *y + *z;
	return floor_count(ctx);
}

SEC("xdp")
int b_hash_miss(struct xdp_md *ctx)
{
	struct ph_flow_key k;

	make_key(&k, 0x0100c50a);
	if (bpf_map_lookup_elem(&m_hash, &k))
		seq++;
	return floor_count(ctx);
}

SEC("xdp")
int b_lru_miss(struct xdp_md *ctx)
{
	struct ph_flow_key k;

	make_key(&k, 0x0100c50a);
	if (bpf_map_lookup_elem(&m_lru, &k))
		seq++;
	return floor_count(ctx);
}

SEC("xdp")
int b_lru_hit(struct xdp_md *ctx)
{
	struct ph_flow_key k;
	struct ph_flow *f, v = {};

	make_key(&k, 0x0200c50a);
	f = bpf_map_lookup_elem(&m_lru, &k);
	if (f)
		seq += f->state;
	else
		bpf_map_update_elem(&m_lru, &k, &v, BPF_ANY);
	return floor_count(ctx);
}

SEC("xdp")
int b_lru_hit_key16(struct xdp_md *ctx)
{
	struct key16 k = { .local = 0x0200c50a, .remote = 0x0100c50a,
			   .lport = 0x5000, .rport = 0x409c, .proto = 6 };
	struct ph_flow *f, v = {};

	f = bpf_map_lookup_elem(&m_lru16, &k);
	if (f)
		seq += f->state;
	else
		bpf_map_update_elem(&m_lru16, &k, &v, BPF_ANY);
	return floor_count(ctx);
}

/* A new key every run, as half_open sees a SYN flood: evicts once full. */
SEC("xdp")
int b_lru_insert(struct xdp_md *ctx)
{
	struct ph_flow_key k;
	struct ph_flow v = {};

	make_key(&k, (__u32)seq++);
	bpf_map_update_elem(&m_lru_new, &k, &v, BPF_ANY);
	return floor_count(ctx);
}

SEC("xdp")
int b_lru_insert_percpu(struct xdp_md *ctx)
{
	struct ph_flow_key k;
	struct ph_flow v = {};

	make_key(&k, (__u32)seq++);
	bpf_map_update_elem(&m_lru_pcpu, &k, &v, BPF_ANY);
	return floor_count(ctx);
}

/* What taking a pinhole costs: install, look up, delete. */
SEC("xdp")
int b_hash_insert_delete(struct xdp_md *ctx)
{
	struct ph_flow_key k;
	struct ph_expect v = {};

	make_key(&k, 0x0300c50a);
	bpf_map_update_elem(&m_hash, &k, &v, BPF_ANY);
	if (bpf_map_lookup_elem(&m_hash, &k))
		bpf_map_delete_elem(&m_hash, &k);
	return floor_count(ctx);
}

SEC("xdp")
int b_lpm_hit(struct xdp_md *ctx)
{
	struct ph_peer_key k = { .prefixlen = 128 };
	struct ph_peer_val v = { .action = PH_ACT_ALLOW };

	k.addr[10] = k.addr[11] = 0xff;
	k.addr[12] = 10, k.addr[13] = 197, k.addr[15] = 1;
	if (bpf_map_lookup_elem(&m_lpm, &k)) {
		seq++;
	} else {
		k.prefixlen = 96 + 24;
		k.addr[15] = 0;
		bpf_map_update_elem(&m_lpm, &k, &v, BPF_ANY);
	}
	return floor_count(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
