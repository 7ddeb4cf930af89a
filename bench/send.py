#!/usr/bin/env python3
"""Independent load sender for bench/run.mjs (--sender python): what an SDK does, not bench/gen.c.

  send.py HOST PORT RATE DURATION_MS TEMPLATE_FILE

Same arguments, template file and output as gen.c (read its header): the real CSM pairs run.mjs
writes, fresh Timestamps and a unique "b<seq>-<send CLOCK_MONOTONIC ns>" request id per call, so
the OTLP counter's loss and latency accounting hold. What differs is how it sends: plain
socket.sendto(datagram, (host, port)) on an unconnected socket, one datagram per system call, as
botocore's monitor does, with nothing but the Python 3 standard library. Pacing: every 1 ms tick
it sends the whole calls the rate owes so far. One process holds 100k datagrams/s with about a
quarter of a core. Prints one JSON line: {"sent":..,"groups":..,"elapsedMs":..,"sendErrors":..}.
"""
import json
import socket
import sys
import time

TS = b'T' * 13
RID = b'R' * 36


def load_groups(path):
    """Each call as a list of (timestamp delta ms, bytes format with ts / seq / mono slots)."""
    groups = []
    with open(path, 'rb') as f:
        for block in f.read().split(b'\n\n'):
            group = []
            for line in block.splitlines():
                if line:
                    delta, text = line.split(b'\t', 1)
                    fmt = text.replace(b'%', b'%%').replace(TS, b'%(ts)013d').replace(RID, b'b%(seq)015d-%(mono)019d')
                    group.append((int(delta), fmt))
            if group:
                groups.append(group)
    if not groups:
        sys.exit('no templates')
    return groups


def main():
    if len(sys.argv) != 6:
        sys.exit('usage: send.py HOST PORT RATE DURATION_MS TEMPLATE_FILE')
    addr = (sys.argv[1], int(sys.argv[2]))
    rate, duration_ns, groups = float(sys.argv[3]), int(sys.argv[4]) * 1_000_000, load_groups(sys.argv[5])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = errors = calls = 0
    start = time.monotonic_ns()
    while True:
        el = time.monotonic_ns() - start
        if el >= duration_ns:
            break
        while sent + errors < int(rate * el / 1e9):  # whole calls: the last may run a datagram ahead
            calls += 1
            slots = {b'ts': 0, b'seq': calls, b'mono': time.monotonic_ns()}
            ms = time.time_ns() // 1_000_000
            for delta, fmt in groups[calls % len(groups)]:
                slots[b'ts'] = ms + delta
                try:
                    sock.sendto(fmt % slots, addr)
                    sent += 1
                except OSError:
                    errors += 1
        time.sleep(max(0, start + (el // 1_000_000 + 1) * 1_000_000 - time.monotonic_ns()) / 1e9)
    elapsed_ms = round((time.monotonic_ns() - start) / 1e6, 3)
    print(json.dumps({'sent': sent, 'groups': calls, 'elapsedMs': elapsed_ms, 'sendErrors': errors}, separators=(',', ':')))


if __name__ == '__main__':
    main()
