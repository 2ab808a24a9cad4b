// libFuzzer over examples/http/request_scanner.hpp: any bytes, scanned whole and cut at every
// length a request could end at. Beyond ASan/UBSan's own checks, it aborts when the scanner
// breaks its contract: a complete head longer than the input or than 8 KiB, views outside the
// input, a verdict that changes when bytes after the head are added or removed, "incomplete"
// for 8 KiB or more.
//
//   CXX=clang++ meson setup build/fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
//   ninja -C build/fuzz tests/fuzz_http_scanner && build/fuzz/tests/fuzz_http_scanner \
//       -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "examples/http/request_scanner.hpp"

namespace {

using http_example::kMaxHeadBytes;
using http_example::ScanResult;
using http_example::ScanStatus;

void require(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "fuzz_http_scanner: %s\n", what);
  std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ScanResult scan = http_example::scan_request(input);
  switch (scan.status) {
    case ScanStatus::complete: {
      const http_example::Request& request = scan.request;
      require(request.head_bytes <= input.size(), "a head longer than the input");
      require(request.head_bytes <= kMaxHeadBytes, "a complete head over the limit");
      require(!request.method.empty() && !request.target.empty(), "an empty method or target");
      require(inside(request.method, input) && inside(request.target, input),
              "a view outside the input");
      require(request.minor_version == 0 || request.minor_version == 1, "a version not 1.0/1.1");
      // The head alone scans the same; so does every prefix of it, as incomplete.
      ScanResult alone = http_example::scan_request(input.substr(0, request.head_bytes));
      require(alone.status == ScanStatus::complete &&
                  alone.request.head_bytes == request.head_bytes &&
                  alone.request.keep_alive == request.keep_alive &&
                  alone.request.content_length == request.content_length,
              "the bytes after a head changed its verdict");
      ScanResult cut = http_example::scan_request(input.substr(0, request.head_bytes - 1));
      require(cut.status != ScanStatus::complete, "a proper prefix of a head is complete");
      break;
    }
    case ScanStatus::incomplete:
      require(input.size() < kMaxHeadBytes, "incomplete at 8 KiB or more");
      break;
    default: {
      // A refusal is final: the end of a head added after it never makes it incomplete (a
      // server that had answered 4xx/5xx would have answered too early).
      std::string more(input);
      more += "\r\n\r\n";
      require(http_example::scan_request(more).status != ScanStatus::incomplete,
              "a refused head became incomplete with more bytes");
      break;
    }
  }
  return 0;
}
