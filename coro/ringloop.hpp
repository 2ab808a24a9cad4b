// ringloop: an asyncio-shaped event loop on io_uring. The one header a user includes.
#pragma once

#include "coro/coro.hpp"
#include "coro/errors.hpp"
#include "coro/file.hpp"
#include "coro/gather.hpp"
#include "coro/io.hpp"
#include "coro/outcome.hpp"
#include "coro/run.hpp"
#include "coro/sleep.hpp"
#include "coro/socket.hpp"
#include "coro/stream.hpp"
#include "coro/task.hpp"
#include "coro/thread_pool.hpp"
#include "coro/to_thread.hpp"
#include "coro/wait_for.hpp"
#include "loop/loop.hpp"
