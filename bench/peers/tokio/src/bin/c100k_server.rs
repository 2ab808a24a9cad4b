//! tokio's side of c100k (bench/c100k_driver.cpp drives it; bench/c100k.sh starts it): listens
//! on 127.0.0.1 (a free port, printed as `port=N`) on a `current_thread` runtime and serves each
//! connection in its own task: a pending read under a 60 s idle timeout (`tokio::time::timeout`
//! around each read, as ringloop's server puts `wait_for` around each receive), echoing what it
//! reads, until killed.
//!
//! The task's buffer is 1 KiB, the size of tokio's own echo example (`[0; 1024]`): tokio reads
//! on readiness, so an idle connection's buffer is in its task and mostly untouched.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const IDLE: Duration = Duration::from_secs(60);

async fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return, // closed, failed, or idle too long
            Ok(Ok(n)) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
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
