//! tokio peer for the ringloop benchmarks (tokio 1.24 from Debian).
//!
//! Usage: tokio_peer [--ct|--mt] <scenario> <n> [conns] [secs]
//!   --ct (default) -> peer=tokio_ct, `current_thread` runtime
//!   --mt           -> peer=tokio_mt, multi-thread runtime (one worker per core)
//!   The env var TOKIO_PEER_RT=ct|mt does the same when no flag is given.
//!   echo, echo_bulk (64 KiB messages), unix_echo (over a Unix socket in /tmp): n is the number
//!         of connections (a 3rd argument overrides it); secs defaults to 2.
//!   udp_echo: n is the payload in bytes, conns the client sockets (1).
//!   cross_loop: n round trips between two threads; --ct: two current_thread runtimes and mpsc
//!         channels, --mt: a spawn onto another multi-thread runtime's worker, joined.
//!   echo_server (not a scenario: bench/echo_loops.sh starts it, --mt only): serves echo on
//!         127.0.0.1 with n worker threads until killed, after printing "listening on port P".
//! Prints one `key=value ...` line on stdout (see bench/peers/README.md).
//!
//! Written the way a tokio user would: `tokio::spawn` + awaiting the
//! JoinHandles for gather, `tokio::time::timeout` for wait_for,
//! `JoinHandle::abort` + await for cancel.
//!
//! Fairness notes:
//! * tokio's timer is a hierarchical wheel with 1 ms slots and a sleep is
//!   rounded *up* to the next slot, so `sleep(1 ms)` takes 1-2 ms: its
//!   lateness figures are dominated by that design choice.
//! * `timeout(d, fut)` polls `fut` first and only registers its `Sleep` in the
//!   wheel when `fut` is pending: for an already-ready future (wait_for_fast)
//!   no timer is ever armed.  wait_for_yield is the scenario where it is.
//! * tokio has no io_uring: wait_for_io here is `timeout(1 s, read of 1 byte)`
//!   on a Unix socket that already holds data (epoll readiness; the read is a
//!   plain read(2) once the socket is known readable).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

