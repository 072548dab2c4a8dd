#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""FTP clients for tests/e2e/test_ring.sh.

session: one control connection that logs in, sends --noops NOOPs (each
    answered before the next, as a client does), then runs --rounds rounds
    of transfers, each mode of --modes once (pasv, epsv, port, eprt),
    downloading --file and checking its sha256. Round 1 starts at once;
    round N > 1 waits for the file DIR/go.N. Before each data connection
    a third host (--third-ns, --third-addr) tries the pinhole: passive, it
    connects to the announced port; active, the server host (--srv-ns)
    connects from port 20 to the third host at the announced port. Both
    must fail. After the last round the session stays open until DIR/quit
    exists, then QUITs. One line per result on stdout ("round 1 pasv ok
    port 40123 third refused"); DIR/done.N holds "ok" or "fail" per round;
    DIR/ctrl holds the control connection's local port once logged in.

fill: one control connection that sends --lines PORT commands --len bytes
    long (reported records: they fill the events ring buffer), each
    answered, then QUITs.
"""
import argparse
import hashlib
import os
import socket
import subprocess
import sys
import time

PROBE_CONNECT = r'''
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if len(sys.argv) > 3:
    s.bind((sys.argv[3], int(sys.argv[4])))
s.settimeout(float(sys.argv[5]) if len(sys.argv) > 5 else 1.0)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as e:
    print("refused: %s" % e)
'''

PROBE_LISTEN = r'''
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print("listening", flush=True)
s.settimeout(float(sys.argv[3]))
try:
    c, a = s.accept()
    print("accepted from %s" % (a,))
except OSError:
    print("none")
'''


def in_ns(ns, *argv, **kw):
    return subprocess.run(["nsenter", "--net=/run/netns/" + ns] + list(argv),
                          capture_output=True, text=True, **kw)


class Ctrl:
    def __init__(self, host, timeout=10):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.create_connection((host, 21), timeout=timeout)
        self.f = self.s.makefile("rb")
        self.family = fam
        self.local = self.s.getsockname()[0]
        self.reply()

    def reply(self):
        line = self.f.readline()
        if not line:
            raise EOFError("control connection closed")
        code = line[:3]
        if line[3:4] == b"-":
            while True:
                line = self.f.readline()
                if not line:
                    raise EOFError("control connection closed")
                if line[:3] == code and line[3:4] == b" ":
                    break
        return int(code), line.decode("latin-1").rstrip("\r\n")

    def cmd(self, text):
        self.s.sendall(text.encode("latin-1") + b"\r\n")
        return self.reply()

    def login(self):
        code, _ = self.cmd("USER anonymous")
        if code == 331:
            code, _ = self.cmd("PASS test@")
        if code != 230:
            raise RuntimeError("login refused: %d" % code)
        code, _ = self.cmd("TYPE I")


def parse_227(text):
    a = text[text.index("(") + 1:text.index(")")].split(",")
    return int(a[4]) * 256 + int(a[5])


def parse_229(text):
    inner = text[text.index("(") + 1:text.index(")")]
    return int(inner.strip(inner[0]))


def read_all(sock):
    h, n = hashlib.sha256(), 0
    while True:
        b = sock.recv(65536)
        if not b:
            return h.hexdigest(), n
        h.update(b)
        n += len(b)


def third_passive(a, port):
    r = in_ns(a.third_ns, "python3", "-c", PROBE_CONNECT, a.host, str(port),
              a.third_addr, "0", "1.0", timeout=10)
    return r.stdout.strip() or r.stderr.strip()


def third_active(a, port):
    """The server host connects from port 20 to the third host at the
    announced port, where a listener waits: nothing must arrive."""
    lst = subprocess.Popen(["nsenter", "--net=/run/netns/" + a.third_ns,
                            "python3", "-c", PROBE_LISTEN, a.third_addr,
                            str(port), "2.0"],
                           stdout=subprocess.PIPE, text=True)
    first = lst.stdout.readline().strip()
    con = in_ns(a.srv_ns, "python3", "-c", PROBE_CONNECT, a.third_addr,
                str(port), a.host, "20", "1.0", timeout=10)
    out, _ = lst.communicate(timeout=10)
    return "%s; %s; %s" % (first, con.stdout.strip() or con.stderr.strip(),
                           out.strip())


def transfer(c, a, mode):
    """One download in mode; returns (ok, detail)."""
    if mode in ("pasv", "epsv"):
        if mode == "pasv":
            code, text = c.cmd("PASV")
            if code != 227:
                return False, "PASV answered %d %s" % (code, text)
            port = parse_227(text)
        else:
            code, text = c.cmd("EPSV")
            if code != 229:
                return False, "EPSV answered %d %s" % (code, text)
            port = parse_229(text)
        third = third_passive(a, port)
        if third.startswith("connected"):
            return False, "port %d: the third host got in" % port
        try:
            d = socket.create_connection((a.host, port), timeout=3)
        except OSError as e:
            # Tell the server to give up on it, then report.
            c.cmd("ABOR")
            return False, "port %d: data connection failed: %s" % (port, e)
        code, text = c.cmd("RETR " + a.file)
        got, n = read_all(d)
        d.close()
    else:
        lfam = socket.AF_INET6 if c.family == socket.AF_INET6 else socket.AF_INET
        ls = socket.socket(lfam, socket.SOCK_STREAM)
        ls.bind((c.local, 0))
        ls.listen(1)
        ls.settimeout(5)
        port = ls.getsockname()[1]
        third = third_active(a, port)
        if "accepted" in third:
            return False, "port %d: the server reached the third host" % port
        if mode == "port":
            h = c.local.replace(".", ",")
            code, text = c.cmd("PORT %s,%d,%d" % (h, port >> 8, port & 255))
        else:
            af = 2 if c.family == socket.AF_INET6 else 1
            code, text = c.cmd("EPRT |%d|%s|%d|" % (af, c.local, port))
        if code != 200:
            return False, "%s answered %d %s" % (mode.upper(), code, text)
        c.s.sendall(b"RETR " + a.file.encode() + b"\r\n")
        try:
            d, _ = ls.accept()
        except OSError as e:
            c.reply()
            return False, "port %d: no data connection from the server: %s" % (port, e)
        ls.close()
        code, text = c.reply()
        got, n = read_all(d)
        d.close()
    if code not in (125, 150):
        return False, "RETR answered %d %s" % (code, text)
    code, text = c.reply()
    if code != 226:
        return False, "transfer ended with %d %s" % (code, text)
    if got != a.sha:
        return False, "port %d: %d bytes, sha256 differs" % (port, n)
    return True, "port %d, %d bytes, third host refused" % (port, n)


def wait_for(path, seconds):
    end = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def session(a):
    c = Ctrl(a.host)
    c.login()
    with open(os.path.join(a.dir, "ctrl"), "w") as f:
        f.write("%d\n" % c.s.getsockname()[1])
    t0 = time.monotonic()
    for _ in range(a.noops):
        c.s.sendall(b"NOOP\r\n")
        code, text = c.reply()
        if code != 200:
            print("NOOP answered %d %s" % (code, text), flush=True)
            return 1
    if a.noops:
        print("noops %d in %.1f s" % (a.noops, time.monotonic() - t0),
              flush=True)
    for r in range(1, a.rounds + 1):
        if r > 1 and not wait_for(os.path.join(a.dir, "go.%d" % r), 120):
            print("round %d: never told to go" % r, flush=True)
            return 1
        ok_all = True
        for mode in a.modes.split(","):
            ok, detail = transfer(c, a, mode)
            ok_all &= ok
            print("round %d %s %s: %s" % (r, mode, "ok" if ok else "FAIL",
                                          detail), flush=True)
        with open(os.path.join(a.dir, "done.%d" % r), "w") as f:
            f.write("ok\n" if ok_all else "fail\n")
    wait_for(os.path.join(a.dir, "quit"), 300)
    c.cmd("QUIT")
    return 0


def fill(a):
    c = Ctrl(a.host)
    c.login()
    line = "PORT " + "9" * (a.len - 5)
    for _ in range(a.lines):
        c.cmd(line)
    c.cmd("QUIT")
    print("fill: %d PORT lines of %d bytes" % (a.lines, a.len), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["session", "fill"])
    p.add_argument("--host", required=True)
    p.add_argument("--noops", type=int, default=0)
    p.add_argument("--modes", default="pasv,epsv,port,eprt")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--file", default="file")
    p.add_argument("--sha", default="")
    p.add_argument("--dir", default=".")
    p.add_argument("--third-ns", default="")
    p.add_argument("--third-addr", default="")
    p.add_argument("--srv-ns", default="")
    p.add_argument("--lines", type=int, default=3000)
    p.add_argument("--len", type=int, default=2000)
    a = p.parse_args()
    try:
        return session(a) if a.what == "session" else fill(a)
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        print("error: %s" % e, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
