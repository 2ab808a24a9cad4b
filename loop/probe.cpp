#include <ringloop/loop/probe.hpp>

#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>

namespace ringloop {
namespace {

thread_local std::bitset<256> masked_for_tests;

struct OpcodeInfo {
  const char* name;
  const char* since;
};

// Mainline versions from the kernel's io_uring history (io_uring/opdef.c and the release notes).
// Indexed by opcode; the numbers past liburing 2.3's IORING_OP_LAST are the kernel's.
constexpr OpcodeInfo kOpcodeInfo[] = {
    {"IORING_OP_NOP", "5.1"},
    {"IORING_OP_READV", "5.1"},
    {"IORING_OP_WRITEV", "5.1"},
    {"IORING_OP_FSYNC", "5.1"},
    {"IORING_OP_READ_FIXED", "5.1"},
    {"IORING_OP_WRITE_FIXED", "5.1"},
    {"IORING_OP_POLL_ADD", "5.1"},
    {"IORING_OP_POLL_REMOVE", "5.1"},
    {"IORING_OP_SYNC_FILE_RANGE", "5.2"},
    {"IORING_OP_SENDMSG", "5.3"},
    {"IORING_OP_RECVMSG", "5.3"},
    {"IORING_OP_TIMEOUT", "5.4"},
    {"IORING_OP_TIMEOUT_REMOVE", "5.5"},
    {"IORING_OP_ACCEPT", "5.5"},
    {"IORING_OP_ASYNC_CANCEL", "5.5"},
    {"IORING_OP_LINK_TIMEOUT", "5.5"},
    {"IORING_OP_CONNECT", "5.5"},
    {"IORING_OP_FALLOCATE", "5.6"},
    {"IORING_OP_OPENAT", "5.6"},
    {"IORING_OP_CLOSE", "5.6"},
    {"IORING_OP_FILES_UPDATE", "5.6"},
    {"IORING_OP_STATX", "5.6"},
    {"IORING_OP_READ", "5.6"},
    {"IORING_OP_WRITE", "5.6"},
    {"IORING_OP_FADVISE", "5.6"},
    {"IORING_OP_MADVISE", "5.6"},
    {"IORING_OP_SEND", "5.6"},
    {"IORING_OP_RECV", "5.6"},
    {"IORING_OP_OPENAT2", "5.6"},
    {"IORING_OP_EPOLL_CTL", "5.6"},
    {"IORING_OP_SPLICE", "5.7"},
    {"IORING_OP_PROVIDE_BUFFERS", "5.7"},
    {"IORING_OP_REMOVE_BUFFERS", "5.7"},
    {"IORING_OP_TEE", "5.8"},
    {"IORING_OP_SHUTDOWN", "5.11"},
    {"IORING_OP_RENAMEAT", "5.11"},
    {"IORING_OP_UNLINKAT", "5.11"},
    {"IORING_OP_MKDIRAT", "5.15"},
    {"IORING_OP_SYMLINKAT", "5.15"},
    {"IORING_OP_LINKAT", "5.15"},
    {"IORING_OP_MSG_RING", "5.18"},
    {"IORING_OP_FSETXATTR", "5.19"},
    {"IORING_OP_SETXATTR", "5.19"},
    {"IORING_OP_FGETXATTR", "5.19"},
    {"IORING_OP_GETXATTR", "5.19"},
    {"IORING_OP_SOCKET", "5.19"},
    {"IORING_OP_URING_CMD", "5.19"},
    {"IORING_OP_SEND_ZC", "6.0"},
    {"IORING_OP_SENDMSG_ZC", "6.1"},
    {"IORING_OP_READ_MULTISHOT", "6.7"},
    {"IORING_OP_WAITID", "6.7"},
    {"IORING_OP_FUTEX_WAIT", "6.7"},
    {"IORING_OP_FUTEX_WAKE", "6.7"},
    {"IORING_OP_FUTEX_WAITV", "6.7"},
    {"IORING_OP_FIXED_FD_INSTALL", "6.8"},
    {"IORING_OP_FTRUNCATE", "6.9"},
    {"IORING_OP_BIND", "6.11"},
    {"IORING_OP_LISTEN", "6.11"},
};
constexpr unsigned kKnownOpcodes = sizeof kOpcodeInfo / sizeof kOpcodeInfo[0];
static_assert(IORING_OP_SOCKET == 45 && IORING_OP_SENDMSG_ZC == 48 && kOpFtruncate == 55,
              "the table is indexed by the kernel's opcode numbers");

}  // namespace

std::string opcode_name(unsigned opcode) {
  if (opcode < kKnownOpcodes) return kOpcodeInfo[opcode].name;
  return "IORING_OP_" + std::to_string(opcode);
}

const char* opcode_since(unsigned opcode) {
  return opcode < kKnownOpcodes ? kOpcodeInfo[opcode].since : "?";
}

namespace {

// uname(2)'s release cut to major and minor; false when it cannot be read so.
bool running_kernel(unsigned& major, unsigned& minor, utsname& name) {
  return ::uname(&name) == 0 && std::sscanf(name.release, "%u.%u", &major, &minor) == 2;
}

}  // namespace

std::string kernel_version() {
  utsname name{};
  unsigned major = 0, minor = 0;
  if (running_kernel(major, minor, name))
    return std::to_string(major) + "." + std::to_string(minor);
  return name.release[0] != '\0' ? name.release : "unknown";
}

bool kernel_at_least(unsigned major, unsigned minor) {
  static const std::pair<unsigned, unsigned> running = [] {
    utsname name{};
    unsigned ma = 0, mi = 0;
    return running_kernel(ma, mi, name) ? std::pair{ma, mi} : std::pair{0u, 0u};
  }();
  return running >= std::pair{major, minor};
}

Probe::Probe(io_uring& ring, unsigned features) : features_(features) {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) return;  // before Linux 5.6: no IORING_REGISTER_PROBE
  available_ = true;
  for (unsigned op = 0; op < probe->ops_len && op < kOpcodes; ++op)
    opcodes_[op] = (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0 && !masked_for_tests[op];
  io_uring_free_probe(probe);
}

void Probe::require(unsigned opcode, const char* operation) const {
  if (!has(opcode)) throw_unsupported(opcode, operation);
}

void Probe::mask_opcodes_for_tests(std::initializer_list<unsigned> opcodes) {
  masked_for_tests.reset();
  for (unsigned op : opcodes) masked_for_tests.set(op);
}

void throw_unsupported(unsigned opcode, const char* operation) {
  throw std::system_error(ENOSYS, std::system_category(),
                          std::string(operation) + ": " + opcode_name(opcode) + " needs Linux " +
                              opcode_since(opcode) + "; this kernel is " + kernel_version());
}

}  // namespace ringloop