fn rusage() -> libc::rusage {
    // SAFETY: getrusage only writes into the struct we hand it.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

fn cpu_s() -> f64 {
    let ru = rusage();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall clock and CPU at the start of a scenario (runtime start-up excluded).
struct Meter {
    t0: Instant,
    c0: f64,
}

impl Meter {
    fn start() -> Meter {
        Meter { t0: Instant::now(), c0: cpu_s() }
    }
    fn base(&self, peer: &str, sc: &str, n: usize) -> String {
        format!(
            "peer={} scenario={} n={} wall_s={:.3} cpu_s={:.3} rss_kb={}",
            peer,
            sc,
            n,
            self.t0.elapsed().as_secs_f64(),
            cpu_s() - self.c0,
            rusage().ru_maxrss
        )
    }
}

/// Nearest-rank percentile (q in percent) of a sorted slice: element
/// ceil(q*n/100)-1.  All peers use this definition.
fn pct<T: Copy>(v: &[T], q: usize) -> T {
    let idx = ((v.len() * q + 99) / 100).max(1);
    v[idx - 1]
}

/// cross_loop's figures from its round-trip times (ns) over `wall` seconds: p50 and p99 in us and
/// messages/s (two per round trip), as ringloop's scenario prints them.
fn round_trip_fields(mut rtt: Vec<u128>, wall: f64) -> String {
    rtt.sort_unstable();
    format!(
        "p50_us={:.1} p99_us={:.1} msgs_per_s={:.0}",
        pct(&rtt, 50) as f64 / 1e3,
        pct(&rtt, 99) as f64 / 1e3,
        2.0 * rtt.len() as f64 / wall
    )
}

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

// ------------------------------------------------------------------ scenarios

async fn sleep_many(peer: &str, n: usize) -> String {
    let m = Meter::start();
    let mut hs = Vec::with_capacity(n);
    for _ in 0..n {
        hs.push(tokio::spawn(async { sleep(Duration::from_millis(100)).await }));
    }
    for h in hs {
        h.await.unwrap();
    }
    m.base(peer, "sleep_many", n)
}

/// Spawns `count` tasks that each sleep for an hour, and returns once every
/// one of them has been polled (so its timer is really registered).
async fn spawn_hour_sleepers(count: usize) -> Vec<JoinHandle<()>> {
    let started = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::with_capacity(count);
    for _ in 0..count {
        let started = started.clone();
        hs.push(tokio::spawn(async move {
            started.fetch_add(1, Ordering::Relaxed);
            sleep(Duration::from_secs(3600)).await
        }));
    }
    // Untimed wait for all of them to start (1 ms steps: on the multi-thread
    // runtime a yield loop here would steal a core from the workers).
    while started.load(Ordering::Relaxed) < count {
        sleep(Duration::from_millis(1)).await;
    }
    hs
}

async fn lateness(peer: &str, sc: &str, n: usize, loaded: bool) -> String {
    let m = Meter::start();
    let pending = if loaded { spawn_hour_sleepers(10_000).await } else { Vec::new() };
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let a = Instant::now();
        sleep(Duration::from_millis(1)).await;
        lat.push((a.elapsed().as_nanos() as f64 - 1e6) / 1e3);
    }
    for h in &pending {
        h.abort();
    }
    for h in pending {
        let _ = h.await;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "{} p50_us={:.1} p99_us={:.1} max_us={:.1}",
        m.base(peer, sc, n),
        pct(&lat, 50),
        pct(&lat, 99),
        lat[n - 1]
    )
}

async fn spawn_gather(peer: &str, n: usize) -> String {
    let m = Meter::start();
    let a = Instant::now();
    let mut hs = Vec::with_capacity(n);
    for i in 0..n {
        hs.push(tokio::spawn(async move { i }));
    }
    let mut sum = 0usize;
    for h in hs {
        sum += h.await.unwrap();
    }
    let d = a.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    format!("{} ns_per_op={:.1}", m.base(peer, "spawn_gather", n), ns_per(d, n))
}

/// N sequential `tokio::process::Command::new("/bin/true").spawn()` + `wait()`,
/// stdio inherited (tokio's default for spawn); tokio reaps on SIGCHLD
/// (a signal-hook handler and its self-pipe).
async fn spawn_process(peer: &str, n: usize) -> String {
    let m = Meter::start();
    let a = Instant::now();
    for _ in 0..n {
        let mut child = tokio::process::Command::new("/bin/true").spawn().expect("spawn /bin/true");
        let status = child.wait().await.expect("wait");
        assert!(status.success(), "/bin/true failed: {}", status);
    }
    let d = a.elapsed().as_secs_f64();
    format!(
        "{} procs_per_s={:.0} us_per_op={:.1}",
        m.base(peer, "spawn_process", n),
        n as f64 / d,
        d * 1e6 / n as f64
    )
}

async fn trivial(i: usize) -> usize {
    i
}

/// Returns Pending once after waking itself: the task goes back on the
/// scheduler's run queue and is polled again on the next turn.  This is the
/// plain "yield once" that the other peers do (asyncio.sleep(0), asio post).
/// `tokio::task::yield_now()` is not used by default because since tokio 1.23
/// it *defers* the wake until the driver has been polled, which adds an
/// epoll_wait(0) per yield (~1.5 us here) - a fairness policy, not timer cost.
/// Set TOKIO_PEER_YIELD=yield_now to measure that variant instead.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

async fn yield_once(i: usize, use_yield_now: bool) -> usize {
    if use_yield_now {
        tokio::task::yield_now().await;
    } else {
        YieldOnce(false).await;
    }
    i
}

async fn wait_for_fast(peer: &str, n: usize) -> String {
    let m = Meter::start();
    let a = Instant::now();
    let mut sum = 0usize;
    for i in 0..n {
        // Fast path: trivial() is ready on first poll, so no timer is armed.
        sum += timeout(Duration::from_secs(1), trivial(i)).await.unwrap();
    }
    let d = a.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    format!("{} ns_per_op={:.1}", m.base(peer, "wait_for_fast", n), ns_per(d, n))
}

async fn wait_for_yield(peer: &str, n: usize) -> String {
    let use_yield_now = std::env::var("TOKIO_PEER_YIELD").map(|v| v == "yield_now").unwrap_or(false);
    let m = Meter::start();
    let a = Instant::now();
    let mut sum = 0usize;
    for i in 0..n {
        // The inner future is pending once, so the Sleep is registered in the
        // wheel, then removed when the inner completes.
        sum += timeout(Duration::from_secs(1), yield_once(i, use_yield_now)).await.unwrap();
    }
    let d = a.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    format!("{} ns_per_op={:.1}", m.base(peer, "wait_for_yield", n), ns_per(d, n))
}

async fn wait_for_io(peer: &str, n: usize) -> String {
    use std::io::Write;
    let m = Meter::start();
    let (mut wr, rd) = std::os::unix::net::UnixStream::pair().unwrap();
    wr.set_nonblocking(true).unwrap();
    rd.set_nonblocking(true).unwrap();
    let mut rd = tokio::net::UnixStream::from_std(rd).unwrap();
    let chunk = [b'x'; 4096];
    // Keep the socket holding data: top it up (untimed-ish, amortised over
    // thousands of reads) whenever what was written has been consumed.
    let refill = |wr: &mut std::os::unix::net::UnixStream| -> usize {
        let mut put = 0;
        while let Ok(k) = wr.write(&chunk) {
            put += k;
        }
        put
    };
    let mut avail = refill(&mut wr);
    let mut buf = [0u8; 1];
    let a = Instant::now();
    for _ in 0..n {
        if avail == 0 {
            avail = refill(&mut wr);
        }
        let k = timeout(Duration::from_secs(1), rd.read(&mut buf)).await.unwrap().unwrap();
        assert_eq!(k, 1);
        avail -= 1;
    }
    let d = a.elapsed();
    format!("{} ns_per_op={:.1}", m.base(peer, "wait_for_io", n), ns_per(d, n))
}

async fn cancel_many(peer: &str, n: usize) -> String {
    let m = Meter::start();
    let hs = spawn_hour_sleepers(n).await;
    let a = Instant::now();
    for h in &hs {
        h.abort();
    }
    for h in hs {
        assert!(h.await.unwrap_err().is_cancelled());
    }
    let d = a.elapsed();
    format!("{} ns_per_op={:.1}", m.base(peer, "cancel_many", n), ns_per(d, n))
}

/// echo (64-byte messages) and echo_bulk (64 KiB: MB/s, each round trip's message counted
/// once, 10^6 bytes a MB): the same clients and server, only the message size differs.
async fn echo(peer: &str, scenario: &str, conns: usize, secs: f64, msg_bytes: usize) -> String {
    let m = Meter::start();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Server: the classic tokio echo - one task per accepted connection.
    let acceptor = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; msg_bytes];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            if s.write_all(&buf[..k]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    // Set-up (untimed): connect every client first.
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        streams.push(s);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let msg: Vec<u8> = (0..msg_bytes).map(|k| b'0' + (k % 64) as u8).collect();
                let mut buf = vec![0u8; msg_bytes];
                let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
                loop {
                    let t = Instant::now();
                    s.write_all(&msg).await.unwrap();
                    s.read_exact(&mut buf).await.unwrap();
                    let now = Instant::now();
                    rtts.push((now - t).as_nanos().min(u32::MAX as u128) as u32);
                    if now >= deadline {
                        break;
                    }
                }
                assert!(buf == msg, "echo: the last echo differs from the message");
                rtts
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    acceptor.abort();
    let _ = acceptor.await;
    all.sort_unstable();
    let p99 = if all.is_empty() { 0.0 } else { pct(&all, 99) as f64 / 1e3 };
    let mut line = format!(
        "{} conns={} secs={} rtt_per_s={:.0} p99_us={:.1}",
        m.base(peer, scenario, conns),
        conns,
        secs,
        all.len() as f64 / elapsed,
        p99
    );
    if msg_bytes != 64 {
        let mb_per_s = all.len() as f64 * msg_bytes as f64 / elapsed / 1e6;
        line += &format!(" bytes={} mb_per_s={:.1}", msg_bytes, mb_per_s);
    }
    line
}

// UDP echo: a server task echoing every datagram to its sender (recv_from,
// send_to), and `conns` connected client sockets, each a task sending one
// datagram and awaiting its echo.
async fn udp_echo(peer: &str, n: usize, conns: usize, secs: f64) -> String {
    let m = Meter::start();
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let echoer = tokio::spawn(async move {
        let mut buf = vec![0u8; n + 1];
        loop {
            let (k, from) = server.recv_from(&mut buf).await.unwrap();
            let _ = server.send_to(&buf[..k], from).await;
        }
    });
    // Set-up (untimed): every client socket bound and connected first.
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(addr).await.unwrap();
        sockets.push(s);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = sockets
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let msg = vec![b'x'; n];
                let mut buf = vec![0u8; n + 1];
                let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
                loop {
                    let t = Instant::now();
                    s.send(&msg).await.unwrap();
                    let k = s.recv(&mut buf).await.unwrap();
                    assert_eq!(k, n, "udp_echo: a short echo");
                    let now = Instant::now();
                    rtts.push((now - t).as_nanos().min(u32::MAX as u128) as u32);
                    if now >= deadline {
                        break;
                    }
                }
                rtts
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    echoer.abort();
    let _ = echoer.await;
    all.sort_unstable();
    let p99 = if all.is_empty() { 0.0 } else { pct(&all, 99) as f64 / 1e3 };
    format!(
        "{} conns={} secs={} datagrams_per_s={:.0} p99_us={:.1}",
        m.base(peer, "udp_echo", n),
        conns,
        secs,
        all.len() as f64 / elapsed,
        p99
    )
}

// unix_echo: echo's work over a Unix socket at a path in /tmp (UnixListener,
// UnixStream), with the same server and client loops.
async fn serve_echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    const MSG: usize = 64;
    let mut buf = [0u8; MSG];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if s.write_all(&buf[..k]).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn unix_echo(peer: &str, conns: usize, secs: f64) -> String {
    const MSG: usize = 64;
    let m = Meter::start();
    let path = format!("/tmp/ringloop-tokio-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let acceptor = tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_echo(s));
        }
    });
    // Set-up (untimed): connect every client first.
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        streams.push(UnixStream::connect(&path).await.unwrap());
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let msg = [b'x'; MSG];
                let mut buf = [0u8; MSG];
                let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
                loop {
                    let t = Instant::now();
                    s.write_all(&msg).await.unwrap();
                    s.read_exact(&mut buf).await.unwrap();
                    let now = Instant::now();
                    rtts.push((now - t).as_nanos().min(u32::MAX as u128) as u32);
                    if now >= deadline {
                        break;
                    }
                }
                rtts
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    acceptor.abort();
    let _ = acceptor.await;
    let _ = std::fs::remove_file(&path);
    all.sort_unstable();
    let p99 = if all.is_empty() { 0.0 } else { pct(&all, 99) as f64 / 1e3 };
    format!(
        "{} conns={} secs={} rtt_per_s={:.0} p99_us={:.1}",
        m.base(peer, "unix_echo", conns),
        conns,
        secs,
        all.len() as f64 / elapsed,
        p99
    )
}

