# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
#
# Real servers inside a network namespace, for tests/e2e and tests/demo.sh.
# Source tests/lib/netns.sh first and call ph_init (PH_TMP, the cleanup
# stack). Every file lives under $PH_TMP/srv; every process started here is
# stopped by its pid on exit.
#
#   ph_servers_init NS ADDR4 ADDR6   data files, keys, certificate
#   ph_start_sshd                    SFTP on 22  (client key: $PH_SSH_KEY)
#   ph_start_nginx                   HTTP 80, HTTPS 443 (self-signed)
#   ph_start_vsftpd                  FTP 21, anonymous, passive 30000-30010
#                                    (PH_FTP_PASV_MIN/MAX, PH_VSFTPD_OPTS)
#   ph_start_tcp_listener PORT       accept-and-close TCP listener (v4+v6)
#   ph_start_udp_echo PORT           UDP echo (v4+v6)
#   ph_start_http_python PORT        python3 -m http.server (v4+v6)
#   ph_stop_servers                  stop all of the above (also on exit)
#
# Client helpers (run in any namespace):
#   ph_sftp_get NS HOST REMOTE LOCAL     sftp with the generated key
#   ph_ftp_control NS HOST               FTP login + SIZE over the control
#                                        connection only (no data channel)
#   ph_ftp_list NS HOST                  FTP directory listing (needs data)
#
# Files served:
#   $PH_SRV_DIR/www/index.html   "pinhole-http-ok"       (HTTP and HTTPS)
#   $PH_SRV_DIR/www/data.bin     1 MiB random            (HTTP and HTTPS)
#   $PH_SRV_DIR/sftp/data.bin    1 MiB random            (SFTP)
#   $PH_SRV_DIR/ftp/hello.txt    "pinhole-ftp-ok"        (FTP, anonymous)

PH_FTP_PASV_MIN=${PH_FTP_PASV_MIN:-30000}
PH_FTP_PASV_MAX=${PH_FTP_PASV_MAX:-30010}
# More vsftpd.conf lines, one option a line (e.g. "port_promiscuous=YES");
# 0/0 for PH_FTP_PASV_MIN/MAX lets vsftpd pick any port >= 1024.
PH_VSFTPD_OPTS=${PH_VSFTPD_OPTS:-}
PH_SERVER_PIDS=()

# Binaries the servers here need (for ph_require_bins).
# shellcheck disable=SC2034 # used by the tests
PH_SERVER_BINS=(sshd ssh-keygen sftp nginx vsftpd openssl curl nc python3 ss sha256sum)

