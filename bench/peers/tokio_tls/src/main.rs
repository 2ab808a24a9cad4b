//! tokio_tls_echo CERT KEY PORT: tokio's TLS echo server for the tls_* scenarios
//! (bench/tls/tls_peer.sh), the counterpart of bench/peers/asio/asio_tls_echo.cpp: tokio 1.24
//! with tokio-rustls 0.23 (rustls 0.20, whose crypto is ring's, not OpenSSL's), all from
//! Debian. A task per connection: the handshake, then what the client sends comes back until
//! it closes. Binds 127.0.0.1; PORT 0 takes a free port; the first line on stdout is
//! "listening on port N". Runs until killed.
//!
//! The runtime is current_thread, one thread like the Asio server's single io_context and
//! ringloop's loop, and the runtime the other tokio comparisons call tokio_ct.

use std::fs::File;
use std::io::{BufReader, Write};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{Certificate, PrivateKey, ServerConfig};
use tokio_rustls::TlsAcceptor;

type Error = Box<dyn std::error::Error>;

fn load_certs(path: &str) -> Result<Vec<Certificate>, Error> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(File::open(path)?))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {path}").into());
    }
    Ok(certs.into_iter().map(Certificate).collect())
}

/// make_cert.sh's key is PKCS#8 ("PRIVATE KEY", as OpenSSL 3 writes it); a SEC1 key
/// ("EC PRIVATE KEY") is taken too, rustls reads both DER forms.
fn load_key(path: &str) -> Result<PrivateKey, Error> {
    let mut reader = BufReader::new(File::open(path)?);
    while let Some(item) = rustls_pemfile::read_one(&mut reader)? {
        match item {
            rustls_pemfile::Item::PKCS8Key(der) | rustls_pemfile::Item::ECKey(der) => {
                return Ok(PrivateKey(der))
            }
            _ => {}
        }
    }
    Err(format!("no PKCS#8 or EC private key in {path}").into())
}

async fn session(acceptor: TlsAcceptor, socket: TcpStream) -> std::io::Result<()> {
    let mut stream = acceptor.accept(socket).await?;
    // 64 KiB, as the Asio server's buffer: a 16 KiB record or more per read.
    let mut data = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut data).await?;
        if n == 0 {
            // The client's close_notify: answer with ours.
            return stream.shutdown().await;
        }
        stream.write_all(&data[..n]).await?;
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // An error (a reset, a failed handshake) ends only this connection.
            let _ = session(acceptor, socket).await;
        });
    }
}

fn run(cert: &str, key: &str, port: u16) -> Result<(), Error> {
    // rustls's safe defaults: TLS 1.3 and 1.2, TLS_AES_128_GCM_SHA256 and X25519 among
    // them, which the client pins.
    let config = ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on port {}", listener.local_addr()?.port())?;
        stdout.flush()?;
        serve(listener, acceptor).await?;
        Ok(())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: tokio_tls_echo CERT KEY PORT");
        std::process::exit(2);
    }
    // A match, not let-else: Debian's rustc is 1.63.
    let port = match args[3].parse::<u16>() {
        Ok(port) => port,
        Err(_) => {
            eprintln!("tokio_tls_echo: bad PORT '{}'", args[3]);
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args[1], &args[2], port) {
        eprintln!("tokio_tls_echo: {error}");
        std::process::exit(1);
    }
}
