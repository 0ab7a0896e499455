# shellcheck shell=bash
# help.sh: -h and --help for the scripts in tools/. A script's help is its
# header comment, so the two cannot drift apart, and asking for it starts
# nothing: no install, no build directory, no daemon.

# spk_help_if_asked SCRIPT ARG...: when an ARG before any "--" is -h or
# --help, print SCRIPT's header (its lines from the second up to the first
# that is not a comment, without the leading "# ") and exit 0.
spk_help_if_asked() {
    local script=$1 arg
    shift
    for arg in "$@"; do
        case $arg in
        --) return 0 ;;
        -h | --help)
            sed -n '2,/^[^#]/{/^#/!d; s/^# \{0,1\}//; p}' "$script"
            exit 0
            ;;
        esac
    done
}
