// The coordinator's web page: sweeps, their trials with live progress, and each sweep's results.
// Served at GET /?token=T; it polls the JSON API with the same token.
#pragma once

#include <string>

namespace recur::coord {

const std::string& page_html();

}  // namespace recur::coord
