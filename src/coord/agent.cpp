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

std::string tail_of(const std::string& path, size_t bytes) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception&) {
    return "";
  }
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace

int run_agent(const AgentOptions& o) {
  if (o.workdir.empty()) fail("--workdir DIR is required (run directories go there; use shared storage across nodes)");
  if (o.slots < 1) fail("--slots must be at least 1");
  // Each slot's ranks get an equal share of this machine's cores (OMP_NUM_THREADS, unless the
  // agent's own environment sets it): N trials with all cores each would oversubscribe the CPU.
  std::string rank_threads;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env == nullptr || *env == '\0') {
    cpu_set_t cpus;
    long cores = ::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : ::sysconf(_SC_NPROCESSORS_ONLN);
    rank_threads = std::to_string(std::max<long>(1, cores / o.slots));
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
  std::string gpus;
  for (int g : o.gpus) gpus += (gpus.empty() ? "" : ",") + std::to_string(g);
  int64_t agent = -1;
  for (int tries = 0; agent < 0; ++tries) {
    try {
      agent = call("POST", "/api/agents", json{{"name", name}, {"slots", o.slots}, {"gpus", gpus}, {"workdir", workdir}})["id"];
    } catch (const Error& e) {
      if (std::string(e.what()).find("refused the token") != std::string::npos || tries > 300 || g_leave) throw;
      if (tries % 10 == 0) spdlog::warn("agent: {} (retrying)", e.what());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  spdlog::info("agent {} '{}' registered with {} slot(s), work directory {}{}", agent, name, o.slots, workdir,
               rank_threads.empty() ? "" : fmt::format(", {} thread(s) per rank", rank_threads));

  std::map<int64_t, Child> running;  // by trial
  std::vector<PendingReport> reports;
  std::vector<int> free_gpus = o.gpus;
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
      json body = {{"agent", agent}, {"attempt", c.attempt}};
      if (rc == 0 && path_exists(c.run_dir + "/eval.json")) {
        body["status"] = "succeeded";
        try {
          body["result"] = json::parse(read_file(c.run_dir + "/eval.json"));
        } catch (const std::exception& e) {
          body["status"] = "failed";
          body["error"] = std::string("unreadable eval.json: ") + e.what();
        }
      } else if (rc == 75) {
        body["status"] = "requeue";  // checkpointed on a stop signal
      } else {
        body["status"] = "failed";
        body["error"] = fmt::format("recur train exited with {}; end of {}/train.log:\n{}", rc, c.run_dir,
                                    tail_of(c.run_dir + "/train.log", 2000));
      }
      body["run_dir"] = c.run_dir;
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
    if (!g_leave && used < o.slots) {
      json t;
      try {
        t = call("POST", "/api/agents/" + std::to_string(agent) + "/lease", json{{"free_slots", o.slots - used}})["trial"];
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
        std::string visible;
        for (int64_t k = 0; k < c.ranks && !free_gpus.empty(); ++k) {
          c.gpus.push_back(free_gpus.back());
          visible += (visible.empty() ? "" : ",") + std::to_string(free_gpus.back());
          free_gpus.pop_back();
        }
        const std::string log = c.run_dir + "/train.log";
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
          if (!visible.empty()) ::setenv("CUDA_VISIBLE_DEVICES", visible.c_str(), 1);
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
        spdlog::info("trial {} attempt {}: started in {} ({} rank(s))", c.trial, c.attempt, c.run_dir, c.ranks);
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
    if (!leased) std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(o.poll_s * 1000)));
  }
  spdlog::info("agent {} leaving", agent);
  return 0;
}

}  // namespace recur::coord