/// cross_loop (issue #19): n round trips between two `current_thread` runtimes on two threads,
/// a request and a reply through two bounded mpsc channels (tokio's cross-runtime wake-up:
/// the receiving runtime's driver is unparked through its eventfd). Runtime start-up excluded.
fn cross_loop(peer: &str, n: usize) -> String {
    use tokio::sync::mpsc;
    let (to_server, mut server_rx) = mpsc::channel::<usize>(1);
    let (to_client, mut client_rx) = mpsc::channel::<usize>(1);
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            tokio::spawn(async move {
                while let Some(v) = server_rx.recv().await {
                    if to_client.send(v).await.is_err() {
                        break;
                    }
                }
            })
            .await
            .unwrap();
        });
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let peer = peer.to_string(); // moved into the spawned task, which must be 'static
    let line = rt.block_on(async move {
        tokio::spawn(async move {
            for k in 0..1000 {
                to_server.send(k).await.unwrap();
                client_rx.recv().await.unwrap();
            }
            let m = Meter::start();
            let mut rtt: Vec<u128> = Vec::with_capacity(n);
            let mut sum = 0usize;
            let start = Instant::now();
            for k in 0..n {
                let sent = Instant::now();
                to_server.send(k).await.unwrap();
                sum += client_rx.recv().await.unwrap();
                rtt.push(sent.elapsed().as_nanos());
            }
            let wall = start.elapsed().as_secs_f64();
            assert_eq!(sum, n * (n - 1) / 2);
            drop(to_server);
            format!("{} {}", m.base(&peer, "cross_loop", n), round_trip_fields(rtt, wall))
        })
        .await
        .unwrap()
    });
    server.join().unwrap();
    line
}

