#!/usr/bin/env python3
"""The protocol steps of Deploy/smoke.sh, through the published ports (intake 7401, reporting
7403), authenticated with the token in ROOTCAUSES_TOKEN. Stdlib only.

  smoke_client.py history SUBMISSIONS HISTORY   resends the submissions (all must answer
      duplicate), waits for them to be aggregated, sends the history; prints the newest seq
  smoke_client.py more N                        submits N new one-value submissions and reads
      firms_supported with min_seq; prints how much the total moved and how long the read waited
"""
import json
import socket
import sys
import time
from decimal import Decimal
import os


def client(port):
    """A function sending one request to 127.0.0.1:port and returning its answer."""
    connection = socket.create_connection(("127.0.0.1", port))
    stream = connection.makefile("rwb")

    def ask(request):
        stream.write((json.dumps(request) + "\n").encode())
        stream.flush()
        return json.loads(stream.readline())

    if not ask({"op": "auth", "token": os.environ["ROOTCAUSES_TOKEN"]})["ok"]:
        sys.exit("the token was refused")
    return ask


def history(submissions, history_file):
    intake, reporting = client(7401), client(7403)
    # Sent again, every submission answers duplicate with its seq: the newest one is waited for
    # (deduplications in the history need the figures they resolve to be aggregated).
    seq = 0
    for line in open(submissions):
        answer = intake({"op": "submit", "submission": json.loads(line)})
        if answer.get("status") != "duplicate":
            sys.exit("a resent submission answered %s" % answer)
        seq = max(seq, answer["seq"])
    answer = reporting({"op": "indicators", "min_seq": seq, "timeout_ms": 60000})
    if not answer.get("ok"):
        sys.exit("waiting for aggregation: %s" % answer)
    for line in open(history_file):
        answer = intake(json.loads(line))
        if not answer.get("ok"):
            sys.exit("history request refused: %s" % answer)
        seq = max(seq, answer.get("seq") or 0)
    print(seq)


def more(count):
    intake, reporting = client(7401), client(7403)

    def total(**extra):
        answer = reporting(dict({"op": "totals", "indicator": "firms_supported", "timeout_ms": 60000}, **extra))
        if not answer.get("ok"):
            sys.exit("totals: %s" % answer)
        return sum(Decimal(row["value"]) for row in answer["rows"])

    before = total()
    seq = 0
    for i in range(count):
        submission = {
            "submission_id": "smoke-after-kill-%03d" % i, "reporter": "USAID", "period": "FY2024Q1",
            "values": [{"indicator": "firms_supported", "country": ["SV", "GT", "HN"][i % 3], "value": 1}],
        }
        answer = intake({"op": "submit", "submission": submission})
        if not answer.get("ok"):
            sys.exit("refused: %s" % answer)
        seq = max(seq, answer["seq"])
    started = time.time()
    moved = total(min_seq=seq) - before
    print("%s %.1f" % (moved, time.time() - started))
    if moved != count:
        sys.exit("the total moved by %s, not %d" % (moved, count))


if __name__ == "__main__":
    if sys.argv[1:2] == ["history"]:
        history(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["more"]:
        more(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
