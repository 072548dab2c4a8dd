/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Real sockets for the BPF tests whose datapath asks the kernel about
 * them (bpf_skc_lookup_tcp(), bpf_sk_lookup_udp()): the XDP and TC test
 * runs look up sockets in the caller's network namespace, so a test moves
 * into one of its own (unshare(CLONE_NEWNET)) and opens them there, on
 * loopback.
 */
#ifndef PH_TESTS_BPF_SOCK_H
#define PH_TESTS_BPF_SOCK_H

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/types.h>

/* Brings up this namespace's loopback (for a real connection). */
static inline int lo_up(void)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	err = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (!err) {
		ifr.ifr_flags |= IFF_UP;
		err = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return err;
}

/* The local port of socket @fd (0 on error). */
static inline __u16 sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	return ntohs(ss.ss_family == AF_INET ?
			     ((struct sockaddr_in *)&ss)->sin_port :
			     ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* @ss = the loopback address of @family (4 or 6) with @port, or the
 * wildcard address if !@loopback; returns its length. */
static inline socklen_t sock_addr(int family, __u16 port, int loopback,
				  struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == 4) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (loopback)
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	if (loopback)
		a6->sin6_addr = in6addr_loopback;
	return sizeof(*a6);
}

/* A listening TCP socket on @port (0: the kernel picks; *got says which),
 * any address of @family (IPv6: v6 only). Returns the fd or -1. */
static inline int listen_on(int family, __u16 port, __u16 *got)
{
	int fd = socket(family == 4 ? AF_INET : AF_INET6,
			SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_storage ss;
	socklen_t len = sock_addr(family, port, 0, &ss);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == 6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 8)) {
		fprintf(stderr, "listen on %u: %s\n", port, strerror(errno));
		close(fd);
		return -1;
	}
	if (got)
		*got = sock_port(fd);
	return fd;
}

#endif /* PH_TESTS_BPF_SOCK_H */
