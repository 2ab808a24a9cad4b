// Node's side of c100k (bench/c100k_driver.cpp drives it): listens on 127.0.0.1 (a free port,
// printed as `port=N`), echoes what each connection sends, with a 60 s idle timeout.
const net = require('net');
const server = net.createServer({ noDelay: true }, (socket) => {
  socket.setTimeout(60000, () => socket.destroy());
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => {});
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 65535 }, () => {
  console.log(`port=${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
