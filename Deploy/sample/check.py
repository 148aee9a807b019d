#!/usr/bin/env python3
"""Check the shipped data files against each other and against the seed fact sheet.

1. Validates Deploy/config/catalogue.json (docs/CONTRACTS.md).
2. Validates every submission in Deploy/sample/submissions.ndjson against the catalogue.
3. Renders Deploy/config/factsheet.md for a date (default February 2023) with the phrasing
   rule of docs/CONTRACTS.md, prints the rendered highlights, and compares each bullet (and the
   date line and lead paragraph) with the seed fact sheet.

Comparison: whitespace is normalized (runs of spaces, newlines and no-break spaces become one
space). The only other change: the seed's markdown glitch "**Heading: **Text" is read as
"**Heading:** Text" (the template fixes it). Markdown emphasis is compared as is.

Usage: python3 check.py [--seed SEED.md] [--date 2023-02] [--quiet]
Exit status 0 when everything validates and every bullet matches; 1 otherwise. Stdlib only.
"""
import argparse
import json
import os
import re
import sys
from collections import defaultdict
from decimal import Decimal, ROUND_HALF_UP

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
DEFAULT_SEED = "/work/shared/seed/root-causes-fact-sheet-2023-02-06.md"
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

errors = []


def err(msg):
    errors.append(msg)


# ------------------------------------------------------------------------------ periods

PERIOD_RE = re.compile(r"^(?:FY(\d{4})(?:Q([1-4]))?|(\d{4})(?:Q([1-4])|-(0[1-9]|1[0-2]))?)$")


