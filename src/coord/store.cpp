// See store.h.
#include "coord/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "coord/gpus.h"
#include "coord/sweep.h"
#include "core/error.h"

namespace recur::coord {

using nlohmann::json;

std::string state_name(TrialState s) {
  switch (s) {
    case TrialState::kPending: return "pending";
    case TrialState::kRunning: return "running";
    case TrialState::kSucceeded: return "succeeded";
    case TrialState::kFailed: return "failed";
    case TrialState::kCancelled: return "cancelled";
  }
  return "?";
}

TrialState parse_trial_state(const std::string& name) {
  for (TrialState s : {TrialState::kPending, TrialState::kRunning, TrialState::kSucceeded, TrialState::kFailed, TrialState::kCancelled}) {
    if (state_name(s) == name) return s;
  }
  fail("unknown trial state '{}' (pending, running, succeeded, failed or cancelled)", name);
}

bool is_finished(TrialState s) { return s == TrialState::kSucceeded || s == TrialState::kFailed || s == TrialState::kCancelled; }

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

// One prepared statement; bind by position (1-based), step, read columns.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) {
      fail("coordinator state: cannot prepare '{}': {}", sql, sqlite3_errmsg(db));
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  bool step() {  // true: a row is available
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("coordinator state: {}", sqlite3_errmsg(db_));
  }
  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  double f64(int c) { return sqlite3_column_double(s_, c); }
  std::string text(int c) {
    auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  bool null(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when an exception leaves the scope.
class Tx {
 public:
  explicit Tx(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Tx() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      fail("coordinator state: {}: {}", sql, msg);
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

json parse_or(const std::string& text, json fallback) {
  if (text.empty()) return fallback;
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return fallback;
  }
}

// A heartbeat's progress comes from any token holder: only an integer step (exact in a double, so the
// page reads it back unchanged) and a finite loss make a curve point.
std::optional<std::pair<int64_t, double>> curve_point(const json& progress) {
  if (!progress.is_object()) return std::nullopt;
  const auto step = progress.find("step"), loss = progress.find("loss");
  if (step == progress.end() || loss == progress.end() || !step->is_number_integer() || !loss->is_number()) return std::nullopt;
  constexpr int64_t kExact = int64_t{1} << 53;
  if (step->is_number_unsigned() ? step->get<uint64_t>() > static_cast<uint64_t>(kExact)
                                 : step->get<int64_t>() < 0 || step->get<int64_t>() > kExact) {
    return std::nullopt;
  }
  const double value = loss->get<double>();
  if (!std::isfinite(value)) return std::nullopt;
  return std::make_pair(step->get<int64_t>(), value);
}

// Thinning keeps the curve's shape over the whole run: about kCurvePoints / 2 points, evenly spaced in
// steps, each attempt's first and newest point among them (and never more than kCurvePoints, however
// many attempts).
void thin_curve(sqlite3* db, int64_t trial) {
  struct Point {
    int64_t rowid, attempt, step;
  };
  std::vector<Point> points;
  {
    Stmt q(db, "SELECT rowid, attempt, step FROM trial_curve WHERE trial = ? ORDER BY attempt, step");
    q.bind(1, trial);
    while (q.step()) points.push_back({q.i64(0), q.i64(1), q.i64(2)});
  }
  if (static_cast<int64_t>(points.size()) <= Store::kCurvePoints) return;
  double span = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    if (i + 1 == points.size() || points[i + 1].attempt != points[i].attempt) span += static_cast<double>(points[i].step);
    if (i == 0 || points[i - 1].attempt != points[i].attempt) span -= static_cast<double>(points[i].step);
  }
  const double gap = span / static_cast<double>(Store::kCurvePoints / 2);
  std::vector<int64_t> kept, dropped;
  int64_t last_kept = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    const bool first = i == 0 || points[i - 1].attempt != points[i].attempt;
    const bool newest = i + 1 == points.size() || points[i + 1].attempt != points[i].attempt;
    if (first || newest || static_cast<double>(points[i].step - last_kept) >= gap) {
      kept.push_back(points[i].rowid);
      last_kept = points[i].step;
    } else {
      dropped.push_back(points[i].rowid);
    }
  }
  const size_t excess = kept.size() > static_cast<size_t>(Store::kCurvePoints) ? kept.size() - Store::kCurvePoints : 0;
  dropped.insert(dropped.end(), kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(excess));  // the oldest go
  for (int64_t rowid : dropped) {
    Stmt d(db, "DELETE FROM trial_curve WHERE rowid = ?");
    d.bind(1, rowid);
    d.step();
  }
}

void record_curve_point(sqlite3* db, int64_t trial, int64_t attempt, const json& progress, double now) {
  const auto point = curve_point(progress);
  if (!point) return;
  Stmt ins(db, "INSERT OR IGNORE INTO trial_curve (trial, attempt, step, loss, t) VALUES (?, ?, ?, ?, ?)");
  ins.bind(1, trial).bind(2, attempt).bind(3, point->first).bind(4, point->second).bind(5, now);
  ins.step();
  Stmt n(db, "SELECT COUNT(*) FROM trial_curve WHERE trial = ?");
  n.bind(1, trial);
  if (n.step() && n.i64(0) > Store::kCurvePoints) thin_curve(db, trial);
}

const char* kTrialColumns =
    "id, sweep_id, idx, point, seed, overrides, ranks, max_retries, attempts, state, agent_id, lease_expires, run_dir, "
    "progress, result, error, completions, held, priority, gpus, gpu_ids";

json trial_row(Stmt& q) {
  json t = {{"id", q.i64(0)},
            {"sweep", q.i64(1)},
            {"index", q.i64(2)},
            {"point", parse_or(q.text(3), json::object())},
            {"seed", q.i64(4)},
            {"overrides", parse_or(q.text(5), json::array())},
            {"ranks", q.i64(6)},
            {"max_retries", q.i64(7)},
            {"attempts", q.i64(8)},
            {"state", q.text(9)},
            {"run_dir", q.text(12)},
            {"progress", parse_or(q.text(13), json::object())},
            {"result", parse_or(q.text(14), json(nullptr))},
            {"error", q.text(15)},
            {"completions", q.i64(16)},
            {"held", q.i64(17) != 0},
            {"priority", q.i64(18)},
            {"gpus", q.i64(19)},
            {"gpu_ids", parse_or(q.text(20), json::array())}};
  if (!q.null(10)) t["agent"] = q.i64(10);
  return t;
}

std::string sweep_state(bool cancelled, const std::map<std::string, int64_t>& n, int64_t total) {
  if (cancelled) return "cancelled";
  auto get = [&](const char* k) { auto it = n.find(k); return it == n.end() ? int64_t{0} : it->second; };
  if (get("succeeded") == total) return "completed";
  if (get("pending") + get("running") == 0) return "failed";
  if (get("running") > 0 || get("succeeded") + get("failed") > 0) return "running";
  return "pending";
}

// An agent's GPUs as stored: nullopt for "any" (the Slurm executor), else its inventory (agents from
// before GPU placement stored "" or "0,1").
std::optional<std::vector<Gpu>> stored_gpus(const std::string& text) {
  const json j = parse_or(text, json(text));
  if (j == "any") return std::nullopt;
  try {
    return gpus_from_json(j, "agent GPUs");
  } catch (const Error&) {
    return std::vector<Gpu>{};
  }
}

// What an agent can run at most: its slots and GPUs (-1: any number).
struct Capacity {
  int64_t slots = 0, gpus = 0;
};

// Why a pending trial that needs `ranks` slots and `gpus` GPUs of one agent cannot run on any live
// agent; empty when one could run it (it waits for room, not for a bigger agent).
std::string waiting_reason(int64_t ranks, int64_t gpus, const std::vector<Capacity>& agents) {
  if (agents.empty()) return "no agent is connected";
  int64_t most_slots = 0, most_gpus = 0;
  for (const auto& a : agents) {
    if (a.slots >= ranks && (a.gpus < 0 || a.gpus >= gpus)) return "";
    most_slots = std::max(most_slots, a.slots);
    most_gpus = a.gpus < 0 || most_gpus < 0 ? -1 : std::max(most_gpus, a.gpus);
  }
  if (most_gpus >= 0 && gpus > most_gpus) {
    return fmt::format("needs {} GPU{}; the largest agent has {}", gpus, gpus == 1 ? "" : "s", most_gpus);
  }
  if (ranks > most_slots) return fmt::format("needs {} ranks; the largest agent has {} slots", ranks, most_slots);
  return fmt::format("needs {} ranks and {} GPUs on one agent; no agent has both", ranks, gpus);
}

}  // namespace

Store::Store(const std::string& path, double agent_timeout_s) : path_(path), agent_timeout_s_(agent_timeout_s) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail("cannot open coordinator state {}: {}", path, msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
    exec("CREATE TABLE IF NOT EXISTS sweeps (id INTEGER PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, "
         "metric TEXT NOT NULL, axes TEXT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS trials (id INTEGER PRIMARY KEY, sweep_id INTEGER NOT NULL REFERENCES sweeps(id), "
         "idx INTEGER NOT NULL, point TEXT NOT NULL, seed INTEGER NOT NULL, overrides TEXT NOT NULL, "
         "ranks INTEGER NOT NULL, max_retries INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
         "state TEXT NOT NULL DEFAULT 'pending', agent_id INTEGER, lease_expires REAL, run_dir TEXT NOT NULL DEFAULT '', "
         "progress TEXT NOT NULL DEFAULT '{}', result TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', "
         "completions INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL)");
    // held and priority, then gpus and gpu_ids came later: a state file from before them gains the columns.
    std::set<std::string> columns;
    {
      Stmt cols(db_, "PRAGMA table_info(trials)");
      while (cols.step()) columns.insert(cols.text(1));
    }
    if (!columns.count("held")) {
      exec("ALTER TABLE trials ADD COLUMN held INTEGER NOT NULL DEFAULT 0");
      exec("ALTER TABLE trials ADD COLUMN priority INTEGER NOT NULL DEFAULT 0");
    }
    if (!columns.count("gpus")) {
      exec("ALTER TABLE trials ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0");
      exec("ALTER TABLE trials ADD COLUMN gpu_ids TEXT NOT NULL DEFAULT '[]'");
    }
    exec("CREATE INDEX IF NOT EXISTS trials_state ON trials(state, id)");
    exec("CREATE TABLE IF NOT EXISTS agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, slots INTEGER NOT NULL, "
         "gpus TEXT NOT NULL, workdir TEXT NOT NULL, last_seen REAL NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS base_configs (sweep_id INTEGER PRIMARY KEY REFERENCES sweeps(id), yaml TEXT NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS trial_curve (trial INTEGER NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL, "
         "step INTEGER NOT NULL, loss REAL NOT NULL, t REAL NOT NULL, PRIMARY KEY (trial, attempt, step))");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Store::~Store() {
  if (db_) sqlite3_close(db_);
}

void Store::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    fail("coordinator state {}: {}: {}", path_, sql.substr(0, 60), msg);
  }
}

