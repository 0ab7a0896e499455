# shellcheck shell=bash
# bench.sh: what the TLS benchmarks (tools/bench-provider, tools/bench-edge)
# share, sourced after tests/integration/lib_edge.sh (for die and $T): the
# load client (Debian's h2load with tests/bench/noresume_preload.c's shim, so
# that every connection is a full handshake), the check that no handshake
# resumed, nginx configurations and CPU accounting.
#
#   bench_init BUILD_DIR           $H2LOAD, $NORESUME; dies without them
#   bench_h2load VERSION N CONC NAME PORT [noshim]
#                                  N connections of one HTTP/1.1 request each
#                                  (the server closes after the answer), CONC
#                                  at once, SNI NAME, to 127.0.0.1:PORT, TLS
#                                  VERSION 1.3 or 1.2 (ECDHE-RSA-AES128-GCM-
#                                  SHA256; checked); sets H2_OK (2xx answers),
#                                  H2_FAILED, H2_SECS (h2load's wall time) and
#                                  H2_CPU (the client's own CPU seconds).
#                                  "noshim": without the shim, TLS 1.3 only
#                                  (the shim caps the version), to show that
#                                  the check below sees resumption.
#   bench_nginx_server PORT NAME CERT KEY [NAME CERT KEY...]
#                                  nginx server blocks, one per SNI NAME (the
#                                  first the default): HTTPS, TLS 1.2 and 1.3,
#                                  nginx's default session handling (tickets
#                                  on), one request per connection (keepalive
#                                  off), every resumed handshake logged to
#                                  $T/resumed-PORT.log; $BENCH_NGINX_LOCATION,
#                                  if set, is what location / does instead
#                                  of answering "ok" itself
#   bench_nginx_http CONFDIR       the http{} preamble for those blocks
#   bench_nginx_resumed PORT       resumed handshakes logged so far
#   bench_resumption_guard NAME SNI PORT COUNT_CMD...
#                                  shows the count COUNT_CMD prints rise after
#                                  h2load without the shim to SNI at PORT (the
#                                  check can see resumption), then keeps it as
#                                  NAME's baseline
#   bench_resumption_check NAME COUNT_CMD...
#                                  dies loudly if COUNT_CMD's count moved
#                                  from NAME's baseline: a handshake resumed
#   bench_wait_port PORT           true once 127.0.0.1:PORT accepts (up to
#                                  30 s: a loaded machine starts nginx slowly)
#   bench_ticks [-s] PID...        utime + stime clock ticks of the processes
#                                  (all threads) and their children; with -s
#                                  stime only (time in the kernel)

bench_init() { # BUILD_DIR
    H2LOAD=$(command -v h2load || true)
    NORESUME=$1/tests/libspk_noresume.so
    [[ -n $H2LOAD ]] || die "h2load is needed (Debian package nghttp2-client)"
    [[ -f $NORESUME ]] || die "no $NORESUME (build the project)"
    declare -gA BENCH_RESUMED_BASE=()
}

bench_h2load() { # VERSION N CONC NAME PORT [noshim]
    local out ciphers=() pre=$NORESUME max="" t0 t1 cpu
    if [[ $1 == 1.2 ]]; then
        ciphers=(--ciphers=ECDHE-RSA-AES128-GCM-SHA256)
        max=1.2
    fi
    if [[ ${6:-} == noshim ]]; then
        [[ $1 == 1.3 ]] || die "bench_h2load: without the shim only TLS 1.3"
        pre=""
    fi
    bench_self_cpu
    t0=$BENCH_SELF_CPU
    # h2load's duration mode (-D) never ends when the server closes each
    # connection; -n does, and timeout guards against any other hang.
    out=$(LD_PRELOAD=$pre SPK_NORESUME_TLS_MAX=$max timeout 120 "$H2LOAD" --h1 -n "$2" \
        -c "$3" -t 1 "${ciphers[@]}" --connect-to="127.0.0.1:$5" "https://$4/" 2>&1) ||
        die "h2load failed: $(tail -3 <<<"$out")"
    bench_self_cpu
    t1=$BENCH_SELF_CPU
    cpu=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    H2_OK=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
    H2_FAILED=$(sed -n 's/^requests: .* \([0-9]*\) failed,.*/\1/p' <<<"$out")
    H2_SECS=$(awk '/^finished in/ { v = $3; sub(/,$/, "", v)
        if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 }
        else if (v ~ /us$/) { sub(/us$/, "", v); v /= 1e6 }
        else sub(/s$/, "", v)
        print v }' <<<"$out")
    # shellcheck disable=SC2034 # read by the callers, as the other H2_ values
    H2_CPU=$cpu
    [[ -n $H2_OK && -n $H2_FAILED && -n $H2_SECS ]] ||
        die "cannot read h2load's output: $out"
    # HTTP/1.1 over the TLS version asked for was what ran: anything else
    # measures something else.
    grep -q '^Application protocol: http/1.1' <<<"$out" ||
        die "h2load did not speak HTTP/1.1 over TLS: $(head -5 <<<"$out")"
    grep -q "^TLS Protocol: TLSv$1\$" <<<"$out" ||
        die "h2load did not speak TLS $1: $(grep '^TLS Protocol' <<<"$out")"
}

