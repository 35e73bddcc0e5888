// Recur's version, recorded in manifests, checkpoints and `recur --version`.
#pragma once

#include <string>

namespace recur {
std::string version_string();  // "recur 0.1.0"
}