/// cross_loop on the multi-thread runtime (issue #19: "the multi-thread runtime's spawn to
/// another worker"): n round trips, each a `spawn` of a task that returns k onto a worker of
/// another multi-thread runtime (one worker), from a task on this one's worker, then awaiting its
/// JoinHandle. The spawn goes to the other runtime's inject queue and unparks its worker; the
/// completion wakes the caller's task from that worker (its runtime's inject queue and unpark).
/// Within one runtime tokio cannot be told to run a spawned task on another worker: a spawn from
/// a worker goes to that worker's own LIFO slot and runs there, so the same-runtime variant is a
/// same-thread handoff; it is measured after the main figures as same_rt_* with the share of
/// round trips whose task ran on another thread (same_rt_other_thread_pct), for comparison.
fn cross_loop_mt(peer: &str, n: usize) -> String {
    use std::thread;
    let remote_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("remote-worker")
        .enable_all()
        .build()
        .unwrap();
    let remote = remote_rt.handle().clone();
    let caller_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("caller-worker")
        .enable_all()
        .build()
        .unwrap();
    let peer = peer.to_string();
    let line = caller_rt.block_on(async move {
        tokio::spawn(async move {
            let me = thread::current().id();
            for k in 0..1000usize {
                let (v, ran_on) =
                    remote.spawn(async move { (k, thread::current().id()) }).await.unwrap();
                assert_eq!(v, k);
                assert_ne!(ran_on, me, "cross_loop: the spawned task ran on the caller's thread");
            }
            let m = Meter::start();
            let mut rtt: Vec<u128> = Vec::with_capacity(n);
            let mut sum = 0usize;
            let start = Instant::now();
            for k in 0..n {
                let sent = Instant::now();
                sum += remote.spawn(async move { k }).await.unwrap();
                rtt.push(sent.elapsed().as_nanos());
            }
            let wall = start.elapsed().as_secs_f64();
            assert_eq!(sum, n * (n - 1) / 2);
            format!(
                "{} {} spawn=other_runtime_worker",
                m.base(&peer, "cross_loop", n),
                round_trip_fields(rtt, wall)
            )
        })
        .await
        .unwrap()
    });
    drop(caller_rt);
    drop(remote_rt);
    // For comparison only (not the figures above): tokio::spawn inside one runtime of two
    // workers, from a task on one of them; where the spawned task ran is counted.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let same = rt.block_on(async move {
        tokio::spawn(async move {
            for k in 0..1000usize {
                tokio::spawn(async move { k }).await.unwrap();
            }
            let mut rtt: Vec<u128> = Vec::with_capacity(n);
            let mut other = 0usize;
            let start = Instant::now();
            for k in 0..n {
                let me = thread::current().id();
                let sent = Instant::now();
                let (v, ran_on) =
                    tokio::spawn(async move { (k, thread::current().id()) }).await.unwrap();
                rtt.push(sent.elapsed().as_nanos());
                assert_eq!(v, k);
                if ran_on != me {
                    other += 1;
                }
            }
            let wall = start.elapsed().as_secs_f64();
            rtt.sort_unstable();
            format!(
                " same_rt_p50_us={:.1} same_rt_p99_us={:.1} same_rt_msgs_per_s={:.0} same_rt_other_thread_pct={:.1}",
                pct(&rtt, 50) as f64 / 1e3,
                pct(&rtt, 99) as f64 / 1e3,
                2.0 * n as f64 / wall,
                100.0 * other as f64 / n as f64
            )
        })
        .await
        .unwrap()
    });
    line + &same
}

