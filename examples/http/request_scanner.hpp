// A strict scanner of HTTP/1.x request heads (RFC 9112): the request line and the header fields
// examples/http_server needs, nothing more. It reads only the bytes it is given, never allocates,
// and judges a head as soon as it can: complete, incomplete (read more), or refused with the
// status to answer. Example code, not part of ringloop's API: no chunked bodies (501), no obs-fold
// (400), heads over kMaxHeadBytes refused (431).
//
// Why not a library: Debian bookworm packages no llhttp, and its libhttp-parser-dev (http-parser
// 2.9.4) has been unmaintained since its repository was archived in 2022.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace http_example {

// The request line and the header fields, blank line included (nginx's default buffer size).
inline constexpr std::size_t kMaxHeadBytes = 8 * 1024;
inline constexpr std::size_t kMaxHeaderFields = 100;

enum class ScanStatus : std::uint8_t {
  complete,               // a whole head; Request describes it
  incomplete,             // no end of head yet, nothing wrong so far: read more
  bad_request,            // 400: malformed
  too_large,              // 431: the head is over kMaxHeadBytes, or has over kMaxHeaderFields
  not_implemented,        // 501: a Transfer-Encoding (bodies are only read by Content-Length)
  version_not_supported,  // 505: HTTP/x.y other than 1.0 and 1.1
};

struct Request {
  std::string_view method;  // into the scanned buffer
  std::string_view target;
  int minor_version = 1;           // HTTP/1.minor_version: 0 or 1
  bool keep_alive = true;          // the connection stays open after this request's response
  std::size_t content_length = 0;  // body bytes after the head (to be skipped)
  std::size_t head_bytes = 0;      // leading blank lines, request line, fields, final CRLF
};

struct ScanResult {
  ScanStatus status = ScanStatus::incomplete;
  Request request{};
};

