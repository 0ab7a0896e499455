# tls_halfclose.py: a TLS client that sends its request and then its
# close_notify at once, and reads the last SLOW_TAIL bytes of the answer
# slowly through a small receive buffer, for the integration tests (not a
# test itself). The server reaches the origin's end while its socket towards
# this client is full, and must still send every byte and then its own
# close_notify.
#
#   tls_halfclose.py HOST PORT SERVERNAME CA_FILE PATH [PAUSE_SECONDS]
#
# PAUSE_SECONDS (default 1): how long it waits before reading anything.
# Prints the SHA-256 of the body, then "close_notify" if the server's came,
# or "eof" if the connection ended without it.
import hashlib, socket, ssl, sys, time

host, port, name, cafile, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
pause = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
sock.settimeout(30)
sock.connect((host, port))
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname=name)


def pump_out():
    data = out.read()
    if data:
        sock.sendall(data)


SLOW_TAIL = 6 << 20
slow = False


def pump_in():
    if slow:
        time.sleep(0.001)
    data = sock.recv(4096 if slow else 65536)
    if not data:
        inc.write_eof()
        return False
    inc.write(data)
    return True


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pump_out()
        pump_in()
pump_out()
tls.write(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, name)).encode())
try:
    tls.unwrap()  # our close_notify: nothing more comes from this side
except ssl.SSLWantReadError:
    pass
pump_out()

# Let the server fill every buffer on the way before reading anything.
time.sleep(pause)
body = bytearray()
ending = "eof"
length = None
while True:
    try:
        chunk = tls.read(65536)
        if not chunk:
            ending = "close_notify"
            break
        body += chunk
        if length is None and b"\r\n\r\n" in body:
            head = bytes(body).partition(b"\r\n\r\n")[0].decode("latin-1").lower()
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = len(head) + 4 + int(line.split(":", 1)[1])
        slow = length is not None and length - len(body) <= SLOW_TAIL
        continue
    except ssl.SSLZeroReturnError:
        ending = "close_notify"
        break
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLEOFError:
        break
    if not pump_in():
        try:
            tls.read(1)
        except ssl.SSLZeroReturnError:
            ending = "close_notify"
        except ssl.SSLError:
            pass
        break
head, _, payload = bytes(body).partition(b"\r\n\r\n")
print(hashlib.sha256(payload).hexdigest())
print(ending)
