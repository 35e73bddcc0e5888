// `recur model info`: parameter counts and FLOPs of a configured model, with no data and no training.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "train/flops.h"

namespace recur::cli {

int cmd_model(const Argv& argv) {
  if (argv.empty() || argv[0] != "info") {
    Args args("recur model info --config FILE [--set k=v]... [--vocab V]",
              "Describe the model a config builds: `recur model info` prints its parameter counts and FLOPs.");
    return subcommand_error("model", args, argv, {"info"});
  }
  Args args("recur model info --config FILE [--set k=v]... [--vocab V]",
            "Build the configured model (no data, no training) and print one JSON object: `parameters` (the\n"
            "total), `modules` (parameters per top-level module), `non_embedding_parameters` (without the\n"
            "token and position embedding tables) and `flops_per_token` (forward + backward, counted from\n"
            "the shapes: the count `recur bench step` reports as model_flops_per_token).\n"
            "The vocabulary: --vocab, else model.vocab_size, else the manifest of data.path.");
  args.required("config", "FILE", "model config")
      .list("set", "KEY=VALUE", "override a config key")
      .option("vocab", "V", "vocabulary size (default: model.vocab_size, else data.path's manifest)");
  if (!args.parse(Argv(argv.begin() + 1, argv.end()))) return 0;
  Config c = Config::load(args.get("config"), args.get_list("set"));
  int64_t vocab = 0;
  if (args.has("vocab")) {
    vocab = args.get_int("vocab");
    if (vocab < 1) throw UsageError("--vocab must be a positive vocabulary size");
  } else if (c.get_int("model.vocab_size") > 0) {
    vocab = c.get_int("model.vocab_size");
  } else if (c.has("data.path") && !c.get_string("data.path").empty() &&
             path_exists(c.get_string("data.path") + "/manifest.json")) {
    vocab = static_cast<int64_t>(data::Dataset::open(c.get_string("data.path"), /*verify_checksums=*/false)->manifest().vocab.size);
  } else {
    throw UsageError("no vocabulary size: pass --vocab V, set model.vocab_size, or point data.path at a dataset");
  }
  std::printf("%s\n", train::model_info(c, vocab).dump().c_str());
  return 0;
}

}  // namespace recur::cli
