// SPDX-License-Identifier: Apache-2.0
/*
 * Kernel data path for TURN ChannelData over UDP (RFC 8656 section 12), a tc (cls_bpf,
 * direct-action) ingress program for the relay's interfaces.
 *
 *   client -> peer: a ChannelData message from a client's 5-tuple (client address, listener
 *     address) on a bound channel loses its 4-byte header and leaves as plain UDP from the
 *     allocation's relayed address to the peer.
 *   peer -> client: a UDP datagram from a peer to a relayed address gains the channel's 4-byte
 *     header and leaves from the listener address to the client (no padding: RFC 8656 makes it
 *     optional over UDP).
 *
 * Everything this program does not forward it returns unchanged with TC_ACT_OK, so the relay's
 * sockets see it as if nothing were attached: STUN/TURN control messages, Send and Data
 * indications, TCP, IPv4 with options or fragments, IPv6 with extension headers, padded or
 * truncated ChannelData, channels and peers with no route, datagrams whose TTL/hop limit would
 * run out, and datagrams that would exceed the egress MTU once the header is added.
 *
 * Design choices (the Python side, turn_relay/offload/, documents the map layout it writes):
 *   - The UDP header stays where it is and the payload moves by 4 bytes (through a per-CPU
 *     scratch buffer), instead of moving the headers with bpf_skb_adjust_room(). A locally sent
 *     packet (loopback, or veth from a container on this host) arrives with CHECKSUM_PARTIAL,
 *     whose csum_start points at the UDP header. bpf_skb_adjust_room() keeps the bytes after its
 *     offset in place and does not move csum_start, so moving the UDP header would leave it 4
 *     bytes off and the checksum would be written into the wrong field wherever it is finally
 *     computed (read from the kernel source; that variant was not built). The tests cover a
 *     partial checksum that the relay's egress device computes in software.
 *   - Checksums are updated incrementally with the kernel's helpers, separately for the pseudo
 *     header (BPF_F_PSEUDO_HDR) and for the segment, so full checksums, CHECKSUM_PARTIAL seeds
 *     and an IPv4 checksum of zero ("none") all come out right. The IPv4 header checksum is
 *     computed afresh.
 *   - TTL / hop limit: decremented by one, as a forwarding hop does (the userspace path sends
 *     with the host's default instead); datagrams arriving with 1 or 0 go to userspace. DSCP,
 *     ECN, the IPv4 DF bit and identification, and the IPv6 flow label are kept.
 *   - Egress: each route names an interface index. Non-zero: bpf_redirect_neigh() to that
 *     interface (the kernel picks the next hop and fills in the MAC addresses); the relay's
 *     namespace needs no IP forwarding. A peer -> client route also carries that interface's MTU
 *     (bpf_check_mtu() is GPL-only, and this program is not GPL); a datagram that would exceed
 *     it once the header is added goes to userspace. Zero: the destination is an address of this host (a relay
 *     and its peers on loopback): the rewritten packet goes back to the stack with TC_ACT_OK and is
 *     delivered locally.
 *   - Counters (packets, application bytes) live in each route's map value.
 *   - Not XDP: a relay with client- and peer-facing interfaces (and the veth lab) needs a
 *     redirect that fills in the next hop's MAC address, which is bpf_redirect_neigh(), a tc
 *     helper. From XDP that takes bpf_fib_lookup(), which refuses unless IP forwarding is on for
 *     the ingress device, and a relay should not be made a router for that. XDP would fit a
 *     one-interface relay answering out the same NIC (XDP_TX with swapped MACs).
 *   - Ethernet framing is assumed (14-byte header): the loader attaches only to Ethernet and
 *     loopback devices. GSO packets (several datagrams in one skb) go to userspace.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_ROUTES 65536
#define CHANNEL_HEADER_LEN 4
/* Largest payload moved in the kernel; bigger datagrams go to userspace. Power of two. */
#define SCRATCH_LEN 2048
#define FAMILY_IPV4 4
#define FAMILY_IPV6 6
#define IPV4_HEADER_LEN 20
#define IPV6_HEADER_LEN 40
#define UDP_HEADER_LEN 8
#define UDP_CHECK_OFFSET 6
#define IPV4_FRAGMENT_BITS 0x3fff /* MF flag and fragment offset */

/* Keys and values: byte layout mirrored by turn_relay/offload/maps.py (struct formats). */
struct counters {
	__u64 packets;
	__u64 bytes; /* application data: the ChannelData payload */
};

struct channel_key { /* a client's ChannelData: 40 bytes */
	__u8 client_addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u8 listener_addr[16];
	__be16 client_port;
	__be16 listener_port;
	__be16 channel;
	__u8 family; /* FAMILY_IPV4 or FAMILY_IPV6 */
	__u8 pad;
};