int64_t Store::create_sweep(const SweepSpec& spec) {
  Tx tx(db_);
  const double now = wall_now();
  Stmt ins(db_, "INSERT INTO sweeps (name, spec, metric, axes, created) VALUES (?, ?, ?, ?, ?)");
  ins.bind(1, spec.name).bind(2, spec.to_json().dump()).bind(3, spec.metric).bind(4, json(spec.axes).dump()).bind(5, now);
  ins.step();
  const int64_t id = sqlite3_last_insert_rowid(db_);
  Stmt base(db_, "INSERT INTO base_configs (sweep_id, yaml) VALUES (?, ?)");
  base.bind(1, id).bind(2, spec.base_yaml);
  base.step();
  int64_t idx = 0;
  for (const auto& t : spec.trials) {
    Stmt q(db_, "INSERT INTO trials (sweep_id, idx, point, seed, overrides, ranks, max_retries, updated, gpus) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, id).bind(2, idx++).bind(3, t.point.dump()).bind(4, t.seed).bind(5, json(t.overrides).dump());
    q.bind(6, spec.ranks).bind(7, spec.retries).bind(8, now).bind(9, spec.gpus);
    q.step();
  }
  tx.commit();
  return id;
}

json Store::sweep(int64_t id) {
  Stmt s(db_, "SELECT id, name, metric, axes, cancelled, created, spec FROM sweeps WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) throw NotFound("no sweep " + std::to_string(id));
  json out = {{"id", s.i64(0)}, {"name", s.text(1)}, {"metric", s.text(2)}, {"axes", parse_or(s.text(3), json::array())},
              {"created", s.f64(5)}};
  // Which end of the metric is better: the spec's direction (sweeps stored before it: the metric's default).
  const json spec = parse_or(s.text(6), json::object());
  const std::string direction = spec.is_object() ? spec.value("direction", std::string()) : std::string();
  out["direction"] = direction == "min" || direction == "max" ? direction : default_direction(s.text(2));
  const auto axes = out["axes"].get<std::vector<std::string>>();
  const bool cancelled = s.i64(4) != 0;
  std::vector<Capacity> live;
  {
    Stmt a(db_, "SELECT slots, gpus FROM agents WHERE last_seen >= ?");
    a.bind(1, wall_now() - agent_timeout_s_);
    while (a.step()) {
      const auto gpus = stored_gpus(a.text(1));
      live.push_back({a.i64(0), gpus ? static_cast<int64_t>(gpus->size()) : -1});
    }
  }
  Stmt q(db_, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE sweep_id = ? ORDER BY idx");
  q.bind(1, id);
  json trials = json::array();
  std::map<std::string, int64_t> counts;
  int64_t held = 0;
  while (q.step()) {
    json t = trial_row(q);
    t["label"] = point_label(t["point"], axes);
    if (t["state"] == "pending" && !t["held"].get<bool>()) {
      const std::string why = waiting_reason(t["ranks"], t["gpus"], live);
      if (!why.empty()) t["waiting"] = why;
    }
    ++counts[t["state"].get<std::string>()];
    held += t["held"].get<bool>() && (t["state"] == "pending" || t["state"] == "running") ? 1 : 0;
    trials.push_back(std::move(t));
  }
  out["state"] = sweep_state(cancelled, counts, static_cast<int64_t>(trials.size()));
  out["counts"] = counts;
  out["held"] = held;  // unfinished trials that are held
  out["trials"] = trials;
  return out;
}

json Store::sweeps() {
  json out = json::array();
  std::vector<int64_t> ids;
  {
    Stmt s(db_, "SELECT id FROM sweeps ORDER BY id");
    while (s.step()) ids.push_back(s.i64(0));
  }
  for (int64_t id : ids) {
    json j = sweep(id);
    j.erase("trials");
    out.push_back(j);
  }
  return out;
}

void Store::cancel_sweep(int64_t id) {
  Tx tx(db_);
  Stmt s(db_, "UPDATE sweeps SET cancelled = 1 WHERE id = ?");
  s.bind(1, id);
  s.step();
  if (sqlite3_changes(db_) == 0) throw NotFound("no sweep " + std::to_string(id));
  Stmt t(db_, "UPDATE trials SET state = 'cancelled', agent_id = NULL, lease_expires = NULL, gpu_ids = '[]', progress = '{}', updated = ? "
              "WHERE sweep_id = ? AND state IN ('pending', 'running')");
  t.bind(1, wall_now()).bind(2, id);
  t.step();
  tx.commit();
}

json Store::results(int64_t id) {
  json sw = sweep(id);
  const std::string metric = sw["metric"];
  struct Cell {
    json point;
    std::vector<double> values;
    std::vector<std::vector<double>> gates;
    int64_t seeds = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Cell> cells;
  for (const auto& t : sw["trials"]) {
    std::string key = t["point"].dump();
    if (!cells.count(key)) {
      order.push_back(key);
      cells[key].point = t["point"];
    }
    Cell& c = cells[key];
    ++c.seeds;
    if (t["state"] != "succeeded" || !t["result"].is_object()) continue;
    const json& r = t["result"];
    if (const auto v = metric_value(r, metric)) c.values.push_back(*v);
    if (r.contains("rsa_gates")) c.gates.push_back(r["rsa_gates"].get<std::vector<double>>());
  }
  json rows = json::array();
  for (const auto& key : order) {
    const Cell& c = cells[key];
    json row = {{"point", c.point}, {"label", point_label(c.point, sw["axes"].get<std::vector<std::string>>())},
                {"n", c.values.size()}, {"seeds", c.seeds}};
    if (!c.values.empty()) {
      double mean = 0;
      for (double v : c.values) mean += v;
      mean /= static_cast<double>(c.values.size());
      double var = 0;
      for (double v : c.values) var += (v - mean) * (v - mean);
      row["mean"] = mean;
      // One value has no spread to show: sd stays absent rather than a misleading 0.
      if (c.values.size() > 1) row["sd"] = std::sqrt(var / static_cast<double>(c.values.size() - 1));
    }
    if (!c.gates.empty()) {  // mean learned gate per layer over seeds
      std::vector<double> g(c.gates[0].size(), 0.0);
      for (const auto& v : c.gates)
        for (size_t i = 0; i < g.size() && i < v.size(); ++i) g[i] += v[i] / static_cast<double>(c.gates.size());
      row["rsa_gates"] = g;
    }
    rows.push_back(row);
  }
  // Rank the points with a mean by the sweep's direction (1 = best; ties share the rank) and name the best.
  const std::string direction = sw["direction"];
  std::vector<size_t> ranked;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].contains("mean")) ranked.push_back(i);
  }
  auto better = [&](size_t a, size_t b) {
    const double x = rows[a]["mean"], y = rows[b]["mean"];
    return direction == "max" ? x > y : x < y;
  };
  std::stable_sort(ranked.begin(), ranked.end(), better);
  for (size_t k = 0; k < ranked.size(); ++k) {
    const bool tie = k > 0 && !better(ranked[k - 1], ranked[k]);
    rows[ranked[k]]["rank"] = tie ? rows[ranked[k - 1]]["rank"].get<int64_t>() : static_cast<int64_t>(k + 1);
  }
  json out = {{"sweep", id}, {"name", sw["name"]}, {"state", sw["state"]}, {"metric", metric}, {"direction", direction},
              {"axes", sw["axes"]}, {"rows", rows}};
  if (!ranked.empty()) {
    const json& b = rows[ranked[0]];
    out["best"] = {{"point", b["point"]}, {"label", b["label"]}, {"mean", b["mean"]}, {"n", b["n"]}};
  }
  return out;
}

int64_t Store::register_agent(const std::string& name, int64_t slots, const json& gpus, const std::string& workdir) {
  if (gpus != "any") gpus_from_json(gpus, "agent '" + name + "'");  // throws on a malformed inventory
  Tx tx(db_);
  Stmt s(db_, "INSERT INTO agents (name, slots, gpus, workdir, last_seen) VALUES (?, ?, ?, ?, ?)");
  s.bind(1, name).bind(2, slots).bind(3, gpus.dump()).bind(4, workdir).bind(5, wall_now());
  s.step();
  int64_t id = sqlite3_last_insert_rowid(db_);
  tx.commit();
  return id;
}

void Store::agent_seen(int64_t agent) {
  Stmt s(db_, "UPDATE agents SET last_seen = ? WHERE id = ?");
  s.bind(1, wall_now()).bind(2, agent);
  s.step();
  if (sqlite3_changes(db_) == 0) throw NotFound("no agent " + std::to_string(agent));
}

json Store::agents() {
  Stmt a(db_, "SELECT id, name, slots, gpus, workdir, last_seen FROM agents ORDER BY id");
  const double since = wall_now() - agent_timeout_s_;
  json out = json::array();
  while (a.step()) {
    const auto gpus = stored_gpus(a.text(3));
    out.push_back({{"id", a.i64(0)}, {"name", a.text(1)}, {"slots", a.i64(2)}, {"gpus", gpus ? gpus_to_json(*gpus) : json("any")},
                   {"workdir", a.text(4)}, {"last_seen", a.f64(5)}, {"live", a.f64(5) >= since}});
  }
  return out;
}

json Store::lease(int64_t agent, int64_t free_slots, double lease_seconds, const GpuOffer& offer) {
  Tx tx(db_);
  std::string workdir;
  std::optional<std::vector<Gpu>> inventory;
  {
    Stmt a(db_, "SELECT workdir, gpus FROM agents WHERE id = ?");
    a.bind(1, agent);
    if (!a.step()) throw NotFound("no agent " + std::to_string(agent));
    workdir = a.text(0);
    inventory = stored_gpus(a.text(1));
  }
  // The GPUs this lease may hand out: offered, advertised, and held by none of the agent's running trials.
  std::vector<int> free;
  if (!offer.any) {
    std::set<int> advertised, busy;
    for (const auto& g : inventory.value_or(std::vector<Gpu>{})) advertised.insert(g.index);
    Stmt r(db_, "SELECT gpu_ids FROM trials WHERE state = 'running' AND agent_id = ?");
    r.bind(1, agent);
    while (r.step()) {
      for (const auto& g : parse_or(r.text(0), json::array())) busy.insert(g.get<int>());
    }
    for (int g : std::set<int>(offer.free.begin(), offer.free.end())) {
      if (advertised.count(g) && !busy.count(g)) free.push_back(g);
    }
  }
  Stmt q(db_, std::string("SELECT ") + kTrialColumns +
                  " FROM trials WHERE state = 'pending' AND held = 0 AND ranks <= ? AND gpus <= ? ORDER BY priority DESC, id LIMIT 1");
  q.bind(1, free_slots).bind(2, offer.any ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(free.size()));
  if (!q.step()) {
    tx.commit();
    return json(nullptr);
  }
  json t = trial_row(q);
  const std::vector<int> gpu_ids(free.begin(), free.begin() + (offer.any ? 0 : t["gpus"].get<int64_t>()));
  const int64_t id = t["id"], attempt = t["attempts"].get<int64_t>() + 1;
  std::string run_dir = t["run_dir"];
  // The first lease fixes the run directory; later leases (retries, requeues) reuse it, so a trial
  // resumes from its checkpoints (the work directories are on shared storage).
  if (run_dir.empty()) run_dir = workdir + "/sweep-" + std::to_string(t["sweep"].get<int64_t>()) + "/trial-" + std::to_string(id);
  const double now = wall_now();
  Stmt u(db_, "UPDATE trials SET state = 'running', agent_id = ?, attempts = ?, lease_expires = ?, run_dir = ?, updated = ?, "
              "gpu_ids = ? WHERE id = ?");
  u.bind(1, agent).bind(2, attempt).bind(3, now + lease_seconds).bind(4, run_dir).bind(5, now);
  u.bind(6, json(gpu_ids).dump()).bind(7, id);
  u.step();
  std::string base;
  {
    Stmt b(db_, "SELECT yaml FROM base_configs WHERE sweep_id = ?");
    b.bind(1, t["sweep"].get<int64_t>());
    if (b.step()) base = b.text(0);
  }
  tx.commit();
  t["attempt"] = attempt;
  t["attempts"] = attempt;
  t["run_dir"] = run_dir;
  t["state"] = "running";
  t["base_yaml"] = base;
  t["gpu_ids"] = gpu_ids;
  return t;
}

bool Store::heartbeat(int64_t trial, int64_t agent, int64_t attempt, const json& progress, double lease_seconds) {
  Tx tx(db_);
  Stmt u(db_, "UPDATE trials SET lease_expires = ?, progress = ?, updated = ? WHERE id = ? AND state = 'running' AND agent_id = ? AND attempts = ?");
  const double now = wall_now();
  u.bind(1, now + lease_seconds).bind(2, progress.dump()).bind(3, now).bind(4, trial).bind(5, agent).bind(6, attempt);
  u.step();
  bool held = sqlite3_changes(db_) > 0;
  if (held) record_curve_point(db_, trial, attempt, progress, now);
  Stmt a(db_, "UPDATE agents SET last_seen = ? WHERE id = ?");
  a.bind(1, now).bind(2, agent);
  a.step();
  tx.commit();
  return held;
}

json Store::report(int64_t trial, int64_t agent, int64_t attempt, const std::string& status, const json& result,
                   const std::string& error) {
  if (status != "succeeded" && status != "failed" && status != "requeue") {
    fail("report status must be succeeded, failed or requeue (got '{}')", status);
  }
  Tx tx(db_);
  Stmt q(db_, "SELECT state, agent_id, attempts, max_retries FROM trials WHERE id = ?");
  q.bind(1, trial);
  if (!q.step()) throw NotFound("no trial " + std::to_string(trial));
  const std::string state = q.text(0);
  const bool holder = parse_trial_state(state) == TrialState::kRunning && !q.null(1) && q.i64(1) == agent && q.i64(2) == attempt;
  const int64_t attempts = q.i64(2), max_retries = q.i64(3);
  json out = {{"trial", trial}, {"state", state}};
  if (!holder) {  // a repeated or stale report: nothing changes
    out["applied"] = false;
    tx.commit();
    return out;
  }
  const double now = wall_now();
  const TrialState next = status == "succeeded" ? TrialState::kSucceeded
                          : status == "requeue" || attempts <= max_retries ? TrialState::kPending
                                                                           : TrialState::kFailed;
  Stmt u(db_, "UPDATE trials SET state = ?, agent_id = NULL, lease_expires = NULL, gpu_ids = '[]', result = ?, error = ?, "
              "completions = completions + ?, updated = ? WHERE id = ?");
  u.bind(1, state_name(next)).bind(2, result.is_null() ? std::string() : result.dump()).bind(3, error);
  u.bind(4, int64_t{status == "succeeded" ? 1 : 0}).bind(5, now).bind(6, trial);
  u.step();
  if (is_finished(next)) {  // its last step and ETA would only mislead
    Stmt c(db_, "UPDATE trials SET progress = '{}' WHERE id = ?");
    c.bind(1, trial);
    c.step();
  }
  if (status == "requeue") {  // a checkpointed stop (agent leaving) does not count against the retries
    Stmt r(db_, "UPDATE trials SET attempts = attempts - 1 WHERE id = ?");
    r.bind(1, trial);
    r.step();
  }
  tx.commit();
  out["applied"] = true;
  out["state"] = state_name(next);
  return out;
}

int64_t Store::expire_leases(double now) {
  Tx tx(db_);
  Stmt u(db_, "UPDATE trials SET state = CASE WHEN attempts <= max_retries THEN 'pending' ELSE 'failed' END, "
              "error = 'lease expired (agent lost)', agent_id = NULL, lease_expires = NULL, gpu_ids = '[]', "
              "progress = CASE WHEN attempts <= max_retries THEN progress ELSE '{}' END, updated = ? "
              "WHERE state = 'running' AND lease_expires < ?");
  u.bind(1, now).bind(2, now);
  u.step();
  int64_t n = sqlite3_changes(db_);
  tx.commit();
  return n;
}

json Store::trial(int64_t id) {
  Stmt q(db_, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?");
  q.bind(1, id);
  if (!q.step()) throw NotFound("no trial " + std::to_string(id));
  return trial_row(q);
}

namespace {

void require(sqlite3* db, Store::Scope scope, int64_t id) {
  const bool sweep = scope == Store::Scope::kSweep;
  Stmt e(db, sweep ? "SELECT 1 FROM sweeps WHERE id = ?" : "SELECT 1 FROM trials WHERE id = ?");
  e.bind(1, id);
  if (!e.step()) throw NotFound(std::string(sweep ? "no sweep " : "no trial ") + std::to_string(id));
}

}  // namespace

json Store::curves(Scope scope, int64_t id) {
  require(db_, scope, id);
  Stmt q(db_, std::string("SELECT c.trial, c.attempt, c.step, c.loss, c.t FROM trial_curve c JOIN trials t ON t.id = c.trial WHERE ") +
                  (scope == Scope::kSweep ? "t.sweep_id" : "t.id") + " = ? ORDER BY c.trial, c.attempt, c.step");
  q.bind(1, id);
  json out = json::array();
  while (q.step()) {
    if (out.empty() || out.back()["trial"] != q.i64(0) || out.back()["attempt"] != q.i64(1)) {
      out.push_back({{"trial", q.i64(0)}, {"attempt", q.i64(1)}, {"step", json::array()}, {"loss", json::array()}, {"t", json::array()}});
    }
    json& c = out.back();
    c["step"].push_back(q.i64(2));
    c["loss"].push_back(q.f64(3));
    c["t"].push_back(q.f64(4));
  }
  return out;
}

int64_t Store::update_trials(Scope scope, int64_t id, const std::string& column, int64_t value) {
  Tx tx(db_);
  const bool sweep = scope == Scope::kSweep;
  require(db_, scope, id);
  Stmt u(db_, "UPDATE trials SET " + column + " = ?, updated = ? WHERE " + (sweep ? "sweep_id" : "id") + " = ?");
  u.bind(1, value).bind(2, wall_now()).bind(3, id);
  u.step();
  const int64_t n = sqlite3_changes(db_);
  tx.commit();
  return n;
}

int64_t Store::set_held(Scope scope, int64_t id, bool held) { return update_trials(scope, id, "held", held ? 1 : 0); }

int64_t Store::set_priority(Scope scope, int64_t id, int64_t priority) { return update_trials(scope, id, "priority", priority); }

json Store::counters() {
  Stmt q(db_, "SELECT id, completions, attempts, state FROM trials ORDER BY id");
  json out = json::array();
  while (q.step()) out.push_back({{"id", q.i64(0)}, {"completions", q.i64(1)}, {"attempts", q.i64(2)}, {"state", q.text(3)}});
  return out;
}

}  // namespace recur::coord
