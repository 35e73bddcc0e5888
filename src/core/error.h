// Errors Recur throws: every message names what was wrong and where (file, key, shard, rank).
// `main` catches these, prints one line and exits non-zero; UsageError means "bad command line" (exit 2).
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace recur {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The command line itself was wrong; the CLI prints a hint to --help and exits 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace recur
