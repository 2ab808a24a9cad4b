// What this kernel's io_uring offers: the opcodes (IORING_REGISTER_PROBE, asked once when a ring
// is set up) and the ring's IORING_FEAT_* word. Operations that need an opcode newer than the
// floor (Linux 5.6) ask here and fall back, or throw an error naming the kernel that has it.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>

#include <bitset>
#include <initializer_list>
#include <string>

namespace ringloop {

// Opcodes newer than liburing 2.3's headers, filled into SQEs by hand.
inline constexpr unsigned kOpFtruncate = 55;  // IORING_OP_FTRUNCATE, Linux 6.9

// "IORING_OP_SOCKET" for IORING_OP_SOCKET; "IORING_OP_<n>" for an opcode ringloop does not know.
std::string opcode_name(unsigned opcode);
// The first mainline kernel with the opcode, "5.19"; "?" for one ringloop does not know.
const char* opcode_since(unsigned opcode);
// The running kernel's version as uname(2) gives it, cut to major.minor: "6.1".
std::string kernel_version();

// Whether the running kernel is major.minor or newer (uname(2), read once): for what no probe can
// tell, a flag an older kernel refuses with EINVAL (IORING_ACCEPT_MULTISHOT, 5.19). False when
// the version cannot be read.
bool kernel_at_least(unsigned major, unsigned minor);

// The opcodes one ring's kernel supports, and its feature word. A value: copied freely.
class Probe {
 public:
  // Nothing supported (what a kernel without IORING_REGISTER_PROBE, before 5.6, says).
  Probe() noexcept = default;
  // Asks the kernel through the ring (one io_uring_register call). Opcodes masked by the test
  // seam below read as unsupported.
  Probe(io_uring& ring, unsigned features);

  // Whether the kernel registered at least one opcode (false before Linux 5.6).
  bool available() const noexcept { return available_; }
  bool has(unsigned opcode) const noexcept { return opcode < kOpcodes && opcodes_[opcode]; }
  // IORING_FEAT_* bits of the ring (io_uring_params.features).
  bool has_feature(unsigned feature) const noexcept { return (features_ & feature) != 0; }
  unsigned features() const noexcept { return features_; }

  // Throws std::system_error(ENOSYS) unless the opcode is supported, with a message that names
  // the operation and the kernels: "io::socket: IORING_OP_SOCKET needs Linux 5.19; this kernel
  // is 5.15".
  void require(unsigned opcode, const char* operation) const;

  // Test seam: rings set up on this thread from now on see these opcodes as unsupported, as an
  // older kernel would (an empty list ends the masking). Existing rings keep their probe.
  static void mask_opcodes_for_tests(std::initializer_list<unsigned> opcodes);

 private:
  static constexpr unsigned kOpcodes = 256;
  std::bitset<kOpcodes> opcodes_;
  unsigned features_ = 0;
  bool available_ = false;
};

// The error require() throws, for callers that find the gap themselves.
[[noreturn]] void throw_unsupported(unsigned opcode, const char* operation);

}  // namespace ringloop