def parse_period(p):
    """Return ((y, m) start, (y, m) end), inclusive, or None if invalid."""
    m = PERIOD_RE.match(p) if isinstance(p, str) else None
    if not m:
        return None
    fy, fq, y, q, mon = m.groups()
    def add(ym, k):
        t = ym[0] * 12 + ym[1] - 1 + k
        return (t // 12, t % 12 + 1)
    if fy:
        start = (int(fy) - 1, 10)
        if fq:
            start = add(start, 3 * (int(fq) - 1))
            return start, add(start, 2)
        return start, add(start, 11)
    y = int(y)
    if q:
        start = (y, 3 * (int(q) - 1) + 1)
        return start, add(start, 2)
    if mon:
        return (y, int(mon)), (y, int(mon))
    return (y, 1), (y, 12)


# ------------------------------------------------------------------------------ catalogue

def load_catalogue(path):
    with open(path, encoding="utf-8") as f:
        cat = json.load(f)
    for key in ("version", "pillars", "countries", "reporters", "dimensions", "indicators"):
        if key not in cat:
            err(f"catalogue: missing {key}")
    codes = set()
    for ind in cat["indicators"]:
        c = ind.get("code", "")
        if not re.match(r"^[a-z][a-z0-9_]*$", c):
            err(f"catalogue: bad code {c!r}")
        if c in codes:
            err(f"catalogue: duplicate code {c}")
        codes.add(c)
        for key in ("name", "unit", "pillar", "countries", "time_aggregation", "dimensions", "precision"):
            if key not in ind:
                err(f"catalogue: {c} lacks {key}")
        if ind["pillar"] not in cat["pillars"]:
            err(f"catalogue: {c} unknown pillar {ind['pillar']}")
        for k in ind["countries"]:
            if k not in cat["countries"]:
                err(f"catalogue: {c} unknown country {k}")
        for d in ind["dimensions"]:
            if d not in cat["dimensions"]:
                err(f"catalogue: {c} unknown dimension {d}")
        if ind["time_aggregation"] not in ("sum", "latest"):
            err(f"catalogue: {c} bad time_aggregation")
        p = ind["precision"]
        if not (isinstance(p, int) and p >= 1 and str(p).rstrip("0") == "1"):
            err(f"catalogue: {c} precision {p} is not a power of ten")
    return cat


# ------------------------------------------------------------------------------ submissions

def validate_submissions(cat, path):
    inds = {i["code"]: i for i in cat["indicators"]}
    subs = []
    seen_ids = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"submissions line {n}"
            try:
                s = json.loads(line, parse_float=Decimal)
            except ValueError as e:
                err(f"{where}: bad JSON: {e}")
                continue
            sid, rep, per = s.get("submission_id"), s.get("reporter"), s.get("period")
            where = f"{where} ({sid})"
            if not isinstance(sid, str) or not sid:
                err(f"{where}: missing submission_id")
            if rep not in cat["reporters"]:
                err(f"{where}: unknown reporter {rep!r}")
            if (rep, sid) in seen_ids:
                err(f"{where}: duplicate submission_id for {rep}")
            seen_ids.add((rep, sid))
            if parse_period(per) is None:
                err(f"{where}: bad period {per!r}")
            extra = set(s) - {"submission_id", "reporter", "period", "activity", "values"}
            if extra:
                err(f"{where}: unknown keys {sorted(extra)}")
            vals = s.get("values") or []
            if not 1 <= len(vals) <= 40:
                err(f"{where}: {len(vals)} values (want 1..40)")
            keys, dimsets, whole, cells = set(), {}, set(), set()
            for v in vals:
                code, country, value = v.get("indicator"), v.get("country"), v.get("value")
                ind = inds.get(code)
                if ind is None:
                    err(f"{where}: unknown indicator {code!r}")
                    continue
                if country not in cat["countries"]:
                    err(f"{where}: unknown country {country!r}")
                elif country not in ind["countries"]:
                    err(f"{where}: {code} does not apply to {country}")
                if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value < 0:
                    err(f"{where}: {code} bad value {value!r}")
                elif ind["unit"] == "USD":
                    if Decimal(value) != Decimal(value).quantize(Decimal("0.01")):
                        err(f"{where}: {code} more than 2 decimals")
                elif not isinstance(value, int):
                    err(f"{where}: {code} value {value} is not a whole number")
                if "max_value" in ind and value > ind["max_value"]:
                    err(f"{where}: {code} above max_value")
                if "estimate" in v and not isinstance(v["estimate"], bool):
                    err(f"{where}: {code} estimate not boolean")
                dis = v.get("disaggregation") or {}
                for d, dv in dis.items():
                    if d not in ind["dimensions"]:
                        err(f"{where}: {code} does not accept dimension {d}")
                    elif dv not in cat["dimensions"][d]:
                        err(f"{where}: {code} unknown {d} value {dv!r}")
                key = (code, country, tuple(sorted(dis.items())))
                if key in keys:
                    err(f"{where}: duplicate {key}")
                keys.add(key)
                ic = (code, country)
                (cells if dis else whole).add(ic)
                ds = tuple(sorted(dis))
                if dis and dimsets.setdefault(ic, ds) != ds:
                    err(f"{where}: {ic} mixes dimension sets {dimsets[ic]} and {ds}")
            for ic in whole & cells:
                err(f"{where}: {ic} has both a whole and cells")
            subs.append(s)
    if not 100 <= len(subs) <= 300:
        err(f"submissions: {len(subs)} (want 100..300)")
    return subs


def check_series(cat, subs):
    """Flow series never cover a month twice; latest series never decrease."""
    inds = {i["code"]: i for i in cat["indicators"]}
    series = defaultdict(lambda: defaultdict(Decimal))     # (code,country,reporter) -> period -> value
    for s in subs:
        for v in s["values"]:
            if v.get("indicator") in inds:
                series[(v["indicator"], v["country"], s["reporter"])][s["period"]] += Decimal(v["value"])
    for key, by_period in sorted(series.items()):
        ind = inds[key[0]]
        spans = sorted((parse_period(p), p) for p in by_period)
        if ind["time_aggregation"] == "sum":
            for (a, pa), (b, pb) in zip(spans, spans[1:]):
                if b[0] <= a[1]:
                    err(f"series {key}: periods {pa} and {pb} overlap (double counting)")
        else:
            ordered = sorted(by_period, key=lambda p: (parse_period(p)[1], parse_period(p)[0]))
            for pa, pb in zip(ordered, ordered[1:]):
                if parse_period(pa) == parse_period(pb):
                    err(f"series {key}: {pa} and {pb} are the same period")
                if by_period[pb] < by_period[pa]:
                    err(f"series {key}: cumulative value falls from {pa} to {pb}")
    return series


# ------------------------------------------------------------------------------ phrasing

def total(cat, subs, code, date, countries=None, reporters=None):
    """Exact total E of an indicator up to `date` ((y, m)), and whether an estimate is behind it."""
    ind = next(i for i in cat["indicators"] if i["code"] == code)
    rows = []   # (reporter, country, period, value, estimate)
    for s in subs:
        span = parse_period(s["period"])
        if span[1] > date:
            continue
        if reporters and s["reporter"] not in reporters:
            continue
        for v in s["values"]:
            if v["indicator"] != code or (countries and v["country"] not in countries):
                continue
            rows.append((s["reporter"], v["country"], s["period"], Decimal(v["value"]), bool(v.get("estimate"))))
    if ind["time_aggregation"] == "sum":
        return sum((r[3] for r in rows), Decimal(0)), any(r[4] for r in rows)
    latest = {}
    for rep, country, period, _, _ in rows:
        k = (rep, country)
        sp = parse_period(period)
        if k not in latest or (sp[1], sp[0]) > (parse_period(latest[k])[1], parse_period(latest[k])[0]):
            latest[k] = period
    chosen = [r for r in rows if latest[(r[0], r[1])] == r[2]]
    return sum((r[3] for r in chosen), Decimal(0)), any(r[4] for r in chosen)


def fmt_int(n):
    return f"{int(n):,}"


def phrase(E, P, money, estimate, above="more than", below="nearly", estimate_word="an estimated", bare=False):
    E, P = Decimal(E), Decimal(P)
    if 0 < E < P:                                   # rule 1
        P = Decimal(10) ** (len(str(int(E))) - 1)
    R = (E / P).quantize(Decimal(1), rounding=ROUND_HALF_UP) * P      # rule 2
    if estimate:                                    # rule 3
        q = estimate_word
    elif E == R:
        q = ""
    elif E > R:
        q = above
    else:
        q = below
    exp = len(str(int(P))) - 1                      # P = 10**exp

    def scaled(unit_exp):
        dec = max(0, unit_exp - exp)
        s = f"{R / (Decimal(10) ** unit_exp):.{dec}f}"
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return s
    if money:                                       # rule 4
        if R >= Decimal(10) ** 9:
            fig = f"${scaled(9)} billion"
        elif R >= Decimal(10) ** 6:
            fig = f"${scaled(6)} million"
        else:
            fig = "$" + fmt_int(R) + ("" if R == R.to_integral_value() else f"{R % 1:.2f}"[1:])
    else:
        if R >= Decimal(10) ** 6 and P >= 100000:
            fig = f"{scaled(6)} million"
        else:
            fig = fmt_int(R)
    return fig if bare or not q else f"{q} {fig}"


PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)((?:\s+[a-z_]+=[^\s}]+)*)\s*\}\}")
OPTIONS = {"country", "reporter", "precision", "above", "below", "estimate", "bare"}


