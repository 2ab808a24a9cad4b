// sendfile: a file's bytes out through a TlsStream (asyncio's loop.sendfile). On a kTLS stream
// the kernel encrypts them on their way from the page cache: IORING_OP_SPLICE from the file into
// a pipe and from the pipe into the socket, no copy through user space. Otherwise the bytes are
// read (io::read SQEs) and written through OpenSSL. The stream's one writer for the duration.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstddef>
#include <cstdint>

#include <ringloop/coro/io/file.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/tls/tls_stream.hpp>

namespace ringloop {

// Sends count bytes of file from offset (to the end of the file with the default count);
// returns how many were sent (fewer only when the file ends first). The file's position is not
// used nor moved.
Coro<std::size_t> sendfile(TlsStream& stream, const File& file, std::uint64_t offset = 0,
                           std::size_t count = SIZE_MAX);

}  // namespace ringloop
