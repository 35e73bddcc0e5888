// See progress.h.
#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace recur {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

std::string format_count(double value) {
  if (value >= 1e9) return fmt::format("{:.2f}G", value / 1e9);
  if (value >= 1e6) return fmt::format("{:.2f}M", value / 1e6);
  if (value >= 1e3) return fmt::format("{:.1f}k", value / 1e3);
  return fmt::format("{:.0f}", value);
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)), tty_(::isatty(STDERR_FILENO) == 1) {
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && done_ > 0 && tty_) std::fputc('\n', stderr);
}

void Progress::update(uint64_t done) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (tty_ ? 0.25 : 5.0)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  std::string line;
  if (final_line) {
    line = fmt::format("{}: {} {} in {} ({} {}/s)", label_, format_count(done_), unit_, format_duration(elapsed),
                       format_count(rate), unit_);
  } else {
    double pct = total_ ? 100.0 * done_ / total_ : 0.0;
    double eta = rate > 0 && total_ >= done_ ? (total_ - done_) / rate : NAN;
    line = fmt::format("{}: {:5.1f}% {}/{} {} | {} {}/s | ETA {}", label_, pct, format_count(done_),
                       format_count(total_), unit_, format_count(rate), unit_, format_duration(eta));
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace recur
