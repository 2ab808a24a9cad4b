// Node's TLS echo server for the tls_* scenarios (bench/tls/tls_peer.sh) and
// bench/tls/handshakes.sh: tls.createServer with Node's defaults, each socket piped into itself.
// node node_tls_echo.js CERT KEY PORT (0: a free port); the first line on stdout is
// "listening on port N".
const tls = require('tls');
const fs = require('fs');
const [cert, key, port] = process.argv.slice(2);
const server = tls.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, (socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on port ${server.address().port}`));