struct channel_route { /* where that ChannelData goes: 56 bytes */
	__u8 relayed_addr[16];
	__u8 peer_addr[16];
	__be16 relayed_port;
	__be16 peer_port;
	__u32 egress_ifindex; /* 0: a local destination, back to the stack */
	struct counters forwarded;
};

struct peer_key { /* a peer's datagram to a relayed address: 40 bytes */
	__u8 peer_addr[16];
	__u8 relayed_addr[16];
	__be16 peer_port;
	__be16 relayed_port;
	__u8 family;
	__u8 pad[3];
};

struct peer_route { /* where that datagram goes, as ChannelData: 64 bytes */
	__u8 listener_addr[16];
	__u8 client_addr[16];
	__be16 listener_port;
	__be16 client_port;
	__u32 egress_ifindex;
	__be16 channel;
	__u16 egress_mtu; /* host order; 0: no limit (a local destination) */
	__u8 pad[4];
	struct counters forwarded;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_ROUTES);
	__type(key, struct channel_key);
	__type(value, struct channel_route);
} channels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_ROUTES);
	__type(key, struct peer_key);
	__type(value, struct peer_route);
} peers SEC(".maps");

struct scratch {
	__u8 bytes[SCRATCH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_space SEC(".maps");

/* The parts of a datagram's addressing that a forward rewrites. */
struct rewrite {
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__be16 src_port;
	__be16 dst_port;
	__u32 egress_ifindex;
	__be16 channel;	    /* peer -> client only */
	__u16 egress_mtu;   /* peer -> client only */
};

struct parsed {
	__u8 family;
	__u32 l4_offset;  /* of the UDP header */
	__u32 udp_len;    /* UDP header + payload, from the UDP header */
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__be16 src_port;
	__be16 dst_port;
	__be16 udp_len_be;
	struct iphdr ip4;
	struct ipv6hdr ip6;
};

static __always_inline __u16 ipv4_header_checksum(const struct iphdr *ip)
{
	const __u16 *words = (const __u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < IPV4_HEADER_LEN / 2; i++)
		sum += words[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Payload of `len` bytes at `from` moves to `to` (4 bytes either way). */
static __always_inline int move_payload(struct __sk_buff *skb, __u32 from, __u32 to, __u32 len)
{
	__u32 zero = 0;
	struct scratch *buf;
	__u64 n;

	buf = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!buf)
		return -1;
	if (len == 0)
		return 0;
	if (len > SCRATCH_LEN - 1)
		return -1;
	/* Hide the value from clang, then mask it: the verifier sees the bound on the very
	 * register the helpers get (clang otherwise checks a copy). */
	n = len;
	asm volatile("" : "+r"(n));
	n &= SCRATCH_LEN - 1;
	if (n == 0)
		return -1;
	if (bpf_skb_load_bytes(skb, from, buf->bytes, n) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, to, buf->bytes, n, BPF_F_RECOMPUTE_CSUM);
}

static __always_inline int parse_udp(struct __sk_buff *skb, struct parsed *p)
{
	struct udphdr udp;
	__u32 l3_len;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &p->ip4, sizeof(p->ip4)) < 0)
			return -1;
		if (p->ip4.ihl != 5 || p->ip4.version != 4 || p->ip4.protocol != IPPROTO_UDP)
			return -1;
		if (p->ip4.frag_off & bpf_htons(IPV4_FRAGMENT_BITS))
			return -1;
		if (p->ip4.ttl <= 1)
			return -1;
		p->family = FAMILY_IPV4;
		p->l4_offset = ETH_HLEN + IPV4_HEADER_LEN;
		l3_len = bpf_ntohs(p->ip4.tot_len);
		if (l3_len < IPV4_HEADER_LEN)
			return -1;
		l3_len -= IPV4_HEADER_LEN;
		__builtin_memcpy(p->src_addr, &p->ip4.saddr, 4);
		__builtin_memcpy(p->dst_addr, &p->ip4.daddr, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &p->ip6, sizeof(p->ip6)) < 0)
			return -1;
		if (p->ip6.version != 6 || p->ip6.nexthdr != IPPROTO_UDP)
			return -1;
		if (p->ip6.hop_limit <= 1)
			return -1;
		p->family = FAMILY_IPV6;
		p->l4_offset = ETH_HLEN + IPV6_HEADER_LEN;
		l3_len = bpf_ntohs(p->ip6.payload_len);
		__builtin_memcpy(p->src_addr, &p->ip6.saddr, 16);
		__builtin_memcpy(p->dst_addr, &p->ip6.daddr, 16);
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes(skb, p->l4_offset, &udp, sizeof(udp)) < 0)
		return -1;
	p->udp_len = bpf_ntohs(udp.len);
	if (p->udp_len < UDP_HEADER_LEN || p->udp_len != l3_len)
		return -1;
	if (skb->len < p->l4_offset + p->udp_len)
		return -1;
	/* IPv6 requires a UDP checksum; a zero one is left for the stack to judge. */
	if (p->family == FAMILY_IPV6 && udp.check == 0)
		return -1;
	p->src_port = udp.source;
	p->dst_port = udp.dest;
	p->udp_len_be = udp.len;
	return 0;
}

