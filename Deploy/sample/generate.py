#!/usr/bin/env python3
"""Generate the sample submissions behind the February 2023 Root Causes fact sheet.

Writes submissions.ndjson next to this file: one intake `submission` object per line
(docs/CONTRACTS.md), from the agencies that would report each indicator, for the quarters
from July 2021 to December 2022 (plus the State GBV project launched in January 2023).

Deterministic: a fixed random seed and no dependence on the clock or on dict/set hashing.
The totals over all submissions are chosen so that Deploy/config/factsheet.md renders the
seed fact sheet's wording exactly; `check.py` verifies that.

Usage: python3 generate.py [OUTPUT]     (stdlib only)
"""
import json
import os
import random
import sys

SEED = 20230206
rng = random.Random(SEED)

# --------------------------------------------------------------------------------------
# Periods.  Month index m: 0 = July 2021 ... 17 = December 2022, 18 = January 2023.

def period_months(p):
    """(first, last) month index of a period, both inclusive."""
    def idx(year, month):
        return (year - 2021) * 12 + (month - 7)
    if p.startswith("FY"):
        fy = int(p[2:6])
        if len(p) == 6:                       # FY2022 = Oct 2021 .. Sep 2022
            return idx(fy - 1, 10), idx(fy, 9)
        q = int(p[7])                         # FY2022Q1 = Oct .. Dec 2021
        start = idx(fy - 1, 10) + 3 * (q - 1)
        return start, start + 2
    if "Q" in p:                              # 2022Q3 = Jul .. Sep 2022
        y, q = int(p[:4]), int(p[5])
        start = idx(y, 1) + 3 * (q - 1)
        return start, start + 2
    if "-" in p:                              # 2022-05
        m = idx(int(p[:4]), int(p[5:7]))
        return m, m
    y = int(p)                                # 2022
    return idx(y, 1), idx(y, 12)

# Each (reporter, country) reports on one schedule: a partition of July 2021 .. December 2022
# (or a later part of it), so no flow series ever covers a month twice.
FISCAL_Q = ["FY2021Q4", "FY2022Q1", "FY2022Q2", "FY2022Q3", "FY2022Q4", "FY2023Q1"]
CALENDAR_Q = ["2021Q3", "2021Q4", "2022Q1", "2022Q2", "2022Q3", "2022Q4"]
ANNUAL = ["FY2021Q4", "FY2022", "FY2023Q1"]
WITH_MONTHS = ["FY2021Q4", "FY2022Q1", "FY2022Q2", "2022-04", "2022-05", "2022-06", "FY2022Q4", "FY2023Q1"]
MIXED_Q = ["FY2021Q4", "FY2022Q1", "FY2022Q2", "FY2022Q3", "2022Q3", "2022Q4"]

SCHEDULE = {
    ("USAID", "SV"): FISCAL_Q, ("USAID", "GT"): WITH_MONTHS, ("USAID", "HN"): MIXED_Q,
    ("USAID", "NI"): ["FY2022", "FY2023Q1"],
    ("STATE", "SV"): FISCAL_Q, ("STATE", "GT"): ANNUAL, ("STATE", "HN"): CALENDAR_Q,
    ("STATE", "NI"): ANNUAL, ("STATE", "MX"): ANNUAL,
    ("DOL", "HN"): ["FY2022Q1", "FY2022Q2", "FY2022Q3", "FY2022Q4", "FY2023Q1"],
    ("DOJ", "SV"): FISCAL_Q, ("DOJ", "GT"): FISCAL_Q, ("DOJ", "HN"): FISCAL_Q, ("DOJ", "MX"): ANNUAL,
    ("DHS", "SV"): CALENDAR_Q, ("DHS", "GT"): CALENDAR_Q, ("DHS", "HN"): CALENDAR_Q, ("DHS", "MX"): CALENDAR_Q,
    ("USDA", "GT"): ANNUAL, ("USDA", "HN"): ANNUAL,
    ("DFC", "SV"): ANNUAL, ("DFC", "GT"): ANNUAL, ("DFC", "HN"): MIXED_Q,
}

