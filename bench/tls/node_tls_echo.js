// Node's tls echo server, the peer of examples/tls_echo_server in bench/tls/handshakes.sh.
// node node_tls_echo.js CERT KEY PORT
const tls = require('tls');
const fs = require('fs');
const [cert, key, port] = process.argv.slice(2);
const server = tls.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, (socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`node tls echo listening on port ${port}`));
