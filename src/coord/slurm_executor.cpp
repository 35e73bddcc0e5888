// See slurm_executor.h.
#include "coord/slurm_executor.h"

#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "coord/run_progress.h"
#include "coord/store.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/process.h"

namespace recur::coord {
namespace {

using nlohmann::json;

std::pair<int, std::string> run(const std::vector<std::string>& argv,
                                const std::vector<std::pair<std::string, std::string>>& env = {}) {
  auto r = run_process(argv, env);
  return {r.exit_code, std::move(r.output)};
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

struct Job {
  int64_t attempt = 0;
  std::string id, run_dir;
};

}  // namespace

bool is_slurm_job_id(const std::string& id) {
  return !id.empty() && id.size() <= 18 && id.find_first_not_of("0123456789") == std::string::npos;
}

void run_slurm_executor(const SlurmOptions& o, const std::atomic<bool>& stop) {
  constexpr double kLease = 7 * 86400.0;  // jobs may pend for days; the executor renews every poll
  Store store(o.state);
  const std::string recur = o.recur_binary.empty() ? self_executable() : o.recur_binary;
  const std::string script = o.sbatch_script.empty() ? o.recur_root + "/cluster/slurm/train.sbatch" : o.sbatch_script;
  make_dirs(o.workdir);
  // One agent identity across coordinator restarts, so its trials (and their jobs) are re-attached.
  const std::string id_file = o.state + ".slurm-agent";
  int64_t me = -1;
  if (path_exists(id_file)) me = std::stoll(read_file(id_file));
  if (me < 0) {
    me = store.register_agent("slurm-executor", 1 << 20, "any", o.workdir);
    write_file_atomic(id_file, std::to_string(me) + "\n");
  }
  std::map<int64_t, Job> jobs;  // by trial
  for (const auto& s : store.sweeps()) {
    const json sweep = store.sweep(s["id"]);  // named: the loop below must not walk a destroyed temporary
    for (const auto& t : sweep["trials"]) {
      if (t["state"] != "running" || t.value("agent", int64_t{-1}) != me || !t["progress"].contains("slurm_job")) continue;
      const int64_t trial = t["id"], attempt = t["attempts"];
      const json& id = t["progress"]["slurm_job"];
      if (!id.is_string() || !is_slurm_job_id(id.get<std::string>())) {
        store.report(trial, me, attempt, "failed", nullptr, fmt::format("slurm job id {} is not a Slurm job id; the job was not followed", id.dump()));
        spdlog::error("slurm executor: trial {}: {} in the state file is not a Slurm job id; attempt failed", trial, id.dump());
        continue;
      }
      jobs[trial] = {attempt, id.get<std::string>(), t["run_dir"]};
      spdlog::info("slurm executor: re-attached trial {} (job {})", trial, jobs[trial].id);
    }
  }
  spdlog::info("slurm executor: submitting with {} (work directory {})", script, o.workdir);
  while (!stop) {
    try {
      store.agent_seen(me);
      // follow the jobs
      for (auto it = jobs.begin(); it != jobs.end();) {
        const int64_t trial = it->first;
        Job& j = it->second;
        auto [rc, st] = run({"squeue", "-h", "-j", j.id, "-o", "%T"});
        st = trim(st);
        if (rc == 0 && !st.empty()) {
          json p = run_progress(j.run_dir);
          p["slurm_job"] = j.id;
          p["slurm_state"] = st;
          if (!store.heartbeat(trial, me, j.attempt, p, kLease)) {  // cancelled or no longer ours
            run({"scancel", j.id});
            spdlog::info("slurm executor: trial {} cancelled; scancel {}", trial, j.id);
            it = jobs.erase(it);
            continue;
          }
          ++it;
          continue;
        }
        // The job left the queue: what became of it?
        auto [src, show] = run({"scontrol", "show", "job", j.id});
        std::string state = "UNKNOWN";
        if (auto pos = show.find("JobState="); pos != std::string::npos) state = show.substr(pos + 9, show.find(' ', pos) - pos - 9);
        // The job's exit code when scontrol still knows the job (ExitCode=N:SIGNAL), else unknown.
        int exit_code = -1;
        if (auto pos = show.find("ExitCode="); pos != std::string::npos) {
          const std::string code = show.substr(pos + 9, show.find(':', pos) - pos - 9);
          if (is_slurm_job_id(code) && code.size() < 4) exit_code = std::stoi(code);
        }
        const TrialOutcome out = trial_outcome(j.run_dir, exit_code, j.run_dir + "/slurm-" + j.id + ".out");
        const std::string error = out.error.empty() ? "" : fmt::format("slurm job {} ended {}: {}", j.id, state, out.error);
        store.report(trial, me, j.attempt, out.status, out.result, error);
        if (out.status == "succeeded") {
          spdlog::info("slurm executor: trial {} job {} {}: succeeded", trial, j.id, state);
        } else {
          spdlog::warn("slurm executor: trial {} job {} ended {}: {}", trial, j.id, state, out.status);
        }
        it = jobs.erase(it);
      }
      // submit pending trials
      while (!stop && static_cast<int64_t>(jobs.size()) < o.max_jobs) {
        json t = store.lease(me, 1 << 20, kLease, GpuOffer{{}, /*any=*/true});
        if (t.is_null()) break;
        const int64_t trial = t["id"];
        Job j;
        j.attempt = t["attempt"];
        j.run_dir = t["run_dir"];
        make_dirs(j.run_dir);
        write_file_atomic(j.run_dir + "/base.yaml", t["base_yaml"].get<std::string>());
        const int64_t ranks = t["ranks"], gpus = t["gpus"];
        std::vector<std::string> cmd = {"sbatch", "--parsable", "--requeue", "--signal=B:USR1@120", "--open-mode=append",
                                        "-J", "recur-trial-" + std::to_string(trial), "-n", std::to_string(ranks),
                                        "-o", j.run_dir + "/slurm-%j.out"};
        // resources.gpus is per trial; each of its ranks (tasks) gets an equal share (the spec checks it divides).
        if (gpus > 0) cmd.push_back("--gpus-per-task=" + std::to_string(gpus / ranks));
        cmd.insert(cmd.end(), o.sbatch_args.begin(), o.sbatch_args.end());
        cmd.insert(cmd.end(), {script, j.run_dir + "/base.yaml", j.run_dir});
        for (const auto& s : t["overrides"]) cmd.insert(cmd.end(), {"--set", s.get<std::string>()});
        auto [rc, out] = run(cmd, {{"RECUR", recur}, {"RECUR_ROOT", o.recur_root}});
        out = trim(out);
        if (rc != 0 || !is_slurm_job_id(out.substr(0, out.find(';')))) {
          store.report(trial, me, j.attempt, "failed", nullptr, "sbatch failed: " + out);
          spdlog::error("slurm executor: sbatch for trial {} failed: {}", trial, out);
          break;
        }
        j.id = out.substr(0, out.find(';'));
        store.heartbeat(trial, me, j.attempt, json{{"slurm_job", j.id}, {"slurm_state", "SUBMITTED"}}, kLease);
        spdlog::info("slurm executor: trial {} attempt {} submitted as job {}", trial, j.attempt, j.id);
        jobs[trial] = j;
      }
    } catch (const std::exception& e) {
      spdlog::error("slurm executor: {}", e.what());
    }
    for (int i = 0; i < static_cast<int>(o.poll_s * 10) && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace recur::coord