/// The server of echo_loops (issue #19; bench/echo_loops.sh runs one client program against it
/// and against ringloop's): the classic tokio echo (one listener, a task per accepted
/// connection, serve_echo) on a multi-thread runtime of `workers` worker threads, on
/// 127.0.0.1 and a free port, until the process is killed.
fn echo_server(workers: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        tokio::spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("listening on port {}", listener.local_addr().unwrap().port());
            use std::io::Write;
            std::io::stdout().flush().unwrap();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::spawn(serve_echo(s));
            }
        })
        .await
        .unwrap()
    });
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut mt = std::env::var("TOKIO_PEER_RT").map(|v| v == "mt").unwrap_or(false);
    if let Some(f) = args.first() {
        if f == "--mt" || f == "--ct" {
            mt = f == "--mt";
            args.remove(0);
        }
    }
    if args.len() < 2 {
        eprintln!("usage: tokio_peer [--ct|--mt] <scenario> <n> [conns] [secs]");
        std::process::exit(2);
    }
    let peer = if mt { "tokio_mt" } else { "tokio_ct" };
    let sc = args[0].clone();
    let n: usize = args[1].parse().expect("n");
    assert!(n > 0, "n must be > 0");
    let default_conns = if sc == "udp_echo" { 1 } else { n };
    let conns: usize = args.get(2).map(|s| s.parse().expect("conns")).unwrap_or(default_conns);
    let secs: f64 = args.get(3).map(|s| s.parse().expect("secs")).unwrap_or(2.0);

    if sc == "cross_loop" {
        println!("{}", if mt { cross_loop_mt(peer, n) } else { cross_loop(peer, n) });
        return;
    }
    if sc == "echo_server" {
        assert!(mt, "echo_server runs on the multi-thread runtime: --mt");
        echo_server(n);
        return;
    }

    // Runtime start-up is outside every measurement.
    let rt = if mt {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }
    .unwrap();

    // The scenario runs in a spawned task, as application code on a tokio
    // runtime does (the `block_on` future is special: on current_thread every
    // wake of it goes through the driver's unpark, an eventfd write).
    let line = rt.block_on(async move {
        tokio::spawn(async move { match sc.as_str() {
            "sleep_many" => sleep_many(peer, n).await,
            "lateness" => lateness(peer, "lateness", n, false).await,
            "lateness_loaded" => lateness(peer, "lateness_loaded", n, true).await,
            "spawn_gather" => spawn_gather(peer, n).await,
            "wait_for_fast" => wait_for_fast(peer, n).await,
            "wait_for_yield" => wait_for_yield(peer, n).await,
            "wait_for_io" => wait_for_io(peer, n).await,
            "cancel_many" => cancel_many(peer, n).await,
            "echo" => echo(peer, "echo", conns, secs, 64).await,
            "echo_bulk" => echo(peer, "echo_bulk", conns, secs, 64 * 1024).await,
            "spawn_process" => spawn_process(peer, n).await,
            "udp_echo" => udp_echo(peer, n, conns, secs).await,
            "unix_echo" => unix_echo(peer, conns, secs).await,
            _ => {
                eprintln!("tokio_peer: unknown scenario {}", sc);
                std::process::exit(2);
            }
        } })
        .await
        .unwrap()
    });
    println!("{}", line);
}
