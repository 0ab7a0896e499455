# shellcheck shell=bash
# lib_ports.sh: a block of loopback ports for one test, sourced by
# lib_edge.sh and lib_holder.sh. ctest runs tests side by side (-j), and two
# tests that drew overlapping ports at random reached each other's servers
# now and then; a block here is held for the test's life by a lock (flock)
# on a file of its own, which every process the test starts inherits, so no
# other test takes it while any of them lives.

# lib_port_block: sets PORT_BLOCK to the first of 16 free-to-use ports,
# between 16000 and 31999: below the kernel's ephemeral range (32768 and
# up), where thousands of test connections hold ports, so a fixed port there
# may be taken. Returns 1 when every block tried is held.
lib_port_block() {
    local idx lock_dir=/tmp/spk-port-blocks
    mkdir -p "$lock_dir" 2>/dev/null
    chmod 1777 "$lock_dir" 2>/dev/null
    for _ in $(seq 1 64); do
        idx=$((RANDOM % 1000))
        # The descriptor stays open (and the lock held) until every process
        # holding it is gone; one that is not ours is closed again. Opened
        # for reading: a file another user made is locked all the same.
        [ -e "$lock_dir/$idx" ] || : 2>/dev/null >>"$lock_dir/$idx"
        exec {LIB_PORT_FD}<"$lock_dir/$idx" || continue
        if flock -n "$LIB_PORT_FD"; then
            PORT_BLOCK=$((16000 + idx * 16))
            return 0
        fi
        exec {LIB_PORT_FD}>&-
    done
    return 1
}
