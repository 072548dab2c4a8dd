# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Long-lived traffic for tests/e2e/test_live_attach.sh: connections that
are already open when pinhole attaches, and the RSTs sent at them.

  live.py serve PORT
      TCP (IPv4 and IPv6) and UDP echo on PORT. A TCP client's first line
      says what it wants: "down SECS RATE" (a deterministic byte stream of
      RATE bytes/s for SECS seconds, then FIN; "sent PEER N SHA256" is
      printed) or "echo" (every byte back until EOF).
  live.py get HOST PORT SECS RATE OUT
      asks for a stream, reads it to EOF; OUT.port gets the local port,
      OUT.prog holds the bytes so far (rewritten every 0.1 s), OUT finally
      "ok N SHA256" or "error: ...".
  live.py udp HOST PORT SECS OUT
      a connected UDP socket: a datagram every 50 ms, each answered by the
      echo; OUT.prog the answers so far, OUT finally
      "ok SENT GOT MAXGAP_MS" (the longest time without an answer).
  live.py hold HOST PORT OUT
      an echo connection kept open and quiet: OUT.port gets the local port;
      each time the file OUT.go appears one byte goes out and comes back
      (OUT.go is removed, OUT.prog counts the round trips); a RST or any
      error ends it with "reset"/"error: ..." in OUT, OUT.quit ends it
      with "ok".
  live.py sniff IFACE SRC SPORT DPORT
      (scapy) waits up to 10 s for one TCP segment SRC:SPORT -> *:DPORT
      with payload, prints "ready" when listening, then the sequence
      number after it (seq + length).
  live.py rst IFACE DSTMAC SRC DST SPORT DPORT SEQ [COUNT BAND]
      (scapy) sends a RST SRC:SPORT -> DST:DPORT from this host's IFACE.
      COUNT > 0: COUNT blind ones instead: one at SEQ + 2^31, the others
      at random sequence numbers at least BAND away from SEQ (both ways,
      modulo 2^32).
