#!/usr/bin/python3
"""asyncio / uvloop peer for the ringloop benchmarks.

Usage: /usr/bin/python3 peer.py [--uvloop] <scenario> <n> [conns] [secs]
  without --uvloop -> peer=asyncio (the stdlib selector loop, epoll)
  with --uvloop    -> peer=uvloop  (Debian's python3-uvloop, libuv)
  echo, unix_echo (over a Unix socket in /tmp): n is the number of connections (a 3rd argument overrides it);
        secs defaults to 2.
  udp_echo: n is the payload in bytes, conns the client sockets (1).
Prints one `key=value ...` line on stdout (see bench/peers/README.md).

Idioms: asyncio.create_task + asyncio.gather, asyncio.wait_for for wait_for,
Task.cancel() + gather(return_exceptions=True) for cancel, asyncio streams
for echo.  Run it with Debian's /usr/bin/python3 (uvloop is packaged for it).

Fairness notes: wait_for in Python 3.11 always arms a timer (call_later),
even when the awaited coroutine finishes at once, and wraps the coroutine in
a Task; sleep(0) is asyncio's "yield once".  wait_for_io is
wait_for(loop.sock_recv(sock, 1), 1) on a socketpair that already holds data
(readiness-based: the recv is tried at once and succeeds).
"""

import asyncio
import os
import resource
import socket
import sys
import time

now = time.perf_counter_ns  # monotonic, ns


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Meter:
    """Wall clock and CPU from the start of a scenario (start-up excluded)."""

    def __init__(self):
        self.t0 = now()
        self.c0 = cpu_s()

    def base(self, peer, sc, n):
        wall = (now() - self.t0) / 1e9
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
        return (f"peer={peer} scenario={sc} n={n} wall_s={wall:.3f} "
                f"cpu_s={cpu_s() - self.c0:.3f} rss_kb={rss}")


def pct(sorted_v, q):
    """Nearest-rank percentile (q in percent): element ceil(q*n/100)-1.
    All peers use this definition."""
    idx = max(1, (len(sorted_v) * q + 99) // 100)
    return sorted_v[idx - 1]


async def trivial(i):
    return i


async def yield_once(i):
    await asyncio.sleep(0)  # asyncio's "yield to the loop once"
    return i


async def hour_sleepers(count):
    """Starts `count` tasks sleeping 1 h; returns once each has really
    started (its timer is registered: a created task only runs on the next
    loop turn)."""
    started = 0

    async def sleeper():
        nonlocal started
        started += 1
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(sleeper()) for _ in range(count)]
    while started < count:
        await asyncio.sleep(0)
    return tasks


async def sleep_many(peer, n):
    m = Meter()

    async def task():
        await asyncio.sleep(0.1)

    await asyncio.gather(*[asyncio.create_task(task()) for _ in range(n)])
    return m.base(peer, "sleep_many", n)


async def lateness(peer, n, sc="lateness", loaded=False):
    m = Meter()
    pending = await hour_sleepers(10000) if loaded else []
    lat = []
    for _ in range(n):
        a = now()
        await asyncio.sleep(0.001)
        lat.append((now() - a - 1e6) / 1e3)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    lat.sort()
    return (f"{m.base(peer, sc, n)} p50_us={pct(lat, 50):.1f} "
            f"p99_us={pct(lat, 99):.1f} max_us={lat[-1]:.1f}")


async def lateness_loaded(peer, n):
    return await lateness(peer, n, "lateness_loaded", True)


async def spawn_gather(peer, n):
    m = Meter()
    a = now()
    r = await asyncio.gather(*[asyncio.create_task(trivial(i)) for i in range(n)])
    d = now() - a
    assert r[-1] == n - 1
    return f"{m.base(peer, 'spawn_gather', n)} ns_per_op={d / n:.1f}"


async def spawn_process(peer, n):
    """N sequential create_subprocess_exec('/bin/true') + wait(), stdio
    inherited (asyncio's default).  Python 3.11's child watcher on Linux is
    ThreadedChildWatcher (a thread per child); uvloop reaps with libuv."""
    m = Meter()
    a = now()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        rc = await p.wait()
        assert rc == 0, rc
    d = now() - a
    return (f"{m.base(peer, 'spawn_process', n)} procs_per_s={n / (d / 1e9):.0f} "
            f"us_per_op={d / n / 1e3:.1f}")


async def wait_for_loop(peer, sc, n, make):
    m = Meter()
    a = now()
    s = 0
    for i in range(n):
        s += await asyncio.wait_for(make(i), 1)
    d = now() - a
    assert s == n * (n - 1) // 2
    return f"{m.base(peer, sc, n)} ns_per_op={d / n:.1f}"


async def wait_for_fast(peer, n):
    return await wait_for_loop(peer, "wait_for_fast", n, trivial)


async def wait_for_yield(peer, n):
    return await wait_for_loop(peer, "wait_for_yield", n, yield_once)


async def wait_for_io(peer, n):
    loop = asyncio.get_running_loop()
    m = Meter()
    rd, wr = socket.socketpair()
    rd.setblocking(False)
    wr.setblocking(False)
    chunk = b"x" * 4096

    def refill():
        # Top the socket up until it is full; amortised over thousands of
        # 1-byte reads.
        put = 0
        try:
            while True:
                put += wr.send(chunk)
        except BlockingIOError:
            pass
        return put

    avail = refill()
    a = now()
    for _ in range(n):
        if avail == 0:
            avail = refill()
        data = await asyncio.wait_for(loop.sock_recv(rd, 1), 1)
        assert len(data) == 1
        avail -= 1
    d = now() - a
    rd.close()
    wr.close()
    return f"{m.base(peer, 'wait_for_io', n)} ns_per_op={d / n:.1f}"


