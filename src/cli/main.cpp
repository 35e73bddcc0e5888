// The `recur` binary: dispatches to a subcommand and turns every error into one clear line.
// Exit codes: 0 success, 1 error, 2 bad command line (see docs/cli.md).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <H5public.h>
#include <mpi.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

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
    {"ckpt", "list, verify and inspect checkpoints: `ckpt list RUN_DIR`, `ckpt verify CKPT`, `ckpt inspect CKPT`",
     recur::cli::cmd_ckpt},
    {"model", "describe a configured model: `model info` (parameter counts, FLOPs per token)", recur::cli::cmd_model},
    {"config", "list the config keys (`config keys`) or print a resolved config (`config show`)", recur::cli::cmd_config},
    {"bench", "measure hot paths: `bench data`, `bench step`, `bench allreduce`, `bench ckpt`", recur::cli::cmd_bench},
    {"coordinator", "the ablation coordinator (HTTP + SQLite): schedules sweeps on agents", recur::cli::cmd_coordinator},
    {"sweep", "submit and follow sweeps: `sweep submit|status|results|cancel`", recur::cli::cmd_sweep},
    {"agent", "run trials leased from a coordinator", recur::cli::cmd_agent},
};

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
  recur::cli::Argv args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(args);
    } catch (const recur::UsageError& e) {
      std::fprintf(stderr, "recur %s: %s\n(see `recur %s --help`)\n", c.name, e.what(), c.name);
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "recur %s: error: %s\n", c.name, e.what());
      // Leave without the libraries' exit handlers: after an I/O failure HDF5 may still hold a file it
      // could not close, and its shutdown would crash on it. Everything of ours is already on disk.
      std::fflush(nullptr);
      std::_Exit(1);
    }
  }
  std::fprintf(stderr, "recur: unknown command '%s' (see `recur --help`)\n", name.c_str());
  return 2;
}
