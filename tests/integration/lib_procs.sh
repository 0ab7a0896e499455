# shellcheck shell=bash
# lib_procs.sh: how a test stops what it started, sourced by lib_edge.sh and
# lib_holder.sh. A daemon that does not exit on SIGTERM is a bug (systemd
# would have to SIGKILL it, and it would not have drained). Left to ctest it
# shows only as the whole test timing out after 900 s, with no word of which
# process or why; here it fails the test at once, named, with the end of its
# stderr, its children, its threads' states and, when gdb is installed,
# their stacks, and is killed. (The daemons make themselves non-dumpable,
# which keeps other users' debuggers out, not root's: the tests run as root.)

# Longer than any drain a test leaves running: the edge's default
# drain-timeout-ms is 30 s.
LIB_PROCS_STOP_MS=${LIB_PROCS_STOP_MS:-40000}

# lib_procs_state PID: the process's state letter (R, S, T, Z...), empty
# when there is no such process.
lib_procs_state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null; }

# lib_procs_gone PID: true when PID has exited (a zombie its parent has not
# reaped yet counts as exited).
lib_procs_gone() {
    local st
    st=$(lib_procs_state "$1")
    [ -z "$st" ] || [ "$st" = Z ]
}

# lib_procs_stacks PID: its threads' stacks, from gdb when there is one. A
# process another tracer holds (a sanitizer's leak check at exit stops it
# with ptrace) cannot be attached: that tracer is named instead.
lib_procs_stacks() {
    local tracer
    command -v gdb >/dev/null || return 0
    tracer=$(awk '$1 == "TracerPid:" { print $2 }' "/proc/$1/status" 2>/dev/null)
    if [ -n "$tracer" ] && [ "$tracer" != 0 ]; then
        echo "  traced by $tracer: $(tr '\0' ' ' <"/proc/$tracer/cmdline" 2>/dev/null)"
        return 0
    fi
    echo "  its threads' stacks (gdb):"
    timeout 60 gdb -batch -nx -p "$1" -ex "thread apply all bt 16" </dev/null 2>&1 |
        grep -E '^(Thread |#)' | sed 's/^/    /'
}

# lib_procs_stop PID...: SIGTERM to each PID and to every job of this shell
# still running (SIGCONT first to one a test left stopped), then up to
# LIB_PROCS_STOP_MS in all for this shell's children among them to exit.
# Returns 1 if one did not.
lib_procs_stop() {
    local p t hung=0 deadline running
    local -a all
    running=$(jobs -p)
    # shellcheck disable=SC2086 # one PID per word
    mapfile -t all < <(printf '%s\n' "$@" $running | sort -un)
    for p in "${all[@]}"; do
        # A stopped one is let go on first, and only it: a SIGCONT that
        # lands while a sanitizer's leak check at exit stops the process
        # (ptrace) cancels that stop, and the check then waits forever.
        [ "$(lib_procs_state "$p")" = T ] && kill -CONT "$p" 2>/dev/null
        kill -TERM "$p" 2>/dev/null
    done
    deadline=$(($(date +%s%3N) + LIB_PROCS_STOP_MS))
    for p in "${all[@]}"; do
        # Only a child of this shell: a PID the test recorded may have
        # ended long ago and been given to someone else's process.
        [ "$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null)" = "$$" ] || continue
        while ! lib_procs_gone "$p"; do
            if [ "$(date +%s%3N)" -ge "$deadline" ]; then
                echo "FAIL: still running ${LIB_PROCS_STOP_MS} ms after SIGTERM:" \
                    "$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
                echo "  its children: $(pgrep -P "$p" | tr '\n' ' ')"
                echo "  the end of its stderr ($(readlink "/proc/$p/fd/2")):"
                tail -n 5 "/proc/$p/fd/2" 2>/dev/null | sed 's/^/    /'
                for t in /proc/"$p"/task/*; do
                    echo "  thread ${t##*/}: $(awk '{ print $2, $3 }' "$t/stat" 2>/dev/null)" \
                        "in $(cat "$t/wchan" 2>/dev/null)"
                done
                lib_procs_stacks "$p"
                kill -KILL "$p" 2>/dev/null
                hung=1
                break
            fi
            sleep 0.05
        done
    done
    wait 2>/dev/null
    return $hung
}
