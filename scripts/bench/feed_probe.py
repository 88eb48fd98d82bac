"""Probe for scripts/bench-feed.sh: how long after a like is acknowledged by one replica the other
replica stops recommending the liked item.

Each probe takes a fresh user, asks the watching replica for its first popularity recommendation
(the most popular item the user has not seen), likes that item through the writing replica, and
from the moment the like is acknowledged polls the watching replica until its first
recommendation is another item. Directions alternate; probes start at random moments.
"""

import http.client
import json
import random
import sys
import time
import urllib.parse


def client(base):
    u = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def call(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def first(conn, user):
    rec = call(conn, "GET", f"/api/recommend/{user}?engine=popularity&n=1")
    return rec["items"][0]["id"]


def main():
    probes, a, b = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    conns = [client(a), client(b)]
    run = random.randrange(1 << 30)
    delays = []
    for k in range(probes):
        writer, watcher = (conns[0], conns[1]) if k % 2 == 0 else (conns[1], conns[0])
        user = f"probe-{run}-{k}"
        time.sleep(random.uniform(0, 0.3))
        item = first(watcher, user)
        call(writer, "POST", "/api/feedback", [{"user_id": user, "item_id": item, "type": "like"}])
        acked = time.perf_counter()
        while first(watcher, user) == item:
            if time.perf_counter() - acked > 10:
                raise RuntimeError(f"probe {k}: the like never reached the other replica")
        delays.append((time.perf_counter() - acked) * 1000)
    delays.sort()
    q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
    print(
        f"{len(delays)} probes, write ack on one replica -> effect on the other: "
        f"p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms, max {delays[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
