# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A scripted FTP client whose control connection is made of raw TCP
segments (scapy), for tests/e2e/test_tcp_reasm.sh: out-of-order copies,
duplicate sequence numbers, bad checksums and IP fragments, against a real
FTP server whose own TCP stack decides what it accepted.

    rawftp.py CASE SRC DST IFACE SPORT OUTDIR

The kernel of the client namespace must not answer the server's segments
to SPORT with RSTs (the test drops them with nftables). Data connections
are ordinary kernel sockets: listeners on the client's candidate data
ports, each accepted connection logged to OUTDIR/accepted ("PORT").
Writes OUTDIR/result.json: the replies read, the PORT each NLST used.
"""
import json
import os
import queue
import random
import socket
import sys
import threading
import time

from scapy.all import IP, TCP, Raw, AsyncSniffer, conf, fragment  # noqa: E402

conf.verb = 0


class Ctl:
    """One raw TCP control connection to DST:21."""

    def __init__(self, src, dst, sport, iface):
        self.src, self.dst, self.sport = src, dst, sport
        self.q = queue.Queue()
        self.sock = conf.L3socket(iface=iface)
        self.sn = AsyncSniffer(
            iface=iface, store=False, prn=self.q.put,
            lfilter=lambda p: IP in p and TCP in p and p[IP].src == dst
            and p[TCP].sport == 21 and p[TCP].dport == sport)
        self.sn.start()
        time.sleep(0.5)  # the sniffer's socket must exist before the SYN
        self.isn = random.randrange(1 << 32)
        self.snd = (self.isn + 1) & 0xffffffff
        self.rcv = 0
        self.buf = b""
        self.log = []

    def seg(self, seq, data=b"", flags="PA", bad_csum=False):
        p = IP(src=self.src, dst=self.dst) / TCP(
            sport=self.sport, dport=21, flags=flags, seq=seq & 0xffffffff,
            ack=self.rcv, window=65535)
        if data:
            p = p / Raw(data)
        if bad_csum:
            good = IP(bytes(p))[TCP].chksum
            p[TCP].chksum = good ^ 0x5a5a
        return p

    def tx(self, p):
        self.sock.send(p)

    def at(self, off, data, **kw):
        """A segment at the next sequence number + off, not advancing it."""
        self.tx(self.seg(self.snd + off, data, **kw))

    def advance(self, n):
        self.snd = (self.snd + n) & 0xffffffff

    def connect(self):
        self.tx(IP(src=self.src, dst=self.dst) / TCP(
            sport=self.sport, dport=21, flags="S", seq=self.isn,
            window=65535))
        t = time.time() + 5
        while time.time() < t:
            try:
                p = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            if p[TCP].flags & 0x12 == 0x12:
                self.rcv = (p[TCP].seq + 1) & 0xffffffff
                self.tx(self.seg(self.snd, flags="A"))
                return
        raise RuntimeError("no SYN-ACK from %s:21" % self.dst)

    def pump(self, wait):
        """Takes the server's segments for up to @wait s, in order."""
        try:
            p = self.q.get(timeout=wait)
        except queue.Empty:
            return False
        t = p[TCP]
        data = bytes(t.payload) if t.payload else b""
        if data and t.seq == self.rcv:
            self.buf += data
            self.rcv = (self.rcv + len(data)) & 0xffffffff
        if data or t.flags & 0x01:
            if t.flags & 0x01 and t.seq + len(data) == self.rcv:
                self.rcv = (self.rcv + 1) & 0xffffffff
            self.tx(self.seg(self.snd, flags="A"))
        return True

    def reply(self, timeout=8):
        """The next complete reply (its last line), "" on timeout."""
        t = time.time() + timeout
        first = None
        while time.time() < t:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.rstrip(b"\r").decode("latin1")
                self.log.append("< " + line)
                if first is None:
                    first = line
                if first[3:4] != "-" or (line[:3] == first[:3]
                                         and line[3:4] != "-"):
                    return line
            self.pump(0.2)
        return ""

    def cmd(self, text):
        data = (text + "\r\n").encode()
        self.log.append("> " + text)
        self.at(0, data)
        self.advance(len(data))
        return self.reply()


