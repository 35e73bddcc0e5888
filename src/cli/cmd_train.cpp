// `recur train` and `recur eval`: thin wrappers over src/train.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "checkpoint/checkpoint.h"
#include "core/config.h"
#include "train/trainer.h"

namespace recur::cli {

int cmd_train(const Argv& argv) {
  Args args("recur train --config FILE --run-dir DIR [--set section.key=value]...",
            "Train the model a config describes. Writes RUN_DIR/config.yaml (the resolved config),\n"
            "RUN_DIR/metrics.jsonl (one JSON object per logged step: step, loss, bpc or ppl, lr, tokens/s),\n"
            "RUN_DIR/model.pt (the final parameters) and RUN_DIR/eval.json (validation metrics at the end).\n"
            "A progress line per train.log_every steps: step, loss, BPC or PPL, lr, tokens/s, ETA.");
  args.required("config", "FILE", "YAML config (`recur config keys` lists every key)")
      .required("run-dir", "DIR", "run directory (created if missing)")
      .list("set", "KEY=VALUE", "override a config key, e.g. --set data.path=DIR --set train.steps=100")
      .option("resume", "auto|never|PATH",
              "auto: continue from the newest checkpoint in RUN_DIR whose checksums verify (falling back past "
              "damaged ones); never: start over; PATH: that checkpoint",
              "auto")
      .epilog("Exit codes: 0 done; 1 error; 2 bad command line; 75 stopped by SIGTERM/SIGUSR1/SIGINT (Ctrl-C) after\n"
              "saving a checkpoint (\"checkpointed, requeue me\"): run the same command again to continue. A second\n"
              "Ctrl-C during that save ends the run at once.");
  if (!args.parse(argv)) return 0;
  Config config = Config::load(args.get("config"), args.get_list("set"));
  try {
    auto result = train::run_training(config, args.get("run-dir"), args.get("resume"));
    if (!result.is_null()) std::printf("%s\n", result.dump().c_str());  // rank 0 only
  } catch (const checkpoint::Checkpointed& e) {
    std::fprintf(stderr, "recur train: %s (exit %d: requeue me)\n", e.what(), checkpoint::kExitCheckpointed);
    return checkpoint::kExitCheckpointed;
  }
  return 0;
}

int cmd_eval(const Argv& argv) {
  Args args("recur eval --run-dir DIR [--split valid|test] [--set eval.key=value]...",
            "Evaluate a trained run on a split with the XL evaluation settings (eval.tgt_len, eval.mem_len,\n"
            "eval.same_length, eval.clamp_len). Prints one JSON object: loss, bpc (bytes/chars) or ppl\n"
            "(words), token_accuracy, and the RSA gates of RSA models.");
  args.required("run-dir", "DIR", "run directory written by `recur train`")
      .option("split", "NAME", "split to evaluate", "valid")
      .list("set", "KEY=VALUE", "override a config key for this evaluation");
  if (!args.parse(argv)) return 0;
  auto result = train::run_evaluation(args.get("run-dir"), args.get("split"), args.get_list("set"));
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

}  // namespace recur::cli
