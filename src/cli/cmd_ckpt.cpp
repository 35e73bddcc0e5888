// `recur ckpt list|verify|inspect`: look at a run's checkpoints without loading a model.
// Invariant: nothing here builds a model or resolves train.device, so a run trained on GPUs is
// listed, verified and inspected on a CPU-only machine.
#include <cstdio>

#include "checkpoint/checkpoint.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur::cli {
namespace {

uint64_t dir_bytes(const std::string& dir) {
  uint64_t total = 0;
  auto manifest = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  for (const auto& [name, info] : manifest["files"].items()) total += info.value("size", uint64_t{0});
  return total;
}

}  // namespace

int cmd_ckpt(const Argv& argv) {
  std::string sub = argv.empty() ? "" : argv[0];
  Argv rest(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  if (sub == "list") {
    Args args("recur ckpt list RUN_DIR", "List a run's checkpoints: step, tokens, loss, size, and whether they verify.");
    args.positional("RUN_DIR", "run directory");
    if (!args.parse(rest)) return 0;
    const std::string run_dir = args.get("RUN_DIR");
    if (!is_directory(run_dir)) fail("{}: no such run directory", run_dir);
    auto all = checkpoint::list_checkpoints(run_dir);
    if (all.empty()) std::printf("%s: no checkpoints\n", args.get("RUN_DIR").c_str());
    for (const auto& dir : all) {
      auto problems = checkpoint::verify_checkpoint(dir);
      std::string info = "?";
      try {
        auto p = checkpoint::read_meta(dir).get<checkpoint::Progress>();
        info = fmt::format("step {:>8}  tokens {:>12}  loss {:.4f}  {:>8.1f} MB", p.step, p.tokens, p.loss,
                           dir_bytes(dir) / 1e6);
      } catch (const std::exception&) {
      }
      std::printf("%s  %s  %s\n", dir.c_str(), info.c_str(), problems.empty() ? "ok" : "DAMAGED");
    }
    return 0;
  }
  if (sub == "verify") {
    Args args("recur ckpt verify CKPT", "Recompute every checksum of a checkpoint directory; exit 1 naming each damaged file.");
    args.positional("CKPT", "checkpoint directory (RUN_DIR/checkpoints/step-XXXXXXXX)");
    if (!args.parse(rest)) return 0;
    auto problems = checkpoint::verify_checkpoint(args.get("CKPT"));
    for (const auto& p : problems) std::fprintf(stderr, "FAILED: %s\n", p.c_str());
    if (problems.empty()) std::printf("%s: OK\n", args.get("CKPT").c_str());
    return problems.empty() ? 0 : 1;
  }
  if (sub == "inspect") {
    Args args("recur ckpt inspect CKPT [--config FILE [--set k=v]...]",
              "Show a checkpoint: step, tokens, loss, world size, sizes, checksum status, and with --config the\n"
              "keys whose values differ between that config and the one the checkpoint was written with.");
    args.positional("CKPT", "checkpoint directory").option("config", "FILE", "config to compare with")
        .list("set", "KEY=VALUE", "overrides for --config");
    if (!args.parse(rest)) return 0;
    std::string dir = args.get("CKPT");
    auto meta = checkpoint::read_meta(dir);
    auto problems = checkpoint::verify_checkpoint(dir);
    const auto p = meta.get<checkpoint::Progress>();
    nlohmann::json out = {{"checkpoint", dir},
                          {"step", p.step},
                          {"tokens", p.tokens},
                          {"loss", p.loss},
                          {"world_size", meta.value("world_size", 1)},
                          {"model", meta.value("model", "")},
                          {"recur_version", meta.value("recur_version", "")},
                          {"bytes", problems.empty() ? dir_bytes(dir) : 0},
                          {"checksums", problems.empty() ? "ok" : "damaged"},
                          {"problems", problems}};
    if (args.has("config")) {
      Config theirs = Config::parse(meta.value("config", ""), dir + "/meta.json");
      Config mine = Config::load(args.get("config"), args.get_list("set"));
      nlohmann::json diff = nlohmann::json::object();
      for (const auto& key : mine.diff(theirs)) {
        diff[key] = {{"checkpoint", theirs.value_text(key)}, {"config", mine.value_text(key)}};
      }
      out["config_diff"] = diff;
    }
    std::printf("%s\n", out.dump(2).c_str());
    return problems.empty() ? 0 : 1;
  }
  Args args("recur ckpt {list,verify,inspect} ...", "List, verify and inspect checkpoints (see docs/checkpoints.md).");
  return subcommand_error("ckpt", args, argv, {"list", "verify", "inspect"});
}

}  // namespace recur::cli
