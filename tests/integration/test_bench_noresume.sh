#!/usr/bin/env bash
# test_bench_noresume: the load client of the TLS benchmarks makes full
# handshakes. Debian's h2load resumes the previous session on every
# reconnect; with build/tests/libspk_noresume.so preloaded it resumes none,
# on TLS 1.3 and on TLS 1.2 (SPK_NORESUME_TLS_MAX=1.2), against an nginx with
# tickets on that logs each resumed handshake (tools/lib/bench.sh, as
# tools/bench-provider and tools/bench-edge run it).
# Usage: test_bench_noresume.sh BUILD_DIR
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/integration/lib_edge.sh
source "$src/tests/integration/lib_edge.sh"
# shellcheck source=tools/lib/bench.sh
source "$src/tools/lib/bench.sh"
lib_edge_init bench-noresume "${1:-}"
command -v nginx >/dev/null || die "nginx is needed (nginx-light)"
bench_init "$BUILD"
lib_edge_pki
lib_edge_mkcert bench 2048 || die "certificate"

P=$P_FREE
mkdir -p ngx/logs
{
    echo "worker_processes 1; daemon off; pid $T/ngx/nginx.pid;"
    echo "error_log $T/ngx/logs/error.log warn; events { worker_connections 256; }"
    echo "http {"
    bench_nginx_http "$T/ngx"
    bench_nginx_server "$P" bench "$T/bench.pem" "$T/bench.key"
    echo "}"
} >ngx/nginx.conf
nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" -e "$T/ngx/logs/error.log" 2>ngx/stderr.log &
PIDS+=($!)
bench_wait_port "$P" || die "nginx did not start: $(cat ngx/logs/error.log ngx/stderr.log)"

resumed() { bench_nginx_resumed "$P"; }
r0=$(resumed)
bench_h2load 1.3 20 1 bench "$P" noshim
r1=$(resumed)
check "without the shim: 20 answers, 19 resumed ($H2_OK, $((r1 - r0)))" \
    test "$H2_OK" = 20 -a $((r1 - r0)) = 19
for v in 1.3 1.2; do
    r1=$(resumed)
    bench_h2load $v 40 4 bench "$P"
    r2=$(resumed)
    check "TLS $v with the shim: 40 answers, none resumed ($H2_OK, $((r2 - r1)))" \
        test "$H2_OK" = 40 -a "$r2" = "$r1"
done
# The benchmarks' own check passes here and trips on one resumed handshake.
bench_resumption_guard g bench "$P" resumed
bench_h2load 1.3 10 2 bench "$P"
check "bench_resumption_check passes after full handshakes" \
    eval '( bench_resumption_check g resumed )'
bench_h2load 1.3 2 1 bench "$P" noshim
check "bench_resumption_check fails after a resumed one" \
    eval '! ( bench_resumption_check g resumed ) 2>/dev/null'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
