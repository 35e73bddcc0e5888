// The coordinator's state in SQLite (WAL mode): sweeps, their trials, and agents. Every mutation is one
// transaction, so a coordinator killed at any moment restarts with a consistent state.
// Trial states: pending -> running (leased to an agent attempt) -> succeeded | failed, or back to
// pending (retry, lost lease, requeue); cancelled. Apart from its state a trial may be held (never
// leased while held) and has a priority (higher is leased first, then older). A trial needs `ranks`
// slots and `gpus` GPUs (per trial, not per rank) of one agent; a running trial holds the agent's GPU
// ids it was leased (gpu_ids). Invariants: a trial is succeeded at most once, and only a report from
// the attempt that holds the lease changes it; no GPU id of an agent is held by two running trials.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coord/sweep.h"
#include "core/error.h"

struct sqlite3;

namespace recur::coord {

// A trial's state, as above; the state column and the JSON hold its name ("pending", ...).
enum class TrialState { kPending, kRunning, kSucceeded, kFailed, kCancelled };
std::string state_name(TrialState s);
TrialState parse_trial_state(const std::string& name);  // throws recur::Error on an unknown name
bool is_finished(TrialState s);                        // succeeded, failed or cancelled: it runs no more

// The GPUs an executor offers a lease: the ids an agent has free, or any number (the Slurm executor,
// where Slurm places GPUs itself).
struct GpuOffer {
  std::vector<int> free;
  bool any = false;
};

class Store {
 public:
  // Opens or creates; throws recur::Error naming the file. An agent not seen for `agent_timeout_s` no
  // longer counts when a pending trial's reason for waiting is worked out.
  explicit Store(const std::string& path, double agent_timeout_s = 60);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int64_t create_sweep(const SweepSpec& spec);
  nlohmann::json sweep(int64_t id);                  // summary + trials; throws NotFound
  nlohmann::json sweeps();                           // summaries
  void cancel_sweep(int64_t id);
  // Per axis point: mean and sd of the metric over succeeded seeds, plus RSA gates; see coordinator docs.
  nlohmann::json results(int64_t id);

  // `gpus`: the agent's inventory (gpus_to_json), or "any" for an executor that places GPUs itself.
  int64_t register_agent(const std::string& name, int64_t slots, const nlohmann::json& gpus, const std::string& workdir);
  void agent_seen(int64_t agent);
  nlohmann::json agents();  // id, name, slots, gpus, workdir, last_seen, live
  nlohmann::json trial(int64_t id);                  // throws NotFound
  // Whether hold, release and priority apply to one trial or to every trial of a sweep.
  enum class Scope { kSweep, kTrial };
  // A held trial is never leased; one already running finishes (if it is requeued, it waits).
  // Both return how many trials they changed; throw NotFound for an unknown id.
  int64_t set_held(Scope scope, int64_t id, bool held);
  int64_t set_priority(Scope scope, int64_t id, int64_t priority);
  // Loss curves from heartbeats, one per trial attempt: [{"trial", "attempt", "step": [...], "loss": [...],
  // "t": [...]}] in step order, for a sweep's trials or one trial; throws NotFound for an unknown id.
  // A heartbeat that holds its lease adds a point when its progress has an integer step and a finite
  // loss; past kCurvePoints points a trial's curve is thinned to about half as many, evenly spaced in
  // steps (each attempt's first and newest point kept), so it keeps its shape over the whole run.
  static constexpr int64_t kCurvePoints = 200;
  nlohmann::json curves(Scope scope, int64_t id);

  // Leases the pending, unheld trial of highest priority (then the oldest) that fits in `free_slots`
  // ranks and the offered GPUs to `agent`; null when none. The GPUs a trial gets (its gpu_ids, the
  // lowest that fit) are offered ids the agent advertised that none of its running trials holds, so an
  // agent that offers a busy GPU by mistake still never gets it twice.
  nlohmann::json lease(int64_t agent, int64_t free_slots, double lease_seconds, const GpuOffer& gpus = {});
  // Extends the lease and records progress; returns false when the attempt no longer holds the trial
  // (expired and re-leased, or cancelled): the agent must stop it.
  bool heartbeat(int64_t trial, int64_t agent, int64_t attempt, const nlohmann::json& progress, double lease_seconds);
  // status: succeeded | failed | requeue. Idempotent; a stale attempt's report changes nothing.
  nlohmann::json report(int64_t trial, int64_t agent, int64_t attempt, const std::string& status,
                        const nlohmann::json& result, const std::string& error);
  // Running trials whose lease expired go back to pending (or fail past their retries). Returns how many.
  int64_t expire_leases(double now);
  nlohmann::json counters();  // completions per trial, for tests and `recur bench coordinator`

 private:
  void exec(const std::string& sql);
  int64_t update_trials(Scope scope, int64_t id, const std::string& column, int64_t value);
  sqlite3* db_ = nullptr;
  std::string path_;
  double agent_timeout_s_;
};

// An id the client named does not exist (HTTP 404).
class NotFound : public Error {
 public:
  using Error::Error;
};

double wall_now();  // seconds since the epoch (leases survive a coordinator restart)

}  // namespace recur::coord