enum outcome {
	UNCHANGED, /* left for userspace, not a byte written */
	REWRITTEN, /* ready to leave */
	BROKEN,	   /* a helper failed half way: the packet must be dropped */
};

/*
 * Rewrite a parsed datagram for `out`, growing (+4, peer -> client) or shrinking (-4, client ->
 * peer) it by the ChannelData header. Every check that can still leave the packet to userspace is
 * done before the first write.
 */
static __always_inline enum outcome rewrite(struct __sk_buff *skb, struct parsed *p,
				   const struct rewrite *out, int grow)
{
	__u32 payload_offset = p->l4_offset + UDP_HEADER_LEN;
	__u32 old_payload_len = p->udp_len - UDP_HEADER_LEN;
	__u32 new_udp_len = grow ? p->udp_len + CHANNEL_HEADER_LEN : p->udp_len - CHANNEL_HEADER_LEN;
	__u32 moved_len = grow ? old_payload_len : old_payload_len - CHANNEL_HEADER_LEN;
	__u32 new_frame_len = p->l4_offset + new_udp_len;
	__u32 check_offset = p->l4_offset + UDP_CHECK_OFFSET;
	__u64 csum_flags = p->family == FAMILY_IPV4 ? BPF_F_MARK_MANGLED_0 : 0;
	__be32 old_pseudo[9] = {}, new_pseudo[9] = {};
	__be32 old_segment[3] = {}, new_segment[3] = {};
	struct udphdr udp;
	__s64 diff;

	if (moved_len > SCRATCH_LEN - 1 || new_udp_len > 0xffff - IPV6_HEADER_LEN)
		return UNCHANGED;
	/* bpf_check_mtu() is GPL-only; the route carries the egress MTU read at route-up. */
	if (grow && out->egress_mtu && new_frame_len - ETH_HLEN > out->egress_mtu)
		return UNCHANGED;

	/* Checksum deltas, from the old values before anything is written. */
	__builtin_memcpy(old_pseudo, p->src_addr, 16);
	__builtin_memcpy(old_pseudo + 4, p->dst_addr, 16);
	old_pseudo[8] = (__u32)p->udp_len_be;
	__builtin_memcpy(new_pseudo, out->src_addr, 16);
	__builtin_memcpy(new_pseudo + 4, out->dst_addr, 16);
	new_pseudo[8] = (__u32)bpf_htons(new_udp_len);
	old_segment[0] = ((__u32)p->dst_port << 16) | p->src_port;
	old_segment[1] = (__u32)p->udp_len_be;
	new_segment[0] = ((__u32)out->dst_port << 16) | out->src_port;
	new_segment[1] = (__u32)bpf_htons(new_udp_len);
	if (grow) {
		new_segment[2] = ((__u32)bpf_htons(old_payload_len) << 16) | out->channel;
	} else {
		if (bpf_skb_load_bytes(skb, payload_offset, &old_segment[2], 4) < 0)
			return UNCHANGED;
	}

	/* Payload first: growing needs the room at the tail before it moves up. */
	if (grow) {
		__be16 header[2] = {out->channel, bpf_htons(old_payload_len)};

		if (bpf_skb_change_tail(skb, new_frame_len, 0) < 0)
			return BROKEN;
		if (move_payload(skb, payload_offset, payload_offset + CHANNEL_HEADER_LEN,
				 moved_len) < 0)
			return BROKEN;
		if (bpf_skb_store_bytes(skb, payload_offset, header, sizeof(header),
					BPF_F_RECOMPUTE_CSUM) < 0)
			return BROKEN;
	} else {
		if (move_payload(skb, payload_offset + CHANNEL_HEADER_LEN, payload_offset,
				 moved_len) < 0)
			return BROKEN;
		if (bpf_skb_change_tail(skb, new_frame_len, 0) < 0)
			return BROKEN;
	}

	/* IP header. */
	if (p->family == FAMILY_IPV4) {
		struct iphdr ip = p->ip4;

		__builtin_memcpy(&ip.saddr, out->src_addr, 4);
		__builtin_memcpy(&ip.daddr, out->dst_addr, 4);
		ip.tot_len = bpf_htons(IPV4_HEADER_LEN + new_udp_len);
		ip.ttl -= 1;
		ip.check = 0;
		ip.check = ipv4_header_checksum(&ip);
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM) < 0)
			return BROKEN;
	} else {
		struct ipv6hdr ip = p->ip6;

		__builtin_memcpy(&ip.saddr, out->src_addr, 16);
		__builtin_memcpy(&ip.daddr, out->dst_addr, 16);
		ip.payload_len = bpf_htons(new_udp_len);
		ip.hop_limit -= 1;
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM) < 0)
			return BROKEN;
	}

	/* UDP header (checksum field untouched here), then its checksum, by delta. */
	udp.source = out->src_port;
	udp.dest = out->dst_port;
	udp.len = bpf_htons(new_udp_len);
	if (bpf_skb_store_bytes(skb, p->l4_offset, &udp, 4 + 2, BPF_F_RECOMPUTE_CSUM) < 0)
		return BROKEN;
	diff = bpf_csum_diff(old_pseudo, sizeof(old_pseudo), new_pseudo, sizeof(new_pseudo), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, check_offset, 0, diff,
					    BPF_F_PSEUDO_HDR | csum_flags) < 0)
		return BROKEN;
	diff = bpf_csum_diff(old_segment, sizeof(old_segment), new_segment, sizeof(new_segment), 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, check_offset, 0, diff, csum_flags) < 0)
		return BROKEN;

	return REWRITTEN;
}