# --------------------------------------------------------------------------------------
# Flow ("sum") indicators: exact total, the series that report it (reporter, country,
# relative size), how it is spread over time, and how values are disaggregated.
#   profile: flat | ramp (grows) | front (mostly early) | events:<months> (only then)
#   cells:   age bands used for age cells; female share range for sex cells

YOUTH = ["15-19", "20-24", "25-29"]
WORKING = ["15-19", "20-24", "25-29", "30+"]
SCHOOL = ["0-14", "15-19"]
ALL_AGES = ["0-14", "15-19", "20-24", "25-29", "30+"]

FLOWS = [
    # code, total, series, profile, age bands, female share
    ("firms_supported", 7934, [("USAID", "SV", 0.7), ("USAID", "GT", 1.3), ("USAID", "HN", 1.0)], "ramp", None, None),
    ("jobs_created", 90412, [("USAID", "SV", 0.8), ("USAID", "GT", 1.2), ("USAID", "HN", 1.0)], "ramp", WORKING, (0.35, 0.5)),
    ("msme_financing_usd", 179000000, [("USAID", "SV", 0.5), ("USAID", "GT", 0.9), ("USAID", "HN", 0.7),
                                       ("DFC", "SV", 0.3), ("DFC", "GT", 0.6), ("DFC", "HN", 0.5)], "flat", None, None),
    ("labor_officials_trained", 523, [("DOL", "HN", 1.0)], "ramp", None, (0.45, 0.6)),
    ("school_feeding_usd", 112000000, [("USDA", "GT", 1.2), ("USDA", "HN", 1.0), ("USAID", "HN", 0.3)], "flat", None, None),
    ("school_feeding_individuals", 275318, [("USDA", "GT", 1.2), ("USDA", "HN", 1.0)], "flat", SCHOOL, (0.48, 0.53)),
    ("agriculture_usd_leveraged", 189214000, [("USAID", "GT", 1.2), ("USAID", "HN", 1.0), ("USDA", "GT", 0.4)], "ramp", None, None),
    ("agriculture_producers", 100287, [("USAID", "GT", 1.3), ("USAID", "HN", 1.0)], "flat", WORKING, (0.25, 0.4)),
    ("youth_education_reached", 465219, [("USAID", "SV", 0.8), ("USAID", "GT", 1.3), ("USAID", "HN", 1.0)], "flat", SCHOOL, (0.47, 0.53)),
    ("youth_vocational_employed", 2431, [("USAID", "GT", 1.1), ("USAID", "HN", 1.0)], "ramp", YOUTH, (0.4, 0.55)),
    ("youth_vocational_completed", 11846, [("USAID", "GT", 1.1), ("USAID", "HN", 1.0)], "ramp", YOUTH, (0.45, 0.58)),
    ("vaccine_doses_delivered", 17213480, [("STATE", "SV", 0.8), ("STATE", "GT", 1.3), ("STATE", "HN", 1.1)], "front", None, None),
    ("trafficking_convictions_us", 74, [("DOJ", "SV", 0.8), ("DOJ", "GT", 1.2), ("DOJ", "HN", 1.0), ("DOJ", "MX", 1.4)], "ramp", None, None),
    ("foreign_charges_individuals", 213, [("DOJ", "SV", 0.7), ("DOJ", "GT", 1.2), ("DOJ", "HN", 1.0), ("DOJ", "MX", 1.1)], "ramp", None, None),
    ("smuggling_disruptions", 107236, [("DHS", "SV", 0.5), ("DHS", "GT", 1.0), ("DHS", "HN", 0.8), ("DHS", "MX", 1.6)], "ramp", None, None),
    ("smuggling_arrests", 7823, [("DHS", "SV", 0.5), ("DHS", "GT", 1.0), ("DHS", "HN", 0.8), ("DHS", "MX", 1.5)], "ramp", None, None),
    ("trafficking_victims_served", 740, [("STATE", "SV", 0.8), ("STATE", "GT", 1.2), ("STATE", "HN", 1.0),
                                         ("STATE", "NI", 0.3), ("STATE", "MX", 1.1)], "flat", ALL_AGES, (0.6, 0.8)),
    # Section 353 lists were published in July 2021 and July 2022.
    ("corrupt_actors_identified", 152, [("STATE", "SV", 0.7), ("STATE", "GT", 1.3), ("STATE", "HN", 1.0),
                                        ("STATE", "NI", 0.9)], "events:0,12", None, None),
    ("officials_trained_transparency", 5217, [("STATE", "SV", 0.7), ("USAID", "GT", 1.2), ("USAID", "HN", 1.0)], "flat", None, (0.4, 0.55)),
    ("police_trained", 9184, [("STATE", "SV", 0.9), ("STATE", "GT", 1.1), ("STATE", "HN", 1.0)], "flat", None, (0.15, 0.3)),
    ("youth_violence_prevention", 50362, [("USAID", "SV", 1.0), ("USAID", "GT", 0.9), ("USAID", "HN", 1.2)], "flat", ["0-14", "15-19", "20-24"], (0.45, 0.55)),
    ("youth_gang_resistance", 180271, [("STATE", "SV", 1.1), ("STATE", "GT", 1.0), ("STATE", "HN", 1.1)], "flat", SCHOOL, (0.48, 0.52)),
    ("gbv_survivors_served", 30214, [("USAID", "GT", 1.1), ("USAID", "HN", 1.0)], "ramp", ALL_AGES, (0.85, 0.95)),
    ("trafficking_education_reached", 2519, [("USAID", "GT", 1.0)], "ramp", ALL_AGES, (0.6, 0.75)),
    ("child_protection_staff_trained", 383, [("USAID", "SV", 1.0)], "ramp", None, (0.6, 0.8)),
    ("humanitarian_usd", 419742000, [("USAID", "SV", 0.6), ("USAID", "GT", 1.2), ("USAID", "HN", 1.1), ("USAID", "NI", 0.2),
                                     ("STATE", "SV", 0.3), ("STATE", "GT", 0.5), ("STATE", "HN", 0.5)], "front", None, None),
]

