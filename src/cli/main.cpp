// The `recur` binary: dispatches to a subcommand and turns every error into one clear line.
// Exit codes: 0 success, 1 error, 2 bad command line (see docs/cli.md).
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <H5public.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <c10/util/Exception.h>
#include <mpi.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/version.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const recur::cli::Argv&);
};

const Command kCommands[] = {
    {"shard", "turn a corpus into checksummed HDF5 shards; `shard verify`, `shard dump`", recur::cli::cmd_shard},
    {"gen", "write a synthetic dataset: `gen formal` (formal languages), `gen copy` (copy task)", recur::cli::cmd_gen},
    {"train", "train a model from a YAML config (+ --set overrides) into a run directory", recur::cli::cmd_train},
    {"eval", "evaluate a trained run on a split: BPC or perplexity, token accuracy", recur::cli::cmd_eval},
    {"sample", "continue a prompt with a trained run's model, streaming text (temperature, top-k, top-p, seed)",
     recur::cli::cmd_sample},
    {"ckpt", "list, verify and inspect checkpoints: `ckpt list RUN_DIR`, `ckpt verify CKPT`, `ckpt inspect CKPT`",
     recur::cli::cmd_ckpt},
    {"model", "describe a configured model: `model info` (parameter counts, FLOPs per token)", recur::cli::cmd_model},
    {"export", "write a trained run for other tools: model.safetensors or model.h5, config.json", recur::cli::cmd_export},
    {"config", "list the config keys (`config keys`) or print a resolved config (`config show`)", recur::cli::cmd_config},
    {"bench", "measure hot paths: `bench data`, `bench step`, `bench allreduce`, `bench ckpt`", recur::cli::cmd_bench},
    {"coordinator", "the ablation coordinator (HTTP + SQLite): schedules sweeps on agents", recur::cli::cmd_coordinator},
    {"sweep", "submit and follow sweeps: `sweep submit|status|results|cancel`", recur::cli::cmd_sweep},
    {"agent", "run trials leased from a coordinator", recur::cli::cmd_agent},
};

// Training frees and allocates the same large activations every step. glibc hands blocks of 32 MB and
// more straight back to the kernel (munmap) and maps fresh ones, so every step pays page faults to zero
// the same memory again: a fifth of a CPU Transformer-XL step at T = M = 512 (perf; docs/benchmarks.md).
// The compute commands keep freed memory in the process instead (no mmap'd blocks, no trimming below
// 2 GB of free top), so a step reuses the last step's pages. RECUR_CPU_MALLOC=system keeps glibc's defaults.
void keep_freed_memory(const std::string& command) {
#ifdef __GLIBC__
  if (command != "train" && command != "eval" && command != "bench" && command != "sample") return;
  const char* setting = std::getenv("RECUR_CPU_MALLOC");
  if (setting != nullptr && std::strcmp(setting, "system") == 0) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#else
  (void)command;
#endif
}

void print_help() {
  std::printf(
      "usage: recur <command> [options]\n\n"
      "Recur trains recurrence-enhanced transformer language models (RSA-XL, RSA-BRT, R-Transformer,\n"
      "the recurrent transformer and their baselines) from sharded HDF5 datasets.\n\ncommands:\n");
  for (const auto& c : kCommands) std::printf("  %-10s %s\n", c.name, c.summary);
  std::printf(
      "\n`recur <command> --help` explains a command and every option.\n"
      "  --version   print the versions of Recur and its libraries\n"
      "Exit codes: 0 success, 1 error (the message says what and where), 2 bad command line.\n");
}

void print_version() {
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string mpi_line(mpi, static_cast<size_t>(len));
  mpi_line = mpi_line.substr(0, mpi_line.find_first_of(",\n"));
  std::printf("%s\nLibTorch %s\nHDF5 %u.%u.%u\n%s\nNCCL %s\n", recur::version_string().c_str(), TORCH_VERSION, maj, min,
              rel, mpi_line.c_str(),
#ifdef RECUR_HAVE_NCCL
              "compiled in"
#else
              "not compiled in"
#endif
  );
}

// The config a command line runs with: --config FILE, else the RUN_DIR/config.yaml of --run-dir; or "".
std::string config_file(const recur::cli::Argv& args) {
  std::string run_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) return args[i].substr(9);
    if (args[i] == "--run-dir" && i + 1 < args.size()) run_dir = args[i + 1] + "/config.yaml";
    if (args[i].rfind("--run-dir=", 0) == 0) run_dir = args[i].substr(10) + "/config.yaml";
  }
  return run_dir;
}

// One line for an error LibTorch raised (its message carries a C++ backtrace after the first line),
// saying what to look at: the sizes of the config for memory, the vocabulary for an index.
std::string torch_error(const std::string& message, const recur::cli::Argv& args) {
  const std::string line = message.substr(0, message.find('\n'));
  const std::string config = config_file(args);
  const std::string in_config = config.empty() ? "" : " in " + config + " and its --set overrides";
  if (line.find("allocate memory") != std::string::npos || line.find("out of memory") != std::string::npos) {
    return "out of memory: " + line + "; check the sizes" + in_config +
           " (model.d_model, model.d_inner, model.n_layer, train.batch_size, train.tgt_len, model.mem_len)";
  }
  if (line.find("index out of range") != std::string::npos) {
    return "LibTorch: " + line + ": a token id outside the model's vocabulary? (the shards of data.path against its " +
           "manifest's vocab, model.vocab_size" + (config.empty() ? "" : " in " + config) + ")";
  }
  return "LibTorch: " + line + (config.empty() ? "" : " (config " + config + ")");
}

// Leaves without the libraries' exit handlers: after an I/O failure HDF5 may still hold a file it
// could not close, and its shutdown would crash on it. Everything of ours is already on disk.
[[noreturn]] void exit_error(const char* command, const std::string& line) {
  std::fprintf(stderr, "recur %s: error: %s\n", command, line.c_str());
  std::fflush(nullptr);
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries results (JSON lines, dumps) that scripts read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("recur"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$: %v");
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    print_version();
    return 0;
  }
  std::string name = argv[1];
  keep_freed_memory(name);
  recur::cli::Argv args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(args);
    } catch (const recur::UsageError& e) {
      std::fprintf(stderr, "recur %s: %s\n(see `recur %s --help`)\n", c.name, e.what(), c.name);
      return 2;
    } catch (const c10::Error& e) {  // out of memory included (c10::OutOfMemoryError)
      exit_error(c.name, torch_error(e.what_without_backtrace(), args));
    } catch (const std::bad_alloc&) {
      exit_error(c.name, torch_error("out of memory (std::bad_alloc)", args));
    } catch (const std::exception& e) {
      exit_error(c.name, e.what());
    }
  }
  std::vector<std::string> names;
  for (const auto& c : kCommands) names.push_back(c.name);
  const std::string near = recur::cli::closest(name, names);
  std::fprintf(stderr, "recur: unknown command '%s'%s (see `recur --help`)\n", name.c_str(),
               near.empty() ? "" : ("; did you mean " + near + "?").c_str());
  return 2;
}
