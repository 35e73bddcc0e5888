// See agent.h.
#include "coord/agent.h"

#include <signal.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "coord/gpus.h"
#include "coord/http.h"
#include "coord/run_progress.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur::coord {
namespace {

using nlohmann::json;
std::atomic<bool> g_leave{false};

struct Child {
  pid_t pid = 0;
  int64_t trial = 0, attempt = 0, ranks = 1;
  std::string run_dir;
  std::vector<int> gpus;
  bool stop_sent = false;
};

struct PendingReport {
  int64_t trial, attempt;
  json body;
};

}  // namespace

int run_agent(const AgentOptions& o) {
  if (o.workdir.empty()) fail("--workdir DIR is required (run directories go there; use shared storage across nodes)");
  if (o.slots < 0) fail("--slots must be at least 1");
  // --gpus names the ids to hand out (tests, a node shared with others); the model and memory come
  // from nvidia-smi where it knows them.
  const std::vector<Gpu> inventory = o.gpus ? select_gpus(detect_gpus(), *o.gpus) : detect_gpus();
  const int64_t slots = o.slots > 0 ? o.slots : std::max<int64_t>(1, static_cast<int64_t>(inventory.size()));
  // Each slot's ranks get an equal share of this machine's cores (OMP_NUM_THREADS, unless the
  // agent's own environment sets it): N trials with all cores each would oversubscribe the CPU.
  std::string rank_threads;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env == nullptr || *env == '\0') {
    cpu_set_t cpus;
    long cores = ::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : ::sysconf(_SC_NPROCESSORS_ONLN);
    rank_threads = std::to_string(std::max<long>(1, cores / slots));
  }
  const std::string workdir = expand_user(o.workdir);
  make_dirs(workdir);
  const std::string recur = o.recur_binary.empty() ? self_executable() : o.recur_binary;
  std::string name = o.name;
  if (name.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    name = std::string(host) + ":" + std::to_string(::getpid());
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_leave.store(true); };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  auto call = [&](const std::string& method, const std::string& target, const json& body) {
    auto r = http_request(o.url, method, target, o.token, body.is_null() ? "" : body.dump(), 10);
    if (r.status == 401 || r.status == 403) fail("coordinator {} refused the token: {}", o.url, r.body.dump());
    if (r.status != 200) fail("coordinator {}: {} {} -> {} {}", o.url, method, target, r.status, r.body.dump());
    return r.body;
  };
  // Register (the coordinator may still be starting: keep trying).
  std::vector<int> free_gpus;
  for (const auto& g : inventory) free_gpus.push_back(g.index);
  int64_t agent = -1;
  for (int tries = 0; agent < 0; ++tries) {
    try {
      agent = call("POST", "/api/agents", json{{"name", name}, {"slots", slots}, {"gpus", gpus_to_json(inventory)}, {"workdir", workdir}})["id"];
    } catch (const Error& e) {
      if (std::string(e.what()).find("refused the token") != std::string::npos || tries > 300 || g_leave) throw;
      if (tries % 10 == 0) spdlog::warn("agent: {} (retrying)", e.what());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  spdlog::info("agent {} '{}' registered with {} slot(s), GPUs [{}], work directory {}{}", agent, name, slots,
               gpu_id_list(free_gpus), workdir, rank_threads.empty() ? "" : fmt::format(", {} thread(s) per rank", rank_threads));

  std::map<int64_t, Child> running;  // by trial
  std::vector<PendingReport> reports;
  int64_t used = 0;
  auto last_hb = std::chrono::steady_clock::now() - std::chrono::hours(1);
  bool idle_seen = false;
  while (true) {
    // 1. reap finished trials
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      pid_t r = ::waitpid(it->second.pid, &status, WNOHANG);
      if (r == 0) {
        ++it;
        continue;
      }
      Child c = it->second;
      int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      const TrialOutcome out = trial_outcome(c.run_dir, rc, c.run_dir + "/train.log");
      json body = {{"agent", agent}, {"attempt", c.attempt}, {"status", out.status}, {"run_dir", c.run_dir},
                   {"progress", run_progress(c.run_dir)}};
      if (out.status == "succeeded") body["result"] = out.result;
      if (out.status == "failed") body["error"] = out.error;
      spdlog::info("trial {} attempt {}: {} (exit {})", c.trial, c.attempt, body["status"].get<std::string>(), rc);
      reports.push_back({c.trial, c.attempt, body});
      used -= c.ranks;
      free_gpus.insert(free_gpus.end(), c.gpus.begin(), c.gpus.end());
      it = running.erase(it);
    }
    // 2. deliver reports (kept until the coordinator has them: reports are idempotent)
    for (auto it = reports.begin(); it != reports.end();) {
      try {
        call("POST", "/api/trials/" + std::to_string(it->trial) + "/report", it->body);
        it = reports.erase(it);
      } catch (const Error& e) {
        spdlog::warn("agent: cannot report trial {} yet: {}", it->trial, e.what());
        break;
      }
    }
    // 3. leaving: ask running trials to checkpoint, then go once they have ended and been reported
    if (g_leave) {
      for (auto& [id, c] : running) {
        if (!c.stop_sent) {
          ::kill(-c.pid, SIGTERM);
          c.stop_sent = true;
          spdlog::info("agent leaving: asked trial {} to checkpoint", id);
        }
      }
      if (running.empty() && reports.empty()) break;
    }
    // 4. heartbeats with progress; a lost lease stops the trial
    auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_hb).count() >= o.heartbeat_s) {
      last_hb = now;
      try {
        call("POST", "/api/agents/" + std::to_string(agent) + "/heartbeat", json::object());
        for (auto& [id, c] : running) {
          json r = call("POST", "/api/trials/" + std::to_string(id) + "/heartbeat",
                        json{{"agent", agent}, {"attempt", c.attempt}, {"progress", run_progress(c.run_dir)}});
          if (r.value("stop", false) && !c.stop_sent) {
            spdlog::warn("trial {}: the coordinator no longer assigns it to this agent; stopping it", id);
            ::kill(-c.pid, SIGTERM);
            c.stop_sent = true;
          }
        }
      } catch (const Error& e) {
        spdlog::warn("agent: heartbeat failed: {} (trials keep running)", e.what());
      }
    }
    // 5. lease new work
    bool leased = false;
    if (!g_leave && used < slots) {
      json t;
      try {
        std::sort(free_gpus.begin(), free_gpus.end());
        t = call("POST", "/api/agents/" + std::to_string(agent) + "/lease", json{{"free_slots", slots - used}, {"free_gpus", free_gpus}})["trial"];
      } catch (const Error& e) {
        spdlog::warn("agent: lease failed: {}", e.what());
      }
      if (t.is_object()) {
        leased = true;
        idle_seen = false;
        Child c;
        c.trial = t["id"];
        c.attempt = t["attempt"];
        c.ranks = t["ranks"];
        c.run_dir = t["run_dir"];
        make_dirs(c.run_dir);
        write_file_atomic(c.run_dir + "/base.yaml", t["base_yaml"].get<std::string>());
        std::vector<std::string> argv;
        if (c.ranks > 1) {
          argv = {"mpirun", "-np", std::to_string(c.ranks), "--oversubscribe", "--bind-to", "none"};
          if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
        }
        argv.insert(argv.end(), {recur, "train", "--config", c.run_dir + "/base.yaml", "--run-dir", c.run_dir, "--resume", "auto"});
        for (const auto& s : t["overrides"]) {
          argv.push_back("--set");
          argv.push_back(s.get<std::string>());
        }
        // Exactly the GPUs leased to the trial, and only free ones: the coordinator picked them from
        // those offered; a trial without GPUs sees none (an empty CUDA_VISIBLE_DEVICES).
        for (const auto& g : t.value("gpu_ids", json::array())) c.gpus.push_back(g.get<int>());
        const std::string visible = gpu_id_list(c.gpus);
        const bool all_free = std::all_of(c.gpus.begin(), c.gpus.end(), [&](int g) {
          return std::count(free_gpus.begin(), free_gpus.end(), g) == 1 && std::count(c.gpus.begin(), c.gpus.end(), g) == 1;
        });
        if (!all_free) {
          const std::string error = fmt::format("the coordinator leased GPUs [{}], but this agent has only [{}] free", visible, gpu_id_list(free_gpus));
          spdlog::error("trial {} attempt {}: {}", c.trial, c.attempt, error);
          reports.push_back({c.trial, c.attempt, json{{"agent", agent}, {"attempt", c.attempt}, {"status", "failed"}, {"error", error}}});
          continue;
        }
        for (int g : c.gpus) free_gpus.erase(std::find(free_gpus.begin(), free_gpus.end(), g));
        const std::string log = c.run_dir + "/train.log";
        const std::string banner = fmt::format("recur agent '{}': trial {} attempt {}, {} rank(s), CUDA_VISIBLE_DEVICES={}\n", name,
                                               c.trial, c.attempt, c.ranks, visible);
        pid_t pid = ::fork();
        if (pid < 0) fail("fork failed: {}", std::strerror(errno));
        if (pid == 0) {
          ::setpgid(0, 0);
          ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the trial checkpoints and ends if this agent dies
          int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
          if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
          }
          if (fd >= 0 && ::write(1, banner.data(), banner.size()) < 0) _exit(127);
          ::setenv("CUDA_VISIBLE_DEVICES", visible.c_str(), 1);
          if (!rank_threads.empty()) ::setenv("OMP_NUM_THREADS", rank_threads.c_str(), 1);
          std::vector<char*> args;
          for (auto& a : argv) args.push_back(a.data());
          args.push_back(nullptr);
          ::execvp(args[0], args.data());
          _exit(127);
        }
        ::setpgid(pid, pid);
        c.pid = pid;
        used += c.ranks;
        spdlog::info("trial {} attempt {}: started in {} ({} rank(s), GPUs [{}])", c.trial, c.attempt, c.run_dir, c.ranks, visible);
        running[c.trial] = c;
      }
    }
    // 6. idle exit (tests, batch jobs): nothing pending for us and nothing running, twice in a row
    if (o.exit_when_idle && !leased && running.empty() && reports.empty() && !g_leave) {
      bool open = false;
      try {
        for (const auto& s : call("GET", "/api/sweeps", json(nullptr))) {
          std::string st = s["state"];
          if (st == "pending" || st == "running") open = true;
        }
      } catch (const Error&) {
        open = true;
      }
      if (!open && idle_seen) break;
      idle_seen = !open;
    }
    // 7. wait: poll_s, or less where a running trial's next heartbeat is due sooner (--heartbeat < poll_s)
    if (!leased) {
      const double since_hb = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_hb).count();
      const double wait_s = running.empty() ? o.poll_s : std::max(0.01, std::min(o.poll_s, o.heartbeat_s - since_hb));
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000)));
    }
  }
  spdlog::info("agent {} leaving", agent);
  return 0;
}

}  // namespace recur::coord
