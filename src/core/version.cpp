// See version.h; RECUR_VERSION comes from the CMake project version.
#include "core/version.h"

namespace recur {
std::string version_string() { return std::string("recur ") + RECUR_VERSION; }
}  // namespace recur
