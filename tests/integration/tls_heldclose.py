# tls_heldclose.py: a TLS 1.3 client for test_edge.sh (not a test itself)
# that makes the edge's close_notify wait for room in its output buffer.
# After the handshake it creates HOLD_FILE (libspk_shortio.so, preloaded into
# the edge with SPK_SHORTIO_HOLD=HOLD_FILE, then holds back every write of
# application data to clients), sends one line, and waits HOLD_SECONDS while
# the origin's answer fills the edge's buffer and the origin closes; then it
# removes HOLD_FILE and reads to the end.
#
#   tls_heldclose.py HOST PORT SERVERNAME CA_FILE HOLD_FILE HOLD_SECONDS
#
# Prints how many bytes came and their SHA-256, then "close_notify" if the
# edge's came after them, or "eof" if the connection ended without it.
import hashlib, os, socket, ssl, sys, time

host, port, name, cafile, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
hold_seconds = float(sys.argv[6])
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
tls = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname=name,
                      suppress_ragged_eofs=False)
# The session tickets the edge sends after the handshake leave before the hold.
time.sleep(0.3)
open(hold, "w").close()
tls.sendall(b"go\n")
time.sleep(hold_seconds)
os.unlink(hold)
h = hashlib.sha256()
n = 0
end = "eof"
try:
    while True:
        data = tls.recv(65536)
        if not data:
            end = "close_notify"
            break
        h.update(data)
        n += len(data)
except (ssl.SSLEOFError, ConnectionResetError):
    pass
print(n, h.hexdigest())
print(end)
