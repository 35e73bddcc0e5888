// See run_progress.h.
#include "coord/run_progress.h"

#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/metrics_file.h"

namespace recur::coord {

using nlohmann::json;

std::string self_executable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) fail("cannot find this executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

json run_progress(const std::string& run_dir) {
  json p = json::object();
  const MetricsFile metrics = read_metrics(run_dir);
  try {
    if (!metrics.train.empty()) {
      const json& r = metrics.train.back();
      p["step"] = r.value("step", int64_t{0});
      p["loss"] = r.value("loss", 0.0);
      p["elapsed_s"] = r.value("elapsed_s", 0.0);
    }
    if (path_exists(run_dir + "/config.yaml")) {
      int64_t steps = Config::load(run_dir + "/config.yaml").get_int("train.steps");
      p["steps"] = steps;
      if (p.contains("step") && p["step"].get<int64_t>() > 0) {
        double per = p["elapsed_s"].get<double>() / static_cast<double>(p["step"].get<int64_t>());
        p["eta_s"] = per * static_cast<double>(steps - p["step"].get<int64_t>());
      }
    }
  } catch (const std::exception&) {
    // a config.yaml being replaced, or a field of an unexpected type: report what we have
  }
  return p;
}

}  // namespace recur::coord
