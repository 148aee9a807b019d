#!/usr/bin/env python3
"""Replay the wire examples of docs/PROTOCOL.md against a running local Rootcauses stack.

Usage: python3 replay.py [--doc PATH] [--data-dir DIR] [--host H] [--ports 7401,7402,7403]
Token: env DOC_TOKEN, else DIR/admin.token.

What it does:
  1. setup: brings the database to the state the document's examples were run against
     (PROTOCOL.md preamble): the sample submissions (seqs 1-269), then seqs 270-275 from the
     document's own examples (replayed and compared as they go), and the key made in §5.1;
  2. replays every other `→`/`←` example in document order, one connection per service
     (auth'd with the admin token), plus side connections where an example needs another key;
  3. replays the §7.3 subscription transcript at the end (seq 278).
Answers are compared as parsed JSON (exact decimals, key order ignored) after masking
generated times and mapping the document's key ids / tokens to the ones this run made.
"""
import argparse, json, os, re, socket, sys, time
from decimal import Decimal

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ap = argparse.ArgumentParser()
ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "PROTOCOL.md"))
ap.add_argument("--sample", default=os.path.join(ROOT, "Deploy", "sample", "submissions.ndjson"))
ap.add_argument("--data-dir", required=True, help="the stack's data directory (its admin.token)")
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--ports", default="7401,7402,7403")
ap.add_argument("--verbose", action="store_true")
args = ap.parse_args()
PORTS = dict(zip(["intake", "aggregation", "reporting"], map(int, args.ports.split(","))))
TOKEN = os.environ.get("DOC_TOKEN") or open(os.path.join(args.data_dir, "admin.token")).read().strip()
DOC = open(args.doc, encoding="utf-8").read().split("\n")

# ---------------------------------------------------------------- JSON helpers
def parse(s):
    return json.loads(s, parse_float=Decimal)

DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
TODAY = re.compile(r"today \(\d{4}-\d{2}-\d{2}\)")
MASKED_KEYS = {"uptime_seconds"}