ESTIMATED = {"agriculture_usd_leveraged"}     # partner-estimated leverage figures

# Cumulative ("latest") indicators: per series, the periods reported and the final value.
LATEST = [
    # Call to Action: commitments grew from May 2021 to the Summit of the Americas and on.
    ("cta_companies_committed", [
        ("PCA", "SV", ["FY2021Q4", "FY2022Q3", "FY2023Q1"], 12),
        ("PCA", "GT", ["FY2021Q4", "FY2022Q1", "FY2022Q3", "FY2022Q4", "FY2023Q1"], 19),
        ("PCA", "HN", ["2021Q3", "FY2022Q2", "FY2022Q3", "2022Q4"], 16)]),
    ("cta_usd_committed", [
        ("PCA", "SV", ["FY2021Q4", "FY2022Q3", "FY2023Q1"], 1040000000),
        ("PCA", "GT", ["FY2021Q4", "FY2022Q1", "FY2022Q3", "FY2022Q4", "FY2023Q1"], 1912000000),
        ("PCA", "HN", ["2021Q3", "FY2022Q2", "FY2022Q3", "2022Q4"], 1284000000)]),
    ("child_protection_organizations", [
        ("USAID", "SV", ["FY2022Q2", "FY2022Q3", "FY2022Q4", "FY2023Q1"], 67)]),
    ("centroamerica_local_usd", [
        ("USAID", "SV", ["FY2022Q4", "FY2023Q1"], 75000000),
        ("USAID", "GT", ["2022-06", "FY2022Q4", "FY2023Q1"], 120000000),
        ("USAID", "HN", ["2022Q3", "2022Q4"], 105000000)]),
    ("local_partners_supported", [
        ("USAID", "SV", ["FY2022Q4", "FY2023Q1"], 6),
        ("USAID", "GT", ["2022-06", "FY2022Q4", "FY2023Q1"], 9),
        ("USAID", "HN", ["2022Q3", "2022Q4"], 8)]),
]
ESTIMATED_LATEST = {"cta_companies_committed"}   # PCA: "approximately"

