// examples/http/request_scanner.hpp, examples/http_server's HTTP/1.x request-head scanner: what
// it accepts, what it refuses and with which status, its 8 KiB limit, pipelined heads, and that
// no prefix of a head is ever judged complete.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "examples/http/request_scanner.hpp"

using http_example::kMaxHeadBytes;
using http_example::scan_request;
using http_example::ScanResult;
using http_example::ScanStatus;

namespace {

constexpr std::string_view kGet = "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";

ScanStatus status_of(std::string_view head) { return scan_request(head).status; }

// A head of exactly `bytes` bytes: a GET with one padding field.
std::string head_of_size(std::size_t bytes) {
  std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  std::string end = "\r\n\r\n";
  return start + std::string(bytes - start.size() - end.size(), 'a') + end;
}

}  // namespace

// The scanner is constexpr: it runs at compile time too.
static_assert(scan_request(kGet).status == ScanStatus::complete);
static_assert(scan_request(kGet).request.head_bytes == kGet.size());

TEST_CASE("a GET with Host is complete, with its method, target, version and length", "[http]") {
  ScanResult scan = scan_request(kGet);
  REQUIRE(scan.status == ScanStatus::complete);
  CHECK(scan.request.method == "GET");
  CHECK(scan.request.target == "/plaintext");
  CHECK(scan.request.minor_version == 1);
  CHECK(scan.request.keep_alive);
  CHECK(scan.request.content_length == 0);
  CHECK(scan.request.head_bytes == kGet.size());
}

TEST_CASE("every proper prefix of a head is incomplete", "[http]") {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
  for (std::size_t n = 0; n < head.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK(status_of(std::string_view(head).substr(0, n)) == ScanStatus::incomplete);
  }
}

TEST_CASE("pipelined heads are scanned one at a time, each ending where the next begins",
          "[http]") {
  // Appended, not std::string + "...": g++ 12 -O2 warns of a memcpy out of bounds inside
  // libstdc++'s operator+ (a false -Warray-bounds) when catch.hpp comes
  // precompiled.
  std::string buffer(kGet);
  buffer += "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n";
  buffer += "GET /c HT";
  ScanResult first = scan_request(buffer);
  REQUIRE(first.status == ScanStatus::complete);
  std::string_view rest = std::string_view(buffer).substr(first.request.head_bytes);
  ScanResult second = scan_request(rest);
  REQUIRE(second.status == ScanStatus::complete);
  CHECK(second.request.method == "HEAD");
  CHECK(second.request.target == "/b");
  CHECK(scan_request(rest.substr(second.request.head_bytes)).status == ScanStatus::incomplete);
}

TEST_CASE("keep-alive: HTTP/1.1 unless Connection: close, HTTP/1.0 only when asked", "[http]") {
  CHECK(scan_request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").request.keep_alive ==
        false);
  CHECK(scan_request("GET / HTTP/1.1\r\nHost: a\r\nconnection: Upgrade, CLOSE\r\n\r\n")
            .request.keep_alive == false);
  ScanResult old = scan_request("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(old.status == ScanStatus::complete);
  CHECK(old.request.minor_version == 0);
  CHECK_FALSE(old.request.keep_alive);
  CHECK(scan_request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").request.keep_alive);
  CHECK_FALSE(
      scan_request("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").request.keep_alive);
}

TEST_CASE("Content-Length is read, and a repeated different or malformed one refused", "[http]") {
  ScanResult scan = scan_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  42 \r\n\r\n");
  REQUIRE(scan.status == ScanStatus::complete);
  CHECK(scan.request.content_length == 42);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n") ==
        ScanStatus::complete);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n") ==
        ScanStatus::bad_request);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n") ==
        ScanStatus::bad_request);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n") ==
        ScanStatus::bad_request);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n") ==
        ScanStatus::bad_request);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n") ==
        ScanStatus::bad_request);
}

TEST_CASE("a Transfer-Encoding is not implemented (501)", "[http]") {
  CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        ScanStatus::not_implemented);
}

