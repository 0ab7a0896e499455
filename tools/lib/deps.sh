# Sourced by tools/check and tools/demo: installs the Debian packages splitkey
# needs, when any is missing (apt-get update first, as a fresh machine needs).

SPK_DEBIAN_PACKAGES=(
    build-essential cmake pkg-config git
    libgmp-dev libssl-dev libsodium-dev libzmq3-dev libcmocka-dev
    clang libclang-rt-14-dev clang-format valgrind
    openssl curl procps iproute2 bc python3 python3-zmq python3-nacl
    nghttp2-client haproxy nginx-light testssl.sh apache2
    help2man dpkg-dev
    golang-go golang-github-cloudflare-circl-dev
)

spk_install_deps() {
    local missing=() p
    for p in "${SPK_DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    echo "installing: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
