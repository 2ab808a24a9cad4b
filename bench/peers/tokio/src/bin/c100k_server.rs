//! tokio's side of c100k (bench/c100k_driver.cpp drives it; bench/c100k.sh starts it): listens
//! on 127.0.0.1 (a free port, printed as `port=N`) on a `current_thread` runtime and serves each
//! connection in its own task: a pending read under a 60 s idle timeout (`tokio::time::timeout`
//! around each wait, as ringloop's server puts `wait_for` around each receive), echoing what it
//! reads, until killed.
//!
//! An idle connection holds no buffer, as none does on ringloop's multishot path: the task waits
//! for readiness (`readable`, which is all a pending `read` is in tokio), then reads into a 1 KiB
//! buffer on the stack and echoes a copy. With the buffer in the task instead (`let mut buf =
//! [0; 1024]` around `read`, tokio's README echo) each idle task is 1 KiB larger.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const IDLE: Duration = Duration::from_secs(60);

async fn serve(mut stream: TcpStream) {
    loop {
        match timeout(IDLE, stream.readable()).await {
            Ok(Ok(())) => {}
            _ => return, // failed, or idle too long
        }
        let data = {
            let mut buf = [0u8; 1024];
            match stream.try_read(&mut buf) {
                Ok(0) => return, // the client closed
                Ok(n) => buf[..n].to_vec(),
                // Readiness can be spurious: wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        };
        if stream.write_all(&data).await.is_err() {
            return;
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The backlog ringloop's and Node's servers ask for (the kernel caps it at somaxconn).
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(65535).unwrap();
        println!("port={}", listener.local_addr().unwrap().port());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                // EMFILE and the like: say so (the driver then counts the connections
                // that were not served) and back off rather than spin.
                Err(e) => {
                    eprintln!("c100k_server: accept: {}", e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}