ph_servers_init() {
	PH_SRV_NS=$1
	PH_SRV_ADDR4=$2
	PH_SRV_ADDR6=$3
	PH_SRV_DIR=$PH_TMP/srv
	mkdir -p "$PH_SRV_DIR"/{www,sftp,ftp,empty,nginx,log}
	chmod 755 "$PH_SRV_DIR" "$PH_SRV_DIR"/{www,sftp,ftp}
	echo pinhole-http-ok >"$PH_SRV_DIR/www/index.html"
	head -c 1048576 /dev/urandom >"$PH_SRV_DIR/www/data.bin"
	head -c 1048576 /dev/urandom >"$PH_SRV_DIR/sftp/data.bin"
	echo pinhole-ftp-ok >"$PH_SRV_DIR/ftp/hello.txt"
	chmod 644 "$PH_SRV_DIR"/www/* "$PH_SRV_DIR"/sftp/* "$PH_SRV_DIR"/ftp/*
	ph_on_exit "ph_stop_servers"
}

# A server that daemonizes: remember the pid from its pid file.
ph__track_pidfile() {
	local f=$1
	for _ in $(seq 50); do
		[ -s "$f" ] && break
		sleep 0.1
	done
	[ -s "$f" ] || return 1
	PH_SERVER_PIDS+=("$(cat "$f")")
}

# The pid of the process listening on a TCP port in the namespace (for
# vsftpd, which forks into the background and writes no pid file).
ph__listener_pid() {
	ph_in "$PH_SRV_NS" ss -Hltnp "sport = :$1" 2>/dev/null |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

ph_stop_servers() {
	local pid
	for pid in "${PH_SERVER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for _ in $(seq 30); do
		local alive=0
		for pid in "${PH_SERVER_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${PH_SERVER_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
	done
	PH_SERVER_PIDS=()
}

# ---------------------------------------------------------------------------
# sshd: SFTP on port 22, root login with a generated key only.
# ---------------------------------------------------------------------------
ph_start_sshd() {
	local d=$PH_SRV_DIR
	ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key" || return 1
	ssh-keygen -q -t ed25519 -N '' -C pinhole-test -f "$d/client_key" || return 1
	cp "$d/client_key.pub" "$d/authorized_keys"
	PH_SSH_KEY=$d/client_key
	# sshd refuses to start without its privilege separation directory.
	[ -d /run/sshd ] || { mkdir -p /run/sshd && chmod 755 /run/sshd; }
	cat >"$d/sshd_config" <<-EOF
		Port 22
		ListenAddress $PH_SRV_ADDR4
		ListenAddress $PH_SRV_ADDR6
		HostKey $d/ssh_host_ed25519_key
		PidFile $d/sshd.pid
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		AuthorizedKeysFile $d/authorized_keys
		StrictModes no
		UsePAM no
		UseDNS no
		Subsystem sftp internal-sftp
		LogLevel ERROR
	EOF
	ph_in "$PH_SRV_NS" /usr/sbin/sshd -f "$d/sshd_config" -E "$d/log/sshd.log" ||
		{ cat "$d/log/sshd.log" >&2; return 1; }
	ph__track_pidfile "$d/sshd.pid" || return 1
	ph_wait_listen "$PH_SRV_NS" 22
}

# ---------------------------------------------------------------------------
# nginx: HTTP 80 and HTTPS 443 on both addresses, self-signed certificate.
# ---------------------------------------------------------------------------
ph_start_nginx() {
	local d=$PH_SRV_DIR n=$PH_SRV_DIR/nginx
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 2 -subj /CN=pinhole-test \
		-addext "subjectAltName=IP:$PH_SRV_ADDR4,IP:$PH_SRV_ADDR6" \
		-keyout "$n/key.pem" -out "$n/cert.pem" >/dev/null 2>&1 || return 1
	cat >"$n/nginx.conf" <<-EOF
		user root;
		daemon on;
		worker_processes 1;
		pid $n/nginx.pid;
		error_log $d/log/nginx-error.log warn;
		events { worker_connections 256; }
		http {
		    access_log $d/log/nginx-access.log;
		    client_body_temp_path $n/client_body;
		    proxy_temp_path $n/proxy;
		    fastcgi_temp_path $n/fastcgi;
		    uwsgi_temp_path $n/uwsgi;
		    scgi_temp_path $n/scgi;
		    default_type application/octet-stream;
		    types { text/html html; }
		    sendfile on;
		    server {
		        listen $PH_SRV_ADDR4:80;
		        listen [$PH_SRV_ADDR6]:80;
		        listen $PH_SRV_ADDR4:443 ssl;
		        listen [$PH_SRV_ADDR6]:443 ssl;
		        ssl_certificate $n/cert.pem;
		        ssl_certificate_key $n/key.pem;
		        root $d/www;
		    }
		}
	EOF
	ph_in "$PH_SRV_NS" nginx -p "$n" -c "$n/nginx.conf" -e "$d/log/nginx-error.log" ||
		{ cat "$d/log/nginx-error.log" >&2; return 1; }
	ph__track_pidfile "$n/nginx.pid" || return 1
	ph_wait_listen "$PH_SRV_NS" 80 && ph_wait_listen "$PH_SRV_NS" 443
}

# ---------------------------------------------------------------------------
# vsftpd: two instances, IPv4 (listen=YES) and IPv6 (listen_ipv6=YES), each
# bound to the namespace address; anonymous read-only; passive range.
# ---------------------------------------------------------------------------
ph__vsftpd_conf() {
	local d=$PH_SRV_DIR
	cat <<-EOF
		anonymous_enable=YES
		no_anon_password=YES
		anon_root=$d/ftp
		local_enable=NO
		write_enable=NO
		ftp_username=ftp
		hide_ids=YES
		seccomp_sandbox=NO
		background=YES
		secure_chroot_dir=$d/empty
		pasv_enable=YES
		pasv_min_port=$PH_FTP_PASV_MIN
		pasv_max_port=$PH_FTP_PASV_MAX
		port_enable=YES
		connect_from_port_20=YES
		xferlog_enable=YES
		xferlog_std_format=NO
		log_ftp_protocol=YES
		use_localtime=NO
		listen_port=21
	EOF
	# Extra or overriding options (vsftpd takes the last occurrence).
	[ -n "$PH_VSFTPD_OPTS" ] && printf '%s\n' "$PH_VSFTPD_OPTS"
	return 0
}

ph_start_vsftpd() {
	local d=$PH_SRV_DIR pid
	{
		ph__vsftpd_conf
		echo "listen=YES"
		echo "listen_ipv6=NO"
		echo "listen_address=$PH_SRV_ADDR4"
		echo "vsftpd_log_file=$d/log/vsftpd4.log"
	} >"$d/vsftpd4.conf"
	{
		ph__vsftpd_conf
		echo "listen=NO"
		echo "listen_ipv6=YES"
		echo "listen_address6=$PH_SRV_ADDR6"
		echo "vsftpd_log_file=$d/log/vsftpd6.log"
	} >"$d/vsftpd6.conf"
	# vsftpd insists on root ownership of its config file.
	chmod 600 "$d/vsftpd4.conf" "$d/vsftpd6.conf"
	ph_in "$PH_SRV_NS" vsftpd "$d/vsftpd4.conf" </dev/null >"$d/log/vsftpd4.out" 2>&1 ||
		{ cat "$d/log/vsftpd4.out" >&2; return 1; }
	ph_wait_listen "$PH_SRV_NS" 21 || return 1
	ph_in "$PH_SRV_NS" vsftpd "$d/vsftpd6.conf" </dev/null >"$d/log/vsftpd6.out" 2>&1 ||
		{ cat "$d/log/vsftpd6.out" >&2; return 1; }
	local _ n=0
	for _ in $(seq 50); do
		n=$(ph_in "$PH_SRV_NS" ss -Hltn "sport = :21" | wc -l)
		[ "$n" -ge 2 ] && break
		sleep 0.1
	done
	[ "$n" -ge 2 ] || { echo "vsftpd (IPv6) did not start" >&2; return 1; }
	for pid in $(ph_in "$PH_SRV_NS" ss -Hltnp "sport = :21" |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | sort -u); do
		PH_SERVER_PIDS+=("$pid")
	done
}

# ---------------------------------------------------------------------------
# Small python3 servers (dual-stack sockets on ::, IPV6_V6ONLY off), run in
# the foreground of a background job: $! is the server itself.
# ---------------------------------------------------------------------------
PH_PY_TCP_LISTENER='
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"pinhole-tcp-ok\n")
    except OSError:
        pass
    c.close()
'

PH_PY_UDP_ECHO='
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(b"echo:" + d, a)
'

# ph_start_tcp_listener PORT [NS]
ph_start_tcp_listener() {
	local port=$1 ns=${2:-$PH_SRV_NS}
	nsenter --net="/run/netns/$ns" python3 -c "$PH_PY_TCP_LISTENER" "$port" \
		>"$PH_SRV_DIR/log/tcp-$port.log" 2>&1 &
	PH_SERVER_PIDS+=($!)
	ph_wait_listen "$ns" "$port"
}

# ph_start_udp_echo PORT [NS]
ph_start_udp_echo() {
	local port=$1 ns=${2:-$PH_SRV_NS}
	nsenter --net="/run/netns/$ns" python3 -c "$PH_PY_UDP_ECHO" "$port" \
		>"$PH_SRV_DIR/log/udp-$port.log" 2>&1 &
	PH_SERVER_PIDS+=($!)
	ph_wait_listen "$ns" "$port" udp
}

# ph_start_http_python PORT [NS]: serves $PH_SRV_DIR/www.
ph_start_http_python() {
	local port=$1 ns=${2:-$PH_SRV_NS}
	nsenter --net="/run/netns/$ns" python3 -m http.server --bind :: --directory "$PH_SRV_DIR/www" \
		"$port" >"$PH_SRV_DIR/log/http-$port.log" 2>&1 &
	PH_SERVER_PIDS+=($!)
	ph_wait_listen "$ns" "$port"
}

# ---------------------------------------------------------------------------
# Clients.
# ---------------------------------------------------------------------------

# ph_sftp_get NS HOST REMOTE LOCAL
ph_sftp_get() {
	local ns=$1 host=$2 remote=$3 local=$4
	case "$host" in *:*) host="[$host]" ;; esac
	ph_in "$ns" timeout 30 sftp -q -i "$PH_SSH_KEY" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o BatchMode=yes \
		-o ConnectTimeout=5 -o LogLevel=ERROR \
		"root@$host:$remote" "$local"
}

# ph_sftp_curl NS HOST REMOTE LOCAL: the same through curl's libssh2.
ph_sftp_curl() {
	local ns=$1 host=$2 remote=$3 local=$4
	ph_in "$ns" curl -sS --max-time 10 --insecure -u root: \
		--key "$PH_SSH_KEY" --pubkey "$PH_SSH_KEY.pub" \
		-o "$local" "sftp://$(ph_urlhost "$host")$remote"
}

ph_curl_has_sftp() {
	curl -V 2>/dev/null | grep -qi '^Protocols:.* sftp'
}

# ph_ftp_control NS HOST: anonymous login, then SIZE and MDTM of hello.txt.
# `curl -I` on an ftp:// URL never opens a data connection, so this proves
# the control channel (port 21) works end to end, and nothing more.
ph_ftp_control() {
	local ns=$1 host=$2 out
	out=$(ph_in "$ns" curl -sS --max-time 5 -I "ftp://$(ph_urlhost "$host")/hello.txt") ||
		return 1
	printf '%s\n' "$out"
	# hello.txt is 15 bytes ("pinhole-ftp-ok\n").
	printf '%s\n' "$out" | grep -qi '^Content-Length: 15'
}

# ph_ftp_list NS HOST [CURL-OPTS...]: a directory listing (passive by
# default; pass -P - for active mode). Needs a data connection.
ph_ftp_list() {
	local ns=$1 host=$2
	shift 2
	ph_in "$ns" curl -sS --max-time 5 "$@" "ftp://$(ph_urlhost "$host")/" |
		grep hello.txt
}

# ph_ftp_get NS HOST [CURL-OPTS...]: download hello.txt and check it.
ph_ftp_get() {
	local ns=$1 host=$2
	shift 2
	ph_in "$ns" curl -sS --max-time 5 "$@" "ftp://$(ph_urlhost "$host")/hello.txt" |
		grep -qx pinhole-ftp-ok
}