namespace detail {

// RFC 9110 5.6.2: tchar.
constexpr bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 9110 5.5: field-vchar, SP and HTAB may appear in a field value; no other control.
constexpr bool is_field_value_char(unsigned char c) noexcept {
  return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool iequals(std::string_view a, std::string_view lowercase) noexcept {
  if (a.size() != lowercase.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lowercase[i]) return false;
  return true;
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Before the end of the head has come: a byte no head may hold (a control other than CR, LF
// and HTAB, or a LF without its CR) is a bad request now, not after 8 KiB of waiting.
constexpr bool partial_head_is_valid(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
    if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

// method SP request-target SP HTTP-version (RFC 9112 3), without its CRLF.
constexpr ScanStatus scan_request_line(std::string_view line, Request& request) noexcept {
  std::size_t method_end = line.find(' ');
  if (method_end == 0 || method_end == std::string_view::npos) return ScanStatus::bad_request;
  for (std::size_t i = 0; i < method_end; ++i)
    if (!is_tchar(static_cast<unsigned char>(line[i]))) return ScanStatus::bad_request;
  std::size_t target_end = line.find(' ', method_end + 1);
  if (target_end == std::string_view::npos || target_end == method_end + 1)
    return ScanStatus::bad_request;
  for (std::size_t i = method_end + 1; i < target_end; ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c <= 0x20 || c >= 0x7f) return ScanStatus::bad_request;
  }
  std::string_view version = line.substr(target_end + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return ScanStatus::bad_request;
  if (version[5] != '1' || version[7] > '1') return ScanStatus::version_not_supported;
  request.method = line.substr(0, method_end);
  request.target = line.substr(method_end + 1, target_end - method_end - 1);
  request.minor_version = version[7] - '0';
  return ScanStatus::complete;
}

// What the fields said that matters here.
struct Fields {
  bool has_content_length = false;
  std::size_t content_length = 0;
  unsigned hosts = 0;
  bool close = false;
  bool keep_alive = false;
};

// Content-Length: 1*DIGIT, and the same value if repeated (RFC 9112 6.3 makes anything else
// unrecoverable); a list ("5, 5") is refused too, as nginx does.
constexpr ScanStatus scan_content_length(std::string_view value, Fields& fields) noexcept {
  if (value.empty() || value.size() > 15) return ScanStatus::bad_request;  // < 10^15: no overflow
  std::size_t length = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return ScanStatus::bad_request;
    length = length * 10 + static_cast<std::size_t>(c - '0');
  }
  if (fields.has_content_length && fields.content_length != length) return ScanStatus::bad_request;
  fields.has_content_length = true;
  fields.content_length = length;
  return ScanStatus::complete;
}

// Connection: a comma-separated list of options, of which "close" and "keep-alive" count.
constexpr void scan_connection(std::string_view value, Fields& fields) noexcept {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view option = trim_ows(value.substr(0, comma));
    if (iequals(option, "close")) fields.close = true;
    if (iequals(option, "keep-alive")) fields.keep_alive = true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// One field line, without its CRLF: field-name ":" OWS field-value OWS (RFC 9112 5).
constexpr ScanStatus scan_field(std::string_view line, Fields& fields) noexcept {
  std::size_t colon = line.find(':');
  // No space before the colon (RFC 9112 5.1: 400), nor a line starting with one (obs-fold).
  if (colon == 0 || colon == std::string_view::npos) return ScanStatus::bad_request;
  std::string_view name = line.substr(0, colon);
  for (char c : name)
    if (!is_tchar(static_cast<unsigned char>(c))) return ScanStatus::bad_request;
  std::string_view value = line.substr(colon + 1);
  for (char c : value)
    if (!is_field_value_char(static_cast<unsigned char>(c))) return ScanStatus::bad_request;
  value = trim_ows(value);
  if (iequals(name, "content-length")) return scan_content_length(value, fields);
  if (iequals(name, "transfer-encoding")) return ScanStatus::not_implemented;
  if (iequals(name, "host")) ++fields.hosts;
  if (iequals(name, "connection")) scan_connection(value, fields);
  return ScanStatus::complete;
}

}  // namespace detail

// Scans the head at the start of buffer. complete: request says what it asked and how long its
// head is (its body, content_length bytes, follows). incomplete: read more and scan again from the
// start. Any other status: answer it and close the connection.
constexpr ScanResult scan_request(std::string_view buffer) noexcept {
  ScanResult result;
  Request& request = result.request;
  // RFC 9112 2.2: a server SHOULD ignore empty lines before the request line.
  std::size_t start = 0;
  while (buffer.size() - start >= 2 && buffer[start] == '\r' && buffer[start + 1] == '\n')
    start += 2;
  std::string_view window = buffer.substr(0, std::min(buffer.size(), kMaxHeadBytes));
  std::size_t end = window.find("\r\n\r\n", start);
  if (end == std::string_view::npos) {
    if (!detail::partial_head_is_valid(window.substr(std::min(start, window.size())))) {
      result.status = ScanStatus::bad_request;
    } else if (buffer.size() >= kMaxHeadBytes) {
      result.status = ScanStatus::too_large;
    } else {
      // The last bytes may be the first of "\r\n\r\n": incomplete, not yet judged.
      result.status = ScanStatus::incomplete;
    }
    return result;
  }
  std::string_view head = buffer.substr(start, end + 2 - start);  // each line ends in CRLF
  if (!detail::partial_head_is_valid(head)) {
    result.status = ScanStatus::bad_request;
    return result;
  }
  std::size_t line_end = head.find("\r\n");
  result.status = detail::scan_request_line(head.substr(0, line_end), request);
  if (result.status != ScanStatus::complete) return result;
  detail::Fields fields;
  std::size_t count = 0;
  for (std::size_t at = line_end + 2; at < head.size();) {
    std::size_t next = head.find("\r\n", at);
    if (++count > kMaxHeaderFields) {
      result.status = ScanStatus::too_large;
      return result;
    }
    result.status = detail::scan_field(head.substr(at, next - at), fields);
    if (result.status != ScanStatus::complete) return result;
    at = next + 2;
  }
  // RFC 9112 3.2: a HTTP/1.1 request without exactly one Host, or any with several, is a 400.
  if (fields.hosts > 1 || (request.minor_version == 1 && fields.hosts != 1)) {
    result.status = ScanStatus::bad_request;
    return result;
  }
  request.keep_alive = !fields.close && (request.minor_version == 1 || fields.keep_alive);
  request.content_length = fields.content_length;
  request.head_bytes = end + 4;
  return result;
}

}  // namespace http_example