def mask(v, key=None):
    """Generated values: times (anywhere in a string) and uptime."""
    if key in MASKED_KEYS:
        return "<masked>"
    if isinstance(v, dict):
        return {k: mask(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [mask(x) for x in v]
    if isinstance(v, str):
        return TODAY.sub("today (<date>)", DATETIME.sub("<time>", v))
    return v

def norm(v):
    """Canonical form: ints and decimals compare by value."""
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    return Decimal(v).normalize() if v != 0 else Decimal(0)

def sort_lists(v):
    if isinstance(v, dict):
        return {k: sort_lists(x) for k, x in v.items()}
    if isinstance(v, list):
        return sorted((sort_lists(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True, default=str))
    return v

def diff_paths(e, a, path=""):
    out = []
    if isinstance(e, dict) and isinstance(a, dict):
        for k in list(e.keys()) + [k for k in a if k not in e]:
            p = f"{path}.{k}" if path else k
            if k not in a: out.append(f"{p}: missing in actual")
            elif k not in e: out.append(f"{p}: extra in actual ({short(a[k])})")
            else: out += diff_paths(e[k], a[k], p)
    elif isinstance(e, list) and isinstance(a, list):
        if len(e) != len(a):
            out.append(f"{path}: {len(e)} items expected, {len(a)} actual")
        for i, (x, y) in enumerate(zip(e, a)):
            out += diff_paths(x, y, f"{path}[{i}]")
    elif e != a:
        out.append(f"{path}: expected {short(e)}, actual {short(a)}")
    return out

def short(v, n=90):
    s = json.dumps(v, default=str, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + "…"

def strings_with_ellipsis(v, path=""):
    """Strings containing '…' outside error messages: an elided document."""
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in strings_with_ellipsis(x, f"{path}.{k}")]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in strings_with_ellipsis(x, f"{path}[{i}]")]
    if isinstance(v, str) and "…" in v and not path.endswith(".message"):
        return [path]
    return []

# ---------------------------------------------------------------- connections
class Conn:
    def __init__(self, name, service, token):
        self.name, self.service = name, service
        self.sock = socket.create_connection((args.host, PORTS[service]), timeout=30)
        self.buf = b""
        self.pushed = []
        if token is not None:
            ans = self.request(json.dumps({"op": "auth", "id": "auth", "token": token}))
            if not ans[1].get("ok"):
                sys.exit(f"auth on {name} failed: {ans[0]}")
            self.auth_answer = ans[1]

    def readline(self, timeout=30):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"{self.name}: connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8").rstrip("\r")

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def request(self, line, timeout=30):
        self.sock.sendall(line.encode("utf-8") + b"\n")
        return self.answer(timeout)

    def answer(self, timeout=30):
        while True:
            raw = self.readline(timeout)
            try:
                obj = parse(raw)
            except ValueError:
                return raw, None
            if isinstance(obj, dict) and "ok" not in obj and "event" in obj:
                self.pushed.append(raw)     # a pushed line: not an answer
                continue
            return raw, obj

conns = {}
def conn(name, service, token=TOKEN):
    if name not in conns:
        conns[name] = Conn(name, service, token)
    return conns[name]

# ---------------------------------------------------------------- key/token mapping
mapping = {}            # document's key id / token -> this run's
def apply_mapping(s):
    for k in sorted(mapping, key=len, reverse=True):
        s = s.replace(k, mapping[k])
    return s

def learn(e, a):
    if isinstance(e, dict) and isinstance(a, dict):
        for k, x in e.items():
            if k in a:
                if k in ("key_id", "token", "created_by", "revoked_by") and isinstance(x, str) \
                        and isinstance(a[k], str) and x != a[k] and x not in mapping:
                    mapping[x] = a[k]
                learn(x, a[k])
    elif isinstance(e, list) and isinstance(a, list):
        for x, y in zip(e, a):
            learn(x, y)

# ---------------------------------------------------------------- the document's examples
OP_SERVICE = {}
for l in DOC:   # the service table at the top of the document
    m = re.match(r"\|\s*(intake|aggregation|reporting)\s*\|\s*\d+\s*\|(.*)\|", l)
    if m:
        for op in re.findall(r"`(\w+)`", m.group(2)):
            OP_SERVICE.setdefault(op, set()).add(m.group(1))

examples = []   # dicts: line (of the answer), req_line, req, exp, section
section = ""
pending = None
for i, l in enumerate(DOC, 1):
    if l.startswith("#"):
        section = l.strip("# ").strip()
    if l.startswith("→ "):
        pending = (i, l[2:])
    elif l.startswith("← "):
        ex = {"line": i, "section": section, "exp": l[2:], "req": None, "req_line": None}
        if pending:
            ex["req_line"], ex["req"] = pending
        examples.append(ex)
        pending = None
    elif l.startswith("```"):
        pending = None

def req_obj(ex):
    try:
        o = parse(ex["req"])
        return o if isinstance(o, dict) else None
    except (ValueError, TypeError):
        return None

def key_of(ex):
    o = req_obj(ex)
    if not o:
        return None
    i = o.get("id")
    return (o.get("op"), i if isinstance(i, (str, int)) or i is None else json.dumps(i, default=str))

def route(ex):
    """Which service answers: the answer's own `service`, an unknown_op's message, the op table."""
    try:
        e = parse(ex["exp"])
    except ValueError:
        e = {}
    if isinstance(e, dict) and e.get("service") in PORTS:
        return e["service"]
    err = e.get("error") if isinstance(e, dict) else None
    if err and err.get("code") == "unknown_op":
        m = re.search(r"operation of (\w+)", err.get("message", ""))
        if m: return m.group(1)
    o = req_obj(ex)
    if o and isinstance(o.get("op"), str):
        svcs = OP_SERVICE.get(o["op"], set())
        if len(svcs) == 1:
            return next(iter(svcs))
    return "intake"

# side connections where an example needs another identity than the admin key
SIDE = {("totals", 60): ("anonymous-reporting", "reporting", None),
        ("submit", 66): ("usaid", "intake", "USAID"), ("target", 67): ("usaid", "intake", "USAID"),
        ("auth", 65): ("usaid", "intake", "USAID"), ("submit", 70): ("usaid", "intake", "USAID")}
SKIP_BY_KEY = {("auth", 85): "illustrative: needs five failed auths first (throttled)",
               ("factsheet", 15): "illustrative: a healthy server does not answer internal"}
SKIP_BY_CODE = {"unavailable": "needs the database down", "overloaded": "needs --max-connections 1",
                "tls_required": "needs a TLS port", "internal": "illustrative fault",
                "throttled": "needs failed auths first"}
# examples run during setup (they create seqs 270-275 and the USAID key), in this order
HOIST = [("submit", 7)] + [("submit", i) for i in (40, 41, 42, 43)] + \
        [("retract", i) for i in (44, 45, 46, 47)]

results = []    # (line, status, detail)
usaid_token = None

def compare(ex, raw, act, service, note=""):
    exp_txt = apply_mapping(ex["exp"])
    e = parse(exp_txt)
    if act is None:
        results.append((ex["line"], "MISMATCH", "answer is not JSON", exp_txt, raw, service)); return
    # Key ids and tokens are learnt only where they are made (auth, keys_create): anywhere else a
    # wrong key id in the document must show as a mismatch.
    if "req" in ex and (req_obj(ex) or {}).get("op") in ("auth", "keys_create"):
        learn(e, act)
    e = parse(apply_mapping(ex["exp"]))
    if ex.get("truncate"):      # the document shortened this list
        k, n = ex["truncate"]
        act = dict(act); act[k] = act[k][:n]
    ne, na = norm(mask(e)), norm(mask(act))
    if ne == na:
        results.append((ex["line"], "ok", note, None, None, service)); return
    paths = diff_paths(ne, na)
    kind = ""
    if sort_lists(ne) == sort_lists(na):
        kind = "list order only"
    elif all(p.startswith("error.message:") for p in paths):
        kind = "error.message only (human text)"
    results.append((ex["line"], "MISMATCH", (kind + ": " if kind else "") + "; ".join(paths),
                    exp_txt, raw, service))

def run(ex, setup=False):
    global usaid_token
    k = key_of(ex)
    service = route(ex)
    name, token = service, TOKEN
    if k in SIDE:
        name, service, who = SIDE[k]
        token = usaid_token if who == "USAID" else None
    c = conn(name, service, token)
    req = apply_mapping(ex["req"]).replace("ADMIN_TOKEN", TOKEN)
    raw, act = c.request(req)
    compare(ex, raw, act, service, "setup" if setup else "")
    if k == ("keys_create", 62) and act and act.get("ok"):
        usaid_token = act["token"]
    return act

def by_key(k):
    return [ex for ex in examples if key_of(ex) == k]

def doc_line(prefix):
    for i, l in enumerate(DOC, 1):
        if l.startswith(prefix):
            return i, l
    sys.exit(f"not in the document: {prefix}")

def setup_check(label, line, got, want_fields):
    bad = {k: (v, got.get(k)) for k, v in want_fields.items() if got.get(k) != v}
    results.append((line, "MISMATCH" if bad else "ok", f"setup check {label}: {bad}" if bad else "setup check " + label,
                    json.dumps(want_fields), json.dumps(got, default=str), "intake"))
    if bad:
        print(f"!! setup step {label} did not go as the document says: {bad}", file=sys.stderr)

# ---------------------------------------------------------------- 0. connections, admin key id
intake, reporting = conn("intake", "intake"), conn("reporting", "reporting")
conn("aggregation", "aggregation")
for ex in examples:    # the document's admin key id is the key_id of its auth with ADMIN_TOKEN
    o = req_obj(ex)
    if o and o.get("op") == "auth" and o.get("token") == "ADMIN_TOKEN":
        mapping[parse(ex["exp"])["key_id"]] = intake.auth_answer["key_id"]

# ---------------------------------------------------------------- 1. setup: seqs 1-275
t0 = time.time()
sample = [l for l in open(args.sample, encoding="utf-8") if l.strip()]
for n, l in enumerate(sample):
    intake.send_raw(('{"op":"submit","id":"sample-%d","submission":%s}\n' % (n, l.strip())).encode())
last = None
for n in range(len(sample)):
    raw, a = intake.answer(120)
    if not (a and a.get("ok") and a.get("status") == "accepted"):
        sys.exit(f"sample submission {n} not accepted: {raw}\n(replay needs a fresh database)")
    last = a["seq"]
print(f"setup: {len(sample)} sample submissions stored, last seq {last} ({time.time()-t0:.1f}s)")
if last != 269:
    print("!! the document expects the sample to end at seq 269", file=sys.stderr)

done = set()
def hoisted(k):
    for ex in by_key(k):
        run(ex, setup=True); done.add(ex["line"])

hoisted(("submit", 7))                                                   # seq 270
raw, a = intake.request(json.dumps({"op": "submit", "id": "s271", "submission": {
    "submission_id": "STATE-FY2023Q1-GT-900", "reporter": "STATE", "period": "FY2023Q1",
    "values": [{"indicator": "police_trained", "country": "GT", "value": 100}]}}))  # seq 271, "not shown"
setup_check("seq 271 (STATE-FY2023Q1-GT-900, invented: the document does not show it)",
            21, a, {"ok": True, "status": "accepted", "seq": 271})
# §10: its submit (seq 272) and the read back, compared with the §10 output block
sh = [l for l in DOC if "DOL-FY2023Q2-HN-001" in l and l.strip().startswith("'{\"op\":\"submit\"")][0]
req10 = sh.strip().rstrip("\\").strip().strip("'")
ln, out = doc_line('{"id":2,"ok":true,"status":"accepted","submission_id":"DOL-FY2023Q2-HN-001"')
compare({"line": ln, "exp": out}, *intake.request(req10), "intake", "setup §10")
rd = [l for l in DOC if l.strip().startswith("echo '{\"op\":\"totals\",\"id\":4")][0]
req10b = rd.strip()[len("echo '"):].rstrip("'")
ln, out = doc_line('{"id":4,"ok":true,"applied_seq":272')
compare({"line": ln, "exp": out}, *reporting.request(req10b), "reporting", "setup §10")
# seq 273: the `unavailable` example's submission, "retried once the database was back"
ex13 = by_key(("submit", 13))[0]
raw, a = intake.request(ex13["req"])
setup_check("seq 273 (the unavailable example retried)", ex13["line"], a,
            {"ok": True, "status": "accepted", "seq": 273})
for k in HOIST[1:]:                                                      # seqs 274, 275
    hoisted(k)
hoisted(("keys_create", 62))                                             # the USAID key of §5.1
raw, a = reporting.request('{"op":"totals","id":"sync","min_seq":275}')
if not (a and a.get("ok")):
    sys.exit(f"aggregation did not reach seq 275: {raw}")

# ---------------------------------------------------------------- 2. the rest, in document order
skipped = []
for ex in examples:
    if ex["line"] in done:
        continue
    k = key_of(ex)
    reason = None
    try:
        e = parse(ex["exp"])
    except ValueError:
        e = None
        reason = "answer elided with '…' (not JSON)"
    if ex["req"] is None:
        reason = reason or "no request (an unasked answer)"
    elif not reason and k in SKIP_BY_KEY:
        reason = SKIP_BY_KEY[k]
    elif not reason and isinstance(e, dict) and (e.get("error") or {}).get("code") in SKIP_BY_CODE:
        reason = SKIP_BY_CODE[e["error"]["code"]]
    elif not reason and strings_with_ellipsis(e):
        reason = "answer elided with '…' " + ",".join(strings_with_ellipsis(e))
    if reason:
        skipped.append((ex["line"], reason))
        continue
    if "... 1,200,000 bytes ..." in ex["req"]:      # §4 line_too_long: synthesize the long line
        c = conn("intake", "intake")
        c.send_raw(b'{"op":"submit","id":9,"submission":{"x":"' + b"a" * 1200000 + b'"}}\n')
        compare(ex, *c.answer(), "intake", "synthesized 1,200,000-byte line")
        continue
    if k == ("indicators", 20):     # "the indicators list is shortened to its first two entries"
        ex["truncate"] = ("indicators", len(e["indicators"]))
    run(ex)

# ---------------------------------------------------------------- 3. §7.3 subscription transcript
tr_in = [(i, l) for i, l in enumerate(DOC, 1) if l.startswith("intake    >> ")]
tr_out = [(i, l) for i, l in enumerate(DOC, 1) if l.startswith("intake    << ")]
tr_ev = [(i, l) for i, l in enumerate(DOC, 1) if l.startswith("reporting << ")]
if tr_in and tr_out and tr_ev:
    sub_req = [ex for ex in examples if key_of(ex) == ("subscribe", "hn-jobs")][0]["req"]
    sub = conn("subscriber", "reporting")
    raw, a = sub.request(sub_req)
    if not (a and a.get("ok")):
        results.append((tr_ev[0][0], "MISMATCH", "subscribe failed", "", raw, "reporting"))
    else:
        compare({"line": tr_out[0][0], "exp": tr_out[0][1][len("intake    << "):]},
                *intake.request(tr_in[0][1][len("intake    >> "):]), "intake", "transcript")
        ev_line, ev = tr_ev[0]
        try:
            raw = sub.readline(15)
            a = parse(raw)
        except Exception as err:   # noqa
            raw, a = f"<no event: {err}>", None
        compare({"line": ev_line, "exp": ev[len("reporting << "):]}, raw, a, "reporting", "transcript")

for c in conns.values():
    if c.pushed:
        print(f"note: unasked lines on {c.name}: {c.pushed}")

# ---------------------------------------------------------------- report
mism = [r for r in results if r[1] != "ok"]
for line, _, gist, exp, act, svc in sorted(mism):
    print(f"--- line {line} ({svc})")
    print(f"gist:     {gist}")
    print(f"expected: {exp}")
    print(f"actual:   {act}")
print()
checks = [r for r in results if "setup check" in (r[2] or "")]
docs = [r for r in results if r not in checks]
print(f"compared: {len(docs)} documented answers ({sum(1 for r in docs if 'setup' in (r[2] or ''))} of them during setup), "
      f"{sum(1 for r in docs if r[1] == 'ok')} match, {sum(1 for r in docs if r[1] != 'ok')} differ; "
      f"setup checks: {len(checks)}, {sum(1 for r in checks if r[1] != 'ok')} failed")
print(f"skipped: {len(skipped)}")
for line, reason in skipped:
    print(f"  line {line}: {reason}")
if args.verbose:
    for r in sorted(results):
        print(r[0], r[1], r[2])
sys.exit(1 if mism else 0)