# One-off events, exact as recorded.
EVENTS = [
    # reporter, country, period, code, value
    ("TREASURY", "SV", "2021-12", "treasury_sanctions", 2),
    ("TREASURY", "GT", "2022-07", "treasury_sanctions", 3),
    ("TREASURY", "GT", "2022-09", "treasury_sanctions", 5),
    ("TREASURY", "SV", "2022-11", "treasury_sanctions", 8),
    ("COMMERCE", "GT", "FY2023Q1", "commerce_delegation_participants", 153),
    ("COMMERCE", "GT", "FY2023Q1", "commerce_delegation_companies", 64),
    ("COMMERCE", "GT", "FY2023Q1", "commerce_delegation_states", 22),
    ("STATE", "HN", "2023-01", "gbv_project_usd", 3000000),   # launched January 2023
]

# Activity groups: a reporter sends one submission per (period, country, group).
GROUPS = {
    "USAID": [
        ("Economic growth, MSME finance and Feed the Future",
         {"firms_supported", "jobs_created", "msme_financing_usd", "agriculture_usd_leveraged", "agriculture_producers"}),
        ("Education, workforce development and school feeding",
         {"youth_education_reached", "youth_vocational_employed", "youth_vocational_completed", "school_feeding_usd"}),
        ("Democracy, governance and violence prevention",
         {"officials_trained_transparency", "youth_violence_prevention"}),
        ("GBV response, counter-trafficking and child protection",
         {"gbv_survivors_served", "trafficking_education_reached", "child_protection_staff_trained",
          "child_protection_organizations"}),
        ("Centroamérica Local", {"centroamerica_local_usd", "local_partners_supported"}),
        ("Humanitarian assistance (BHA)", {"humanitarian_usd"}),
    ],
    "STATE": [
        ("INL police professionalization, GREAT and anti-corruption",
         {"police_trained", "youth_gang_resistance", "officials_trained_transparency"}),
        ("COVID-19 vaccine donations", {"vaccine_doses_delivered"}),
        ("J/TIP victim services", {"trafficking_victims_served"}),
        ("Section 353 Corrupt and Undemocratic Actors report", {"corrupt_actors_identified"}),
        ("PRM humanitarian assistance", {"humanitarian_usd"}),
        ("GBV prevention in northern Honduras", {"gbv_project_usd"}),
    ],
    "DOL": [("Labor inspection capacity building", {"labor_officials_trained"})],
    "DOJ": [("Joint Task Force Alpha", {"trafficking_convictions_us", "foreign_charges_individuals"})],
    "DHS": [("Counter-smuggling campaign", {"smuggling_disruptions", "smuggling_arrests"})],
    "TREASURY": [("OFAC designations", {"treasury_sanctions"})],
    "COMMERCE": [("High-level business delegation", {"commerce_delegation_participants",
                                                     "commerce_delegation_companies", "commerce_delegation_states"})],
    "USDA": [("McGovern-Dole and Food for Progress",
              {"school_feeding_usd", "school_feeding_individuals", "agriculture_usd_leveraged"})],
    "DFC": [("MSME lending facilities", {"msme_financing_usd"})],
    "PCA": [("Call to Action commitments", {"cta_companies_committed", "cta_usd_committed"})],
}

# --------------------------------------------------------------------------------------

