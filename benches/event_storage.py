#!/usr/bin/env python3
"""How events are stored: one row per event (the `Events` table of schema 4) against blocks of
512 events per row (`EventBlocks`, schema 5), for the same events, in the same run.

The events are those of the migration fixture (a real daemon's trading, about 116 bytes of
payload each), renumbered and repeated to N. Each layout is written in transactions of 8,192
commands' worth (about 32,000 events, as the projection does), into a fresh file with the
daemon's pragmas (WAL, synchronous=NORMAL, 16 KiB pages); only the SQLite writes are timed. Rounds alternate the two layouts;
the figures are the median and spread of events written per second, and the file sizes.

    python3 benches/event_storage.py [N] [ROUNDS]     (default 500000 events, 5 rounds)
"""

import json
import os
import sqlite3
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "schema4-orderpipe.db")
PER_BLOCK = 512
PER_TX = 32_000


def events(n):
    # Read-only and immutable: the fixture's files are left exactly as they are.
    src = sqlite3.connect(f"file:{FIXTURE}?immutable=1", uri=True)
    rows = src.execute("SELECT topic, payload, recv_ns FROM Events ORDER BY seq").fetchall()
    src.close()
    return [(i + 1, *rows[i % len(rows)]) for i in range(n)]


def open_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size = 16384")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def as_rows(path, evs):
    db = open_db(path)
    db.execute(
        "CREATE TABLE Events (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
        "payload TEXT NOT NULL, recv_ns INTEGER NOT NULL)"
    )
    start = time.perf_counter()
    for i in range(0, len(evs), PER_TX):
        db.execute("BEGIN")
        db.executemany("INSERT INTO Events VALUES (?1, ?2, ?3, ?4)", evs[i : i + PER_TX])
        db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    return took


def block(chunk):
    parts, offsets, at = [], bytearray(), 1
    for seq, topic, payload, recv_ns in chunk:
        item = '[%d,%s,%d,%s]' % (seq, json.dumps(topic), recv_ns, payload)
        offsets += struct.pack("<I", at)
        parts.append(item)
        at += len(item.encode()) + 1
    return (chunk[0][0], chunk[-1][0], "[" + ",".join(parts) + "]", bytes(offsets))


def as_blocks(path, evs):
    db = open_db(path)
    db.execute(
        "CREATE TABLE EventBlocks (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, "
        "events TEXT NOT NULL, offsets BLOB NOT NULL)"
    )
    # The blocks' text is made before the clock starts, as the rows' payloads are: the daemon
    # writes each payload once, into whichever buffer the layout has.
    txs = []
    for i in range(0, len(evs), PER_TX):
        tx = evs[i : i + PER_TX]
        txs.append([block(tx[j : j + PER_BLOCK]) for j in range(0, len(tx), PER_BLOCK)])
    start = time.perf_counter()
    for rows in txs:
        db.execute("BEGIN")
        db.executemany("INSERT INTO EventBlocks VALUES (?1, ?2, ?3, ?4)", rows)
        db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    return took


def size(path):
    return sum(os.path.getsize(path + ext) for ext in ("", "-wal") if os.path.exists(path + ext))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    evs = events(n)
    rates = {"rows": [], "blocks": []}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name, write in (("rows", as_rows), ("blocks", as_blocks)):
                path = os.path.join(tmp, f"{name}{r}.db")
                rates[name].append(n / write(path, evs))
                sizes[name] = size(path)
    print(f"{n} events, {rounds} rounds, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for name in ("rows", "blocks"):
        v = rates[name]
        print(
            f"{name:>6}: {statistics.median(v):>10.0f} events/s (min {min(v):.0f}, max {max(v):.0f}); "
            f"{sizes[name] / n:.0f} bytes per event on disk"
        )
    ratios = [b / r for b, r in zip(rates["blocks"], rates["rows"])]
    print(
        f"blocks / rows: {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
