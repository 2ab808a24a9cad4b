# asyncio (or uvloop with --uvloop) TLS echo server for the tls_* scenarios
# (bench/tls/tls_peer.sh) and bench/tls/handshakes.sh: start_server(..., ssl=context) with
# PROTOCOL_TLS_SERVER's defaults. /usr/bin/python3 python_tls_echo.py CERT KEY PORT [--uvloop]
# (PORT 0: a free port); the first line on stdout is "listening on port N".
import asyncio, ssl, sys

async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()

async def main(cert, key, port):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(echo, '127.0.0.1', port, ssl=context)
    print('listening on port', server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

if '--uvloop' in sys.argv:
    import uvloop
    uvloop.install()
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