def render(text, cat, subs, date):
    inds = {i["code"]: i for i in cat["indicators"]}

    def sub(m):
        code = m.group(1)
        if code == "date":
            return f"{MONTHS[date[1] - 1]} {date[0]}"
        if code not in inds:
            err(f"template: unknown indicator {code}")
            return m.group(0)
        opts = dict(o.split("=", 1) for o in m.group(2).split())
        for o in opts:
            if o not in OPTIONS:
                err(f"template: unknown option {o} in {m.group(0)}")
        countries = opts["country"].split(",") if "country" in opts else None
        reporters = opts["reporter"].split(",") if "reporter" in opts else None
        for c in countries or []:
            if c not in inds[code]["countries"]:
                err(f"template: {code} does not apply to {c}")
        for r in reporters or []:
            if r not in cat["reporters"]:
                err(f"template: unknown reporter {r}")
        E, est = total(cat, subs, code, date, countries, reporters)
        P = int(opts.get("precision", inds[code]["precision"]))
        return phrase(E, P, inds[code]["unit"] == "USD", est,
                      above=opts.get("above", "more than"),
                      below=opts.get("below", "nearly"),
                      estimate_word=opts.get("estimate", "an estimated"),
                      bare=opts.get("bare") == "true")
    return PLACEHOLDER.sub(sub, text)


# ------------------------------------------------------------------------------ documents

