# asyncio (or uvloop with --uvloop) TLS echo server, the peer of examples/tls_echo_server in
# bench/tls/handshakes.sh. /usr/bin/python3 python_tls_echo.py CERT KEY PORT [--uvloop]
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
    print('python tls echo listening on port', port, flush=True)
    await server.serve_forever()

if '--uvloop' in sys.argv:
    import uvloop
    uvloop.install()
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
