// The coordinator's web page: sweeps, their trials with live progress and loss curves (from heartbeats),
// and each sweep's results with the power-law fit. Served at GET /?token=T; it polls the JSON API with
// the same token. Invariant: every API value is escaped, and only finite numbers become SVG coordinates.
#pragma once

#include <string>

namespace recur::coord {

const std::string& page_html();

}  // namespace recur::coord