"""
import hashlib
import os
import random
import socket
import sys
import threading
import time


def block(i):
    # 1 KiB block i of every stream: reproducible, not compressible
    h = hashlib.sha256(b"pinhole-live-%d" % i).digest()
    return h * 32


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def serve_tcp_conn(c, peer):
    try:
        f = c.makefile("rb")
        line = f.readline().decode().split()
        if line and line[0] == "down":
            secs, rate = float(line[1]), int(line[2])
            h, n, i, t0 = hashlib.sha256(), 0, 0, time.monotonic()
            while time.monotonic() - t0 < secs:
                b = block(i)
                c.sendall(b)
                h.update(b)
                n += len(b)
                i += 1
                # pace: where the stream should be by now
                ahead = n / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            c.shutdown(socket.SHUT_WR)
            print("sent %s %d %s" % (peer[0], n, h.hexdigest()), flush=True)
            f.read()
        elif line and line[0] == "echo":
            while True:
                d = c.recv(4096)
                if not d:
                    break
                c.sendall(d)
    except OSError as e:
        print("server %s: %s" % (peer[0], e), flush=True)
    finally:
        c.close()


def serve(port):
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    t.bind(("::", port))
    t.listen(16)
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", port))

    def udp_echo():
        while True:
            d, a = u.recvfrom(2048)
            u.sendto(b"echo:" + d, a)

    threading.Thread(target=udp_echo, daemon=True).start()
    print("ready", flush=True)
    while True:
        c, peer = t.accept()
        threading.Thread(target=serve_tcp_conn, args=(c, peer),
                         daemon=True).start()


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def get(host, port, secs, rate, out):
    h, n = hashlib.sha256(), 0
    try:
        s = socket.create_connection((host, port), timeout=5)
        write_atomic(out + ".port", "%d\n" % s.getsockname()[1])
        s.settimeout(15)
        s.sendall(b"down %s %s\n" % (secs.encode(), rate.encode()))
        last = 0
        while True:
            d = s.recv(65536)
            if not d:
                break
            h.update(d)
            n += len(d)
            if time.monotonic() - last > 0.1:
                write_atomic(out + ".prog", "%d\n" % n)
                last = time.monotonic()
        write_atomic(out + ".prog", "%d\n" % n)
        write_atomic(out, "ok %d %s\n" % (n, h.hexdigest()))
    except OSError as e:
        write_atomic(out + ".prog", "%d\n" % n)
        write_atomic(out, "error: %s after %d bytes\n" % (e, n))


def udp(host, port, secs, out):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(0.05)
    sent = got = 0
    t0 = last = time.monotonic()
    gap = 0.0
    while time.monotonic() - t0 < secs:
        s.send(b"live-%d" % sent)
        sent += 1
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            try:
                if s.recv(2048).startswith(b"echo:live-"):
                    got += 1
                    now = time.monotonic()
                    gap = max(gap, now - last)
                    last = now
            except socket.timeout:
                pass
            except OSError:
                time.sleep(0.01)  # ICMP unreachable: keep going
        write_atomic(out + ".prog", "%d\n" % got)
    gap = max(gap, time.monotonic() - last)
    write_atomic(out, "ok %d %d %d\n" % (sent, got, gap * 1000))


def hold(host, port, out):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(None)
        write_atomic(out + ".port", "%d\n" % s.getsockname()[1])
        s.sendall(b"echo\n")
        n = 0
        while not os.path.exists(out + ".quit"):
            if os.path.exists(out + ".go"):
                s.sendall(b"x")
                s.settimeout(5)
                if s.recv(1) != b"x":
                    raise OSError("echo lost")
                s.settimeout(None)
                n += 1
                os.unlink(out + ".go")
                write_atomic(out + ".prog", "%d\n" % n)
            # a RST shows at once as a readable socket whose read fails
            s.setblocking(False)
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    raise OSError("closed by the peer")
            except BlockingIOError:
                pass
            s.setblocking(True)
            time.sleep(0.05)
        write_atomic(out, "ok\n")
    except ConnectionResetError:
        write_atomic(out, "reset\n")
    except OSError as e:
        write_atomic(out, "error: %s\n" % e)


def sniff_next(iface, src, sport, dport):
    from scapy.all import IP, IPv6, TCP, sniff
    import scapy.config
    scapy.config.conf.verb = 0
    l3 = IPv6 if ":" in src else IP

    def match(p):
        return (l3 in p and TCP in p and p[l3].src == src and
                p[TCP].sport == sport and p[TCP].dport == dport and
                len(p[TCP].payload) > 0)

    got = sniff(iface=iface, lfilter=match, count=1, timeout=10,
                started_callback=lambda: print("ready", flush=True))
    if not got:
        print("none", flush=True)
        sys.exit(1)
    t = got[0][TCP]
    print((t.seq + len(t.payload)) & 0xffffffff, flush=True)


def rst(iface, dstmac, src, dst, sport, dport, seq, count=0, band=0):
    from scapy.all import Ether, IP, IPv6, TCP, sendp
    import scapy.config
    scapy.config.conf.verb = 0
    l3 = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    seqs = [seq]
    if count:
        # the farthest one first, then random ones outside the band
        seqs = [(seq + (1 << 31)) & 0xffffffff]
        while len(seqs) < count:
            s = random.getrandbits(32)
            d = (s - seq) & 0xffffffff
            if band <= d <= (1 << 32) - band:
                seqs.append(s)
    frames = [Ether(dst=dstmac) / l3 /
              TCP(sport=sport, dport=dport, flags="R", seq=s) for s in seqs]
    sendp(frames, iface=iface)
    print("sent %d RST" % len(frames), flush=True)


def main(a):
    cmd = a[0]
    if cmd == "serve":
        serve(int(a[1]))
    elif cmd == "get":
        get(a[1], int(a[2]), a[3], a[4], a[5])
    elif cmd == "udp":
        udp(a[1], int(a[2]), float(a[3]), a[4])
    elif cmd == "hold":
        hold(a[1], int(a[2]), a[3])
    elif cmd == "sniff":
        sniff_next(a[1], a[2], int(a[3]), int(a[4]))
    elif cmd == "rst":
        rst(a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), int(a[7]),
            *(int(x) for x in a[8:10]))
    else:
        sys.exit("live.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