def split_exact(total, weights):
    """Split integer `total` into len(weights) integers proportional to weights (largest remainder)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    parts = [int(r) for r in raw]
    rest = total - sum(parts)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - parts[i]), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


def split_positive(total, weights):
    """Like split_exact, but every part >= 1 (needs total >= len(weights))."""
    n = len(weights)
    return [1 + p for p in split_exact(total - n, weights)]


def profile_weight(profile, first, last):
    w = 0.0
    for m in range(first, last + 1):
        if profile == "flat":
            w += 1.0
        elif profile == "ramp":
            w += 0.45 + m / 17.0
        elif profile == "front":
            w += max(0.12, 1.6 - m / 9.0)
        elif profile.startswith("events:"):
            w += 1.0 if m in {int(x) for x in profile[7:].split(",")} else 0.0
        else:
            raise ValueError(profile)
    return w


def cells_for(code, value, ages, female):
    """Disaggregate one value: the whole, by sex, by age, or by sex and age; cells sum to value."""
    choices = ["whole"]
    if female and value >= 20:
        choices += ["sex", "sex"]
    if ages and value >= 10 * len(ages):
        choices += ["age"]
    if female and ages and value >= 40 * len(ages):
        choices += ["sex_age"]
    kind = rng.choice(choices)
    if kind == "whole":
        return [(None, value)]
    out = []
    if kind in ("sex", "sex_age"):
        f = rng.uniform(*female)
        by_sex = split_positive(value, [f, 1 - f])
    if kind == "sex":
        return [({"sex": "female"}, by_sex[0]), ({"sex": "male"}, by_sex[1])]
    age_w = [rng.uniform(0.5, 1.5) for _ in ages]
    if kind == "age":
        return [({"age": a}, v) for a, v in zip(ages, split_positive(value, age_w))]
    for sex, sv in zip(("female", "male"), by_sex):
        for a, v in zip(ages, split_positive(sv, age_w)):
            out.append(({"sex": sex, "age": a}, v))
    return out


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                  "submissions.ndjson")
    # values[(reporter, period, country)][code] = list of value objects
    values = {}

    def add(reporter, period, country, code, items):
        values.setdefault((reporter, period, country), {}).setdefault(code, []).extend(items)

    for code, total, series, profile, ages, female in FLOWS:
        # size of each series: relative size with noise
        sw = [w * rng.uniform(0.75, 1.25) for (_, _, w) in series]
        per_series = split_exact(total, sw)
        for (reporter, country, _), st in zip(series, per_series):
            periods = SCHEDULE[(reporter, country)]
            pw = [profile_weight(profile, *period_months(p)) * rng.uniform(0.55, 1.45) for p in periods]
            for period, v in zip(periods, split_exact(st, pw)):
                if v <= 0:
                    continue
                items = []
                for disagg, cv in cells_for(code, v, ages, female):
                    obj = {"indicator": code, "country": country, "value": cv}
                    if disagg:
                        obj["disaggregation"] = disagg
                    items.append(obj)
                if code in ESTIMATED:
                    est = rng.random() < 0.6
                    for obj in items:
                        if est:
                            obj["estimate"] = True
                add(reporter, period, country, code, items)

    for code, series in LATEST:
        for reporter, country, periods, final in series:
            n = len(periods)
            fracs = sorted(rng.uniform(0.25, 0.95) for _ in range(n - 1)) + [1.0]
            unit = 1000000 if final >= 10000000 else 1
            seq, prev = [], 0
            for fr in fracs:
                v = max(prev, int(round(final * fr / unit)) * unit)
                seq.append(v)
                prev = v
            seq[-1] = final
            for period, v in zip(periods, seq):
                obj = {"indicator": code, "country": country, "value": v}
                if code in ESTIMATED_LATEST:
                    obj["estimate"] = True
                add(reporter, period, country, code, [obj])

    for reporter, country, period, code, v in EVENTS:
        add(reporter, period, country, code, [{"indicator": code, "country": country, "value": v}])

    # Assemble submissions in a fixed order.
    reporter_order = list(GROUPS)
    country_order = ["SV", "GT", "HN", "NI", "MX"]
    keys = sorted(values, key=lambda k: (reporter_order.index(k[0]), period_months(k[1]), k[1],
                                          country_order.index(k[2])))
    lines = []
    for reporter, period, country in keys:
        by_code = values[(reporter, period, country)]
        seq = 0
        for activity, codes in GROUPS[reporter]:
            group_values = []
            for code in sorted(c for c in by_code if c in codes):
                group_values.extend(by_code[code])
            if not group_values:
                continue
            seq += 1
            sub = {"submission_id": f"{reporter}-{period}-{country}-{seq:03d}", "reporter": reporter,
                   "period": period, "activity": activity, "values": group_values}
            lines.append(json.dumps(sub, ensure_ascii=False, separators=(", ", ": ")))
        unplaced = [c for c in by_code if not any(c in codes for _, codes in GROUPS[reporter])]
        if unplaced:
            raise SystemExit(f"no activity group for {reporter} {unplaced}")

    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} submissions to {out_path}")


if __name__ == "__main__":
    main()
