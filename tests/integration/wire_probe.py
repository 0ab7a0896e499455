# wire_probe.py: send hand-made protocol frames to a share-holder or a combiner
# over ZeroMQ (or a combiner's unix:// SOCK_SEQPACKET socket) and print what comes back, for the integration tests (not a test
# itself). Run with Debian's python3 (python3-zmq).
#
#   wire_probe.py [--curve SERVER.pub CLIENT.key] [--from ADDRESS] [--wait MS] [--count N] ENDPOINT FRAME...
#
# FRAME is TYPE:REQUEST_ID[:HEX_BODY] (PROTOCOL.md 7.2; the header is built
# here). Every frame is sent on one DEALER, then the answers are read until
# none comes for WAIT ms (2000 for the first, 500 after; --wait MS for both,
# for long runs on a loaded machine; --count N: stop at N answers): each is printed as
# TYPE:REQUEST_ID:ERROR_CODE (0 unless an ERROR) on one line, space-separated,
# or "no answer"; a SIGSHARE_RESPONSE (9) adds ":HEX" of its signature share
# (the result item, tag 0x0d), and ":C_HEX:Z_HEX" of its proof when it has one
# (tags 0x12, 0x13). --curve: CURVE with the server's curve-public from its .pub
# and the client's pair from its .key; --from: the local source address.
import socket, struct, sys, zmq


class Seqpacket:
    """unix://PATH: one datagram per frame, the DEALER calls the probe uses."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.rcvtimeo = -1
        self.sndtimeo = -1

    def connect(self, endpoint):
        path = endpoint[len("unix://"):]
        self.sock.connect("\0" + path[1:] if path.startswith("@") else path)

    def send(self, frame):
        self.sock.settimeout(None if self.sndtimeo < 0 else self.sndtimeo / 1000)
        try:
            self.sock.send(frame)
        except socket.timeout:
            raise zmq.Again()

    def recv(self):
        self.sock.settimeout(None if self.rcvtimeo < 0 else self.rcvtimeo / 1000)
        try:
            m = self.sock.recv(65536)
        except socket.timeout:
            raise zmq.Again()
        if not m:
            raise zmq.Again()  # closed by the combiner: nothing more comes
        return m


def key(path, word):
    for line in open(path):
        if line.startswith(word + " "):
            return line.split()[1].encode()
    sys.exit("wire_probe: no %s in %s" % (word, path))

args = sys.argv[1:]
unix = [a for a in args if a.startswith("unix://")]
if unix:
    s = Seqpacket()
else:
    s = zmq.Context().socket(zmq.DEALER)
    s.linger = 0
source = None
first_wait, wait = 2000, 500
count = None
while args and args[0].startswith("--"):
    if args[0] == "--curve":
        s.curve_serverkey = key(args[1], "curve-public")
        s.curve_publickey = key(args[2], "curve-public")
        s.curve_secretkey = key(args[2], "curve-secret")
        args = args[3:]
    elif args[0] == "--count":
        count = int(args[1])
        args = args[2:]
    elif args[0] == "--wait":
        first_wait = wait = int(args[1])
        args = args[2:]
    elif args[0] == "--from":
        source, args = args[1], args[2:]
    else:
        sys.exit("wire_probe: unknown option " + args[0])
endpoint, frames = args[0], args[1:]
if source is not None:
    endpoint = endpoint.replace("tcp://", "tcp://%s:0;" % source)
s.connect(endpoint)
# A DEALER whose connection failed its handshake has no peer left and would
# wait in send() for good: sending ends at the first wait too, and what was
# not sent gets no answer.
s.sndtimeo = first_wait
for f in frames:
    parts = f.split(":")
    body = bytes.fromhex(parts[2]) if len(parts) > 2 else b""
    try:
        s.send(b"SK" + bytes([1, int(parts[0]), 0]) + struct.pack(">QI", int(parts[1]), len(body)) + body)
    except zmq.Again:
        break
out = []
s.rcvtimeo = first_wait
while True:
    try:
        m = s.recv()
    except zmq.Again:
        break
    code = struct.unpack(">H", m[20:22])[0] if len(m) >= 22 and m[3] == 7 else 0
    line = "%d:%d:%d" % (m[3], struct.unpack(">Q", m[5:13])[0], code)
    at = 17
    while m[3] == 9 and at + 3 <= len(m):
        tag, n = m[at], struct.unpack(">H", m[at + 1:at + 3])[0]
        if tag in (0x0d, 0x12, 0x13):
            line += ":" + m[at + 3:at + 3 + n].hex()
        at += 3 + n
    out.append(line)
    if count is not None and len(out) >= count:
        break
    s.rcvtimeo = wait
print(" ".join(out) if out else "no answer")
