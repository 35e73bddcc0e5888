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

TrialOutcome trial_outcome(const std::string& run_dir, int exit_code, const std::string& log) {
  if (exit_code == 75) return {"requeue", nullptr, ""};
  std::string why;
  json result;
  if (exit_code > 0) {
    why = fmt::format("recur train exited with {}", exit_code);
  } else if (!path_exists(run_dir + "/eval.json")) {
    why = fmt::format("no final evaluation ({}/eval.json)", run_dir);
  } else {
    try {
      result = json::parse(read_file(run_dir + "/eval.json"));
      const int64_t step = result.value("step", int64_t{-1});
      const json p = run_progress(run_dir);
      const bool stopped = result.contains("stopped_early") && result["stopped_early"].is_object() &&
                           result["stopped_early"].value("step", int64_t{-2}) == step;
      if (!p.contains("steps") || step == p["steps"].get<int64_t>() || stopped) return {"succeeded", result, ""};
      why = fmt::format("{}/eval.json is from step {}, not the last step {}", run_dir, step, p["steps"].get<int64_t>());
    } catch (const std::exception& e) {
      why = fmt::format("unreadable {}/eval.json: {}", run_dir, e.what());
    }
  }
  std::string tail;
  try {
    tail = read_file(log);
  } catch (const std::exception&) {
  }
  if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
  return {"failed", nullptr, tail.empty() ? why : fmt::format("{}; end of {}:\n{}", why, log, tail)};
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