async def cancel_many(peer, n):
    m = Meter()
    tasks = await hour_sleepers(n)
    a = now()
    for t in tasks:
        t.cancel()
    r = await asyncio.gather(*tasks, return_exceptions=True)
    d = now() - a
    assert all(isinstance(x, asyncio.CancelledError) for x in r)
    return f"{m.base(peer, 'cancel_many', n)} ns_per_op={d / n:.1f}"


async def echo(peer, n, conns, secs):
    return await echo_over(peer, "echo", conns, secs, None)


async def unix_echo(peer, n, conns, secs):
    """echo over a Unix socket at a path in /tmp (asyncio removes it on close, 3.13; 3.11 not)."""
    path = f"/tmp/ringloop-python-{os.getpid()}.sock"
    try:
        return await echo_over(peer, "unix_echo", conns, secs, path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


async def echo_over(peer, name, conns, secs, path):
    MSG = 64
    m = Meter()

    async def serve(reader, writer):
        # The classic streams echo.  (asyncio sets TCP_NODELAY by default.)
        try:
            while True:
                data = await reader.read(MSG)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    if path:
        server = await asyncio.start_unix_server(serve, path)
        streams = [await asyncio.open_unix_connection(path) for _ in range(conns)]
    else:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # Set-up (untimed): connect every client first.
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)]
    msg = b"x" * MSG
    rtts = []
    start = now()
    deadline = start + int(secs * 1e9)

    async def client(reader, writer):
        while True:
            t = now()
            writer.write(msg)
            await writer.drain()
            await reader.readexactly(MSG)
            e = now()
            rtts.append(e - t)
            if e >= deadline:
                break

    await asyncio.gather(*[client(r, w) for r, w in streams])
    elapsed = (now() - start) / 1e9
    for _, w in streams:
        w.close()
    server.close()
    await server.wait_closed()
    rtts.sort()
    p99 = pct(rtts, 99) / 1e3 if rtts else 0.0
    return (f"{m.base(peer, name, conns)} conns={conns} secs={secs:g} "
            f"rtt_per_s={len(rtts) / elapsed:.0f} p99_us={p99:.1f}")


async def udp_echo(peer, n, conns, secs):
    """UDP echo over 127.0.0.1 with create_datagram_endpoint: a server protocol that sends every
    datagram back to its sender, and `conns` connected client endpoints, each sending one datagram
    and waiting for its echo (a future the protocol resolves)."""
    m = Meter()
    loop = asyncio.get_running_loop()

    class Server(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.waiter = None

        def datagram_received(self, data, addr):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(data)

    server, _ = await loop.create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
    address = server.get_extra_info("sockname")
    clients = [await loop.create_datagram_endpoint(Client, remote_addr=address)
               for _ in range(conns)]
    msg = b"x" * n
    rtts = []
    start = now()
    deadline = start + int(secs * 1e9)

    async def client(transport, protocol):
        while True:
            t = now()
            protocol.waiter = loop.create_future()
            transport.sendto(msg)
            data = await protocol.waiter
            if len(data) != n:
                raise RuntimeError("udp_echo: a short echo")
            e = now()
            rtts.append(e - t)
            if e >= deadline:
                break

    await asyncio.gather(*[client(t, p) for t, p in clients])
    elapsed = (now() - start) / 1e9
    for t, _ in clients:
        t.close()
    server.close()
    rtts.sort()
    p99 = pct(rtts, 99) / 1e3 if rtts else 0.0
    return (f"{m.base(peer, 'udp_echo', n)} conns={conns} secs={secs:g} "
            f"datagrams_per_s={len(rtts) / elapsed:.0f} p99_us={p99:.1f}")


SCENARIOS = {
    "sleep_many": sleep_many,
    "lateness": lateness,
    "lateness_loaded": lateness_loaded,
    "spawn_gather": spawn_gather,
    "wait_for_fast": wait_for_fast,
    "wait_for_yield": wait_for_yield,
    "wait_for_io": wait_for_io,
    "cancel_many": cancel_many,
    "echo": echo,
    "spawn_process": spawn_process,
    "udp_echo": udp_echo,
    "unix_echo": unix_echo,
}


def main():
    args = sys.argv[1:]
    use_uvloop = False
    if args and args[0] in ("--uvloop", "--asyncio"):
        use_uvloop = args.pop(0) == "--uvloop"
    if len(args) < 2 or args[0] not in SCENARIOS or int(args[1]) <= 0:
        sys.stderr.write("usage: peer.py [--uvloop] <scenario> <n> [conns] [secs]\n")
        sys.exit(2)
    sc, n = args[0], int(args[1])
    conns = int(args[2]) if len(args) > 2 else (1 if sc == "udp_echo" else n)
    secs = float(args[3]) if len(args) > 3 else 2.0
    peer = "uvloop" if use_uvloop else "asyncio"
    if use_uvloop:
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    fn = SCENARIOS[sc]
    coro = fn(peer, n, conns, secs) if sc in ("echo", "udp_echo", "unix_echo") else fn(peer, n)
    line = loop.run_until_complete(coro)
    loop.close()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    # Skip interpreter tear-down of large heaps (not part of any scenario).
    os._exit(0)


if __name__ == "__main__":
    main()
