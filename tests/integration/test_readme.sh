#!/usr/bin/env bash
# README.md's "Running it by hand", run as written, so the README cannot
# drift from the commands. The code blocks of its numbered steps (from
# "### 1." up to the line "<!-- test_readme: stop -->", which comes before
# the steps that need files the README does not write out) are read from the
# README itself, not copied here:
#
# - a block that is not `sh` and whose first line is "# FILE" (or "# FILE
#   (FILE2 alike): ...") is written to FILE (and FILE2);
# - a `sh` block is run line by line (continuations joined, from the work
#   directory, with the build's commands first on PATH); each must exit 0,
#   except a "CMD run ..." line, which starts a daemon: it runs in the
#   background and must come up (a "serving" or "on tcp://" line) and stay up.
#
# The only things changed on the way are what the README leaves to the
# reader: KEYID (the id `keysplit split` printed), "<curve-public from
# F.pub>" (that file's key), the 127.0.0.1 ports (each mapped to a free
# random one, the same everywhere) and /run/ paths (under the work dir). The
# test provides what the README assumes: site.pem (an RSA key), www.pem (its
# certificate from a test CA) and an origin at the upstream address. Then a
# page is fetched through the edge with curl. In a sanitizer build, which
# cannot lock its shadow memory, the daemons are told so (share-holder run
# --allow-unlocked, "allow-unlocked yes" in the combiner's file): the only
# addition to what the README says.
# Usage: test_readme.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: test_readme.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/spk-test-readme.XXXXXX)
cleanup() {
    [ -f "$T/pids" ] && xargs -r kill -- <"$T/pids" 2>/dev/null
    sleep 0.2
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

/usr/bin/python3 - "$SRC/README.md" "$BUILD" "$T" <<'PYEOF'
import os, random, re, shlex, socket, subprocess, sys, time

readme, build, work = sys.argv[1:4]
STOP = "<!-- test_readme: stop -->"
passed = failed = 0

def check(desc, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok:   " + desc)
    else:
        failed += 1
        print("FAIL: " + desc + (": " + detail if detail else ""))
    sys.stdout.flush()

def die(msg):
    print("FAIL: setup: " + msg)
    print("%d passed, %d failed" % (passed, failed + 1))
    sys.exit(1)

# ---- the README's blocks ---------------------------------------------------------------
lines = open(readme).read().split("\n")
try:
    start = lines.index("## Running it by hand")
except ValueError:
    die("README.md has no '## Running it by hand' section")
blocks, step, i, stopped = [], None, start + 1, False
while i < len(lines) and not lines[i].startswith("## "):
    line = lines[i]
    if line.strip() == STOP:
        stopped = True
        break
    if re.match(r"^### \d+\. ", line):
        step = line
    elif line.startswith("```") and step is not None:
        lang, body = line[3:].strip(), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append((step, lang, body))
    i += 1
steps = sorted(set(b[0] for b in blocks), key=[b[0] for b in blocks].index)
check("README: steps found (%s)" % "; ".join(s[4:] for s in steps), len(steps) >= 3)
check("README: the steps end at '%s'" % STOP, stopped)

# ---- what the README assumes the reader has -----------------------------------------------
os.chdir(work)
def run(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True)
for cmd in ("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=readme-CA",
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out site.pem",
            "openssl req -new -key site.pem -subj /CN=www.readme.test -out www.csr",
            "printf 'subjectAltName=DNS:www.readme.test\\n' >www.ext",
            "openssl x509 -req -in www.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile www.ext -out www.pem"):
    if run(cmd).returncode != 0:
        die(cmd)
env = dict(os.environ)
env["PATH"] = ":".join(os.path.join(build, d) for d in ("split", "share-holder", "combiner", "edge")) + ":" + env["PATH"]

ports = {}
def free_port():
    while True:
        p = random.randint(20000, 32000)  # below the kernel's ephemeral range
        if p in ports.values():
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                pass
def fill(text):
    text = re.sub(r"127\.0\.0\.1:(\d+)",
                  lambda m: "127.0.0.1:%d" % ports.setdefault(m.group(1), free_port()), text)
    text = text.replace("ipc:///run/", "ipc://%s/run/" % work)
    text = text.replace("KEYID", keyid or "KEYID")
    def pub(m):
        try:
            for l in open(m.group(1)):
                if l.startswith("curve-public "):
                    return l.split()[1]
        except OSError:
            pass
        return m.group(0)
    return re.sub(r"<curve-public from (\S+\.pub)>", pub, text)

cache = open(os.path.join(build, "CMakeCache.txt")).read()
sanitized = re.search(r"^SPK_(ASAN|UBSAN):BOOL=ON", cache, re.M) is not None

keyid = None
daemons = []
os.makedirs(os.path.join(work, "run", "splitkey"), exist_ok=True)
for step, lang, body in blocks:
    if lang != "sh":
        m = re.match(r"^# ([\w.-]+\.\w+)(?: \(([\w.-]+\.\w+) alike\))?", body[0] if body else "")
        if not m:
            continue
        text = fill("\n".join(body)) + "\n"
        if sanitized and re.search(r"^splitkey-combiner ", text, re.M):
            text += "allow-unlocked yes\n"
        for name in filter(None, m.groups()):
            with open(name, "w") as f:
                f.write(text)
            check("%s: wrote %s from the README" % (step[4:], name), True)
        continue
    cmds, cur = [], ""
    for l in body:
        cur += l[:-1] + " " if l.endswith("\\") else l
        if not l.endswith("\\"):
            if cur.strip():
                cmds.append(cur.strip())
            cur = ""
    for c in cmds:
        c = fill(c)
        words = shlex.split(c, comments=True)
        if len(words) >= 2 and words[1] == "run":
            if sanitized and words[0] == "share-holder":
                c += " --allow-unlocked"
            n = len(daemons)
            log = open("daemon-%d.log" % n, "w")
            p = subprocess.Popen(c, shell=True, env=env, stdout=log, stderr=log,
                                 start_new_session=True)
            with open("pids", "a") as f:
                f.write("-%d\n" % p.pid)
            up = False
            for _ in range(150):
                text = open("daemon-%d.log" % n).read()
                if re.search(r"serving| on (tcp|ipc)://", text) or p.poll() is not None:
                    up = p.poll() is None
                    break
                time.sleep(0.1)
            daemons.append((c, p, n))
            check("%s: %s (started, pid %d)" % (step[4:], c[:70], p.pid), up, open("daemon-%d.log" % n).read()[-400:])
            continue
        r = subprocess.run(c, shell=True, env=env, capture_output=True, text=True, timeout=120)
        check("%s: %s" % (step[4:], c[:90]), r.returncode == 0, (r.stderr or r.stdout)[-400:])
        if words[:2] == ["keysplit", "split"] and r.returncode == 0:
            keyid = r.stdout.strip().split("\n")[-1]

for c, p, n in daemons:
    check("still running: %s" % c[:70], p.poll() is None, open("daemon-%d.log" % n).read()[-400:])

# ---- a page through the edge ---------------------------------------------------------------
edge_listen = upstream = None
if os.path.exists("edge.conf"):
    for l in open("edge.conf"):
        w = l.split()
        if w[:1] == ["listen"]:
            edge_listen = w[1]
        if w[:1] == ["upstream"]:
            upstream = w[1]
check("the README's edge.conf has listen and upstream", edge_listen and upstream)
if edge_listen and upstream:
    os.makedirs("www", exist_ok=True)
    open("www/index.html", "w").write("hello from the README's origin\n")
    host, port = upstream.rsplit(":", 1)
    origin = subprocess.Popen([sys.executable, "-m", "http.server", port, "--bind", host],
                              cwd="www", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open("pids", "a") as f:
        f.write("%d\n" % origin.pid)
    eport = edge_listen.rsplit(":", 1)[1]
    body = ""
    for _ in range(50):
        r = run("curl -sS --max-time 10 --cacert ca.pem --resolve www.readme.test:%s:127.0.0.1 "
                "https://www.readme.test:%s/index.html" % (eport, eport))
        body = r.stdout + r.stderr
        if r.returncode == 0:
            break
        time.sleep(0.2)
    check("curl gets the origin's page through the edge", body == "hello from the README's origin\n", body[-300:])

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PYEOF
rc=$?
exit $rc