/* The tc verdict for a rewritten packet, counting it. */
static __always_inline int send(struct counters *forwarded, __u32 data_len,
				const struct rewrite *out, enum outcome outcome)
{
	if (outcome == UNCHANGED)
		return TC_ACT_OK;
	if (outcome == BROKEN)
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&forwarded->packets, 1);
	__sync_fetch_and_add(&forwarded->bytes, data_len);
	if (out->egress_ifindex)
		return bpf_redirect_neigh(out->egress_ifindex, NULL, 0, 0);
	return TC_ACT_OK;
}

static __always_inline int from_client(struct __sk_buff *skb, struct parsed *p)
{
	struct channel_key key = {};
	struct channel_route *route;
	struct rewrite out = {};
	__u8 header[4];
	__u32 data_len;

	if (p->udp_len < UDP_HEADER_LEN + CHANNEL_HEADER_LEN)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l4_offset + UDP_HEADER_LEN, header, sizeof(header)) < 0)
		return -1;
	if ((header[0] & 0xc0) != 0x40) /* channel numbers 0x4000-0x7fff */
		return -1;
	__builtin_memcpy(key.client_addr, p->src_addr, 16);
	__builtin_memcpy(key.listener_addr, p->dst_addr, 16);
	key.client_port = p->src_port;
	key.listener_port = p->dst_port;
	__builtin_memcpy(&key.channel, header, 2);
	key.family = p->family;
	route = bpf_map_lookup_elem(&channels, &key);
	if (!route)
		return -1;
	data_len = ((__u32)header[2] << 8) | header[3];
	/* Exactly one unpadded message; padding, truncation and extra bytes go to userspace. */
	if (data_len + UDP_HEADER_LEN + CHANNEL_HEADER_LEN != p->udp_len)
		return TC_ACT_OK;
	__builtin_memcpy(out.src_addr, route->relayed_addr, 16);
	__builtin_memcpy(out.dst_addr, route->peer_addr, 16);
	out.src_port = route->relayed_port;
	out.dst_port = route->peer_port;
	out.egress_ifindex = route->egress_ifindex;
	return send(&route->forwarded, data_len, &out, rewrite(skb, p, &out, 0));
}

static __always_inline int from_peer(struct __sk_buff *skb, struct parsed *p)
{
	struct peer_key key = {};
	struct peer_route *route;
	struct rewrite out = {};
	__u32 data_len = p->udp_len - UDP_HEADER_LEN;

	__builtin_memcpy(key.peer_addr, p->src_addr, 16);
	__builtin_memcpy(key.relayed_addr, p->dst_addr, 16);
	key.peer_port = p->src_port;
	key.relayed_port = p->dst_port;
	key.family = p->family;
	route = bpf_map_lookup_elem(&peers, &key);
	if (!route)
		return -1;
	__builtin_memcpy(out.src_addr, route->listener_addr, 16);
	__builtin_memcpy(out.dst_addr, route->client_addr, 16);
	out.src_port = route->listener_port;
	out.dst_port = route->client_port;
	out.egress_ifindex = route->egress_ifindex;
	out.channel = route->channel;
	out.egress_mtu = route->egress_mtu;
	return send(&route->forwarded, data_len, &out, rewrite(skb, p, &out, 1));
}

SEC("tc")
int channel_forward(struct __sk_buff *skb)
{
	struct parsed p = {};
	int action;

	if (skb->gso_segs > 1)
		return TC_ACT_OK;
	if (parse_udp(skb, &p) < 0)
		return TC_ACT_OK;
	action = from_client(skb, &p);
	if (action >= 0)
		return action;
	action = from_peer(skb, &p);
	if (action >= 0)
		return action;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Apache-2.0";