TEST_CASE("HTTP/1.1 needs exactly one Host; HTTP/1.0 at most one", "[http]") {
  CHECK(status_of("GET / HTTP/1.1\r\n\r\n") == ScanStatus::bad_request);
  CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == ScanStatus::bad_request);
  CHECK(status_of("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == ScanStatus::bad_request);
  CHECK(status_of("GET / HTTP/1.0\r\nHost: a\r\n\r\n") == ScanStatus::complete);
}

TEST_CASE("malformed request lines are bad requests", "[http]") {
  for (std::string_view line :
       {"GET\r\n", "GET /\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1 \r\n", " GET / HTTP/1.1\r\n",
        "G(T / HTTP/1.1\r\n", "GET / HTTP/1.\r\n", "GET / http/1.1\r\n", "GET / HTTP/1.1x\r\n",
        "GET /a\x01 HTTP/1.1\r\n", "GET /\x80 HTTP/1.1\r\n", "BAD REQUEST LINE\r\n"}) {
    std::string head = std::string(line) + "Host: a\r\n\r\n";
    INFO(head);
    CHECK(status_of(head) == ScanStatus::bad_request);
  }
}

TEST_CASE("versions other than HTTP/1.0 and 1.1 are not supported (505)", "[http]") {
  CHECK(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == ScanStatus::version_not_supported);
  CHECK(status_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n") == ScanStatus::version_not_supported);
  CHECK(status_of("GET / HTTP/0.9\r\nHost: a\r\n\r\n") == ScanStatus::version_not_supported);
}

TEST_CASE("malformed fields are bad requests: obs-fold, space before the colon, controls",
          "[http]") {
  for (std::string_view field :
       {"Host: a\r\n folded\r\n", "Host : a\r\n", "Host: a\r\n: empty name\r\n",
        "Host: a\r\nNo colon\r\n", "Host: a\x01\r\n", "Host: a\rb\r\n", "Ho\"st: a\r\n",
        "Host: a\x7f\r\n"}) {
    std::string head = "GET / HTTP/1.1\r\n" + std::string(field) + "\r\n";
    INFO(head);
    CHECK(status_of(head) == ScanStatus::bad_request);
  }
  // obs-text (bytes 0x80-0xff) is allowed in a value.
  CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n") == ScanStatus::complete);
}

TEST_CASE("a bare LF or a control byte is refused before the head has ended", "[http]") {
  CHECK(status_of("GET / HTTP/1.1\nHost") == ScanStatus::bad_request);
  CHECK(status_of(std::string_view("GET /\0", 6)) == ScanStatus::bad_request);
  CHECK(status_of("\x16\x03\x01\x02\x00") == ScanStatus::bad_request);  // a TLS ClientHello
}

TEST_CASE("empty lines before the request line are skipped and counted", "[http]") {
  std::string buffer = "\r\n\r\n" + std::string(kGet);
  ScanResult scan = scan_request(buffer);
  REQUIRE(scan.status == ScanStatus::complete);
  CHECK(scan.request.head_bytes == buffer.size());
  CHECK(status_of("\r\n\r\n\r\n") == ScanStatus::incomplete);
}

TEST_CASE("a head of 8 KiB is complete; one byte more is refused with 431", "[http]") {
  std::string at_limit = head_of_size(kMaxHeadBytes);
  REQUIRE(at_limit.size() == kMaxHeadBytes);
  CHECK(status_of(at_limit) == ScanStatus::complete);
  CHECK(status_of(head_of_size(kMaxHeadBytes + 1)) == ScanStatus::too_large);
  // Refused as soon as 8 KiB came without the end, not only once the end comes.
  std::string endless = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHeadBytes, 'b');
  CHECK(status_of(std::string_view(endless).substr(0, kMaxHeadBytes - 1)) ==
        ScanStatus::incomplete);
  CHECK(status_of(std::string_view(endless).substr(0, kMaxHeadBytes)) == ScanStatus::too_large);
  // Blank lines before the request line count too.
  std::string blank_lines;
  while (blank_lines.size() < kMaxHeadBytes) blank_lines += "\r\n";
  CHECK(status_of(blank_lines + std::string(kGet)) == ScanStatus::too_large);
}

TEST_CASE("more than 100 header fields are refused with 431", "[http]") {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 99; ++i) head += "X: y\r\n";
  CHECK(status_of(head + "\r\n") == ScanStatus::complete);
  CHECK(status_of(head + "X: y\r\n\r\n") == ScanStatus::too_large);
}