# bench_self_cpu: sets BENCH_SELF_CPU to the CPU seconds (user + system) of
# this shell's finished children so far, h2load's among them once waited
# for. `times` runs here, not in a $(...) subshell, whose own children have
# not run yet.
bench_self_cpu() {
    times >"$T/times"
    BENCH_SELF_CPU=$(tail -1 "$T/times" | awk '{ s = 0
        for (i = 1; i <= 2; i++) { v = $i; m = v; sub(/m.*/, "", m)
            sub(/^[0-9]+m/, "", v); sub(/s$/, "", v); s += m * 60 + v }
        printf "%.3f", s }')
}

bench_nginx_http() { # CONFDIR
    mkdir -p "$1/tmp"
    cat <<EOC
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    log_format spk_resumed '\$ssl_session_reused \$ssl_protocol';
    map \$ssl_session_reused \$spk_resumed { r 1; default 0; }
EOC
}

bench_nginx_server() { # PORT NAME CERT KEY [NAME CERT KEY...]
    local port=$1 opts="backlog=4096 default_server"
    shift
    : >"$T/resumed-$port.log"
    while (($# >= 3)); do
        cat <<EOC
    server {
        listen 127.0.0.1:$port ssl $opts;
        server_name $1;
        ssl_certificate $2;
        ssl_certificate_key $3;
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log $T/resumed-$port.log spk_resumed if=\$spk_resumed;
        location / { ${BENCH_NGINX_LOCATION:-return 200 "ok\n";} }
    }
EOC
        opts=""
        shift 3
    done
}

bench_nginx_resumed() { # PORT
    wc -l <"$T/resumed-$1.log"
}

bench_resumption_guard() { # NAME SNI PORT COUNT_CMD...
    local name=$1 sni=$2 port=$3 c0 c1
    shift 3
    c0=$("$@")
    bench_h2load 1.3 8 1 "$sni" "$port" noshim
    c1=$("$@")
    ((c1 > c0)) ||
        die "$name: h2load without the shim resumed no session ($c0 -> $c1): the resumption check cannot see resumption"
    BENCH_RESUMED_BASE[$name]=$c1
}

bench_resumption_check() { # NAME COUNT_CMD...
    local name=$1 c
    shift
    c=$("$@")
    if [[ $c != "${BENCH_RESUMED_BASE[$name]}" ]]; then
        echo "bench: FAIL: $name: $((c - BENCH_RESUMED_BASE[$name])) handshakes resumed a session: the numbers measure resumption, not full handshakes" >&2
        exit 1
    fi
}

bench_wait_port() { # PORT
    local i
    for ((i = 0; i < 600; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# bench_ns PID...: nanoseconds on a CPU so far, summed over every thread of
# each PID and of its children (/proc/P/task/*/schedstat): for turns too
# short for bench_ticks' 10 ms. Where the kernel keeps no schedstat, the
# ticks in nanoseconds.
bench_ns() {
    local p c t v sum=0
    if [[ ! -r /proc/$$/schedstat ]]; then
        echo $(($(bench_ticks "$@") * 1000000000 / $(getconf CLK_TCK)))
        return
    fi
    for p in "$@"; do
        for c in "$p" $(pgrep -P "$p" || true); do
            for t in /proc/"$c"/task/*/schedstat; do
                read -r v _ 2>/dev/null <"$t" || continue
                sum=$((sum + v))
            done
        done
    done
    echo "$sum"
}

bench_ticks() { # [-s] PID...
    # shellcheck disable=SC2016 # awk's fields, not the shell's
    local p c sum=0 fields='$14 + $15'
    if [[ $1 == -s ]]; then
        # shellcheck disable=SC2016
        fields='$15'
        shift
    fi
    for p in "$@"; do
        for c in "$p" $(pgrep -P "$p" || true); do
            [[ -r /proc/$c/stat ]] || continue
            sum=$((sum + $(awk "{ print $fields }" "/proc/$c/stat")))
        done
    done
    echo "$sum"
}