def parse_template(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    title = lines[0][2:] if lines[0].startswith("# ") else err("template: first line is not '# title'")
    blocks, cur = [], []
    for ln in lines[1:]:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            blocks.append(" ".join(cur))
            cur = []
    if cur:
        blocks.append(" ".join(cur))
    try:
        h = blocks.index("Highlights to date include:")
    except ValueError:
        err("template: no 'Highlights to date include:' line")
        h = len(blocks)
    date_line, lead = blocks[0], blocks[1:h]
    bullets = []
    for b in blocks[h + 1:]:
        if not b.startswith("- "):
            err(f"template: not a bullet: {b[:40]}")
        bullets.append(b[2:])
    return title, date_line, lead, bullets


def parse_seed(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    fm, body = text.split("\n---\n", 1)
    m = re.search(r'^title: "(.*?)"\s*$', fm, re.S | re.M)
    title = m.group(1) if m else ""
    title = re.sub(r"\\\n\s*\\ ", " ", title).replace("\\_", "\u00a0")
    blocks, cur = [], []
    for ln in body.split("\n"):
        if ln.strip() and ln.strip() not in ("<!-- -->", "###"):
            cur.append(ln.strip())
        elif cur:
            blocks.append(" ".join(cur))
            cur = []
    if cur:
        blocks.append(" ".join(cur))
    h = blocks.index("Highlights to date include:")
    bullets = [re.sub(r"^-\s+", "", b) for b in blocks[h + 1:] if b.startswith("-")]
    bullets = [re.sub(r"^\*\*([^*]+?:)\s+\*\*", r"**\1** ", b) for b in bullets]   # seed glitch
    return title, blocks[0], blocks[1:h], bullets


def norm(s):
    return " ".join(s.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalogue", default=os.path.join(DEPLOY, "config", "catalogue.json"))
    ap.add_argument("--template", default=os.path.join(DEPLOY, "config", "factsheet.md"))
    ap.add_argument("--submissions", default=os.path.join(HERE, "submissions.ndjson"))
    ap.add_argument("--seed", default=DEFAULT_SEED)
    ap.add_argument("--date", default="2023-02")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    date = (int(a.date[:4]), int(a.date[5:7]))

    cat = load_catalogue(a.catalogue)
    subs = validate_submissions(cat, a.submissions)
    series = check_series(cat, subs)
    nvalues = sum(len(s["values"]) for s in subs)
    print(f"catalogue: {len(cat['indicators'])} indicators; submissions: {len(subs)} "
          f"({nvalues} values, {len(series)} series, {len({s['reporter'] for s in subs})} reporters)")
    used = {v["indicator"] for s in subs for v in s["values"]}
    for i in cat["indicators"]:
        if i["code"] not in used:
            err(f"indicator {i['code']} has no data")
    est = sorted({v["indicator"] for s in subs for v in s["values"] if v.get("estimate")})
    print(f"indicators with estimates: {', '.join(est) or 'none'}")

    title, date_line, lead, bullets = parse_template(a.template)
    r_date = render(date_line, cat, subs, date)
    r_lead = [render(p, cat, subs, date) for p in lead]
    r_bullets = [render(b, cat, subs, date) for b in bullets]
    leftover = [b for b in r_bullets if "{{" in b]
    if leftover:
        err(f"template: {len(leftover)} bullets keep unrendered placeholders")

    seed = parse_seed(a.seed) if os.path.exists(a.seed) else None
    if seed is None:
        print(f"seed {a.seed} not found: rendering only, no comparison")
    else:
        s_title, s_date, s_lead, s_bullets = seed
        for what, got, want in (("title", title, s_title), ("date line", r_date, s_date),
                                ("lead", " ".join(r_lead), " ".join(s_lead))):
            ok = norm(got) == norm(want)
            print(f"[{'OK' if ok else 'DIFF'}] {what}")
            if not ok:
                err(f"{what} differs:\n  got:  {norm(got)}\n  want: {norm(want)}")
        if len(s_bullets) != len(r_bullets):
            err(f"template has {len(r_bullets)} bullets, seed {len(s_bullets)}")
    matched = 0
    for k, b in enumerate(r_bullets):
        ok = seed is not None and k < len(seed[3]) and norm(b) == norm(seed[3][k])
        matched += ok
        head = re.match(r"\*\*(.+?):\*\*", b)
        label = head.group(1) if head else b[:40]
        if a.quiet:
            print(f"[{'OK' if ok else 'DIFF'}] {label}")
        else:
            print(f"\n[{'OK' if ok else 'DIFF'}] - {b}")
        if seed is not None and not ok:
            want = seed[3][k] if k < len(seed[3]) else "(none)"
            gw, ww = norm(b).split(), norm(want).split()
            i = next((j for j in range(min(len(gw), len(ww))) if gw[j] != ww[j]), min(len(gw), len(ww)))
            err(f"bullet {k + 1} ({label}) differs at word {i}: got {' '.join(gw[i:i + 8])!r} "
                f"want {' '.join(ww[i:i + 8])!r}")
    print(f"\nbullets matching the seed: {matched}/{len(r_bullets)}")
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors:
            print(" -", e)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