def port_line(addr, port):
    return "PORT %s,%d,%d\r\n" % (addr.replace(".", ","), port >> 8,
                                  port & 255)


def listeners(addr, ports, out):
    """Kernel listeners on the candidate data ports: who got connected."""
    lock = threading.Lock()

    def run(s, port):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with lock, open(os.path.join(out, "accepted"), "a") as f:
                f.write("%d\n" % port)
            try:
                c.settimeout(3)
                while c.recv(65536):
                    pass
            except OSError:
                pass
            c.close()

    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(8)
        threading.Thread(target=run, args=(s, port), daemon=True).start()


def nlst(c, res, used):
    """NLST over the PORT the server just accepted (@used)."""
    r = c.cmd("NLST")
    ok = r.startswith("150")
    if ok:
        r = c.reply(10)
    res["transfers"].append({"port": used, "reply": r,
                             "ok": ok and r.startswith("226")})


def port_in_order(c, res, line, note, port):
    """All of @line at the next sequence number, then NLST over @port."""
    c.log.append("> " + line.decode().strip() + "  (" + note + ")")
    c.at(0, line)
    c.advance(len(line))
    res["ports"].append(c.reply())
    nlst(c, res, port)


def main():
    case, src, dst, iface, sport, out = sys.argv[1:7]
    sport = int(sport)
    os.makedirs(out, exist_ok=True)
    A, B = 40001 + sport % 97, 41003 + sport % 89
    res = {"case": case, "A": A, "B": B, "transfers": [], "ports": []}
    ports = [A, B] + [42000 + i for i in range(5)]
    listeners(src, ports, out)
    c = Ctl(src, dst, sport, iface)
    try:
        c.connect()
        c.reply()
        c.cmd("USER anonymous")
        c.cmd("PASS pinhole@")
        la, lb = port_line(src, A).encode(), port_line(src, B).encode()
        assert len(la) == len(lb)
        if case == "a":
            # The tail of PORT ...B out of order, then all of PORT ...A in
            # order: Linux keeps the in-order copy.
            k = la.index(b",", 16) - 3
            c.at(k, lb[k:])
            time.sleep(0.2)
            port_in_order(c, res, la, "in order; tail of B sent first", A)
        elif case == "b":
            # Two out-of-order copies at one sequence number, the later
            # longer: Linux replaces the shorter one.
            k = la.index(b",", 16) - 2  # inside the fifth number
            first = la[k:]
            second = lb[k:] + b"NOOP\r\n"
            c.at(k, first)
            time.sleep(0.1)
            c.at(k, second)
            time.sleep(0.1)
            c.log.append("> " + lb[:-2].decode() + "  (prefix of A in order, two copies of the rest)")
            c.at(0, la[:k])
            c.advance(k + len(second))
            res["ports"].append(c.reply())
            res["ports"].append(c.reply())  # NOOP
            n = (la[:k] + lb[k:]).split(b"\r\n")[0].split(b",")
            nlst(c, res, int(n[4]) * 256 + int(n[5]))
        elif case == "c":
            # PORT B with a bad TCP checksum, then PORT A at the same seq.
            c.at(0, lb, bad_csum=True)
            time.sleep(0.2)
            port_in_order(c, res, la, "after a bad-checksum PORT B", A)
        elif case == "d":
            # PORT A in IP fragments (the server reassembles it), then
            # four ordinary PORT commands.
            p = c.seg(c.snd, la)
            p[IP].flags = 0
            for f in fragment(p, fragsize=24):
                c.tx(f)
            c.log.append("> " + la.decode().strip() + "  (in IP fragments)")
            c.advance(len(la))
            res["ports"].append(c.reply())
            nlst(c, res, A)
            for i in range(4):
                port = 42000 + i
                res["ports"].append(c.cmd(port_line(src, port).strip()))
                nlst(c, res, port)
        c.cmd("QUIT")
    finally:
        res["log"] = c.log
        c.sn.stop()
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
