// `recur coordinator`, `recur sweep ...` and `recur agent`: the ablation coordinator and its clients.
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "coord/agent.h"
#include "coord/fit.h"
#include "coord/http.h"
#include "coord/store.h"
#include "coord/sweep.h"
#include "core/error.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/process.h"
#include "data/dataset.h"
#include "train/run_check.h"

namespace recur::cli {
namespace {

using nlohmann::json;

void client_options(Args& args) {
  args.option("coordinator", "URL", "coordinator address, e.g. http://127.0.0.1:8470 (default: $RECUR_COORDINATOR)")
      .option("token", "T", "access token (default: --token-file, then $RECUR_TOKEN)")
      .option("token-file", "FILE", "file holding the token (the coordinator writes STATE.db.token)");
}

std::string client_url(const Args& args) {
  if (args.has("coordinator")) return args.get("coordinator");
  if (const char* e = std::getenv("RECUR_COORDINATOR")) return e;
  throw UsageError("no coordinator: give --coordinator URL or set RECUR_COORDINATOR");
}

std::string client_token(const Args& args) {
  std::string t;
  if (args.has("token")) t = args.get("token");
  else if (args.has("token-file")) t = read_file(expand_user(args.get("token-file")));
  else if (const char* e = std::getenv("RECUR_TOKEN")) t = e;
  else throw UsageError("no token: give --token, --token-file or set RECUR_TOKEN");
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

json call(const Args& args, const std::string& method, const std::string& target, const std::string& body = "") {
  auto r = coord::http_request(client_url(args), method, target, client_token(args), body);
  if (r.status != 200) {
    std::string msg = r.body.is_object() && r.body.contains("error") ? r.body["error"].get<std::string>() : r.body.dump();
    fail("coordinator: {} {} -> HTTP {}: {}", method, target, r.status, msg);
  }
  return r.body;
}

std::string fmt_value(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Every trial's config against its model, evaluation settings included (train::check_run_config), so
// that a trial cannot fail at its first evaluation after hours of training. Trials that differ only in
// their seed build the same model: each distinct model is built once. The vocabulary comes from the
// dataset when data.path is readable here, else model.vocab_size, else 256 (the model's structure does
// not depend on it).
void check_trials(const coord::SweepSpec& spec, const std::string& path) {
  std::set<std::string> seen;
  for (const auto& t : spec.trials) {
    std::vector<std::string> key;
    for (const auto& o : t.overrides) {
      if (o.rfind("train.seed=", 0) != 0) key.push_back(o);
    }
    const std::string k = fmt::format("{}", fmt::join(key, "\n"));
    if (!seen.insert(k).second) continue;
    try {
      Config c = Config::parse(spec.base_yaml, spec.name + " (base config)", t.overrides);
      int64_t vocab = c.get_int("model.vocab_size") > 0 ? c.get_int("model.vocab_size") : 256;
      const std::string data = c.has("data.path") ? c.get_string("data.path") : "";
      if (c.get_int("model.vocab_size") == 0 && !data.empty() && path_exists(data + "/manifest.json")) {
        vocab = static_cast<int64_t>(data::Dataset::open(data, /*verify_checksums=*/false)->manifest().vocab.size);
      }
      train::check_run_config(c, vocab);
    } catch (const Error& e) {
      fail("{}: trial {} (seed {}): {}", path, coord::point_label(t.point, spec.axes), t.seed, e.what());
    }
  }
}

int sweep_submit(const Argv& argv) {
  Args args("recur sweep submit SPEC.yaml [--coordinator URL] [--token T]",
            "Expand a sweep spec (base config x axes x seeds), check every trial's config, and submit it.\n"
            "Prints the new sweep's id on its last line.");
  args.positional("spec", "sweep spec (YAML; see configs/sweeps/)").flag("dry-run", "expand and check only; print the trials");
  client_options(args);
  if (!args.parse(argv)) return 0;
  coord::SweepSpec spec = coord::load_sweep_spec(args.get("spec"));
  check_trials(spec, args.get("spec"));
  if (args.get_flag("dry-run")) {
    for (const auto& t : spec.trials) {
      std::printf("%s, seed %lld\n", coord::point_label(t.point, spec.axes).c_str(), static_cast<long long>(t.seed));
    }
    std::printf("%zu trials\n", spec.trials.size());
    return 0;
  }
  json r = call(args, "POST", "/api/sweeps", spec.to_json().dump());
  std::fprintf(stderr, "sweep '%s': %zu trials submitted\n", spec.name.c_str(), spec.trials.size());
  std::printf("%lld\n", static_cast<long long>(r["id"].get<int64_t>()));
  return 0;
}

int sweep_status(const Argv& argv) {
  Args args("recur sweep status [ID] [--json]", "Every sweep's state, or one sweep's state and its trials' states and progress.");
  args.positional("id", "sweep id (optional: without it, every sweep)", /*required=*/false)
      .flag("json", "print the JSON the coordinator returns");
  client_options(args);
  if (!args.parse(argv)) return 0;
  if (!args.has("id")) {
    json all = call(args, "GET", "/api/sweeps");
    if (args.get_flag("json")) {
      std::printf("%s\n", all.dump(2).c_str());
      return 0;
    }
    std::printf("%-5s %-10s %-8s %s\n", "id", "state", "trials", "name");
    for (const auto& s : all) {
      int64_t n = 0;
      for (const auto& [k, v] : s["counts"].items()) n += v.get<int64_t>();
      std::printf("%-5lld %-10s %-8lld %s\n", static_cast<long long>(s["id"].get<int64_t>()), s["state"].get<std::string>().c_str(),
                  static_cast<long long>(n), s["name"].get<std::string>().c_str());
    }
    // The live agents (seen within the lease time) and their GPUs; a coordinator from before GPU
    // placement has no such list.
    const auto agents = coord::http_request(client_url(args), "GET", "/api/agents", client_token(args));
    if (agents.status != 200 || !agents.body.is_array()) return 0;
    std::printf("\nagents\n");
    for (const auto& a : agents.body) {
      if (!a["live"].get<bool>()) continue;
      std::string gpus;
      if (a["gpus"].is_string()) {
        gpus = "GPUs placed by Slurm";
      } else {
        for (const auto& g : a["gpus"]) {
          std::string what = g.value("name", "");
          if (g.value("memory_mib", int64_t{0}) > 0) what += fmt::format("{}{} MiB", what.empty() ? "" : ", ", g["memory_mib"].get<int64_t>());
          gpus += fmt::format("{}{}{}", gpus.empty() ? "" : "; ", g["index"].get<int64_t>(), what.empty() ? "" : " (" + what + ")");
        }
        gpus = fmt::format("{} GPU{}{}", a["gpus"].size(), a["gpus"].size() == 1 ? "" : "s", gpus.empty() ? "" : ": " + gpus);
      }
      std::printf("  agent %-4lld %-20s %lld slots, %s\n", static_cast<long long>(a["id"].get<int64_t>()), a["name"].get<std::string>().c_str(),
                  static_cast<long long>(a["slots"].get<int64_t>()), gpus.c_str());
    }
    return 0;
  }
  json s = call(args, "GET", "/api/sweeps/" + args.get("id"));
  if (args.get_flag("json")) {
    std::printf("%s\n", s.dump(2).c_str());
    return 0;
  }
  const int64_t held = s.value("held", int64_t{0});
  std::printf("sweep %lld '%s': %s%s\n", static_cast<long long>(s["id"].get<int64_t>()), s["name"].get<std::string>().c_str(),
              s["state"].get<std::string>().c_str(), held > 0 ? fmt::format(" ({} trials held)", held).c_str() : "");
  const std::string metric = s["metric"];
  for (const auto& t : s["trials"]) {
    const json& p = t["progress"];
    // A finished trial shows its final metric; only unfinished ones show progress.
    const bool finished = coord::is_finished(coord::parse_trial_state(t["state"]));
    std::string prog = !finished && p.contains("step")
                           ? fmt::format("step {}/{} loss {:.4f}", p["step"].get<int64_t>(), p.value("steps", int64_t{0}), p.value("loss", 0.0))
                           : "";
    if (t["state"] == "succeeded") {
      const auto v = coord::metric_value(t["result"], metric);
      prog = v ? fmt::format("{} {:.6g}", metric, *v) : metric + " missing from eval.json";
    }
    if (!finished && p.contains("slurm_job")) prog += fmt::format(" [slurm job {} {}]", p["slurm_job"].get<std::string>(), p.value("slurm_state", ""));
    if (t["state"] == "running" && !t.value("gpu_ids", json::array()).empty()) {
      prog += fmt::format(" [GPUs {}]", fmt::join(t["gpu_ids"].get<std::vector<int>>(), ","));
    }
    if (t.contains("waiting")) prog += "(waiting: " + t["waiting"].get<std::string>() + ")";
    std::string flags;
    if (t.value("held", false)) flags += " held";
    if (t.value("priority", int64_t{0}) != 0) flags += fmt::format(" priority {}", t["priority"].get<int64_t>());
    std::printf("  trial %-5lld %-10s attempts %lld%s  %s, seed %lld  %s\n", static_cast<long long>(t["id"].get<int64_t>()),
                t["state"].get<std::string>().c_str(), static_cast<long long>(t["attempts"].get<int64_t>()), flags.c_str(),
                t.value("label", t["point"].dump()).c_str(), static_cast<long long>(t["seed"].get<int64_t>()), prog.c_str());
  }
  return 0;
}

// A CSV field: quoted when it holds a comma, a quote or a line break (labels hold commas).
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// One row per trial: what it ran, where, what it scored and what it cost. GPU-hours are the trial's
// GPUs times its training time (train_seconds: every attempt up to the checkpoint it finished from).
int sweep_trials(const Argv& argv) {
  Args args("recur sweep trials ID [--csv FILE]",
            "Every trial of a sweep: trial id, point, seed, state, run directory, the sweep's metric, steps,\n"
            "wall time (train_seconds, summed over a resumed trial's attempts) and GPU-hours (GPUs x wall time).\n"
            "Blank where a trial has no result yet.");
  args.positional("id", "sweep id").option("csv", "FILE", "write the table as CSV to FILE (written atomically) instead");
  client_options(args);
  if (!args.parse(argv)) return 0;
  if (!args.has("id")) throw UsageError("give the sweep id");
  const json s = call(args, "GET", "/api/sweeps/" + std::to_string(args.get_int("id")));
  const std::string metric = s["metric"];
  const std::vector<std::string> head = {"trial", "point", "seed", "state", "run_dir", metric, "steps", "wall_seconds", "gpu_hours"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : s["trials"]) {
    const json& r = t["result"];
    std::string value, steps, wall, gpu_hours;
    if (r.is_object()) {
      if (const auto v = coord::metric_value(r, metric)) value = fmt::format("{:.6g}", *v);
      if (r.contains("step") && r["step"].is_number_integer()) steps = std::to_string(r["step"].get<int64_t>());
      if (r.contains("train_seconds") && r["train_seconds"].is_number()) {
        const double secs = r["train_seconds"].get<double>();
        wall = fmt::format("{:.1f}", secs);
        gpu_hours = fmt::format("{:.4f}", secs * static_cast<double>(t.value("gpus", int64_t{0})) / 3600.0);
      }
    }
    rows.push_back({std::to_string(t["id"].get<int64_t>()), t.value("label", t["point"].dump()), std::to_string(t["seed"].get<int64_t>()),
                    t["state"], t["run_dir"], value, steps, wall, gpu_hours});
  }
  if (args.has("csv")) {
    auto line = [](const std::vector<std::string>& row) {
      std::string l;
      for (size_t i = 0; i < row.size(); ++i) l += (i ? "," : "") + csv_field(row[i]);
      return l + "\n";
    };
    std::string out = line(head);
    for (const auto& row : rows) out += line(row);
    write_file_atomic(expand_user(args.get("csv")), out);
    std::fprintf(stderr, "%zu trials written to %s\n", rows.size(), args.get("csv").c_str());
    return 0;
  }
  std::printf("%s\n", fmt::format("{}", fmt::join(head, " | ")).c_str());
  for (const auto& row : rows) std::printf("%s\n", fmt::format("{}", fmt::join(row, " | ")).c_str());
  return 0;
}

// The fits as a table (or CSV): one line per series, intervals as [lo, hi] (blank without replicates).
void write_fit_table(const json& fit, const std::string& f, std::ostringstream& out) {
  const char* sep = f == "csv" ? "," : " | ";
  auto ci = [&](const json& i) {
    if (i.is_null()) return std::string(f == "csv" ? "," : "");
    return f == "csv" ? fmt::format("{:.6g},{:.6g}", i[0].get<double>(), i[1].get<double>())
                      : fmt::format("[{:.4g}, {:.4g}]", i[0].get<double>(), i[1].get<double>());
  };
  out << "\n";
  if (f == "table") out << "fit: " << fit["model"].get<std::string>() << ", x = " << fit["x"].get<std::string>() << "\n\n";
  const std::vector<std::string> head = f == "csv" ? std::vector<std::string>{"series", "x", "n", "a", "a_lo", "a_hi", "alpha", "alpha_lo",
                                                                              "alpha_hi", "c", "c_lo", "c_hi", "rss"}
                                                   : std::vector<std::string>{"series", "x", "n", "a", "a 95%", "alpha", "alpha 95%", "c",
                                                                              "c 95%", "rss"};
  for (size_t i = 0; i < head.size(); ++i) out << (i ? sep : "") << head[i];
  out << "\n";
  if (f == "table") {
    for (size_t i = 0; i < head.size(); ++i) out << (i ? " | " : "") << "---";
    out << "\n";
  }
  for (const auto& row : fit["fits"]) {
    std::string series = row["series"];
    if (f == "csv") series = "\"" + series + "\"";
    out << series << sep << row["x"].get<std::string>() << sep << row["n"].get<int64_t>() << sep
        << fmt::format("{:.6g}", row["a"].get<double>()) << sep << ci(row["a_ci"]) << sep << fmt::format("{:.4g}", row["alpha"].get<double>())
        << sep << ci(row["alpha_ci"]) << sep << fmt::format("{:.6g}", row["c"].get<double>()) << sep << ci(row["c_ci"]) << sep
        << fmt::format("{:.3g}", row["rss"].get<double>()) << "\n";
  }
  if (f == "table" && !fit["skipped"].empty()) {
    std::string names;
    for (const auto& n : fit["skipped"]) names += (names.empty() ? "" : "; ") + n.get<std::string>();
    out << "\nnot fitted (no succeeded trials yet): " << names << "\n";
  }
}

int sweep_results(const Argv& argv) {
  Args args("recur sweep results ID [--format table|csv|json] [--plot DIR] [--fit power]",
            "Per axis point: the metric's mean and sd over the succeeded seeds (sd blank for one seed), its rank\n"
            "by the sweep's direction (1 = best; the best point is named below the table), and the learned RSA\n"
            "gates. --fit power fits L = a*x^(-alpha) + c per series (a value of every axis but the\n"
            "last, e.g. a model) along the last axis, with bootstrap 95% intervals from resampling the seeds at\n"
            "each x. x is the trials' parameter count (eval.json) when it varies along a model axis (or a\n"
            "non-numeric one), else the last axis' value.");
  args.positional("id", "sweep id")
      .option("format", "F", "table, csv or json", "table")
      .option("plot", "DIR", "also write the metric-vs-axis plot as PNG and SVG into DIR (python3-matplotlib)")
      .option("fit", "MODEL", "fit a scaling law per series: power (L = a*x^(-alpha) + c)")
      .option("x", "X", "--fit's x: auto, parameters (eval.json's count) or axis (the last axis' value)", "auto")
      .option("bootstrap", "N", "--fit's bootstrap resamples for the 95% intervals", "1000");
  client_options(args);
  if (!args.parse(argv)) return 0;
  if (!args.has("id")) throw UsageError("give the sweep id");
  const std::string f = args.get("format");
  if (f != "table" && f != "csv" && f != "json") throw UsageError("--format must be table, csv or json");
  if (args.has("fit") && args.get("fit") != "power") throw UsageError("--fit must be power");
  const std::string x_source = args.get("x");
  if (x_source != "auto" && x_source != "parameters" && x_source != "axis") throw UsageError("--x must be auto, parameters or axis");
  const int64_t resamples = args.get_int("bootstrap");
  if (resamples < 0) throw UsageError("--bootstrap must be >= 0");
  json r = call(args, "GET", "/api/sweeps/" + args.get("id") + "/results");
  if (args.has("fit")) r["fit"] = coord::fit_sweep(call(args, "GET", "/api/sweeps/" + args.get("id")), x_source, resamples);
  if (args.has("plot")) {
    const std::string dir = expand_user(args.get("plot"));
    make_dirs(dir);
    const std::string path = dir + "/sweep-" + args.get("id") + "-results.json";
    write_file_atomic(path, r.dump(2) + "\n");
    const char* root = std::getenv("RECUR_ROOT");
    const std::string script = std::string(root ? root : RECUR_SOURCE_ROOT) + "/scripts/plot_sweep.py";
    // An argument vector, no shell: DIR and RECUR_ROOT may hold any character.
    const ProcessResult plot = run_process({"/usr/bin/python3", script, path, dir});
    std::fputs(plot.output.c_str(), stderr);
    if (plot.exit_code != 0) {
      fail("plotting failed: /usr/bin/python3 {} {} {} exited {} (is python3-matplotlib installed? scripts/setup installs it)",
           script, path, dir, plot.exit_code);
    }
  }
  if (f == "json") {
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  std::vector<std::string> axes = r["axes"].get<std::vector<std::string>>();
  const std::string metric = r["metric"];
  std::ostringstream out;
  const char* sep = f == "csv" ? "," : " | ";
  for (const auto& a : axes) out << a << sep;
  out << metric << "_mean" << sep << metric << "_sd" << sep << "n" << sep << "rank" << sep << "rsa_gates\n";
  if (f == "table") {
    for (size_t i = 0; i < axes.size() + 5; ++i) out << (i ? " | " : "") << "---";
    out << "\n";
  }
  for (const auto& row : r["rows"]) {
    for (const auto& a : axes) out << fmt_value(row["point"].value(a, json(""))) << sep;
    out << (row.contains("mean") ? fmt::format("{:.6g}", row["mean"].get<double>()) : "") << sep
        << (row.contains("sd") ? fmt::format("{:.3g}", row["sd"].get<double>()) : "") << sep << row["n"].get<int64_t>() << sep
        << (row.contains("rank") ? std::to_string(row["rank"].get<int64_t>()) : "") << sep;
    if (row.contains("rsa_gates")) {
      std::string g;
      for (const auto& v : row["rsa_gates"]) g += (g.empty() ? "" : " ") + fmt::format("{:.3f}", v.get<double>());
      out << (f == "csv" ? "\"" + g + "\"" : g);
    }
    out << "\n";
  }
  if (f == "table" && r.contains("best")) {
    out << "\nbest (" << metric << ", " << (r.value("direction", "min") == "max" ? "higher" : "lower")
        << " is better): " << r["best"]["label"].get<std::string>() << " = "
        << fmt::format("{:.6g}", r["best"]["mean"].get<double>()) << "\n";
  }
  if (r.contains("fit")) write_fit_table(r["fit"], f, out);
  std::printf("%s", out.str().c_str());
  return 0;
}

int sweep_cancel(const Argv& argv) {
  Args args("recur sweep cancel ID", "Cancel a sweep: pending trials are dropped; agents stop running ones at their next heartbeat.");
  args.positional("id", "sweep id");
  client_options(args);
  if (!args.parse(argv)) return 0;
  if (!args.has("id")) throw UsageError("give the sweep id");
  json s = call(args, "POST", "/api/sweeps/" + args.get("id") + "/cancel");
  std::printf("sweep %s: %s\n", args.get("id").c_str(), s["state"].get<std::string>().c_str());
  return 0;
}

// hold, release and priority: of every trial of sweep ID, or of one trial with --trial.
int sweep_operation(const std::string& op, const Argv& argv) {
  const bool priority = op == "priority";
  const std::string usage = "recur sweep " + op + " ID" + (priority ? " N" : "") + " | recur sweep " + op + " --trial T" + (priority ? " N" : "");
  const std::string what =
      op == "hold"      ? "Hold a sweep's trials, or one trial: a held trial is never handed to an agent or to Slurm. A running\n"
                          "trial finishes; if it is requeued, it waits. `recur sweep release` lets them run again."
      : op == "release" ? "Release held trials (a sweep's, or one with --trial): they are leased again as usual."
                        : "Set the priority of a sweep's trials, or of one trial: pending trials of higher priority are leased\n"
                          "first, then the oldest. The default is 0; negative values run after everything else.";
  Args args(usage, what);
  args.positional("id", "sweep id (with --trial: a trial id, as `recur sweep status ID` lists them)");
  if (priority) args.positional("n", "the priority, an integer (higher runs first)");
  args.flag("trial", "ID is a trial, not a sweep");
  client_options(args);
  if (!args.parse(argv)) return 0;
  if (!args.has("id")) throw UsageError("give the " + std::string(args.get_flag("trial") ? "trial" : "sweep") + " id");
  const bool trial = args.get_flag("trial");
  std::string body;
  if (priority) {
    if (!args.has("n")) throw UsageError("give the priority N");
    body = json{{"priority", args.get_int("n")}}.dump();
  }
  const std::string id = std::to_string(args.get_int("id"));
  json r = call(args, "POST", std::string(trial ? "/api/trials/" : "/api/sweeps/") + id + "/" + op, body);
  if (trial) {
    std::printf("trial %s: %s%s, priority %lld\n", id.c_str(), r["state"].get<std::string>().c_str(), r["held"].get<bool>() ? ", held" : "",
                static_cast<long long>(r["priority"].get<int64_t>()));
  } else {
    std::printf("sweep %s: %s, %lld trials held\n", id.c_str(), r["state"].get<std::string>().c_str(),
                static_cast<long long>(r["held"].get<int64_t>()));
  }
  return 0;
}

}  // namespace

int cmd_coordinator(const Argv& argv) {
  Args args("recur coordinator --state FILE.db [--listen HOST:PORT]",
            "The ablation coordinator: an HTTP + JSON service that holds sweeps and trials in SQLite (WAL),\n"
            "leases trials to agents, requeues trials whose agent stops sending heartbeats, and collects\n"
            "results. The access token is created at first start in FILE.db.token (mode 0600).");
  args.required("state", "FILE.db", "state database (created if missing)")
      .option("listen", "HOST:PORT", "address to listen on (loopback unless told otherwise; port 0 = any free port)", "127.0.0.1:8470")
      .option("lease-seconds", "S", "requeue a trial after this long without a heartbeat", "30")
      .option("port-file", "FILE", "write the bound port here once listening")
      .option("executor", "NAME", "agents (trials go to `recur agent`s), or slurm (the coordinator submits each trial with sbatch)", "agents")
      .option("slurm-workdir", "DIR", "slurm executor: run directories (shared storage)")
      .list("sbatch-arg", "ARG", "slurm executor: extra sbatch argument, e.g. --sbatch-arg=--partition=gpu");
  if (!args.parse(argv)) return 0;
  coord::ServerOptions o;
  o.state = expand_user(args.get("state"));
  o.listen = args.get("listen");
  o.lease_seconds = args.get_double("lease-seconds");
  if (o.lease_seconds <= 0) throw UsageError("--lease-seconds must be positive");
  if (args.has("port-file")) o.port_file = args.get("port-file");
  const std::string executor = args.get("executor");
  if (executor != "agents" && executor != "slurm") throw UsageError("--executor must be agents or slurm");
  if (executor == "slurm") {
    if (!args.has("slurm-workdir")) throw UsageError("--executor slurm needs --slurm-workdir DIR (shared storage)");
    o.slurm = true;
    o.slurm_workdir = expand_user(args.get("slurm-workdir"));
    const char* root = std::getenv("RECUR_ROOT");
    o.recur_root = root ? root : RECUR_SOURCE_ROOT;
    o.sbatch_args = args.get_list("sbatch-arg");
  }
  return coord::run_coordinator(o);
}

int cmd_sweep(const Argv& argv) {
  if (!argv.empty() && argv[0] == "submit") return sweep_submit(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "status") return sweep_status(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "results") return sweep_results(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "trials") return sweep_trials(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "cancel") return sweep_cancel(Argv(argv.begin() + 1, argv.end()));
  for (const char* op : {"hold", "release", "priority"}) {
    if (!argv.empty() && argv[0] == op) return sweep_operation(op, Argv(argv.begin() + 1, argv.end()));
  }
  Args args("recur sweep {submit,status,results,trials,cancel,hold,release,priority} ...",
            "Submit and follow sweeps on a coordinator; hold, release and order their trials.");
  return subcommand_error("sweep", args, argv, {"submit", "status", "results", "trials", "cancel", "hold", "release", "priority"});
}

int cmd_agent(const Argv& argv) {
  Args args("recur agent --coordinator URL --token T --workdir DIR [--slots N] [--gpus 0,1,...]",
            "Run trials for a coordinator: lease trials that fit in the free slots and GPUs, run `recur train`\n"
            "(mpirun for multi-rank trials) with the trial's own GPUs, send heartbeats and progress, report\n"
            "results. SIGTERM: running trials checkpoint and are requeued.");
  client_options(args);
  args.option("slots", "N", "ranks this agent runs at once (default: one per GPU, at least 1); each rank gets cores/N threads "
                            "(OMP_NUM_THREADS, unless set)")
      .option("gpus", "LIST", "GPU ids to hand to trials, e.g. 0,1 (default: every GPU nvidia-smi lists); each trial gets "
                              "its own (CUDA_VISIBLE_DEVICES)")
      .required("workdir", "DIR", "run directories go here (shared storage, so a requeued trial resumes anywhere)")
      .option("name", "NAME", "agent name (default hostname:pid)")
      .option("heartbeat", "S", "seconds between heartbeats", "2")
      .flag("exit-when-idle", "leave once no sweep has pending or running trials");
  if (!args.parse(argv)) return 0;
  coord::AgentOptions o;
  o.url = client_url(args);
  o.token = client_token(args);
  if (args.has("slots")) {
    o.slots = args.get_int("slots");
    if (o.slots < 1) throw UsageError("--slots must be at least 1");
  }
  if (args.has("gpus")) {
    o.gpus.emplace();
    for (double g : args.get_double_list("gpus")) {
      if (g < 0 || g != static_cast<double>(static_cast<int>(g))) throw UsageError(fmt::format("--gpus: '{}' is not a GPU id", g));
      o.gpus->push_back(static_cast<int>(g));
    }
  }
  o.workdir = args.get("workdir");
  if (args.has("name")) o.name = args.get("name");
  o.heartbeat_s = args.get_double("heartbeat");
  if (!(o.heartbeat_s >= 0.05 && o.heartbeat_s <= 3600)) {
    throw UsageError(fmt::format("--heartbeat: {} is not between 0.05 and 3600 seconds", args.get("heartbeat")));
  }
  o.exit_when_idle = args.get_flag("exit-when-idle");
  return coord::run_agent(o);
}

}  // namespace recur::cli
